// Waiting for a state in unit tests: poll `pred` (a state, never a duration) until it holds or `timeout` of real
// time has passed; the last answer decides.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace stratus::testing_env {

inline bool WaitFor(const std::function<bool()>& pred,
                    std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

}  // namespace stratus::testing_env
