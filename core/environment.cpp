#include "core/environment.hpp"

#include <lmdb.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

#include "core/lmdb_util.hpp"

namespace derive {

result<std::unique_ptr<environment>> environment::open(const std::string& path,
                                                       environment_options options) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec)
    return status{errc::io_error, "cannot create data directory '" + path + "': " + ec.message()};

  std::unique_ptr<environment> env{new environment};
  env->path_ = path;
  env->options_ = options;
  if (int rc = mdb_env_create(&env->env_); rc != MDB_SUCCESS)
    return lmdb_status(rc, "creating the environment");
  auto fail = [&](int rc, const char* what) -> status {
    mdb_env_close(env->env_);
    env->env_ = nullptr;
    auto st = lmdb_status(rc, what);
    return {st.code(), st.message() + " (data directory '" + path + "')"};
  };
  if (int rc = mdb_env_set_mapsize(env->env_, options.map_size); rc != MDB_SUCCESS)
    return fail(rc, "setting the map size");
  if (int rc = mdb_env_set_maxreaders(env->env_, options.max_readers); rc != MDB_SUCCESS)
    return fail(rc, "setting the reader limit");
  if (int rc = mdb_env_set_maxdbs(env->env_, options.max_databases); rc != MDB_SUCCESS)
    return fail(rc, "setting the database limit");
  // MDB_NOTLS: read transactions may be used from pool threads.
  // No MDB_WRITEMAP: on a full disk it can crash the process.
  unsigned flags = MDB_NOTLS;
  if (options.mode == durability::relaxed) flags |= MDB_NOSYNC;
  if (int rc = mdb_env_open(env->env_, path.c_str(), flags, 0644); rc != MDB_SUCCESS)
    return fail(rc, "opening the data directory");
  // After a process crash the last commits may sit in the page cache with
  // their meta page unflushed (MDB_NOMETASYNC): flush them before anyone
  // reads them, so that nothing seen from now on can be lost to a power loss.
  if (options.mode == durability::full) {
    if (int rc = mdb_env_sync(env->env_, 1); rc != MDB_SUCCESS)
      return fail(rc, "flushing the data directory");
  }
  return env;
}

status environment::compact(const std::string& path, environment_options options) {
  namespace fs = std::filesystem;
  const std::string tmp = (fs::path(path) / "data.mdb.compact").string();
  const std::string file = (fs::path(path) / "data.mdb").string();
  {
    auto env = open(path, options);
    if (!env) return env.error();
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
      return {errc::io_error, "cannot create '" + tmp + "': " + std::strerror(errno)};
    int rc = mdb_env_copyfd2((*env)->handle(), fd, MDB_CP_COMPACT);
    if (rc == MDB_SUCCESS && ::fsync(fd) != 0) rc = errno;
    ::close(fd);
    if (rc != MDB_SUCCESS) return lmdb_status(rc, "compacting '" + path + "'");
  }
  if (::rename(tmp.c_str(), file.c_str()) != 0)
    return {errc::io_error, "cannot replace '" + file + "': " + std::strerror(errno)};
  int dir = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return status::ok();
}

environment::~environment() {
  if (env_ != nullptr) {
    if (options_.mode == durability::relaxed) mdb_env_sync(env_, 1);
    mdb_env_close(env_);
  }
}

result<unsigned> environment::database(const std::string& name, unsigned flags) {
  std::lock_guard<std::mutex> guard{mu_};
  if (auto i = dbis_.find(name); i != dbis_.end()) return i->second;
  if (!sticky_.is_ok()) return sticky_;
  txn_guard txn;
  if (int rc = txn.begin(env_, 0); rc != MDB_SUCCESS)
    return lmdb_status(rc, "opening a database");
  MDB_dbi dbi = 0;
  if (int rc = mdb_dbi_open(txn.get(), name.c_str(), flags | MDB_CREATE, &dbi); rc != MDB_SUCCESS)
    return lmdb_status(rc, "opening database '" + name + "'");
  if (int rc = mdb_txn_commit(txn.release()); rc != MDB_SUCCESS)
    return lmdb_status(rc, "creating database '" + name + "'");
  dbis_.emplace(name, dbi);
  return static_cast<unsigned>(dbi);
}

void environment::fail(status error) {
  std::lock_guard<std::mutex> guard{mu_};
  if (sticky_.is_ok()) sticky_ = std::move(error);
}

status environment::sticky_error() const {
  std::lock_guard<std::mutex> guard{mu_};
  return sticky_;
}

status environment::begin_write(txn_guard& txn, std::string_view what, unsigned flags) {
  if (status sticky = sticky_error(); !sticky.is_ok()) return sticky;
  return check(txn.begin(env_, flags), what);
}

namespace {

// The sticky error an unrecoverable LMDB failure `st` leaves behind.
status refused_after(const status& st) {
  return {errc::io_error, "the data directory failed (" + st.message() +
                              "); writes are refused until the process restarts"};
}

}  // namespace

status environment::check(int rc, std::string_view what) {
  status st = lmdb_status(rc, what);
  if (rc == MDB_PANIC) fail(refused_after(st));
  return st;
}

status environment::commit(txn_guard& txn) {
  int rc = mdb_txn_commit(txn.release());  // ends the transaction, committed or not
  if (rc == EIO) fail(refused_after(lmdb_status(rc, "committing")));
  return check(rc, "committing");
}

