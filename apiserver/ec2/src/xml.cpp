#include "stratus/ec2/xml.h"

#include <openssl/rand.h>

#include <sstream>

namespace stratus::ec2 {
namespace {

std::string Render(const pugi::xml_document& doc) {
  std::ostringstream out;
  doc.save(out, "", pugi::format_raw | pugi::format_no_declaration);
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + out.str();
}

}  // namespace

std::string NewRequestId() {
  unsigned char b[16];
  RAND_bytes(b, sizeof b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  static const char* k = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    s += k[b[i] >> 4];
    s += k[b[i] & 15];
  }
  return s;
}

Response::Response(const std::string& action, const std::string& request_id) {
  root_ = doc_.append_child((action + "Response").c_str());
  root_.append_attribute("xmlns") = kXmlns;
  AddText(root_, "requestId", request_id);
}

std::string Response::Str() const { return Render(doc_); }

pugi::xml_node AddText(pugi::xml_node parent, const char* name, const std::string& text) {
  pugi::xml_node n = parent.append_child(name);
  n.text().set(text.c_str());
  return n;
}

pugi::xml_node AddBool(pugi::xml_node parent, const char* name, bool value) {
  return AddText(parent, name, value ? "true" : "false");
}

std::string ErrorXml(const Error& e, const std::string& request_id) {
  pugi::xml_document doc;
  pugi::xml_node r = doc.append_child("Response");
  pugi::xml_node err = r.append_child("Errors").append_child("Error");
  AddText(err, "Code", e.code);
  AddText(err, "Message", e.message);
  AddText(r, "RequestID", request_id);
  return Render(doc);
}

}  // namespace stratus::ec2
