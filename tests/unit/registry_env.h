// A Registry over a real SQLite store in a per-test temporary directory (removed afterwards).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>

#include "stratus/apiserver/registry.h"
#include "stratus/apiserver/sqlite_store.h"

namespace stratus {

class RegistryEnv : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("stratus-reg-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    SqliteStoreOptions o;
    o.path = (dir_ / "s.db").string();
    o.synchronous_full = false;
    store_ = std::move(OpenSqliteStore(o)).value();
    reg_ = std::make_unique<Registry>(store_.get(), &SchemaRegistry::Builtin());
    ASSERT_TRUE(reg_->Bootstrap().ok());
  }
  void TearDown() override {
    reg_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  const ResourceInfo& R(const char* kind) { return *FindByKind(kind); }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Registry> reg_;
};

}  // namespace stratus
