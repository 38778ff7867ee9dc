// Schema validation, defaulting and explain for every kind; quantities; and every shipped manifest validates.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "stratus/core/quantity.h"
#include "stratus/core/resources.h"
#include "stratus/core/schema.h"
#include "stratus/core/yaml.h"

namespace stratus {
// Generated from schemas/*.yaml (library stratus_schemas, linked through stratus_core).
const std::map<std::string, std::string>& EmbeddedSchemas();

namespace {

const SchemaRegistry& R() { return SchemaRegistry::Builtin(); }

json Obj(const std::string& kind, const std::string& name, json spec, bool namespaced = true) {
  json o = {{"apiVersion", "stratus.io/v1"}, {"kind", kind}, {"metadata", {{"name", name}}}};
  if (namespaced) o["metadata"]["namespace"] = "default";
  if (!spec.is_null()) o["spec"] = std::move(spec);
  return o;
}

json Instance(json spec = {{"instanceType", "m1.small"}}) { return Obj("Instance", "web-1", std::move(spec)); }

// Defaults then validates, as the API server does.
Status Check(json obj) {
  std::string kind = obj.value("kind", "");
  R().ApplyDefaults(kind, obj);
  return R().Validate(kind, obj);
}

// The causes of `s` as "field: message" lines, for readable failures.
std::string Causes(const Status& s) {
  std::string out;
  for (const auto& c : s.causes()) out += c.field + ": " + c.message + " [" + c.reason + "]\n";
  return out;
}

bool HasCause(const Status& s, const std::string& field, const std::string& message_part = "",
              const std::string& reason = "") {
  for (const auto& c : s.causes()) {
    if (c.field == field && c.message.find(message_part) != std::string::npos && (reason.empty() || c.reason == reason)) {
      return true;
    }
  }
  return false;
}

#define EXPECT_CAUSE(status, ...) EXPECT_TRUE(HasCause(status, __VA_ARGS__)) << (status).message() << "\n" << Causes(status)
#define EXPECT_VALID(status) EXPECT_TRUE((status).ok()) << (status).message()

// ----- loading -------------------------------------------------------------------------------------------

TEST(SchemaLoadTest, EveryEmbeddedSchemaLoads) {
  std::vector<std::pair<std::string, std::string>> files(EmbeddedSchemas().begin(), EmbeddedSchemas().end());
  ASSERT_GE(files.size(), 11u);
  auto reg = SchemaRegistry::Load(files);
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  for (const auto& r : AllResources()) {
    json s = (*reg)->SchemaOf(r.kind);
    ASSERT_TRUE(s.is_object()) << "no schema for " << r.kind;
    EXPECT_EQ(s["properties"]["kind"]["enum"], json::array({r.kind})) << r.kind;
    EXPECT_EQ(s["properties"]["apiVersion"]["enum"], json::array({"stratus.io/v1"})) << r.kind;
    EXPECT_TRUE(s["properties"].contains("metadata")) << r.kind;
  }
  EXPECT_TRUE(R().SchemaOf("Nope").is_null());
}

TEST(SchemaLoadTest, EveryEmbeddedFileIsValidYamlWithDescriptions) {
  // Each property must carry a description (explain shows it); the loader enforces it, so a load suffices, but
  // check the count of files to catch a schema file silently missing from the build.
  std::set<std::string> names;
  for (const auto& [n, text] : EmbeddedSchemas()) names.insert(n);
  for (const auto& r : AllResources()) {
    std::string lower = r.kind;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    EXPECT_TRUE(names.count(lower)) << "schemas/" << lower << ".yaml missing";
  }
  EXPECT_TRUE(names.count("metadata"));
}

TEST(SchemaLoadTest, BrokenSchemasAreRejected) {
  auto load = [](const std::string& text) {
    return SchemaRegistry::Load({{"thing", text}});
  };
  EXPECT_TRUE(load("type: object\ndescription: d\nproperties:\n  a: {type: string, description: x}\n").ok());
  EXPECT_FALSE(load("type: object\ndescription: d\nproperties:\n  a: {type: string, description: x, minimun: 1}\n").ok());
  EXPECT_FALSE(load("type: object\ndescription: d\nproperties:\n  a: {type: strin, description: x}\n").ok());
  EXPECT_FALSE(load("type: object\ndescription: d\nproperties:\n  a: {type: string}\n").ok());  // no description
  EXPECT_FALSE(load("type: object\ndescription: d\nproperties:\n  a: {type: string, description: x, pattern: '(['}\n").ok());
  EXPECT_FALSE(load("type: object\ndescription: d\nproperties:\n  a: {type: integer, description: x, minimum: 1, default: 0}\n").ok());
  EXPECT_FALSE(load("type: object\ndescription: d\nproperties:\n  a: {type: string, description: x, enum: [a], default: b}\n").ok());
  EXPECT_FALSE(load("type: object\ndescription: d\nproperties:\n  a: {$ref: nowhere}\n").ok());
  EXPECT_FALSE(load("type: object\ndescription: d\nproperties:\n  a: {$ref: '#/definitions/a'}\n"
                    "definitions:\n  a: {$ref: '#/definitions/a'}\n").ok());  // cycle
  EXPECT_FALSE(load("type: object\ndescription: d\nrequired: [b]\nproperties:\n  a: {type: string, description: x}\n").ok());
  EXPECT_FALSE(load("type: object\ndescription: d\nproperties:\n  a: {type: string, description: x, format: nope}\n").ok());
  EXPECT_FALSE(load("type: object\ndescription: d\nproperties:\n  a: {type: string, description: x, maximum: 3}\n").ok());
  EXPECT_FALSE(load("type: object\ndescription: d\n").ok());  // object without properties
  EXPECT_FALSE(load("type: object\ndescription: d\nproperties: {a: [1, 2\n").ok());  // bad YAML
  auto s = load("type: object\ndescription: d\nproperties:\n  a: {type: string, description: x, minimun: 1}\n");
  EXPECT_NE(s.status().message().find("minimun"), std::string::npos) << s.status().message();
}

TEST(SchemaLoadTest, LoadedRegistryValidatesWithRefsAndDefinitions) {
  auto reg = SchemaRegistry::Load(
      {{"shared.yaml", "definitions:\n  port: {type: integer, description: p, minimum: 1, maximum: 9}\n"},
       {"widget", "type: object\ndescription: w\nproperties:\n"
                  "  kind: {type: string, description: k}\n"
                  "  p: {$ref: 'shared#/definitions/port', description: a port}\n"
                  "  l: {type: array, description: l, items: {$ref: '#/definitions/item'}}\n"
                  "definitions:\n  item:\n    type: object\n    description: i\n"
                  "    properties: {x: {type: string, description: x, default: dx}}\n"}});
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  json ok = {{"kind", "Widget"}, {"p", 3}, {"l", {json::object()}}};
  (*reg)->ApplyDefaults("Widget", ok);
  EXPECT_EQ(ok["l"][0]["x"], "dx");
  EXPECT_TRUE((*reg)->Validate("Widget", ok).ok());
  Status bad = (*reg)->Validate("Widget", {{"p", 10}});
  EXPECT_CAUSE(bad, "p", "must be <= 9");
  auto ex = (*reg)->Explain("Widget", "p");
  ASSERT_TRUE(ex.ok());
  EXPECT_NE(ex->find("a port"), std::string::npos) << *ex;
}

// ----- valid minimal objects, per kind --------------------------------------------------------------------

TEST(SchemaValidTest, MinimalObjectOfEveryKindPasses) {
  EXPECT_VALID(Check(Instance()));
  EXPECT_VALID(Check(Instance({{"resources", {{"vcpus", 1}, {"memoryMiB", 64}}}})));
  EXPECT_VALID(Check(Obj("Volume", "data-1", {{"size", "1Gi"}})));
  EXPECT_VALID(Check(Obj("Network", "default", {{"cidr", "10.44.0.0/24"}})));
  EXPECT_VALID(Check(Obj("Image", "debian", json::object())));
  EXPECT_VALID(Check(Obj("KeyPair", "laptop",
                         {{"publicKey", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk2 me@laptop"}})));
  EXPECT_VALID(Check(Obj("SecurityGroup", "web", json::object())));
  EXPECT_VALID(Check(Obj("Namespace", "demo", nullptr, false)));
  EXPECT_VALID(Check(Obj("Node", "host-1.example.com", nullptr, false)));
  EXPECT_VALID(Check(Obj("InstanceType", "m1.small", {{"vcpus", 1}, {"memoryMiB", 256}}, false)));
  json ev = Obj("Event", "web-1.17a8b3c0", nullptr);
  ev["involvedObject"] = {{"kind", "Instance"}, {"name", "web-1"}, {"namespace", "default"}};
  ev["reason"] = "Started";
  ev["message"] = "domain started";
  EXPECT_VALID(Check(ev));
}

TEST(SchemaValidTest, FullInstanceFromTheDesignPasses) {
  json spec = {{"instanceType", "m1.small"},
               {"image", "debian-demo"},
               {"kernelImage", "demo-kernel"},
               {"ramdiskImage", "demo-initrd"},
               {"kernelArgs", "console=ttyS0"},
               {"rootDisk", {{"size", "10Gi"}}},
               {"volumes", {{{"volume", "data-1"}, {"device", "vdb"}}}},
               {"networks", {{{"network", "default"}, {"ip", "10.44.0.12"}, {"mac", "52:54:00:12:34:56"}}}},
               {"securityGroups", {"web"}},
               {"keyName", "laptop"},
               {"userData", "#cloud-config\n"},
               {"powerState", "Stopped"},
               {"nodeName", ""},
               {"nodeSelector", {{"stratus.io/zone", "a"}}},
               {"restartRequestedAt", "2026-01-02T03:04:05Z"}};
  json obj = Instance(spec);
  obj["metadata"]["labels"] = {{"app", "web"}, {"stratus.io/tier", "front_end.1"}};
  obj["metadata"]["annotations"] = {{"stratus.io/last-applied-configuration", "{\"a\": 1}"}};
  obj["metadata"]["finalizers"] = {"stratus.io/instance-teardown"};
  obj["metadata"]["ownerReferences"] = {{{"apiVersion", "stratus.io/v1"}, {"kind", "Instance"}, {"name", "x"},
                                         {"uid", "1234"}, {"controller", true}}};
  obj["metadata"]["uid"] = "3f1c";
  obj["metadata"]["resourceVersion"] = "42";
  obj["metadata"]["generation"] = 3;
  obj["metadata"]["creationTimestamp"] = "2026-11-23T19:13:04Z";
  obj["status"] = {{"phase", "Running"},
                   {"observedGeneration", 3},
                   {"nodeName", "host-1"},
                   {"domainUUID", "abc"},
                   {"addresses", {{{"network", "default"}, {"ip", "10.44.0.12"}, {"mac", "52:54:00:12:34:56"}}}},
                   {"conditions", {{{"type", "Ready"}, {"status", "True"}, {"reason", "Running"},
                                    {"lastTransitionTime", "2026-11-23T19:13:04.123+01:00"}}}},
                   {"somethingNew", {{"x", 1}}}};  // status tolerates fields it does not declare
  EXPECT_VALID(Check(obj));
  // nodeName empty is what the design sketch shows; an empty optional string with a format passes only when
  // the format allows it, so the test above proves "" is accepted for nodeName.
}

// ----- defaults -------------------------------------------------------------------------------------------

TEST(SchemaDefaultsTest, AppliedPerKind) {
  json inst = Instance();
  R().ApplyDefaults("Instance", inst);
  EXPECT_EQ(inst["spec"]["powerState"], "Running");
  EXPECT_FALSE(inst["spec"].contains("rootDisk"));  // a parent is created only if it declares a default itself

  json inst2 = Instance({{"instanceType", "m1.small"}, {"rootDisk", {{"size", "5Gi"}}}, {"powerState", "Stopped"}});
  R().ApplyDefaults("Instance", inst2);
  EXPECT_EQ(inst2["spec"]["rootDisk"]["deleteOnTermination"], true);
  EXPECT_EQ(inst2["spec"]["powerState"], "Stopped");  // never overwritten

  json net = Obj("Network", "n", {{"cidr", "10.0.0.0/24"}});
  R().ApplyDefaults("Network", net);
  EXPECT_EQ(net["spec"]["dhcp"], true);
  EXPECT_EQ(net["spec"]["mode"], "nat");
  json net2 = Obj("Network", "n", {{"cidr", "10.0.0.0/24"}, {"dhcp", false}});
  R().ApplyDefaults("Network", net2);
  EXPECT_EQ(net2["spec"]["dhcp"], false);

  json vol = Obj("Volume", "v", {{"size", "1Gi"}});
  R().ApplyDefaults("Volume", vol);
  EXPECT_EQ(vol["spec"]["format"], "qcow2");

  json img = Obj("Image", "i", {{"source", {{"url", "file:///x"}}}});
  R().ApplyDefaults("Image", img);
  EXPECT_EQ(img["spec"]["type"], "disk");
  EXPECT_EQ(img["spec"]["format"], "auto");

  json ev = Obj("Event", "e", nullptr);
  R().ApplyDefaults("Event", ev);
  EXPECT_EQ(ev["type"], "Normal");
}

TEST(SchemaDefaultsTest, AppliedInsideArrayItems) {
  json sg = Obj("SecurityGroup", "web",
                {{"ingress", {{{"fromPort", 22}, {"cidr", "0.0.0.0/0"}}, {{"protocol", "udp"}, {"cidr", "10.0.0.0/8"}}}}});
  R().ApplyDefaults("SecurityGroup", sg);
  EXPECT_EQ(sg["spec"]["ingress"][0]["protocol"], "tcp");
  EXPECT_EQ(sg["spec"]["ingress"][1]["protocol"], "udp");
  EXPECT_VALID(R().Validate("SecurityGroup", sg));
}

TEST(SchemaDefaultsTest, NullsArePrunedAndDefaulted) {
  json inst = Instance({{"instanceType", "m1.small"}, {"powerState", nullptr}, {"keyName", nullptr}});
  inst["metadata"]["labels"] = nullptr;
  inst["metadata"]["creationTimestamp"] = nullptr;  // what kubectl-style clients send
  R().ApplyDefaults("Instance", inst);
  EXPECT_EQ(inst["spec"]["powerState"], "Running");
  EXPECT_FALSE(inst["spec"].contains("keyName"));
  EXPECT_FALSE(inst["metadata"].contains("labels"));
  EXPECT_VALID(R().Validate("Instance", inst));
}

TEST(SchemaDefaultsTest, MalformedInputDoesNotCrash) {
  json a = Instance();
  a["spec"] = "not an object";
  R().ApplyDefaults("Instance", a);
  EXPECT_EQ(a["spec"], "not an object");
  json b = json::array({1, 2});
  R().ApplyDefaults("Instance", b);
  json c = "x";
  R().ApplyDefaults("Unknown", c);
  EXPECT_FALSE(R().Validate("Instance", a).ok());
  EXPECT_FALSE(R().Validate("Instance", b).ok());
}

// ----- rejections ----------------------------------------------------------------------------------------

TEST(SchemaRejectTest, TopMessageReadsLikeKubernetes) {
  Status s = Check(Instance({{"resources", {{"vcpus", 1}, {"memoryMiB", 32}}}}));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kInvalid);
  EXPECT_EQ(s.http_code(), 422);
  EXPECT_EQ(s.message(),
            "Instance.stratus.io \"web-1\" is invalid: spec.resources.memoryMiB: Invalid value: 32: must be >= 64");
  ASSERT_EQ(s.causes().size(), 1u);
  EXPECT_EQ(s.causes()[0].field, "spec.resources.memoryMiB");
  EXPECT_EQ(s.causes()[0].reason, "FieldValueInvalid");
}

TEST(SchemaRejectTest, WrongTypes) {
  Status s = Check(Instance({{"resources", {{"vcpus", "two"}, {"memoryMiB", 256}}}}));
  EXPECT_CAUSE(s, "spec.resources.vcpus", "Invalid value: \"two\": must be of type integer");
  EXPECT_CAUSE(Check(Instance({{"resources", {{"vcpus", 1.5}, {"memoryMiB", 256}}}})), "spec.resources.vcpus",
               "must be of type integer");
  EXPECT_VALID(Check(Instance({{"resources", {{"vcpus", 2.0}, {"memoryMiB", 256}}}})));  // integral
  EXPECT_CAUSE(Check(Instance("not a spec")), "spec", "must be of type object");
  EXPECT_CAUSE(Check(Instance({{"instanceType", "m1.small"}, {"networks", json::array({"default"})}})),
               "spec.networks[0]", "must be of type object");
  EXPECT_CAUSE(Check(Obj("Network", "n", {{"cidr", "10.0.0.0/8"}, {"dhcp", "yes"}})), "spec.dhcp",
               "must be of type boolean");
  EXPECT_CAUSE(Check(Obj("Volume", "v", {{"size", 10}})), "spec.size", "must be of type string");
  json labels = Instance();
  labels["metadata"]["labels"] = {{"app", 5}};
  EXPECT_CAUSE(Check(labels), "metadata.labels[app]", "must be of type string");
  json meta = Instance();
  meta["metadata"]["name"] = 7;
  EXPECT_CAUSE(Check(meta), "metadata.name", "must be of type string");
  EXPECT_CAUSE(Check(Instance({{"instanceType", "m1.small"}, {"securityGroups", {1}}})), "spec.securityGroups[0]",
               "must be of type string");
  json apiv = Instance();
  apiv["apiVersion"] = "v1";
  EXPECT_CAUSE(Check(apiv), "apiVersion", "Unsupported value: \"v1\"", "FieldValueNotSupported");
  json kind = Instance();
  kind["kind"] = "Volume";
  EXPECT_CAUSE(R().Validate("Instance", kind), "kind", "Unsupported value: \"Volume\"");
}

TEST(SchemaRejectTest, UnknownFieldsAtEveryLevel) {
  json top = Instance();
  top["foo"] = 1;
  EXPECT_CAUSE(Check(top), "foo", "Unsupported field \"foo\"", "FieldValueUnknown");
  EXPECT_CAUSE(Check(Instance({{"instanceType", "m1.small"}, {"foo", 1}})), "spec.foo", "Unsupported field \"foo\"",
               "FieldValueUnknown");
  EXPECT_CAUSE(Check(Instance({{"resources", {{"vcpus", 1}, {"memoryMiB", 64}, {"cpus", 2}}}})),
               "spec.resources.cpus", "Unsupported field");
  EXPECT_CAUSE(Check(Instance({{"instanceType", "m1.small"}, {"networks", {{{"network", "a"}, {"addr", "x"}}}}})),
               "spec.networks[0].addr", "Unsupported field");
  json meta = Instance();
  meta["metadata"]["selfLink"] = "/x";
  EXPECT_CAUSE(Check(meta), "metadata.selfLink", "Unsupported field");
  json owner = Instance();
  owner["metadata"]["ownerReferences"] = {{{"apiVersion", "v"}, {"kind", "K"}, {"name", "n"}, {"uid", "u"}, {"x", 1}}};
  EXPECT_CAUSE(Check(owner), "metadata.ownerReferences[0].x", "Unsupported field");
  json sg = Obj("SecurityGroup", "web", {{"ingress", {{{"cidr", "0.0.0.0/0"}, {"port", 22}}}}});
  EXPECT_CAUSE(Check(sg), "spec.ingress[0].port", "Unsupported field");
  json ev = Obj("Event", "e", nullptr);
  ev["involvedObject"] = {{"kind", "Instance"}, {"name", "web-1"}};
  ev["spec"] = json::object();
  EXPECT_CAUSE(Check(ev), "spec", "Unsupported field");
}

TEST(SchemaRejectTest, Enums) {
  Status s = Check(Instance({{"instanceType", "m1.small"}, {"powerState", "Off"}}));
  EXPECT_CAUSE(s, "spec.powerState", "Unsupported value: \"Off\": supported values: \"Running\", \"Stopped\"",
               "FieldValueNotSupported");
  EXPECT_CAUSE(Check(Obj("Network", "n", {{"cidr", "10.0.0.0/8"}, {"mode", "routed"}})), "spec.mode",
               "supported values: \"nat\", \"isolated\", \"bridged\"");
  EXPECT_CAUSE(Check(Obj("Volume", "v", {{"size", "1Gi"}, {"format", "vmdk"}})), "spec.format", "Unsupported value");
  EXPECT_CAUSE(Check(Obj("Image", "i", {{"type", "iso"}})), "spec.type", "Unsupported value");
  json st = Instance();
  st["status"] = {{"phase", "Exploded"}};
  EXPECT_CAUSE(Check(st), "status.phase", "Unsupported value");
  json cond = Instance();
  cond["status"] = {{"conditions", {{{"type", "Ready"}, {"status", "Yes"}}}}};
  EXPECT_CAUSE(Check(cond), "status.conditions[0].status", "supported values: \"True\", \"False\", \"Unknown\"");
}

TEST(SchemaRejectTest, Ranges) {
  EXPECT_CAUSE(Check(Instance({{"resources", {{"vcpus", 0}, {"memoryMiB", 64}}}})), "spec.resources.vcpus",
               "Invalid value: 0: must be >= 1");
  EXPECT_CAUSE(Check(Instance({{"resources", {{"vcpus", 65}, {"memoryMiB", 64}}}})), "spec.resources.vcpus",
               "must be <= 64");
  EXPECT_CAUSE(Check(Obj("Network", "n", {{"cidr", "10.0.0.0/8"}, {"vlan", 0}})), "spec.vlan", "must be >= 1");
  EXPECT_CAUSE(Check(Obj("Network", "n", {{"cidr", "10.0.0.0/8"}, {"vlan", 4095}})), "spec.vlan", "must be <= 4094");
  EXPECT_CAUSE(Check(Obj("Network", "n", {{"cidr", "10.0.0.0/8"}, {"mtu", 100}})), "spec.mtu", "must be >= 576");
  EXPECT_CAUSE(Check(Obj("SecurityGroup", "s", {{"ingress", {{{"cidr", "0.0.0.0/0"}, {"fromPort", 70000}}}}})),
               "spec.ingress[0].fromPort", "must be <= 65535");
  EXPECT_CAUSE(Check(Obj("InstanceType", "m1.x", {{"vcpus", 1}, {"memoryMiB", 1}}, false)), "spec.memoryMiB",
               "must be >= 64");
  EXPECT_CAUSE(Check(Instance({{"instanceType", "m1.small"}, {"userData", std::string(16385, 'x')}})),
               "spec.userData", "must be no more than 16384 characters");
  json many = json::array();
  for (int i = 0; i < 30; ++i) many.push_back({{"volume", "v" + std::to_string(i)}, {"device", "vdb"}});
  EXPECT_CAUSE(Check(Instance({{"instanceType", "m1.small"}, {"volumes", many}})), "spec.volumes", "at most 25");
}

TEST(SchemaRejectTest, Patterns) {
  EXPECT_CAUSE(Check(Instance({{"instanceType", "m1.small"}, {"volumes", {{{"volume", "d"}, {"device", "vda"}}}}})),
               "spec.volumes[0].device", "must match the pattern '^vd[b-z]$'");
  EXPECT_CAUSE(Check(Obj("Image", "i", {{"sha256", "ABC"}})), "spec.sha256", "must match");
  EXPECT_VALID(Check(Obj("Image", "i", {{"sha256", std::string(64, 'a')}})));
  EXPECT_CAUSE(Check(Obj("Image", "i", {{"source", {{"url", "ftp://x/y"}}}})), "spec.source.url", "must match");
  EXPECT_CAUSE(Check(Obj("Image", "i", {{"source", {{"url", "/var/lib/x"}}}})), "spec.source.url", "must match");
  EXPECT_VALID(Check(Obj("Image", "i", {{"source", {{"url", "https://example.com/a.qcow2"}}}})));
  EXPECT_CAUSE(Check(Obj("KeyPair", "k", {{"publicKey", "not a key"}})), "spec.publicKey", "must match");
  EXPECT_CAUSE(Check(Obj("KeyPair", "k", {{"publicKey", "ssh-rsa AAAAB3 x\nssh-rsa AAAAB3 y"}})), "spec.publicKey",
               "must match");
  EXPECT_VALID(Check(Obj("KeyPair", "k", {{"publicKey", "ssh-rsa AAAAB3NzaC1yc2E= user@host\n"}})));
  // Long input for a patterned field is refused before any regex runs, and a long but legal key is matched
  // without trouble.
  EXPECT_CAUSE(Check(Obj("KeyPair", "k", {{"publicKey", "ssh-rsa AAAA" + std::string(100000, 'A')}})),
               "spec.publicKey", "no more than 4096");
  EXPECT_VALID(Check(Obj("KeyPair", "k", {{"publicKey", "ssh-rsa AAAA" + std::string(4000, 'B')}})));
  EXPECT_CAUSE(Check(Obj("Network", "n", {{"cidr", "10.0.0.0/8"}, {"hostInterface", "eth0; rm -rf /"}})),
               "spec.hostInterface", "must match");
}

TEST(SchemaRejectTest, Formats) {
  auto net = [](json spec) { return Check(Obj("Network", "n", std::move(spec))); };
  EXPECT_CAUSE(net({{"cidr", "10.0.0.0"}}), "spec.cidr", "CIDR");
  EXPECT_CAUSE(net({{"cidr", "10.0.0.0/33"}}), "spec.cidr", "between 0 and 32");
  EXPECT_CAUSE(net({{"cidr", "10.44.0.1/24"}}), "spec.cidr", "did you mean 10.44.0.0/24?");
  EXPECT_CAUSE(net({{"cidr", "300.0.0.0/8"}}), "spec.cidr", "CIDR");
  EXPECT_VALID(net({{"cidr", "0.0.0.0/0"}}));
  EXPECT_VALID(net({{"cidr", "192.168.1.7/32"}}));
  EXPECT_CAUSE(net({{"cidr", "10.0.0.0/8"}, {"gateway", "10.0.0.256"}}), "spec.gateway", "IPv4");
  EXPECT_CAUSE(net({{"cidr", "10.0.0.0/8"}, {"gateway", "010.0.0.1"}}), "spec.gateway", "IPv4");
  EXPECT_CAUSE(net({{"cidr", "10.0.0.0/8"}, {"gateway", "10.0.0"}}), "spec.gateway", "IPv4");
  EXPECT_CAUSE(net({{"cidr", "10.0.0.0/8"}, {"dns", {"1.1.1.1", "dns.google"}}}), "spec.dns[1]", "IPv4");
  EXPECT_CAUSE(Check(Instance({{"instanceType", "m1.small"}, {"networks", {{{"network", "a"}, {"ip", "10.1"}}}}})),
               "spec.networks[0].ip", "must be a valid IPv4 address");
  EXPECT_CAUSE(Check(Instance({{"instanceType", "m1.small"}, {"networks", {{{"network", "a"}, {"mac", "01:00:5e:00:00:01"}}}}})),
               "spec.networks[0].mac", "unicast");
  EXPECT_CAUSE(Check(Instance({{"instanceType", "m1.small"}, {"networks", {{{"network", "a"}, {"mac", "52-54-00-12-34-56"}}}}})),
               "spec.networks[0].mac", "MAC address");
  EXPECT_CAUSE(Check(Obj("Volume", "v", {{"size", "1GB"}})), "spec.size", "must be a quantity");
  EXPECT_CAUSE(Check(Obj("Volume", "v", {{"size", "-1Gi"}})), "spec.size", "must be a quantity");
  EXPECT_CAUSE(Check(Instance({{"instanceType", "m1.small"}, {"rootDisk", {{"size", "ten"}}}})), "spec.rootDisk.size",
               "quantity");
  json ts = Instance();
  ts["metadata"]["creationTimestamp"] = "yesterday";
  EXPECT_CAUSE(Check(ts), "metadata.creationTimestamp", "RFC 3339");
  ts["metadata"]["creationTimestamp"] = "2026-02-30T00:00:00Z";
  EXPECT_CAUSE(Check(ts), "metadata.creationTimestamp", "RFC 3339");
  ts["metadata"]["creationTimestamp"] = "2024-02-29T23:59:60.5-07:00";
  EXPECT_VALID(Check(ts));
  EXPECT_CAUSE(Check(Instance({{"instanceType", "M1.Small"}})), "spec.instanceType", "RFC 1123 subdomain");
  EXPECT_CAUSE(Check(Instance({{"instanceType", "m1.small"}, {"image", "debian.12"}})), "spec.image", "RFC 1123 label");
}

TEST(SchemaRejectTest, BadNames) {
  auto named = [](const std::string& kind, const std::string& name, bool ns = true) {
    json spec = kind == "InstanceType" ? json{{"vcpus", 1}, {"memoryMiB", 64}} : json{{"instanceType", "m1.small"}};
    return Check(Obj(kind, name, spec, ns));
  };
  for (const std::string bad : {"Web-1", "a/b", "..", ".", "web_1", "-web", "web-", "a b", "web.1", ""}) {
    EXPECT_CAUSE(named("Instance", bad), "metadata.name") << "name: '" << bad << "'";
  }
  Status long_name = named("Instance", std::string(300, 'a'));
  EXPECT_CAUSE(long_name, "metadata.name", "no more than 63 characters");
  EXPECT_LT(long_name.message().size(), 600u) << "long values are shortened in messages";
  EXPECT_CAUSE(named("Instance", std::string(64, 'a')), "metadata.name");
  EXPECT_VALID(named("Instance", std::string(63, 'a')));
  // InstanceType and Node names are subdomains.
  EXPECT_VALID(named("InstanceType", "m1.small", false));
  for (const std::string& bad : std::vector<std::string>{"M1.small", "m1..small", "a/b", "..", std::string(300, 'a')}) {
    EXPECT_CAUSE(named("InstanceType", bad, false), "metadata.name") << "name: '" << bad << "'";
  }
  Status missing = Check(Obj("Instance", "", {{"instanceType", "m1.small"}}));
  EXPECT_CAUSE(missing, "metadata.name", "Required value", "FieldValueRequired");
  json gen = Obj("Instance", "", {{"instanceType", "m1.small"}});
  gen["metadata"]["generateName"] = "web-";
  EXPECT_VALID(Check(gen));
  gen["metadata"]["generateName"] = "Web_";
  EXPECT_CAUSE(Check(gen), "metadata.generateName");
  json ns = Instance();
  ns["metadata"]["namespace"] = "Bad/NS";
  EXPECT_CAUSE(Check(ns), "metadata.namespace", "RFC 1123 label");
  json no_meta = Instance();
  no_meta.erase("metadata");
  EXPECT_CAUSE(Check(no_meta), "metadata", "Required value", "FieldValueRequired");
}

TEST(SchemaRejectTest, LabelsAnnotationsFinalizers) {
  json o = Instance();
  o["metadata"]["labels"] = {{"bad key!", "v"}, {"ok", "bad value!"}, {"stratus.io/", "x"}};
  Status s = Check(o);
  EXPECT_CAUSE(s, "metadata.labels", "\"bad key!\": must be a qualified name");
  EXPECT_CAUSE(s, "metadata.labels[ok]", "\"bad value!\"");
  EXPECT_CAUSE(s, "metadata.labels", "\"stratus.io/\"");
  o["metadata"]["labels"] = {{"v", std::string(64, 'a')}};
  EXPECT_CAUSE(Check(o), "metadata.labels[v]");
  o["metadata"].erase("labels");
  o["metadata"]["annotations"] = {{"big", std::string(300 * 1024, 'x')}};
  EXPECT_CAUSE(Check(o), "metadata.annotations", "at most 262144 bytes");
  o["metadata"].erase("annotations");
  o["metadata"]["finalizers"] = {"stratus.io/a", "stratus.io/a"};
  EXPECT_CAUSE(Check(o), "metadata.finalizers[1]", "Duplicate value");
  o["metadata"]["finalizers"] = {"has space"};
  EXPECT_CAUSE(Check(o), "metadata.finalizers[0]", "qualified name");
  o["metadata"].erase("finalizers");
  o["metadata"]["ownerReferences"] = {{{"kind", "Instance"}}};
  Status owner = Check(o);
  EXPECT_CAUSE(owner, "metadata.ownerReferences[0].uid", "Required value");
  EXPECT_CAUSE(owner, "metadata.ownerReferences[0].name", "Required value");
}

TEST(SchemaRejectTest, RequiredFields) {
  json no_spec = Instance();
  no_spec.erase("spec");
  EXPECT_CAUSE(Check(no_spec), "spec", "Required value", "FieldValueRequired");
  EXPECT_CAUSE(Check(Obj("Volume", "v", json::object())), "spec.size", "Required value", "FieldValueRequired");
  EXPECT_CAUSE(Check(Obj("Network", "n", json::object())), "spec.cidr", "Required value");
  EXPECT_CAUSE(Check(Obj("Address", "a", json::object())), "spec.pool", "Required value");
  // A KeyPair may leave its public key out (the server makes the pair), but not name an unknown key type.
  EXPECT_CAUSE(Check(Obj("KeyPair", "k", {{"keyType", "dsa"}})), "spec.keyType", "Unsupported value");
  EXPECT_CAUSE(Check(Obj("InstanceType", "t", json::object(), false)), "spec.vcpus", "Required value");
  EXPECT_CAUSE(Check(Instance({{"resources", {{"vcpus", 1}}}})), "spec.resources.memoryMiB", "Required value");
  EXPECT_CAUSE(Check(Instance({{"instanceType", "a"}, {"volumes", {{{"device", "vdb"}}}}})), "spec.volumes[0].volume",
               "Required value");
  EXPECT_CAUSE(Check(Obj("Event", "e", nullptr)), "involvedObject", "Required value");
  // An empty string is "unset", as in Kubernetes.
  EXPECT_CAUSE(Check(Obj("Network", "n", {{"cidr", ""}})), "spec.cidr", "Required value", "FieldValueRequired");
  EXPECT_VALID(Check(Instance({{"instanceType", ""}, {"image", ""}, {"resources", {{"vcpus", 1}, {"memoryMiB", 64}}}})));
  json no_kind = Instance();
  no_kind.erase("kind");
  EXPECT_CAUSE(R().Validate("Instance", no_kind), "kind", "Required value");
}

TEST(SchemaRejectTest, CrossFieldRules) {
  Status both = Check(Instance({{"instanceType", "m1.small"}, {"resources", {{"vcpus", 1}, {"memoryMiB", 64}}}}));
  EXPECT_CAUSE(both, "spec.resources", "may not be set together with \"instanceType\"");
  Status neither = Check(Instance(json::object()));
  EXPECT_CAUSE(neither, "spec", "exactly one of \"instanceType\", \"resources\" must be set", "FieldValueRequired");
  EXPECT_CAUSE(Check(Obj("Volume", "v", {{"size", "1Gi"}, {"source", {{"image", "a"}, {"volume", "b"}}}})),
               "spec.source.volume", "may not be set together with \"image\"");
  EXPECT_VALID(Check(Obj("Volume", "v", {{"size", "1Gi"}, {"source", {{"volume", "b"}}}})));
  EXPECT_CAUSE(Check(Obj("SecurityGroup", "s", {{"ingress", {{{"fromPort", 22}}}}})), "spec.ingress[0]",
               "exactly one of \"cidr\", \"securityGroup\"");
  EXPECT_CAUSE(Check(Instance({{"instanceType", "a"},
                               {"volumes", {{{"volume", "d1"}, {"device", "vdb"}}, {{"volume", "d2"}, {"device", "vdb"}}}}})),
               "spec.volumes[1].device", "Duplicate value: \"vdb\"");
  EXPECT_CAUSE(Check(Instance({{"instanceType", "a"}, {"securityGroups", {"web", "web"}}})), "spec.securityGroups[1]",
               "Duplicate value");
}

TEST(SchemaRejectTest, CollectsSeveralErrors) {
  json o = Instance({{"resources", {{"vcpus", "two"}, {"memoryMiB", 32}}},
                     {"powerState", "Off"},
                     {"networks", {{{"network", "Default"}, {"ip", "1.2.3"}}}},
                     {"bogus", true}});
  o["metadata"]["name"] = "Web_1";
  Status s = Check(o);
  ASSERT_FALSE(s.ok());
  EXPECT_GE(s.causes().size(), 7u) << Causes(s);
  for (const char* f : {"spec.resources.vcpus", "spec.resources.memoryMiB", "spec.powerState",
                        "spec.networks[0].network", "spec.networks[0].ip", "spec.bogus", "metadata.name"}) {
    EXPECT_TRUE(HasCause(s, f)) << f << "\n" << Causes(s);
    EXPECT_NE(s.message().find(f), std::string::npos) << f << " missing from the message: " << s.message();
  }
  EXPECT_EQ(s.message().rfind("Instance.stratus.io \"Web_1\" is invalid: metadata.name: Invalid value: \"Web_1\"", 0), 0u)
      << s.message();
  EXPECT_NE(s.message().find("; spec.powerState: Unsupported value: \"Off\": supported values: \"Running\", \"Stopped\""),
            std::string::npos) << s.message();
}

TEST(SchemaRejectTest, HostileInputIsBounded) {
  json o = Instance();
  for (int i = 0; i < 10000; ++i) o["spec"]["f" + std::to_string(i)] = i;
  Status s = Check(o);
  ASSERT_FALSE(s.ok());
  EXPECT_LE(s.causes().size(), 101u);
  EXPECT_NE(s.message().find("too many errors"), std::string::npos);
  json huge_key = Instance();
  huge_key["spec"][std::string(100000, 'k')] = 1;
  Status k = Check(huge_key);
  ASSERT_FALSE(k.ok());
  EXPECT_LT(k.message().size(), 1000u);
  EXPECT_EQ(R().Validate("Nope", Instance()).code(), Code::kBadRequest);
  EXPECT_CAUSE(R().Validate("Instance", json::array()), "", "must be of type object");
}

TEST(SchemaRejectTest, StatusIsValidatedButOpen) {
  json o = Instance();
  o["status"] = {{"observedGeneration", -1}, {"conditions", {{{"type", "Ready"}}}}, {"extra", "ok"}};
  Status s = Check(o);
  EXPECT_CAUSE(s, "status.observedGeneration", "must be >= 0");
  EXPECT_CAUSE(s, "status.conditions[0].status", "Required value");
  EXPECT_FALSE(HasCause(s, "status.extra"));
  o["status"] = {{"conditions", {{{"type", "Ready"}, {"status", "True"}}, {{"type", "Ready"}, {"status", "False"}}}}};
  EXPECT_CAUSE(Check(o), "status.conditions[1].type", "Duplicate value");
  json node = Obj("Node", "n1", nullptr, false);
  node["status"] = {{"capacity", {{"vcpus", 4}, {"memoryMiB", 8192}, {"storageGiB", 100}}},
                    {"allocatable", {{"vcpus", "4"}}},
                    {"virtType", "kvm"},
                    {"lastHeartbeatTime", "2026-11-23T19:13:04Z"},
                    {"pools", {{{"name", "default"}, {"type", "dir"}, {"capacityBytes", 1}, {"availableBytes", 1}}}}};
  EXPECT_CAUSE(Check(node), "status.allocatable.vcpus", "must be of type integer");
}

// ----- explain ---------------------------------------------------------------------------------------------

TEST(SchemaExplainTest, KindLevel) {
  auto e = R().Explain("Instance", "");
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_NE(e->find("KIND:       Instance"), std::string::npos) << *e;
  EXPECT_NE(e->find("VERSION:    stratus.io/v1"), std::string::npos);
  EXPECT_NE(e->find("DESCRIPTION:"), std::string::npos);
  EXPECT_NE(e->find("FIELDS:"), std::string::npos);
  EXPECT_NE(e->find("  spec\t<Object> -required-"), std::string::npos) << *e;
  EXPECT_NE(e->find("  status\t<Object>"), std::string::npos);
  EXPECT_NE(e->find("  metadata\t<Object> -required-"), std::string::npos);
  // Names users type work too.
  EXPECT_TRUE(R().Explain("instances", "").ok());
  EXPECT_TRUE(R().Explain("flavor", "").ok());
}

TEST(SchemaExplainTest, FieldPaths) {
  auto net = R().Explain("Instance", "spec.networks");
  ASSERT_TRUE(net.ok());
  EXPECT_NE(net->find("FIELD: networks <[]Object>"), std::string::npos) << *net;
  EXPECT_NE(net->find("  ip\t<string>"), std::string::npos) << *net;
  EXPECT_NE(net->find("  network\t<string> -required-"), std::string::npos) << *net;
  auto ps = R().Explain("Instance", "spec.powerState");
  ASSERT_TRUE(ps.ok());
  EXPECT_NE(ps->find("FIELD: powerState <string>"), std::string::npos) << *ps;
  EXPECT_NE(ps->find("allowed values: Running, Stopped"), std::string::npos) << *ps;
  EXPECT_NE(ps->find("default: Running"), std::string::npos) << *ps;
  auto mem = R().Explain("instance", "instance.spec.resources.memoryMiB");
  ASSERT_TRUE(mem.ok()) << mem.status().message();
  EXPECT_NE(mem->find("FIELD: memoryMiB <integer> -required-"), std::string::npos) << *mem;
  EXPECT_NE(mem->find("range: 64 to 1048576"), std::string::npos) << *mem;
  auto ip = R().Explain("Instance", "spec.networks[0].ip");
  ASSERT_TRUE(ip.ok());
  EXPECT_NE(ip->find("format: ipv4"), std::string::npos) << *ip;
  auto labels = R().Explain("Instance", "metadata.labels");
  ASSERT_TRUE(labels.ok());
  EXPECT_NE(labels->find("<map[string]string>"), std::string::npos) << *labels;
  auto conds = R().Explain("Node", "status.conditions");
  ASSERT_TRUE(conds.ok());
  EXPECT_NE(conds->find("  lastTransitionTime\t<string>"), std::string::npos) << *conds;
  auto sg = R().Explain("SecurityGroup", "spec.ingress");
  ASSERT_TRUE(sg.ok());
  EXPECT_NE(sg->find("  protocol\t<string>"), std::string::npos) << *sg;
}

TEST(SchemaExplainTest, UnknownPathsAndKinds) {
  auto e = R().Explain("Instance", "spec.foo");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), Code::kNotFound);
  EXPECT_EQ(e.status().message(), "field \"spec.foo\" does not exist");
  auto deep = R().Explain("Instance", "spec.powerState.x");
  ASSERT_FALSE(deep.ok());
  EXPECT_EQ(deep.status().message(), "field \"spec.powerState.x\" does not exist");
  auto k = R().Explain("Gadget", "");
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), Code::kNotFound);
}

TEST(SchemaExplainTest, EveryKindAndEveryFieldExplains) {
  // Walks every property of every kind: each explains with a description.
  for (const auto& r : AllResources()) {
    std::vector<std::pair<std::string, json>> todo = {{"", R().SchemaOf(r.kind)}};
    int fields = 0;
    while (!todo.empty()) {
      auto [path, s] = todo.back();
      todo.pop_back();
      auto e = R().Explain(r.kind, path);
      ASSERT_TRUE(e.ok()) << r.kind << " " << path << ": " << e.status().message();
      EXPECT_FALSE(s.value("description", "").empty()) << r.kind << " " << path;
      const json* node = &s;
      while ((*node)["type"] == "array") node = &(*node)["items"];
      if (node->contains("properties")) {
        for (const auto& [name, sub] : (*node)["properties"].items()) {
          todo.push_back({path.empty() ? name : path + "." + name, sub});
          ++fields;
        }
      }
    }
    EXPECT_GT(fields, 3) << r.kind;
  }
}

// ----- quantities ------------------------------------------------------------------------------------------

TEST(QuantityTest, ParsesBinaryAndDecimalSuffixes) {
  auto q = [](const std::string& s) {
    auto r = ParseQuantityBytes(s);
    EXPECT_TRUE(r.ok()) << s << ": " << r.status().message();
    return r.ok() ? *r : 0;
  };
  EXPECT_EQ(q("100"), 100u);
  EXPECT_EQ(q("0"), 0u);
  EXPECT_EQ(q("1Ki"), 1024u);
  EXPECT_EQ(q("512Mi"), 512ull << 20);
  EXPECT_EQ(q("10Gi"), 10ull << 30);
  EXPECT_EQ(q("2Ti"), 2ull << 40);
  EXPECT_EQ(q("1Pi"), 1ull << 50);
  EXPECT_EQ(q("1Ei"), 1ull << 60);
  EXPECT_EQ(q("1k"), 1000u);
  EXPECT_EQ(q("1M"), 1000000u);
  EXPECT_EQ(q("1G"), 1000000000u);
  EXPECT_EQ(q("3T"), 3000000000000ull);
  EXPECT_EQ(q("1.5Gi"), 1536ull << 20);
  EXPECT_EQ(q("0.5Ki"), 512u);
}

TEST(QuantityTest, RejectsMalformed) {
  for (const std::string bad : {"", "Gi", "1K", "1GB", "1GiB", "-1", "+1", "1 Gi", " 1", "1.", ".5", "1.5", "0.5",
                                "2.50", "1e3", "1Gi ", "abc", "16Ei", "18446744073709551616",
                                "99999999999999999999999", "1.0000000000000000001Gi"}) {
    auto r = ParseQuantityBytes(bad);
    EXPECT_FALSE(r.ok()) << "'" << bad << "' parsed as " << (r.ok() ? *r : 0);
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kInvalid);
    }
  }
  EXPECT_TRUE(ParseQuantityBytes("18446744073709551615").ok());
  EXPECT_TRUE(ParseQuantityBytes("15Ei").ok());
  EXPECT_NE(ParseQuantityBytes("1GB").status().message().find("unknown suffix \"GB\""), std::string::npos);
}

