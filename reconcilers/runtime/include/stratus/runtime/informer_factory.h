// One shared informer per watched collection in a process (client-go's SharedInformerFactory): controllers that
// read the same kind share one list+watch and one cache instead of each running their own.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "stratus/runtime/informer.h"

namespace stratus::runtime {

class InformerFactory {
 public:
  // `clock`: given to every informer made without one of its own (null: the system clock).
  explicit InformerFactory(ApiClient* client, Clock* clock = nullptr);
  ~InformerFactory();
  // The informer for (plural, namespace, label selector, field selector), made on first use; the first caller's
  // `resync` is its default period (handlers may ask for their own with Informer::AddHandler). Informers made
  // after Start() start at once. The factory owns them.
  Informer* For(const InformerOptions& opts);
  // Shorthand: every object of `plural` in every namespace.
  Informer* For(const std::string& plural);
  void Start();
  // Stops every informer; pointers stay valid until the factory is destroyed.
  void Stop();
  // True when every informer made so far has listed once.
  bool HasSynced() const;
  size_t size() const;

 private:
  using Key = std::tuple<std::string, std::string, std::string, std::string>;
  ApiClient* client_;
  Clock* clock_;
  mutable std::mutex mu_;
  std::map<Key, std::unique_ptr<Informer>> informers_;
  bool started_ = false;
};

}  // namespace stratus::runtime
