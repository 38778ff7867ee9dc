// The in-memory half that both stores keep (SqliteStore over its file, EtcdStore over etcd's watch): objects in
// (plural, namespace, name) order, listed and paged from a map, and watches replayed from a kept history.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <string>

#include "stratus/apiserver/store.h"

namespace stratus {

// Objects of one kind (one namespace, when given) after `after_name`, filtered, at most `limit`.
inline StoreListResult ListObjects(const std::map<ObjectKey, StoredObject>& objects, const StoreListOptions& opts,
                                   uint64_t rv) {
  StoreListResult out;
  out.rv = rv;
  ObjectKey start{opts.plural, opts.ns, ""};
  if (!opts.after_name.empty()) {
    auto slash = opts.after_name.find('/');
    start.ns = opts.after_name.substr(0, slash);
    start.name = slash == std::string::npos ? "" : opts.after_name.substr(slash + 1);
  }
  auto it = objects.lower_bound(start);
  if (!opts.after_name.empty() && it != objects.end() && it->first == start) ++it;
  const ObjectKey* last = nullptr;
  for (; it != objects.end(); ++it) {
    if (it->first.plural != opts.plural) break;
    if (!opts.ns.empty() && it->first.ns != opts.ns) break;
    if (opts.filter && !opts.filter(*it->second.object)) continue;
    if (opts.limit && out.items.size() == opts.limit) {
      out.last_name = last->ns + "/" + last->name;
      break;
    }
    out.items.push_back(it->second.object);
    out.encoded.push_back(it->second.encoded);
    last = &it->first;
  }
  return out;
}

// A watch may start after `after_rv` when the history reaches back to it (`oldest`) and it is not in the future.
inline Status CheckWatchStart(uint64_t after_rv, uint64_t oldest, uint64_t current) {
  if (after_rv < oldest) {
    return Status(Code::kGone, "too old resource version: " + std::to_string(after_rv) + " (" + std::to_string(oldest) +
                                   ")");
  }
  if (after_rv > current) {
    // A version from the future (e.g. another store): treating it as "from now" would silently skip; refuse.
    return Status(Code::kGone, "resource version " + std::to_string(after_rv) + " is newer than the store's " +
                                   std::to_string(current));
  }
  return Status::Ok();
}

// Gives `sink` every kept change after `after_rv` of `plural` in `ns` (empty: all).
inline void ReplayHistory(const std::deque<StoreEvent>& history, const std::string& plural, const std::string& ns,
                          uint64_t after_rv, const std::function<void(const StoreEvent&)>& sink) {
  for (const auto& e : history) {
    if (e.rv <= after_rv) continue;
    if (!plural.empty() && plural != e.key.plural) continue;
    if (!ns.empty() && ns != e.key.ns) continue;
    sink(e);
  }
}

}  // namespace stratus