TEST(QuantityTest, FormatsWithTheLargestExactBinarySuffix) {
  EXPECT_EQ(FormatQuantityBytes(0), "0");
  EXPECT_EQ(FormatQuantityBytes(100), "100");
  EXPECT_EQ(FormatQuantityBytes(1024), "1Ki");
  EXPECT_EQ(FormatQuantityBytes(1536), "1536");
  EXPECT_EQ(FormatQuantityBytes(1ull << 30), "1Gi");
  EXPECT_EQ(FormatQuantityBytes(3ull << 29), "1536Mi");
  for (const std::string s : {"1Gi", "512Mi", "7", "3Ti"}) {
    EXPECT_EQ(FormatQuantityBytes(*ParseQuantityBytes(s)), s);
  }
}

// ----- shipped manifests -------------------------------------------------------------------------------------

// The source tree: the first directory holding schemas/, examples/ and manifests/, walking up from the current
// directory and then from the test binary's directory.
std::filesystem::path SourceRoot() {
  namespace fs = std::filesystem;
  std::vector<fs::path> starts = {fs::current_path()};
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) starts.push_back(exe.parent_path());
  for (fs::path p : starts) {
    for (int i = 0; i < 12 && !p.empty(); ++i) {
      if (fs::is_directory(p / "schemas") && fs::is_directory(p / "examples") && fs::is_directory(p / "manifests")) {
        return p;
      }
      if (p == p.parent_path()) break;
      p = p.parent_path();
    }
  }
  return {};
}

