// Security groups: CreateSecurityGroup, DescribeSecurityGroups, DeleteSecurityGroup, and Authorize/Revoke of
// ingress and egress rules onto SecurityGroup objects (one object rule per EC2 peer: a CIDR or another group).
#include <algorithm>
#include <map>
#include <regex>
#include <set>
#include <tuple>

#include "internal.h"
#include "stratus/core/object.h"

namespace stratus::ec2::actions {
namespace {

const std::regex& GroupIdPattern() {
  static const std::regex k("sg-[0-9a-f]{8,17}");
  return k;
}

// The caller's group named by GroupId or GroupName.
std::optional<Error> NamedGroup(ApiClient* api, const Call& c, json* out) {
  auto id = c.params.Get("GroupId");
  auto name = c.params.Get("GroupName");
  if ((!id || id->empty()) && (!name || name->empty())) return MissingParameter("GroupId");
  if (id && !id->empty() && !std::regex_match(*id, GroupIdPattern())) {
    return Error{"InvalidGroupId.Malformed", "Invalid id: \"" + *id + "\"", 400};
  }
  auto list = api->List("securitygroups", c.caller->ns, {});
  if (!list.ok()) return FromStatus(list.status());
  for (const auto& g : (*list)["items"]) {
    if ((id && !id->empty() && Ec2Id("sg", Uid(g)) == *id) || (name && !name->empty() && Name(g) == *name)) {
      *out = g;
      return std::nullopt;
    }
  }
  std::string what = id && !id->empty() ? *id : *name;
  return Error{"InvalidGroup.NotFound", "The security group '" + what + "' does not exist", 400};
}

// IpPermissions.N as object rules: one per CIDR (IpRanges.M.CidrIp) and per group (UserIdGroupPairs.M.GroupId or
// .GroupName).
std::optional<Error> RulesFrom(ApiClient* api, const Call& c, json* rules) {
  *rules = json::array();
  json groups;
  for (int n = 1; n <= 100; ++n) {
    std::string base = "IpPermissions." + std::to_string(n);
    auto proto = c.params.Get(base + ".IpProtocol");
    if (!proto) {
      if (n == 1) return MissingParameter("IpPermissions");
      break;
    }
    std::string p = *proto == "-1" || *proto == "all" ? "all" : *proto;
    if (p == "6") p = "tcp";
    if (p == "17") p = "udp";
    if (p == "1") p = "icmp";
    if (p != "tcp" && p != "udp" && p != "icmp" && p != "all") {
      return InvalidParameterValue("Invalid value '" + *proto + "' for IP protocol (tcp, udp, icmp or -1)");
    }
    json rule = {{"protocol", p}};
    if (p == "tcp" || p == "udp") {
      long long from = 0, to = 0;
      Error e;
      if (!c.params.Has(base + ".FromPort")) return MissingParameter(base + ".FromPort");
      if (!c.params.Int(base + ".FromPort", 0, 0, 65535, &from, &e)) return e;
      if (!c.params.Int(base + ".ToPort", from, 0, 65535, &to, &e)) return e;
      if (to < from) return InvalidParameterValue(base + ": FromPort " + std::to_string(from) + " is after ToPort " + std::to_string(to));
      rule["fromPort"] = from;
      rule["toPort"] = to;
    } else if (p == "icmp") {
      long long type = -1, code = -1;
      Error e;
      if (!c.params.Int(base + ".FromPort", -1, -1, 255, &type, &e) || !c.params.Int(base + ".ToPort", -1, -1, 255, &code, &e)) return e;
      if (type >= 0) rule["fromPort"] = type;
      if (code >= 0) rule["toPort"] = code;
    }
    size_t before = rules->size();
    for (int m = 1; m <= 100; ++m) {
      auto cidr = c.params.Get(base + ".IpRanges." + std::to_string(m) + ".CidrIp");
      if (!cidr) break;
      json r = rule;
      r["cidr"] = *cidr;
      if (auto d = c.params.Get(base + ".IpRanges." + std::to_string(m) + ".Description")) r["description"] = *d;
      rules->push_back(r);
    }
    for (int m = 1; m <= 100; ++m) {
      std::string pb = base + ".Groups." + std::to_string(m);
      auto gid = c.params.Get(pb + ".GroupId");
      auto gname = c.params.Get(pb + ".GroupName");
      if (!gid && !gname) break;
      std::string peer = gname.value_or("");
      if (gid) {
        if (groups.is_null()) {
          auto list = api->List("securitygroups", c.caller->ns, {});
          if (!list.ok()) return FromStatus(list.status());
          groups = (*list)["items"];
        }
        for (const auto& g : groups) {
          if (Ec2Id("sg", Uid(g)) == *gid) peer = Name(g);
        }
        if (peer.empty()) return Error{"InvalidGroup.NotFound", "The security group '" + *gid + "' does not exist", 400};
      }
      json r = rule;
      r["securityGroup"] = peer;
      rules->push_back(r);
    }
    if (rules->size() == before) return MissingParameter(base + ".IpRanges or " + base + ".Groups");
  }
  return std::nullopt;
}

// Two rules are the same grant when all but their description match.
bool SameRule(json a, json b) {
  a.erase("description");
  b.erase("description");
  if (!a.contains("protocol")) a["protocol"] = "tcp";
  if (!b.contains("protocol")) b["protocol"] = "tcp";
  if (a.contains("fromPort") && !a.contains("toPort")) a["toPort"] = a["fromPort"];
  if (b.contains("fromPort") && !b.contains("toPort")) b["toPort"] = b["fromPort"];
  return a == b;
}

// Adds (authorize) or removes (revoke) the request's rules in spec.ingress or spec.egress.
std::optional<Error> ChangeRules(ApiClient* api, const Call& c, Response* r, const char* field, bool add) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    json g;
    if (auto e = NamedGroup(api, c, &g)) return e;
    json rules;
    if (auto e = RulesFrom(api, c, &rules)) return e;
    json have = g.contains("spec") && g["spec"].contains(field) && g["spec"][field].is_array() ? g["spec"][field]
                                                                                                : json::array();
    for (const auto& rule : rules) {
      auto it = std::find_if(have.begin(), have.end(), [&](const json& h) { return SameRule(h, rule); });
      if (add) {
        if (it != have.end()) {
          return Error{"InvalidPermission.Duplicate", "the specified rule \"" + rule.dump() + "\" already exists", 400};
        }
        have.push_back(rule);
      } else {
        if (it == have.end()) {
          return Error{"InvalidPermission.NotFound", "The specified rule does not exist in this security group.", 400};
        }
        have.erase(it);
      }
    }
    json patch = {{"metadata", {{"resourceVersion", Str(g, "metadata", "resourceVersion")}}}, {"spec", {{field, have}}}};
    auto p = api->Patch("securitygroups", c.caller->ns, Name(g), patch);
    if (!p.ok() && p.status().code() == Code::kConflict) continue;
    if (!p.ok()) {
      if (p.status().code() == Code::kInvalid) return InvalidParameterValue(p.status().message());
      return FromStatus(p.status());
    }
    AddBool(r->root(), "return", true);
    return std::nullopt;
  }
  return Error{"IncorrectState", "the security group kept changing; try again", 400};
}

