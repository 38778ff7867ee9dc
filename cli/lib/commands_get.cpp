// stratusctl get.
#include <algorithm>
#include <thread>

#include "lib/commands.h"
#include "lib/common.h"
#include "stratus/core/columns.h"
#include "lib/table.h"
#include "lib/targets.h"
#include "lib/util.h"
#include "stratus/core/object.h"

namespace stratus::cli {

namespace {

bool ValidOutput(const std::string& o) {
  return o.empty() || o == "wide" || o == "yaml" || o == "json" || o == "name";
}

// Events read best oldest-first, as kubectl shows them.
void SortEvents(std::vector<json>& items) {
  auto last = [](const json& e) {
    std::string t = JsonText(e, "lastTimestamp");
    if (t.empty()) t = JsonText(e, "eventTime");
    if (t.empty()) t = JsonText(e, "firstTimestamp");
    if (t.empty()) t = MetaString(e, "creationTimestamp");
    return t;
  };
  std::stable_sort(items.begin(), items.end(), [&](const json& a, const json& b) { return last(a) < last(b); });
}

std::vector<json> ItemsOf(json& list) {
  std::vector<json> out;
  if (list.contains("items") && list["items"].is_array()) {
    for (auto& it : list["items"]) out.push_back(std::move(it));
  }
  return out;
}

std::string ListVersion(const json& list) {
  const json* rv = JsonAt(list, "metadata.resourceVersion");
  return rv != nullptr && rv->is_string() ? rv->get<std::string>() : "";
}

}  // namespace

int RunGet(Env& env, const GetOptions& opts) {
  if (!ValidOutput(opts.output)) {
    *env.err << "error: unable to match a printer suitable for the output format \"" << opts.output
             << "\", allowed formats are: json, name, wide, yaml\n";
    return 1;
  }
  auto targets = ParseTargets(opts.args);
  if (!targets.ok()) {
    PrintError(env, targets.status());
    return 1;
  }
  bool watch = opts.watch || opts.watch_only;
  if (watch && (targets->size() != 1 || (*targets)[0].names.size() > 1)) {
    *env.err << "error: you may only watch one resource type, and at most one name\n";
    return 1;
  }
  const bool structured = opts.output == "yaml" || opts.output == "json";
  TableOptions topts;
  topts.wide = opts.output == "wide";
  topts.with_namespace = opts.all_namespaces;
  topts.kind_prefix = targets->size() > 1;
  topts.show_labels = opts.show_labels;

  ListOptions lo;
  lo.label_selector = opts.selector;
  lo.field_selector = opts.field_selector;

  bool failed = false;
  bool printed_any = false;
  std::vector<json> structured_items;
  bool single_object = targets->size() == 1 && (*targets)[0].names.size() == 1;
  std::vector<size_t> widths;
  bool header_printed = false;
  std::string watch_rv;
  int64_t now = env.Now();

  for (const Target& t : *targets) {
    const ResourceInfo& r = *t.resource;
    std::string ns = NamespaceFor(env, r, opts.all_namespaces);
    std::vector<json> objs;
    if (t.names.empty()) {
      auto list = ListAll(*env.client, r.plural, ns, lo);
      // -w rides through a server restart from the start, as its watch does (a reflector retries its list too).
      for (int tries = 0; watch && !list.ok() && list.status().code() == Code::kUnavailable && tries < 20; ++tries) {
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(250 * (1 << std::min(tries, 4)), 2000)));
        list = ListAll(*env.client, r.plural, ns, lo);
      }
      if (!list.ok()) {
        PrintError(env, list.status());
        failed = true;
        if (list.status().code() == Code::kUnavailable) break;
        continue;
      }
      watch_rv = ListVersion(*list);
      objs = ItemsOf(*list);
    } else {
      for (const auto& name : t.names) {
        auto obj = env.client->Get(r.plural, ns, name);
        if (!obj.ok()) {
          PrintError(env, obj.status());
          failed = true;
          if (obj.status().code() == Code::kUnavailable) break;
          continue;
        }
        watch_rv = MetaString(*obj, "resourceVersion");
        objs.push_back(std::move(*obj));
      }
    }
    if (r.kind == "Event") SortEvents(objs);
    if (opts.watch_only) continue;
    if (structured) {
      for (auto& o : objs) structured_items.push_back(std::move(o));
      continue;
    }
    if (objs.empty()) continue;
    if (opts.output == "name") {
      for (const auto& o : objs) *env.out << KindSlashName(r, MetaString(o, "name")) << "\n";
      printed_any = true;
      continue;
    }
    if (printed_any) *env.out << "\n";
    Table table(TableHeader(r, topts));
    for (const auto& o : objs) table.AddRow(TableRow(r, o, topts, now));
    table.Render(*env.out);
    widths = table.Widths();
    header_printed = true;
    printed_any = true;
  }

  if (structured && !opts.watch_only) {
    if (single_object && structured_items.size() == 1) {
      *env.out << RenderObject(structured_items[0], opts.output);
    } else if (!(single_object && failed)) {
      *env.out << RenderObject(MakeList(structured_items), opts.output);
    }
    printed_any = true;
  }
  if (!printed_any && !failed && !watch) {
    bool any_namespaced = std::any_of(targets->begin(), targets->end(),
                                      [](const Target& t) { return t.resource->namespaced; });
    if (any_namespaced && !opts.all_namespaces) {
      *env.err << "No resources found in " << (env.ns.empty() ? "default" : env.ns) << " namespace.\n";
    } else {
      *env.err << "No resources found.\n";
    }
  }
  env.out->flush();
  if (!watch || failed) return failed ? 1 : 0;

  // -w: print each change as it arrives, until Ctrl-C or --timeout.
  const Target& t = (*targets)[0];
  const ResourceInfo& r = *t.resource;
  std::string ns = NamespaceFor(env, r, opts.all_namespaces);
  ListOptions wlo = lo;
  if (!t.names.empty()) {
    wlo.field_selector = "metadata.name=" + t.names[0] + (lo.field_selector.empty() ? "" : "," + lo.field_selector);
  }
  auto print = [&](const json& obj) {
    if (structured) {
      if (opts.output == "yaml") *env.out << "---\n";
      *env.out << RenderObject(obj, opts.output);
    } else if (opts.output == "name") {
      *env.out << KindSlashName(r, MetaString(obj, "name")) << "\n";
    } else {
      std::vector<std::string> row = TableRow(r, obj, topts, env.Now());
      if (!header_printed) {
        // Nothing listed before: size the columns by the header and this first row.
        Table first(TableHeader(r, topts));
        first.AddRow(row);
        widths = first.Widths();
        *env.out << FormatRow(TableHeader(r, topts), widths) << "\n";
        header_printed = true;
      }
      *env.out << FormatRow(row, widths) << "\n";
    }
    env.out->flush();
  };
  std::optional<Clock::time_point> deadline;
  if (opts.watch_timeout.count() > 0) deadline = Clock::now() + opts.watch_timeout;
  WatchResult wr = WatchLoop(
      *env.client, r.plural, ns, wlo, watch_rv, deadline,
      [&](const WatchEvent& ev) {
        if (ev.type == "BOOKMARK") return true;
        if (!t.names.empty() && MetaString(ev.object, "name") != t.names[0]) return true;
        print(ev.object);
        return true;
      },
      [&]() -> StatusOr<std::string> {
        // The server no longer has our version: list again and show the current state.
        auto list = ListAll(*env.client, r.plural, ns, wlo);
        if (!list.ok()) return list.status();
        for (const auto& o : ItemsOf(*list)) print(o);
        return ListVersion(*list);
      });
  if (wr.end == WatchEnd::kError) {
    PrintError(env, wr.error);
    return 1;
  }
  return 0;
}

}  // namespace stratus::cli
