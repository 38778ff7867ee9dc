// EC2 Query API responses, built with pugixml (escaping is the library's): `<ActionResponse xmlns=...>` with a
// requestId, lists as `<xxxSet><item>...`, and errors as `<Response><Errors><Error>...`.
#pragma once

#include <pugixml.hpp>

#include <string>

#include "stratus/ec2/errors.h"

namespace stratus::ec2 {

inline constexpr const char* kXmlns = "http://ec2.amazonaws.com/doc/2016-11-15/";
inline constexpr const char* kApiVersion = "2016-11-15";

// A random request id in UUID form (what EC2 returns and awscli prints with --debug).
std::string NewRequestId();

class Response {
 public:
  Response(const std::string& action, const std::string& request_id);
  pugi::xml_node root() { return root_; }
  std::string Str() const;

 private:
  pugi::xml_document doc_;
  pugi::xml_node root_;
};

// Appends <name>text</name> under `parent` and returns the new element.
pugi::xml_node AddText(pugi::xml_node parent, const char* name, const std::string& text);
pugi::xml_node AddBool(pugi::xml_node parent, const char* name, bool value);
// Appends <name> (a set) and returns it; items go in with AddItem.
inline pugi::xml_node AddSet(pugi::xml_node parent, const char* name) { return parent.append_child(name); }
inline pugi::xml_node AddItem(pugi::xml_node set) { return set.append_child("item"); }

// `<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>`.
std::string ErrorXml(const Error& e, const std::string& request_id);

}  // namespace stratus::ec2