// spec.ingress/egress as EC2's ipPermissions: rules with the same protocol and ports share an item.
void Permissions(pugi::xml_node parent, const char* set_name, const json& rules, const json& groups) {
  auto set = AddSet(parent, set_name);
  if (!rules.is_array()) return;
  std::map<std::tuple<std::string, long long, long long>, std::vector<json>> by;
  for (const auto& r : rules) {
    std::string p = r.value("protocol", "tcp");
    long long from = r.contains("fromPort") ? r["fromPort"].get<long long>() : -1;
    long long to = r.contains("toPort") ? r["toPort"].get<long long>() : from;
    by[{p, from, to}].push_back(r);
  }
  for (const auto& [k, rs] : by) {
    auto item = AddItem(set);
    const auto& [p, from, to] = k;
    AddText(item, "ipProtocol", p == "all" ? "-1" : p);
    if (p != "all") {
      AddText(item, "fromPort", std::to_string(from));
      AddText(item, "toPort", std::to_string(to));
    }
    auto pairs = AddSet(item, "groups");
    auto ranges = AddSet(item, "ipRanges");
    for (const auto& r : rs) {
      if (r.contains("cidr")) {
        auto x = AddItem(ranges);
        AddText(x, "cidrIp", r.value("cidr", ""));
        if (r.contains("description")) AddText(x, "description", r.value("description", ""));
      } else {
        auto x = AddItem(pairs);
        std::string peer = r.value("securityGroup", "");
        for (const auto& g : groups) {
          if (Name(g) == peer) AddText(x, "groupId", Ec2Id("sg", Uid(g)));
        }
        AddText(x, "groupName", peer);
      }
    }
  }
}

}  // namespace

