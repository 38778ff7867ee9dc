#include "stratus/runtime/informer_factory.h"

namespace stratus::runtime {

InformerFactory::InformerFactory(ApiClient* client, Clock* clock) : client_(client), clock_(clock) {}

InformerFactory::~InformerFactory() { Stop(); }

Informer* InformerFactory::For(const InformerOptions& opts) {
  std::lock_guard lock(mu_);
  Key key{opts.plural, opts.ns, opts.label_selector, opts.field_selector};
  auto it = informers_.find(key);
  if (it != informers_.end()) return it->second.get();
  InformerOptions o = opts;
  if (!o.clock) o.clock = clock_;
  auto inf = std::make_unique<Informer>(client_, std::move(o));
  Informer* out = inf.get();
  informers_.emplace(key, std::move(inf));
  if (started_) out->Start();
  return out;
}

Informer* InformerFactory::For(const std::string& plural) {
  InformerOptions o;
  o.plural = plural;
  return For(o);
}

void InformerFactory::Start() {
  std::lock_guard lock(mu_);
  started_ = true;
  for (auto& [key, inf] : informers_) inf->Start();
}

void InformerFactory::Stop() {
  std::lock_guard lock(mu_);
  for (auto& [key, inf] : informers_) inf->Stop();
}

bool InformerFactory::HasSynced() const {
  std::lock_guard lock(mu_);
  for (const auto& [key, inf] : informers_) {
    if (!inf->HasSynced()) return false;
  }
  return true;
}

size_t InformerFactory::size() const {
  std::lock_guard lock(mu_);
  return informers_.size();
}

}  // namespace stratus::runtime
