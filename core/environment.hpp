#pragma once
// One LMDB environment per data directory, shared by the log and every view
// store. Owns the MDB_env and the handles of its named databases.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <derive/options.hpp>
#include <derive/status.hpp>

struct MDB_env;
struct MDB_txn;

namespace derive {

class environment {
 public:
  // Opens (creating when needed) the data directory `path`.
  // Errors: io_error naming the path and the reason.
  static result<std::unique_ptr<environment>> open(const std::string& path,
                                                   environment_options options = {});
  ~environment();
  environment(const environment&) = delete;
  environment& operator=(const environment&) = delete;

  MDB_env* handle() const { return env_; }
  const std::string& path() const { return path_; }
  const environment_options& options() const { return options_; }

  // The handle of the named database `name`, created on first use.
  // Thread-safe. Handles stay valid for the environment's lifetime.
  // REQUIRES: the calling thread holds no write transaction (it opens one).
  // `flags` are MDB_dbi flags (MDB_INTEGERKEY, MDB_DUPSORT, ...).
  result<unsigned> database(const std::string& name, unsigned flags = 0);

  // Marks the environment failed after an unrecoverable LMDB error (for
  // example MDB_PANIC); every later write is refused with `sticky_error()`.
  void fail(status error);
  // ok, or the error that made the environment refuse writes.
  status sticky_error() const;

  // Commits `txn`, mapping LMDB's errors: MDB_MAP_FULL -> storage_full,
  // anything else -> io_error (and, for a panic, a sticky failure).
  status commit(MDB_txn* txn);

 private:
  environment() = default;
  MDB_env* env_ = nullptr;
  std::string path_;
  environment_options options_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, unsigned> dbis_;
  status sticky_;
};

// Maps an LMDB return code to a status; `what` says what was being done.
status lmdb_status(int rc, const char* what);

}  // namespace derive