status environment::sync() {
  if (status sticky = sticky_error(); !sticky.is_ok()) return sticky;
  int rc = mdb_env_sync(env_, 1);
  if (rc == MDB_SUCCESS) return status::ok();
  status st{errc::io_error, std::string("flushing the data directory '") + path_ +
                                "' to disk failed: " + mdb_strerror(rc)};
  fail(refused_after(st));
  return st;
}

namespace {

// The names of the named databases starting with `prefix`, read in `txn`.
int list_names(MDB_txn* txn, std::string_view prefix, std::vector<std::string>& names) {
  cursor_guard c;
  MDB_dbi main = 0;
  int rc = mdb_dbi_open(txn, nullptr, 0, &main);
  if (rc == MDB_SUCCESS) rc = c.open(txn, main);
  MDB_val k = to_val(prefix), v{};
  if (rc == MDB_SUCCESS)
    rc = mdb_cursor_get(c.get(), &k, &v, prefix.empty() ? MDB_FIRST : MDB_SET_RANGE);
  for (; rc == MDB_SUCCESS; rc = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT)) {
    std::string_view name = to_view(k);
    if (name.substr(0, prefix.size()) != prefix) break;
    names.emplace_back(name);
  }
  return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

}  // namespace

result<std::vector<std::string>> environment::database_names(std::string_view prefix) const {
  txn_guard txn;
  std::vector<std::string> names;
  int rc = txn.begin(env_, MDB_RDONLY);
  if (rc == MDB_SUCCESS) rc = list_names(txn.get(), prefix, names);
  if (rc != MDB_SUCCESS) return lmdb_status(rc, "listing databases");
  return names;
}

result<size_t> environment::drop_databases(std::string_view prefix) {
  std::lock_guard<std::mutex> guard{mu_};
  if (!sticky_.is_ok()) return sticky_;
  txn_guard txn;
  if (int rc = txn.begin(env_, 0); rc != MDB_SUCCESS)
    return lmdb_status(rc, "dropping databases");
  // The main database holds one record per named database, keyed by name.
  std::vector<std::string> names;
  if (int rc = list_names(txn.get(), prefix, names); rc != MDB_SUCCESS)
    return lmdb_status(rc, "listing databases");
  for (const auto& name : names) {
    MDB_dbi dbi = 0;
    int rc = mdb_dbi_open(txn.get(), name.c_str(), 0, &dbi);
    if (rc == MDB_SUCCESS) rc = mdb_drop(txn.get(), dbi, 1);
    if (rc != MDB_SUCCESS) return lmdb_status(rc, "dropping database '" + name + "'");
  }
  if (names.empty()) return size_t{0};
  if (int rc = mdb_txn_commit(txn.release()); rc != MDB_SUCCESS)
    return lmdb_status(rc, "dropping databases");
  for (const auto& name : names) dbis_.erase(name);
  return names.size();
}

namespace {

// Free pages that a new write transaction may reuse: every page listed in
// the free database (dbi 0) under a transaction id older than the oldest
// snapshot still needed. Counted as all of them (an upper bound).
int count_free_pages(MDB_txn* txn, uint64_t& pages) {
  pages = 0;
  cursor_guard c;
  if (int rc = c.open(txn, 0); rc != MDB_SUCCESS) return rc;
  MDB_val k{}, v{};
  int rc = mdb_cursor_get(c.get(), &k, &v, MDB_FIRST);
  for (; rc == MDB_SUCCESS; rc = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT)) {
    if (v.mv_size < sizeof(size_t)) continue;
    size_t n = 0;  // an IDL: its count, then the page numbers
    std::memcpy(&n, v.mv_data, sizeof n);
    pages += n;
  }
  return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

}  // namespace

result<uint64_t> environment::scrub_free_pages(int rounds) {
  MDB_stat st{};
  mdb_env_stat(env_, &st);
  const size_t value_size = st.ms_psize / 4;  // three records a page
  const std::string filler(value_size, '\0');
  auto scrub = database("derive.scrub", MDB_INTEGERKEY);
  if (!scrub) return scrub.error();
  uint64_t overwritten = 0;
  for (int round = 0; round < rounds; ++round) {
    // LMDB reads its free database only in read-only transactions.
    uint64_t free_pages = 0;
    {
      txn_guard read;
      int rc = read.begin(env_, MDB_RDONLY);
      if (rc == MDB_SUCCESS) rc = count_free_pages(read.get(), free_pages);
      if (rc != MDB_SUCCESS) return lmdb_status(rc, "counting free pages");
    }
    txn_guard txn;
    if (auto s = begin_write(txn, "scrubbing free pages"); !s) return s;
    const uint64_t records = free_pages * 3 + 3;
    for (uint64_t i = 0; i < records; ++i) {
      MDB_val k = uint64_val(i), v = to_val(filler);
      if (int rc = mdb_put(txn.get(), *scrub, &k, &v, MDB_APPEND); rc != MDB_SUCCESS)
        return check(rc, "scrubbing free pages");
    }
    if (auto s = commit(txn); !s) return s;
    overwritten += free_pages;
    if (auto s = begin_write(txn, "scrubbing free pages"); !s) return s;
    if (int rc = mdb_drop(txn.get(), *scrub, 0); rc != MDB_SUCCESS)
      return check(rc, "scrubbing free pages");
    if (auto s = commit(txn); !s) return s;
  }
  return overwritten;
}

}  // namespace derive
