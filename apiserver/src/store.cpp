// The waiting forms of the Store's writes, on top of the asynchronous ones.
#include "stratus/apiserver/store.h"

namespace stratus {

StatusOr<json> Store::Create(const ObjectKey& key, json obj) {
  return AwaitWrite([&](WriteDone d) { CreateAsync(key, std::move(obj), std::move(d)); });
}

StatusOr<json> Store::Update(const ObjectKey& key, json obj, uint64_t expected_rv) {
  return AwaitWrite([&](WriteDone d) { UpdateAsync(key, std::move(obj), expected_rv, std::move(d)); });
}

StatusOr<json> Store::Delete(const ObjectKey& key, uint64_t expected_rv) {
  return AwaitWrite([&](WriteDone d) { DeleteAsync(key, expected_rv, std::move(d)); });
}

}  // namespace stratus
