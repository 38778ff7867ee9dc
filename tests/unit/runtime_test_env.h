// Shared fixture for runtime tests: a real in-process API (SqliteStore in a temp dir + Registry +
// NewLocalApiClient).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <thread>

#include "stratus/apiserver/local_client.h"
#include "stratus/apiserver/registry.h"
#include "stratus/apiserver/sqlite_store.h"
#include "stratus/core/api_client.h"
#include "stratus/core/object.h"
#include "stratus/runtime/informer.h"
#include "wait_for.h"

namespace stratus::testing_env {

class LocalApiTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(10000); }
  void TearDown() override { Close(); }

  void Open(size_t history_window) {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("stratus-rt-" + std::to_string(::getpid()) + "-" + info->test_suite_name() + "-" + info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    SqliteStoreOptions o;
    o.path = (dir_ / "s.db").string();
    o.synchronous_full = false;
    o.history_window = history_window;
    store_ = std::move(OpenSqliteStore(o)).value();
    reg_ = std::make_unique<Registry>(store_.get(), &SchemaRegistry::Builtin());
    ASSERT_TRUE(reg_->Bootstrap().ok());
    client_ = NewLocalApiClient(reg_.get());
  }
  void Close() {
    client_.reset();
    reg_.reset();
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  static json Volume(const std::string& name, const std::string& size = "1Gi") {
    return {{"apiVersion", "stratus.io/v1"},
            {"kind", "Volume"},
            {"metadata", {{"name", name}, {"namespace", "default"}}},
            {"spec", {{"size", size}}}};
  }
  json MustCreate(const json& obj, const std::string& plural = "volumes", const std::string& ns = "default") {
    auto r = client_->Create(plural, ns, obj);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : json();
  }

  // Waits until `inf` shows `obj` at least at its resourceVersion.
  static bool Cached(runtime::Informer* inf, const json& obj) {
    uint64_t rv = ResourceVersionOf(obj);
    std::string key = runtime::KeyFor(obj);
    return WaitFor([&] {
      json o = inf->Get(key);
      return !o.is_null() && ResourceVersionOf(o) >= rv;
    });
  }

  static bool WaitFor(const std::function<bool()>& pred,
                      std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    return testing_env::WaitFor(pred, timeout);
  }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Registry> reg_;
  std::unique_ptr<ApiClient> client_;
};

}  // namespace stratus::testing_env
