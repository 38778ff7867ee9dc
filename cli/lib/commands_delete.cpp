// stratusctl delete and wait.
#include "lib/apply.h"
#include "lib/commands.h"
#include "lib/common.h"
#include "lib/manifests.h"
#include "stratus/core/columns.h"
#include "lib/targets.h"
#include "lib/util.h"
#include "stratus/core/object.h"

namespace stratus::cli {

namespace {

struct DeleteItem {
  const ResourceInfo* resource;
  std::string ns;
  std::string name;
  std::string source;  // manifest file, for messages
};

}  // namespace

int RunDelete(Env& env, const DeleteOptions& opts) {
  std::vector<DeleteItem> items;
  bool failed = false;
  if (!opts.files.empty()) {
    if (!opts.args.empty()) {
      *env.err << "error: give either -f FILE or KIND NAME..., not both\n";
      return 1;
    }
    LoadedManifests loaded = LoadManifests(opts.files, opts.recursive, *env.in);
    for (const auto& [source, status] : loaded.errors) {
      *env.err << "error: " << source << ": " << status.ToString() << "\n";
      failed = true;
    }
    for (const auto& m : loaded.objects) {
      auto p = PrepareForApply(m.object, env.ns, env.ns_explicit);
      if (!p.ok()) {
        *env.err << "error: " << m.source << ": " << p.status().ToString() << "\n";
        failed = true;
        continue;
      }
      items.push_back({p->resource, p->ns, p->name, m.source});
    }
  } else {
    auto targets = ParseTargets(opts.args);
    if (!targets.ok()) {
      PrintError(env, targets.status());
      return 1;
    }
    for (const Target& t : *targets) {
      std::string ns = NamespaceFor(env, *t.resource);
      if (!t.names.empty()) {
        for (const auto& n : t.names) items.push_back({t.resource, ns, n, ""});
        continue;
      }
      if (opts.selector.empty() && !opts.all) {
        *env.err << "error: resource(s) were provided, but no name was specified (use NAME, -l SELECTOR or "
                    "--all)\n";
        return 1;
      }
      ListOptions lo;
      lo.label_selector = opts.selector;
      auto list = ListAll(*env.client, t.resource->plural, ns, lo);
      if (!list.ok()) {
        PrintError(env, list.status());
        return 1;
      }
      for (const auto& o : (*list)["items"]) {
        items.push_back({t.resource, MetaString(o, "namespace"), MetaString(o, "name"), ""});
      }
    }
    if (items.empty() && !failed) {
      *env.err << "No resources found\n";
      return 0;
    }
  }

  struct Pending {
    const ResourceInfo* resource;
    std::string ns, name, uid;
  };
  std::vector<Pending> pending;
  for (const auto& it : items) {
    auto res = env.client->Delete(it.resource->plural, it.ns, it.name);
    if (!res.ok()) {
      if (res.status().code() == Code::kNotFound && opts.ignore_not_found) continue;
      *env.err << "error: " << (it.source.empty() ? "" : it.source + ": ") << res.status().ToString() << "\n";
      failed = true;
      if (res.status().code() == Code::kUnavailable) break;
      continue;
    }
    *env.out << it.resource->singular << " \"" << it.name << "\" deleted" << std::endl;
    if (opts.wait) pending.push_back({it.resource, it.ns, it.name, MetaString(*res, "uid")});
  }

  if (!pending.empty()) {
    auto deadline = Clock::now() + opts.timeout;
    WaitSpec spec;
    spec.mode = WaitSpec::kDelete;
    for (const auto& p : pending) {
      Status s = WaitForObject(env, *p.resource, p.ns, p.name, spec, deadline, opts.timeout, /*progress=*/false,
                               p.uid);
      if (!s.ok()) {
        *env.err << "error: " << (s.code() == Code::kTimeout ? s.message() : s.ToString()) << "\n";
        failed = true;
      }
    }
  }
  return failed ? 1 : 0;
}

int RunWait(Env& env, const WaitOptions& opts) {
  if (opts.for_condition.empty()) {
    *env.err << "error: --for is required: --for=condition=Ready, --for=delete or --for=phase=PHASE\n";
    return 1;
  }
  auto spec = ParseWaitFor(opts.for_condition);
  if (!spec.ok()) {
    PrintError(env, spec.status());
    return 1;
  }
  auto targets = ParseTargets(opts.args);
  if (!targets.ok()) {
    PrintError(env, targets.status());
    return 1;
  }
  auto deadline = Clock::now() + opts.timeout;
  bool failed = false;
  for (const Target& t : *targets) {
    if (t.names.empty()) {
      *env.err << "error: wait needs object names: " << t.resource->singular << "/NAME or " << t.resource->plural
               << " NAME...\n";
      return 1;
    }
    std::string ns = NamespaceFor(env, *t.resource);
    for (const auto& name : t.names) {
      Status s = WaitForObject(env, *t.resource, ns, name, *spec, deadline, opts.timeout, !opts.quiet);
      std::string ref = KindSlashName(*t.resource, name);
      if (s.ok()) {
        *env.out << ref << " condition met" << std::endl;
      } else {
        *env.err << "error: " << (s.code() == Code::kTimeout ? s.message() : ref + ": " + s.ToString()) << "\n";
        failed = true;
      }
    }
  }
  return failed ? 1 : 0;
}

}  // namespace stratus::cli