TEST(ExampleManifestsTest, EveryExampleAndManifestValidates) {
  namespace fs = std::filesystem;
  fs::path root = SourceRoot();
  ASSERT_FALSE(root.empty()) << "source tree not found from " << fs::current_path();
  int docs = 0;
  std::set<std::string> kinds;
  for (const char* dir : {"examples", "manifests"}) {
    for (const auto& entry : fs::recursive_directory_iterator(root / dir)) {
      if (!entry.is_regular_file()) continue;
      std::string ext = entry.path().extension().string();
      if (ext != ".yaml" && ext != ".yml") continue;
      std::ifstream in(entry.path());
      std::stringstream text;
      text << in.rdbuf();
      auto parsed = ParseYamlDocuments(text.str());
      ASSERT_TRUE(parsed.ok()) << entry.path() << ": " << parsed.status().message();
      for (json doc : *parsed) {
        // Other tools' files (CI configs, GitOps tooling) may live under examples/: only Stratus objects count.
        if (!doc.is_object() || doc.value("apiVersion", "").rfind("stratus.io/", 0) != 0) continue;
        std::string kind = doc.value("kind", "");
        const ResourceInfo* info = FindByKind(kind);
        ASSERT_NE(info, nullptr) << entry.path() << ": unknown kind " << kind;
        std::string ns = doc["metadata"].value("namespace", "");
        if (!info->namespaced) {
          EXPECT_EQ(ns, "") << entry.path() << ": " << kind << " is cluster-scoped";
        }
        R().ApplyDefaults(kind, doc);
        Status s = R().Validate(kind, doc);
        EXPECT_TRUE(s.ok()) << entry.path() << ": " << s.message();
        ++docs;
        kinds.insert(kind);
      }
    }
  }
  EXPECT_GE(docs, 14);
  for (const char* k : {"Instance", "Volume", "Network", "Image", "KeyPair", "SecurityGroup", "InstanceType",
                        "Namespace"}) {
    EXPECT_TRUE(kinds.count(k)) << "no example of " << k;
  }
}

}  // namespace
}  // namespace stratus