std::optional<Error> CreateSecurityGroup(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  auto name = c.params.Get("GroupName");
  if (!name || name->empty()) return MissingParameter("GroupName");
  auto desc = c.params.Get("GroupDescription");
  if (!desc || desc->empty()) return MissingParameter("GroupDescription");
  if (!ValidateDns1123Label(*name, "GroupName").ok()) {
    return InvalidParameterValue("GroupName '" + *name + "' must be a DNS label here (lowercase letters, digits, '-')");
  }
  if (desc->size() > 255) return InvalidParameterValue("GroupDescription is longer than 255 characters");
  Tags tags;
  if (auto err = SpecTags(c.params, {"security-group"}, "security-group", &tags)) return err;
  json md = {{"name", *name}};
  PutTags(&md, tags);
  json obj = {{"apiVersion", "stratus.io/v1"},
              {"kind", "SecurityGroup"},
              {"metadata", md},
              {"spec", {{"description", *desc}}}};
  auto made = api->Create("securitygroups", c.caller->ns, obj);
  if (!made.ok()) {
    if (made.status().code() == Code::kAlreadyExists) {
      return Error{"InvalidGroup.Duplicate", "The security group '" + *name + "' already exists", 400};
    }
    if (made.status().code() == Code::kForbidden) return Error{"SecurityGroupLimitExceeded", made.status().message(), 400};
    return FromStatus(made.status());
  }
  AddBool(r->root(), "return", true);
  AddText(r->root(), "groupId", Ec2Id("sg", Uid(*made)));
  return std::nullopt;
}

std::optional<Error> DescribeSecurityGroups(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  std::vector<std::string> ids, names;
  if (auto e = IdList(c.params, "GroupId", GroupIdPattern(), "InvalidGroupId.Malformed", &ids)) return e;
  Error e;
  if (!c.params.List("GroupName", &names, &e)) return e;
  std::vector<Filter> filters;
  if (!c.params.Filters(&filters, &e)) return e;
  for (const auto& f : filters) {
    if (f.name != "group-id" && f.name != "group-name" && f.name != "description" && f.name != "owner-id" &&
        f.name != "vpc-id" && !IsTagFilter(f.name)) {
      return InvalidParameterValue("The filter '" + f.name + "' is invalid");
    }
  }
  auto list = api->List("securitygroups", c.caller->ns, {});
  if (!list.ok()) return FromStatus(list.status());
  const json& groups = (*list)["items"];
  std::set<std::string> want_ids(ids.begin(), ids.end()), want_names(names.begin(), names.end()), seen;
  auto set = AddSet(r->root(), "securityGroupInfo");
  for (const auto& g : groups) {
    std::string id = Ec2Id("sg", Uid(g)), name = Name(g);
    if ((!want_ids.empty() || !want_names.empty()) && !want_ids.count(id) && !want_names.count(name)) continue;
    seen.insert(id);
    seen.insert(name);
    bool match = true;
    for (const auto& f : filters) {
      if (IsTagFilter(f.name)) {
        match = match && TagFilterMatches(f, g);
        continue;
      }
      std::string v = f.name == "group-id" ? id : f.name == "group-name" ? name
                    : f.name == "description" ? Str(g, "spec", "description") : f.name == "owner-id" ? c.caller->ns
                    : Ec2Id("vpc", "namespace/" + c.caller->ns);
      match = match && AnyMatch(f.values, v);
    }
    if (!match) continue;
    auto item = AddItem(set);
    AddText(item, "ownerId", c.caller->ns);
    AddText(item, "groupId", id);
    AddText(item, "groupName", name);
    AddText(item, "groupDescription", Str(g, "spec", "description"));
    const json spec = g.value("spec", json::object());
    Permissions(item, "ipPermissions", spec.value("ingress", json::array()), groups);
    Permissions(item, "ipPermissionsEgress", spec.value("egress", json::array()), groups);
    AddText(item, "vpcId", Ec2Id("vpc", "namespace/" + c.caller->ns));
    AddTagSet(item, g);
  }
  for (const auto& w : want_ids) {
    if (!seen.count(w)) return Error{"InvalidGroup.NotFound", "The security group '" + w + "' does not exist", 400};
  }
  for (const auto& w : want_names) {
    if (!seen.count(w)) return Error{"InvalidGroup.NotFound", "The security group '" + w + "' does not exist", 400};
  }
  return std::nullopt;
}

std::optional<Error> DeleteSecurityGroup(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  json g;
  if (auto e = NamedGroup(api, c, &g)) return e;
  auto insts = api->List("instances", c.caller->ns, {});
  if (!insts.ok()) return FromStatus(insts.status());
  for (const auto& i : (*insts)["items"]) {
    if (!i.contains("spec") || !i["spec"].contains("securityGroups")) continue;
    for (const auto& n : i["spec"]["securityGroups"]) {
      if (n == Name(g)) {
        return Error{"DependencyViolation", "resource " + Ec2Id("sg", Uid(g)) + " has a dependent object (instance " +
                                                Ec2Id("i", Uid(i)) + ")", 400};
      }
    }
  }
  auto d = api->Delete("securitygroups", c.caller->ns, Name(g), Uid(g));
  if (!d.ok() && d.status().code() != Code::kNotFound) return FromStatus(d.status());
  AddBool(r->root(), "return", true);
  return std::nullopt;
}

