#include "lib/common.h"

#include <ctime>

#include "stratus/core/columns.h"
#include "lib/util.h"
#include "stratus/core/object.h"
#include "stratus/core/yaml.h"

namespace stratus::cli {

int64_t Env::Now() const { return now ? now() : static_cast<int64_t>(std::time(nullptr)); }

void PrintError(Env& env, const Status& s, const std::string& prefix) {
  *env.err << "error: " << prefix << s.ToString() << "\n";
}

std::string NamespaceFor(const Env& env, const ResourceInfo& r, bool all_namespaces) {
  if (!r.namespaced || all_namespaces) return "";
  return env.ns.empty() ? "default" : env.ns;
}

StatusOr<json> ListAll(ApiClient& client, const std::string& plural, const std::string& ns, ListOptions opts) {
  if (opts.limit == 0) opts.limit = 500;
  json all;
  json items = json::array();
  for (int page = 0; page < 100000; ++page) {
    auto res = client.List(plural, ns, opts);
    if (!res.ok()) return res.status();
    json& list = *res;
    if (list.contains("items") && list["items"].is_array()) {
      for (auto& it : list["items"]) items.push_back(std::move(it));
    }
    std::string cont;
    if (list.contains("metadata") && list["metadata"].is_object()) {
      const json& m = list["metadata"];
      if (m.contains("continue") && m["continue"].is_string()) cont = m["continue"].get<std::string>();
    }
    if (all.is_null()) {
      all = list;
    } else if (list.contains("metadata")) {
      all["metadata"] = list["metadata"];
    }
    if (cont.empty()) break;
    opts.continue_token = cont;
  }
  if (all.is_null()) all = json::object();
  all["items"] = std::move(items);
  if (all.contains("metadata") && all["metadata"].is_object()) all["metadata"].erase("continue");
  return all;
}

json MakeList(const std::vector<json>& items) {
  return {{"apiVersion", "v1"}, {"kind", "List"}, {"metadata", {{"resourceVersion", ""}}}, {"items", items}};
}

std::string RenderObject(const json& obj, const std::string& format) {
  if (format == "json") return obj.dump(2) + "\n";
  std::string y = ToYaml(obj);
  if (y.empty() || y.back() != '\n') y += "\n";
  return y;
}

StopFlag::StopFlag(std::optional<Clock::time_point> deadline) : deadline_(deadline) {
  thread_ = std::thread([this] {
    while (!done_.load()) {
      if (Interrupted().load()) {
        stop_ = true;
        return;
      }
      if (deadline_ && Clock::now() >= *deadline_) {
        timed_out_ = true;
        stop_ = true;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
}

StopFlag::~StopFlag() {
  done_ = true;
  if (thread_.joinable()) thread_.join();
}

bool StopFlag::interrupted() const { return Interrupted().load(); }

WatchResult WatchLoop(ApiClient& client, const std::string& plural, const std::string& ns, const ListOptions& base,
                      std::string resource_version, std::optional<Clock::time_point> deadline,
                      const std::function<bool(const WatchEvent&)>& on_event,
                      const std::function<StatusOr<std::string>()>& relist) {
  StopFlag stop(deadline);
  bool done = false;
  int failures = 0;
  while (!done) {
    if (stop.stopped()) break;
    ListOptions opts = base;
    opts.resource_version = resource_version;
    opts.timeout_seconds = 300;
    if (deadline) {
      auto left = std::chrono::duration_cast<std::chrono::seconds>(*deadline - Clock::now()).count() + 1;
      if (left < opts.timeout_seconds) opts.timeout_seconds = static_cast<int>(std::max<int64_t>(left, 1));
    }
    Status s = client.Watch(
        plural, ns, opts,
        [&](const WatchEvent& ev) {
          std::string rv = MetaString(ev.object, "resourceVersion");
          if (!rv.empty()) resource_version = rv;
          if (!on_event(ev)) {
            done = true;
            return false;
          }
          return true;
        },
        stop.flag());
    if (done) break;
    if (stop.stopped()) break;
    if (s.ok()) {
      failures = 0;
      continue;  // the server closed the stream: watch again from the last version seen
    }
    if (s.code() == Code::kGone) {
      auto rv = relist();
      // A server that is restarting answers the list 503 too: wait for it as for the watch below.
      if (!rv.ok() && rv.status().code() == Code::kUnavailable) s = rv.status();
      else if (!rv.ok()) return {WatchEnd::kError, rv.status()};
      else if (rv->empty()) return {WatchEnd::kDone, Status::Ok()};
      else {
        resource_version = *rv;
        continue;
      }
    }
    // The server is restarting or briefly unreachable: keep trying with capped backoff and resume from the last
    // version seen (the deadline, if any, or Ctrl-C ends the wait), as a Kubernetes reflector does.
    if (s.code() == Code::kUnavailable) {
      ++failures;
      auto pause = std::chrono::milliseconds(std::min(250 * (1 << std::min(failures - 1, 5)), 5000));
      for (auto until = Clock::now() + pause; Clock::now() < until && !stop.stopped();) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      continue;
    }
    return {WatchEnd::kError, s};
  }
  if (done) return {WatchEnd::kDone, Status::Ok()};
  if (stop.timed_out()) return {WatchEnd::kTimedOut, Status::Ok()};
  if (stop.interrupted()) return {WatchEnd::kInterrupted, Status::Ok()};
  return {WatchEnd::kDone, Status::Ok()};
}

std::string WaitSpec::Describe() const {
  switch (mode) {
    case kDelete: return "deletion";
    case kPhase: return "phase " + type;
    case kCondition: return "condition " + type + (value == "True" ? "" : "=" + value);
  }
  return "";
}

StatusOr<WaitSpec> ParseWaitFor(const std::string& text) {
  WaitSpec spec;
  std::string t = Trim(text);
  auto bad = [&]() {
    return BadRequest("unrecognized --for=\"" + text +
                      "\": use condition=TYPE[=True|False|Unknown], delete or phase=PHASE");
  };
  if (t == "delete") {
    spec.mode = WaitSpec::kDelete;
    return spec;
  }
  auto eq = t.find('=');
  if (eq == std::string::npos) return bad();
  std::string what = ToLower(t.substr(0, eq));
  std::string rest = t.substr(eq + 1);
  if (rest.empty()) return bad();
  if (what == "condition") {
    spec.mode = WaitSpec::kCondition;
    auto eq2 = rest.find('=');
    spec.type = rest.substr(0, eq2);
    if (eq2 != std::string::npos) {
      std::string v = ToLower(rest.substr(eq2 + 1));
      if (v == "true") spec.value = "True";
      else if (v == "false") spec.value = "False";
      else if (v == "unknown") spec.value = "Unknown";
      else return bad();
    }
    if (spec.type.empty()) return bad();
    return spec;
  }
  if (what == "phase") {
    spec.mode = WaitSpec::kPhase;
    spec.type = rest;
    return spec;
  }
  return bad();
}

namespace {

int64_t IntAt(const json& obj, const std::string& path, int64_t fallback) {
  const json* v = JsonAt(obj, path);
  if (v == nullptr || !v->is_number_integer()) return fallback;
  return v->get<int64_t>();
}

}  // namespace

bool WaitSpecMet(const WaitSpec& spec, const json& obj) {
  if (spec.mode == WaitSpec::kDelete) return false;
  int64_t generation = IntAt(obj, "metadata.generation", 0);
  int64_t observed = IntAt(obj, "status.observedGeneration", -1);
  if (observed >= 0 && observed < generation) return false;  // the status describes an older spec
  if (spec.mode == WaitSpec::kPhase) {
    return ToLower(JsonText(obj, "status.phase")) == ToLower(spec.type);
  }
  const json* c = FindCondition(obj, spec.type);
  if (c == nullptr) return false;
  int64_t cond_observed = IntAt(*c, "observedGeneration", -1);
  if (cond_observed >= 0 && cond_observed < generation) return false;
  return JsonText(*c, "status") == spec.value;
}

Status WaitForObject(Env& env, const ResourceInfo& r, const std::string& ns, const std::string& name,
                     const WaitSpec& spec, Clock::time_point deadline, std::chrono::milliseconds timeout,
                     bool progress, const std::string& uid) {
  ApiClient& client = *env.client;
  const std::string ref = KindSlashName(r, name);
  std::string last_summary;
  std::string last_seen = "not seen";
  bool met = false;
  std::string want_uid = uid;

  // Looks at one version of the object; returns true when the wait is over.
  auto observe = [&](const json& obj) {
    std::string obj_uid = MetaString(obj, "uid");
    if (spec.mode == WaitSpec::kDelete) {
      if (!want_uid.empty() && !obj_uid.empty() && obj_uid != want_uid) {
        met = true;  // a new object took the name: the one we waited for is gone
        return true;
      }
      if (want_uid.empty()) want_uid = obj_uid;
    }
    std::string summary = ProgressSummary(obj);
    if (spec.mode == WaitSpec::kDelete) {
      std::string fin;
      const json* f = JsonAt(obj, "metadata.finalizers");
      if (f != nullptr && f->is_array() && !f->empty()) {
        std::vector<std::string> names;
        for (const auto& x : *f) names.push_back(ScalarText(x));
        fin = "waiting for finalizers " + Join(names, ", ");
      }
      if (!fin.empty()) summary = MetaString(obj, "deletionTimestamp").empty() ? summary : fin + "; " + summary;
    }
    last_seen = summary;
    if (progress && summary != last_summary) *env.out << ref << ": " << summary << std::endl;
    last_summary = summary;
    if (WaitSpecMet(spec, obj)) met = true;
    return met;
  };

  auto get = [&]() -> StatusOr<bool> {  // true when over
    auto obj = client.Get(r.plural, ns, name);
    if (!obj.ok()) {
      if (obj.status().code() == Code::kNotFound) {
        if (spec.mode == WaitSpec::kDelete) {
          met = true;
          return true;
        }
      }
      return obj.status();
    }
    if (observe(*obj)) return true;
    return false;
  };

  auto timeout_error = [&]() {
    return Status(Code::kTimeout, "timed out after " + FormatDuration(timeout) + " waiting for " + spec.Describe() +
                                      " on " + ref + " (last seen: " + last_seen + ")");
  };

  std::string rv;
  {
    auto obj = client.Get(r.plural, ns, name);
    if (!obj.ok()) {
      if (obj.status().code() == Code::kNotFound && spec.mode == WaitSpec::kDelete) return Status::Ok();
      return obj.status();
    }
    if (observe(*obj)) return Status::Ok();
    rv = MetaString(*obj, "resourceVersion");
  }

  ListOptions lo;
  lo.field_selector = "metadata.name=" + name;
  Status event_error;
  WatchResult wr = WatchLoop(
      client, r.plural, ns, lo, rv, deadline,
      [&](const WatchEvent& ev) {
        if (MetaString(ev.object, "name") != name) return true;
        if (ev.type == "DELETED") {
          if (spec.mode == WaitSpec::kDelete) {
            std::string u = MetaString(ev.object, "uid");
            if (want_uid.empty() || u.empty() || u == want_uid) {
              met = true;
              return false;
            }
            return true;
          }
          event_error = NotFound(ref + " was deleted while waiting for " + spec.Describe());
          return false;
        }
        return !observe(ev.object);
      },
      [&]() -> StatusOr<std::string> {
        auto obj = client.Get(r.plural, ns, name);
        if (!obj.ok()) {
          if (obj.status().code() == Code::kNotFound && spec.mode == WaitSpec::kDelete) {
            met = true;
            return std::string();
          }
          return obj.status();
        }
        if (observe(*obj)) return std::string();
        return MetaString(*obj, "resourceVersion");
      });
  if (met) return Status::Ok();
  if (!event_error.ok()) return event_error;
  switch (wr.end) {
    case WatchEnd::kDone: return met ? Status::Ok() : timeout_error();
    case WatchEnd::kTimedOut: return timeout_error();
    case WatchEnd::kInterrupted: return Status(Code::kTimeout, "interrupted while waiting for " + spec.Describe() + " on " + ref);
    case WatchEnd::kError: break;
  }
  // Watching failed (for example a server without watch support): poll instead.
  while (Clock::now() < deadline) {
    if (Interrupted().load()) {
      return Status(Code::kTimeout, "interrupted while waiting for " + spec.Describe() + " on " + ref);
    }
    auto res = get();
    if (!res.ok() && res.status().code() != Code::kUnavailable) return res.status();
    if (res.ok() && *res) return Status::Ok();
    auto left = deadline - Clock::now();
    std::this_thread::sleep_for(std::min<Clock::duration>(left, std::chrono::seconds(1)));
  }
  return timeout_error();
}

}  // namespace stratus::cli
