// The waiting forms of the Store's writes, on top of the asynchronous ones.
#include "stratus/apiserver/store.h"

#include <future>

namespace stratus {
namespace {

template <typename Start>
StatusOr<json> Wait(Start start) {
  std::promise<StatusOr<json>> p;
  auto f = p.get_future();
  start([&p](StatusOr<StoredObject> r) {
    if (r.ok()) {
      p.set_value(*r->object);
    } else {
      p.set_value(r.status());
    }
  });
  return f.get();
}

}  // namespace

StatusOr<json> Store::Create(const ObjectKey& key, json obj) {
  return Wait([&](WriteDone d) { CreateAsync(key, std::move(obj), std::move(d)); });
}

StatusOr<json> Store::Update(const ObjectKey& key, json obj, uint64_t expected_rv) {
  return Wait([&](WriteDone d) { UpdateAsync(key, std::move(obj), expected_rv, std::move(d)); });
}

StatusOr<json> Store::Delete(const ObjectKey& key, uint64_t expected_rv) {
  return Wait([&](WriteDone d) { DeleteAsync(key, expected_rv, std::move(d)); });
}

}  // namespace stratus