std::optional<Error> AuthorizeSecurityGroupIngress(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  return ChangeRules(api, c, r, "ingress", true);
}
std::optional<Error> AuthorizeSecurityGroupEgress(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  return ChangeRules(api, c, r, "egress", true);
}
std::optional<Error> RevokeSecurityGroupIngress(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  return ChangeRules(api, c, r, "ingress", false);
}
std::optional<Error> RevokeSecurityGroupEgress(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  return ChangeRules(api, c, r, "egress", false);
}

// DescribeSecurityGroupRules: each object rule as one EC2 rule, its id (sgr-) derived from the group and the rule.
std::optional<Error> DescribeSecurityGroupRules(Api*, ApiClient* api, const ApiOptions&, const Call& c, Response* r) {
  static const std::regex kRuleId("sgr-[0-9a-f]{8,17}");
  std::vector<std::string> ids;
  if (auto e = IdList(c.params, "SecurityGroupRuleId", kRuleId, "InvalidSecurityGroupRuleId.Malformed", &ids)) return e;
  std::vector<Filter> filters;
  Error e;
  if (!c.params.Filters(&filters, &e)) return e;
  for (const auto& f : filters) {
    if (f.name != "group-id" && f.name != "security-group-rule-id" && !IsTagFilter(f.name)) {
      return InvalidParameterValue("The filter '" + f.name + "' is invalid");
    }
  }
  long long max_results = 0;
  if (c.params.Has("MaxResults") && !c.params.Int("MaxResults", 1000, 5, 1000, &max_results, &e)) return e;
  std::string after = c.params.Get("NextToken").value_or("");
  if (!after.empty() && !std::regex_match(after, kRuleId)) return InvalidParameterValue("Invalid NextToken");
  auto list = api->List("securitygroups", c.caller->ns, {});
  if (!list.ok()) return FromStatus(list.status());
  const json& groups = (*list)["items"];
  struct Row {
    json group, rule;
    bool egress;
  };
  std::map<std::string, Row> rows;  // by rule id: stable pages
  for (const auto& g : groups) {
    for (const char* field : {"ingress", "egress"}) {
      if (!g.contains("spec") || !g["spec"].contains(field) || !g["spec"][field].is_array()) continue;
      for (const auto& rule : g["spec"][field]) {
        rows[Ec2Id("sgr", Uid(g) + "/" + field + "/" + rule.dump())] = {g, rule, std::string(field) == "egress"};
      }
    }
  }
  std::set<std::string> wanted(ids.begin(), ids.end()), seen;
  auto set = AddSet(r->root(), "securityGroupRuleSet");
  long long shown = 0;
  std::string last;
  for (const auto& [id, row] : rows) {
    if (!wanted.empty() && !wanted.count(id)) continue;
    seen.insert(id);
    if (!after.empty() && id <= after) continue;
    bool match = true;
    for (const auto& f : filters) {
      if (IsTagFilter(f.name)) {
        match = match && TagFilterMatches(f, row.group);
        continue;
      }
      match = match && AnyMatch(f.values, f.name == "group-id" ? Ec2IdOf(row.group) : id);
    }
    if (!match) continue;
    if (max_results > 0 && shown == max_results) {
      AddText(r->root(), "nextToken", last);
      break;
    }
    ++shown;
    last = id;
    auto item = AddItem(set);
    const json& rule = row.rule;
    std::string p = rule.value("protocol", "tcp");
    AddText(item, "securityGroupRuleId", id);
    AddText(item, "groupId", Ec2IdOf(row.group));
    AddText(item, "groupOwnerId", c.caller->ns);
    AddBool(item, "isEgress", row.egress);
    AddText(item, "ipProtocol", p == "all" ? "-1" : p);
    long long from = rule.contains("fromPort") ? rule["fromPort"].get<long long>() : -1;
    long long to = rule.contains("toPort") ? rule["toPort"].get<long long>() : from;
    AddText(item, "fromPort", std::to_string(p == "all" ? -1 : from));
    AddText(item, "toPort", std::to_string(p == "all" ? -1 : to));
    if (rule.contains("cidr")) AddText(item, "cidrIpv4", rule.value("cidr", ""));
    if (rule.contains("securityGroup")) {
      auto ref = item.append_child("referencedGroupInfo");
      for (const auto& g : groups) {
        if (Name(g) == rule.value("securityGroup", "")) AddText(ref, "groupId", Ec2IdOf(g));
      }
    }
    if (rule.contains("description")) AddText(item, "description", rule.value("description", ""));
    AddTagSet(item, row.group);
  }
  for (const auto& id : wanted) {
    if (!seen.count(id)) return Error{"InvalidSecurityGroupRuleId.NotFound", "The rule '" + id + "' does not exist", 400};
  }
  return std::nullopt;
}

}  // namespace stratus::ec2::actions
