// Store on one SQLite file (WAL, synchronous=FULL). All objects are also held in memory, so reads never touch
// the disk; writes are group-committed by one writer thread: concurrent requests share one fsync, each write is
// still its own atomic unit, and nothing is acknowledged before its transaction is durable.
#pragma once

#include <memory>
#include <string>

#include "stratus/apiserver/store.h"

namespace stratus {

struct SqliteStoreOptions {
  std::string path;                  // database file, created when missing
  size_t history_window = 10000;     // change events kept for watch; older versions get 410 Gone
  size_t max_batch = 512;            // writes per group commit
  bool synchronous_full = true;      // fsync every commit (durable against power loss, not only kill -9)
};

// Opens (creating or recovering) the store. Fails with kInternal naming the file when it cannot be opened.
StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const SqliteStoreOptions& opts);

}  // namespace stratus
