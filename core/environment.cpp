#include "core/environment.hpp"

#include <lmdb.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <system_error>
#include <vector>

#include "core/coding.hpp"
#include "core/crash_point.hpp"
#include "core/file_io.hpp"
#include "core/lmdb_util.hpp"

namespace derive {

namespace {

// Opens the MDB_env of `env` at `path`; `nosync`: MDB_NOSYNC.
status open_env(MDB_env*& handle, const std::string& path, const environment_options& options,
                bool nosync);

// The sticky error an unrecoverable failure `st` leaves behind.
status refused_after(const status& st);

}  // namespace

result<std::unique_ptr<environment>> environment::open(const std::string& path,
                                                       environment_options options) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec)
    return status{errc::io_error, "cannot create data directory '" + path + "': " + ec.message()};

  std::unique_ptr<environment> env{new environment};
  env->path_ = path;
  env->options_ = options;
  env->nosync_ = options.mode == durability::relaxed;
  // A directory with a journal is opened journaled whatever the options say
  // (in durability::relaxed too, with the journal's full durability): a
  // commit made without it would be undone by the next journaled open,
  // which writes the checkpoint's meta pages back.
  if ((options.mode == durability::full && options.journal_bytes > 0) ||
      std::filesystem::exists(std::filesystem::path(path) / "journal", ec))
    return open_journaled(std::move(env));
  if (auto st = open_env(env->env_, path, options, env->nosync_); !st) return st;
  return env;
}

namespace {

// A checkpoint's record: data.mdb's inode, then the first meta_bytes of each
// of its two meta pages (pages 0 and 1: LMDB's header and MDB_meta, a few
// hundred bytes; the rest of a meta page is unused).
constexpr size_t meta_bytes = 512;

struct checkpoint_record {
  uint64_t inode = 0;
  uint32_t page_size = 0;
  std::string metas;  // 2 * meta_bytes
};

std::string encode_checkpoint(const checkpoint_record& c) {
  std::string out(12, '\0');
  encode_fixed64(&out[0], c.inode);
  encode_fixed32(&out[8], c.page_size);
  return out + c.metas;
}

std::optional<checkpoint_record> decode_checkpoint(std::string_view bytes) {
  if (bytes.size() != 12 + 2 * meta_bytes) return std::nullopt;
  checkpoint_record c;
  c.inode = decode_fixed64(bytes.data());
  c.page_size = decode_fixed32(bytes.data() + 8);
  c.metas.assign(bytes.substr(12));
  return c;
}

// Writes the checkpoint's meta pages over data.mdb's when that file is the
// one the checkpoint was taken of and they differ. `*other_file`: data.mdb is
// another file (a compaction replaced it: a new file, flushed whole before
// its rename, needs nothing written back) or none.
status restore_metas(const std::string& file, const checkpoint_record& c, bool* other_file) {
  *other_file = true;
  int fd = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) return status::ok();
  auto failed = [&](const char* what) {
    status st{errc::io_error, std::string(what) + " '" + file + "': " + std::strerror(errno)};
    if (fd >= 0) ::close(fd);
    return st;
  };
  if (fd < 0) return failed("cannot open");
  struct stat st {};
  if (::fstat(fd, &st) != 0) return failed("cannot read the inode of");
  if (static_cast<uint64_t>(st.st_ino) != c.inode) {
    ::close(fd);
    return status::ok();
  }
  *other_file = false;
  std::string now(2 * meta_bytes, '\0');
  if (!read_exact(fd, now.data(), meta_bytes, 0) ||
      !read_exact(fd, now.data() + meta_bytes, meta_bytes, c.page_size))
    return failed("cannot read the meta pages of");
  if (now != c.metas) {
    if (!write_exact(fd, c.metas.data(), meta_bytes, 0) ||
        !write_exact(fd, c.metas.data() + meta_bytes, meta_bytes, c.page_size) ||
        ::fdatasync(fd) != 0)
      return failed("cannot restore the meta pages of");
  }
  ::close(fd);
  return status::ok();
}

}  // namespace

result<std::unique_ptr<environment>> environment::open_journaled(
    std::unique_ptr<environment> env) {
  namespace fs = std::filesystem;
  const std::string& path = env->path_;
  auto j = journal::open((fs::path(path) / "journal").string(), env->options_.journal_bytes);
  if (!j) return j.error();
  auto contents = (*j)->read();
  if (!contents) return contents.error();
  bool other_file = false;
  if (contents->checkpoint) {
    auto c = decode_checkpoint(*contents->checkpoint);
    if (!c) return status{errc::corruption, "the journal of '" + path + "' holds a checkpoint this build cannot read"};
    if (auto st = restore_metas((fs::path(path) / "data.mdb").string(), *c, &other_file); !st)
      return st;
    env->records_ = std::move(contents->records);
    env->records_pending_ = !env->records_.empty();
  } else if (!contents->records.empty()) {
    return status{errc::corruption, "the journal of '" + path +
                                        "' holds records but no readable checkpoint: "
                                        "its state cannot be restored"};
  }
  env->journal_ = std::move(*j);
  env->nosync_ = true;  // the journal makes commits durable
  if (auto st = open_env(env->env_, path, env->options_, true); !st) return st;
  // The snapshot LMDB opened is the checkpoint's (or a whole file): pinned
  // until the next checkpoint, which also makes the records' replay durable.
  if (int rc = mdb_txn_begin(env->env_, nullptr, MDB_RDONLY, &env->pin_); rc != MDB_SUCCESS)
    return lmdb_status(rc, "pinning the checkpoint of '" + path + "'");
  std::lock_guard<std::mutex> lock(env->journal_mu_);
  if (!env->records_pending_) {
    if (auto st = env->checkpoint_locked(); !st) return st;
  } else if (other_file) {
    // The records are redone onto a copy (a compaction's) that no checkpoint
    // names yet: one must, before a commit of the replay could tear it.
    if (auto st = env->checkpoint_locked(true); !st) return st;
  }
  return env;
}

const std::vector<std::string>& environment::journal_records() const { return records_; }

status environment::journal_replayed() {
  {
    std::lock_guard<std::mutex> lock(journal_mu_);
    records_pending_ = false;
    records_.clear();
  }
  return checkpoint();
}


status environment::journal_commit(std::string_view record) {
  std::lock_guard<std::mutex> lock(journal_mu_);
  if (status sticky = sticky_error(); !sticky.is_ok()) return sticky;
  crash_point("before_log_sync");
  status st = journal_->append(record);
  if (st.code() == errc::storage_full) return checkpoint_locked();
  if (st) st = journal_->sync();
  if (!st) {
    fail(refused_after(st));
    return st;
  }
  crash_point("after_log_sync");
  // A checkpoint every so many records bounds what a restart replays and
  // what the pin keeps from reuse; the journal must not fill up either. The
  // record is durable whatever it does (a failed checkpoint refuses the
  // writes after it).
  constexpr uint64_t records_per_checkpoint = 1024;
  if (++journal_commits_ >= records_per_checkpoint || journal_->used() > journal_->capacity() / 2)
    (void)checkpoint_locked();
  return status::ok();
}

status environment::checkpoint() {
  if (!journal_) return status::ok();
  txn_guard pass;
  pass.hold(gate_);  // compact_online closes the environment meanwhile
  std::lock_guard<std::mutex> lock(journal_mu_);
  return checkpoint_locked();
}

status environment::checkpoint_locked(bool rebase) {
  if (records_pending_ && !rebase)
    return {errc::unavailable, "the journal of '" + path_ +
                                   "' holds commits not redone yet: open the log first"};
  if (status sticky = sticky_error(); !sticky.is_ok()) return sticky;
  if (env_ == nullptr) return {errc::io_error, "'" + path_ + "' is not open"};
  MDB_txn* pin = nullptr;
  status st = take_checkpoint(rebase, pin);
  if (!st) {
    // Sticky: an append acknowledged after a commit that no checkpoint made
    // durable would be redone onto a state without it.
    fail(refused_after(st));
    return st;
  }
  if (pin_ != nullptr) mdb_txn_abort(pin_);
  pin_ = pin;
  if (!rebase) journal_commits_.store(0, std::memory_order_relaxed);
  return status::ok();
}

// The work of a checkpoint, under LMDB's writer lock (so that the pin, the
// meta pages and the flush are of one commit); `pin` receives the new pin.
status environment::take_checkpoint(bool rebase, MDB_txn*& pin) {
  MDB_txn* writer = nullptr;
  if (int rc = mdb_txn_begin(env_, nullptr, 0, &writer); rc != MDB_SUCCESS)
    return lmdb_status(rc, "checkpointing");
  struct abort_txn {
    MDB_txn*& t;
    ~abort_txn() {
      if (t != nullptr) mdb_txn_abort(t);
    }
  } writer_guard{writer};
  MDB_txn* fresh = nullptr;
  if (int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &fresh); rc != MDB_SUCCESS)
    return lmdb_status(rc, "pinning a checkpoint");
  abort_txn pin_guard{fresh};
  checkpoint_record c;
  MDB_stat stat;
  mdb_env_stat(env_, &stat);
  c.page_size = stat.ms_psize;
  int fd = -1;
  mdb_env_get_fd(env_, &fd);
  struct stat st {};
  c.metas.assign(2 * meta_bytes, '\0');
  if (::fstat(fd, &st) != 0 || !read_exact(fd, c.metas.data(), meta_bytes, 0) ||
      !read_exact(fd, c.metas.data() + meta_bytes, meta_bytes, c.page_size))
    return {errc::io_error, "cannot read the meta pages of '" + path_ + "': " + std::strerror(errno)};
  c.inode = static_cast<uint64_t>(st.st_ino);
  crash_point("before_checkpoint_flush");
  if (int rc = mdb_env_sync(env_, 1); rc != MDB_SUCCESS)
    return {errc::io_error, std::string("flushing the data directory '") + path_ +
                                "' to disk failed: " + mdb_strerror(rc)};
  const std::string payload = encode_checkpoint(c);
  if (status written = rebase ? journal_->rebase(payload) : journal_->checkpoint(payload); !written)
    return written;
  crash_point("after_checkpoint");
  pin = std::exchange(fresh, nullptr);
  return status::ok();
}

status environment::scrub_journal() {
  if (!journal_) return status::ok();
  txn_guard pass;
  pass.hold(gate_);
  std::lock_guard<std::mutex> lock(journal_mu_);
  if (auto st = checkpoint_locked(); !st) return st;
  return journal_->scrub();
}

status environment::after_commit(bool deferred) {
  if (!journal_ || deferred) return status::ok();
  return checkpoint();
}

namespace {

status open_env(MDB_env*& handle, const std::string& path, const environment_options& options,
                bool nosync) {
  if (int rc = mdb_env_create(&handle); rc != MDB_SUCCESS)
    return lmdb_status(rc, "creating the environment");
  auto fail = [&](int rc, const char* what) -> status {
    mdb_env_close(handle);
    handle = nullptr;
    auto st = lmdb_status(rc, what);
    return {st.code(), st.message() + " (data directory '" + path + "')"};
  };
  if (int rc = mdb_env_set_mapsize(handle, options.map_size); rc != MDB_SUCCESS)
    return fail(rc, "setting the map size");
  if (int rc = mdb_env_set_maxreaders(handle, options.max_readers); rc != MDB_SUCCESS)
    return fail(rc, "setting the reader limit");
  if (int rc = mdb_env_set_maxdbs(handle, options.max_databases); rc != MDB_SUCCESS)
    return fail(rc, "setting the database limit");
  // MDB_NOTLS: read transactions may be used from pool threads.
  // No MDB_WRITEMAP: on a full disk it can crash the process.
  unsigned flags = MDB_NOTLS;
  if (nosync) flags |= MDB_NOSYNC;
  if (int rc = mdb_env_open(handle, path.c_str(), flags, 0644); rc != MDB_SUCCESS)
    return fail(rc, "opening the data directory");
  // After a process crash the last commits may sit in the page cache with
  // their meta page unflushed (MDB_NOMETASYNC): flush them before anyone
  // reads them, so that nothing seen from now on can be lost to a power loss.
  if (!nosync) {
    if (int rc = mdb_env_sync(handle, 1); rc != MDB_SUCCESS)
      return fail(rc, "flushing the data directory");
  }
  return status::ok();
}

// The marker of a recomputable environment: "derive-env 1\n<boot id>\n<clean|dirty>\n".
constexpr std::string_view marker_magic = "derive-env 1";

std::string marker_path(const std::string& dir) {
  return (std::filesystem::path(dir) / "boot").string();
}

result<std::string> read_boot_id(const std::string& boot_id_path) {
  std::ifstream in(boot_id_path);
  std::string id;
  if (!in || !std::getline(in, id) || id.empty())
    return status{errc::io_error, "cannot read the boot id from '" + boot_id_path + "'"};
  return id;
}

// Writes the marker durably: a temporary file, flushed, renamed over the
// marker, then the directory flushed.
status write_marker(const std::string& dir, const std::string& boot_id, bool clean) {
  std::string text = std::string(marker_magic) + "\n" + boot_id + "\n" +
                     (clean ? "clean" : "dirty") + "\n";
  std::string path = marker_path(dir), tmp = path + ".tmp";
  auto failed = [&](const char* what) {
    return status{errc::io_error, std::string(what) + " '" + tmp + "': " + std::strerror(errno)};
  };
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return failed("cannot create");
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fdatasync(fd) == 0;
  int saved = errno;
  ::close(fd);
  errno = saved;
  if (!ok) return failed("cannot write");
  if (::rename(tmp.c_str(), path.c_str()) != 0) return failed("cannot rename");
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return failed("cannot open the directory of");
  ok = ::fsync(dfd) == 0;
  ::close(dfd);
  if (!ok) return failed("cannot flush the directory of");
  return status::ok();
}

// Whether the environment at `dir` must be discarded: its marker says it was
// left dirty in another boot, or cannot be read while data exists. A
// directory without a marker was never opened recomputable (an older
// process, whose commits flushed): intact.
bool torn_by_reboot(const std::string& dir, const std::string& boot_id) {
  std::error_code ec;
  bool has_data = std::filesystem::exists(std::filesystem::path(dir) / "data.mdb", ec);
  if (!has_data) return false;
  if (!std::filesystem::exists(marker_path(dir), ec)) return false;
  std::ifstream in(marker_path(dir));
  std::string magic, boot, state;
  if (!std::getline(in, magic) || !std::getline(in, boot) || !std::getline(in, state) ||
      magic != marker_magic)
    return true;
  return state != "clean" && boot != boot_id;
}

}  // namespace

result<std::unique_ptr<environment>> environment::open_recomputable(const std::string& path,
                                                                    environment_options options,
                                                                    const std::string& boot_id_path,
                                                                    bool flush_commits,
                                                                    bool* discarded) {
  if (discarded) *discarded = false;
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec)
    return status{errc::io_error, "cannot create data directory '" + path + "': " + ec.message()};
  auto boot = read_boot_id(boot_id_path);
  if (!boot) return boot.error();
  if (torn_by_reboot(path, *boot)) {
    for (const char* name : {"data.mdb", "lock.mdb"}) {
      std::filesystem::remove(std::filesystem::path(path) / name, ec);
      if (ec)
        return status{errc::io_error, "cannot remove the torn '" + path + "/" + name +
                                          "': " + ec.message()};
    }
    if (discarded) *discarded = true;
  }
  std::unique_ptr<environment> env{new environment};
  env->path_ = path;
  env->options_ = options;
  if (flush_commits) {
    // Intact (checked above), and flushed whole as it opens; from then on its
    // commits flush, so the marker goes (after the flush: a crash before it
    // must still find the marker).
    if (auto st = open_env(env->env_, path, options, false); !st) return st;
    std::filesystem::remove(marker_path(path), ec);
    if (ec) return status{errc::io_error, "cannot remove '" + marker_path(path) + "': " + ec.message()};
    return env;
  }
  if (auto st = write_marker(path, *boot, false); !st) return st;
  env->boot_id_ = *boot;
  env->nosync_ = true;
  if (auto st = open_env(env->env_, path, options, true); !st) return st;
  return env;
}

namespace {

// Copies the open `env` compacted into `tmp`, flushed when `flush`.
status copy_compacted(MDB_env* env, const std::string& tmp, const std::string& path,
                      bool flush = true) {
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return {errc::io_error, "cannot create '" + tmp + "': " + std::strerror(errno)};
  int rc = mdb_env_copyfd2(env, fd, MDB_CP_COMPACT);
  if (rc == MDB_SUCCESS && flush && ::fsync(fd) != 0) rc = errno;
  ::close(fd);
  if (rc != MDB_SUCCESS) {
    ::unlink(tmp.c_str());
    return lmdb_status(rc, "compacting '" + path + "'");
  }
  return status::ok();
}

// The size of `file` in bytes; 0 when it cannot be read.
uint64_t file_size(const std::string& file) {
  struct stat st;
  return ::stat(file.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// Renames `tmp` over `file` and flushes the directory `dir`.
status replace_file(const std::string& tmp, const std::string& file, const std::string& dir) {
  if (::rename(tmp.c_str(), file.c_str()) != 0)
    return {errc::io_error, "cannot replace '" + file + "': " + std::strerror(errno)};
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  return status::ok();
}

}  // namespace

status environment::compact(const std::string& path, environment_options options) {
  namespace fs = std::filesystem;
  const std::string tmp = (fs::path(path) / "data.mdb.compact").string();
  {
    auto env = open(path, options);
    if (!env) return env.error();
    if (auto st = copy_compacted((*env)->handle(), tmp, path); !st) return st;
  }
  return replace_file(tmp, (fs::path(path) / "data.mdb").string(), path);
}


status environment::compact_online(std::chrono::milliseconds quiesce,
                                   std::chrono::microseconds* paused) {
  namespace fs = std::filesystem;
  using clock = std::chrono::steady_clock;
  std::lock_guard<std::mutex> one_at_a_time{compact_mu_};
  if (status sticky = sticky_error(); !sticky.is_ok()) return sticky;
  const auto closing = clock::now();
  if (!gate_.close(quiesce))
    return {errc::unavailable, "cannot compact '" + path_ + "' now: its transactions stayed open " +
                                   std::to_string(quiesce.count()) + " ms; retry"};
  struct reopen_gate {
    env_gate& gate;
    clock::time_point since;
    std::chrono::microseconds* paused;
    ~reopen_gate() {
      gate.open();
      if (paused)
        *paused = std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - since);
    }
  } guard{gate_, closing, paused};
  // No transaction of this process is open, and none begins until the gate opens.
  const std::string tmp = (fs::path(path_) / "data.mdb.compact").string();
  const std::string file = (fs::path(path_) / "data.mdb").string();
  // A recomputable environment's commits are not flushed either: a machine
  // crash before the page cache is written back finds its marker dirty and
  // discards it (open_recomputable). Flushing ~100 MB would also delay the
  // log's commits, whose flushes queue behind it.
  const bool flush = boot_id_.empty();
  const uint64_t before = file_size(file);
  if (auto st = copy_compacted(env_, tmp, path_, flush); !st) return st;
  std::unique_lock<std::mutex> journal_lock(journal_mu_);
  if (pin_ != nullptr) mdb_txn_abort(std::exchange(pin_, nullptr));
  mdb_env_close(env_);
  env_ = nullptr;
  status replaced = replace_file(tmp, file, path_);
  if (replaced) crash_point("erasure_compaction_renamed");
  // Reopened even when the rename failed (the old file is intact then).
  status reopened = reopen();
  // Journal mode: the file is new (or, when the rename failed, unpinned).
  if (reopened && journal_) reopened = checkpoint_locked();
  journal_lock.unlock();
  if (!reopened) fail(reopened);
  if (replaced && reopened) {
    const uint64_t after = file_size(file);
    compactions_.fetch_add(1, std::memory_order_relaxed);
    if (before > after) bytes_reclaimed_.fetch_add(before - after, std::memory_order_relaxed);
  }
  return replaced ? reopened : replaced;
}

result<environment::space_info> environment::space() const {
  space_info out;
  txn_guard txn;  // first: no compaction replaces the file until it ends
  if (int rc = begin_txn(txn, MDB_RDONLY); rc != MDB_SUCCESS)
    return lmdb_status(rc, "reading the free pages of '" + path_ + "'");
  out.file_bytes = file_size((std::filesystem::path(path_) / "data.mdb").string());
  MDB_envinfo info;
  MDB_stat stat;
  mdb_env_info(env_, &info);
  mdb_env_stat(env_, &stat);
  // The free list (database 0): each record lists pages, its count first.
  cursor_guard c;
  if (int rc = c.open(txn.get(), 0); rc != MDB_SUCCESS)
    return lmdb_status(rc, "reading the free pages of '" + path_ + "'");
  uint64_t pages = 0;
  MDB_val key, val;
  for (int rc = mdb_cursor_get(c.get(), &key, &val, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(c.get(), &key, &val, MDB_NEXT))
    pages += *static_cast<const size_t*>(val.mv_data);
  const uint64_t used_end = (static_cast<uint64_t>(info.me_last_pgno) + 1) * stat.ms_psize;
  out.free_bytes = pages * stat.ms_psize;
  if (out.file_bytes > used_end) out.free_bytes += out.file_bytes - used_end;
  return out;
}

std::chrono::steady_clock::time_point environment::last_commit() const {
  return std::chrono::steady_clock::time_point(
      std::chrono::nanoseconds(last_commit_ns_.load(std::memory_order_relaxed)));
}

status environment::reopen() {
  if (auto st = open_env(env_, path_, options_, nosync_); !st) return st;
  txn_guard txn;
  if (int rc = txn.begin(env_, 0); rc != MDB_SUCCESS)
    return lmdb_status(rc, "reopening the databases of '" + path_ + "'");
  {
    std::lock_guard<std::mutex> guard{mu_};
    for (auto& [name, db] : dbis_) {
      MDB_dbi dbi = 0;
      if (int rc = mdb_dbi_open(txn.get(), name.c_str(), db.flags | MDB_CREATE, &dbi);
          rc != MDB_SUCCESS)
        return lmdb_status(rc, "reopening database '" + name + "'");
      db.dbi = dbi;
    }
  }
  if (int rc = mdb_txn_commit(txn.release()); rc != MDB_SUCCESS)
    return lmdb_status(rc, "reopening the databases of '" + path_ + "'");
  std::lock_guard<std::mutex> hooks{hooks_mu_};
  reopening_.store(std::this_thread::get_id());
  status st = status::ok();
  for (auto& [owner, reopened] : hooks_)
    if (st) st = reopened();
  reopening_.store(std::thread::id{});
  return st;
}

void environment::on_reopen(const void* owner, std::function<status()> reopened) {
  std::lock_guard<std::mutex> hooks{hooks_mu_};
  hooks_[owner] = std::move(reopened);
}

void environment::forget_reopen(const void* owner) {
  std::lock_guard<std::mutex> hooks{hooks_mu_};
  hooks_.erase(owner);
}

int environment::begin_txn(txn_guard& txn, unsigned flags) const {
  txn.hold(gate_);
  // Read after the pass: compact_online replaces it with the gate closed.
  int rc = env_ == nullptr ? EIO : txn.begin(env_, flags);
  if (rc != MDB_SUCCESS) txn.drop_pass();
  else if ((flags & MDB_RDONLY) == 0)
    deferred_.store((flags & MDB_NOMETASYNC) != 0, std::memory_order_relaxed);
  return rc;
}

environment::~environment() {
  if (env_ == nullptr) return;
  if (journal_) {
    // A clean close leaves nothing to replay.
    std::lock_guard<std::mutex> lock(journal_mu_);
    if (journal_commits_.load(std::memory_order_relaxed) > 0) (void)checkpoint_locked();
    if (pin_ != nullptr) mdb_txn_abort(std::exchange(pin_, nullptr));
  }
  bool recomputable = !boot_id_.empty();
  bool flushed = false;
  if (recomputable || options_.mode == durability::relaxed)
    flushed = sticky_error().is_ok() && mdb_env_sync(env_, 1) == MDB_SUCCESS;
  mdb_env_close(env_);
  // Clean only when everything reached the disk; else it stays dirty.
  if (recomputable && flushed) (void)write_marker(path_, boot_id_, true);
}

result<unsigned> environment::database(const std::string& name, unsigned flags) {
  {
    // Known: no transaction (a reopen hook runs here with the gate closed).
    std::lock_guard<std::mutex> guard{mu_};
    if (auto i = dbis_.find(name); i != dbis_.end()) return i->second.dbi;
    if (!sticky_.is_ok()) return sticky_;
  }
  // A reopen hook refreshes handles; it never creates a database (a dropped
  // store's stays dropped).
  if (reopening_.load() == std::this_thread::get_id())
    return status{errc::not_found, "database '" + name + "' was dropped"};
  txn_guard txn;
  txn.hold(gate_);  // first: compact_online takes mu_ with the gate closed
  if (env_ == nullptr) return status{errc::io_error, "'" + path_ + "' is not open"};
  // LMDB's writer lock before mu_, as every writer takes them (a writer may
  // look a handle up, or fail, under its transaction): mu_ held while waiting
  // for the writer lock deadlocked with such a writer.
  if (int rc = txn.begin(env_, 0); rc != MDB_SUCCESS)
    return lmdb_status(rc, "opening a database");
  std::lock_guard<std::mutex> guard{mu_};
  if (auto i = dbis_.find(name); i != dbis_.end()) return i->second.dbi;
  MDB_dbi dbi = 0;
  if (int rc = mdb_dbi_open(txn.get(), name.c_str(), flags | MDB_CREATE, &dbi); rc != MDB_SUCCESS)
    return lmdb_status(rc, "opening database '" + name + "'");
  if (int rc = mdb_txn_commit(txn.release()); rc != MDB_SUCCESS)
    return lmdb_status(rc, "creating database '" + name + "'");
  dbis_.emplace(name, named_db{dbi, flags});
  // Journal mode: a database created since the last checkpoint is created
  // again by its owner when it opens after a crash, so none is taken here.
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
  return check(begin_txn(txn, flags), what);
}

namespace {

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

namespace {

// Whether the filesystem holding `path` has (next to) no free space left.
bool filesystem_full(const std::string& path) {
  struct statvfs fs {};
  if (::statvfs(path.c_str(), &fs) != 0) return false;
  constexpr uint64_t almost_nothing = uint64_t{1} << 20;
  return uint64_t{fs.f_bavail} * fs.f_frsize < almost_nothing ||
         uint64_t{fs.f_bfree} * fs.f_frsize < almost_nothing;
}

}  // namespace

status environment::commit(txn_guard& txn) {
  const bool deferred = deferred_.load(std::memory_order_relaxed);
  int rc = mdb_txn_commit(txn.release());  // ends the transaction, committed or not
  txn.drop_pass();
  last_commit_ns_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                        std::memory_order_relaxed);
  if (rc == MDB_SUCCESS) return after_commit(deferred);
  // LMDB reports a short write of a commit's pages as EIO ("short write,
  // filesystem full?"): on a full filesystem that is a full disk. The pages
  // it wrote are unreachable (no meta page names them): nothing is lost.
  if (rc == EIO && filesystem_full(path_))
    return {errc::storage_full, "the disk holding '" + path_ + "' is full (committing)"};
  if (rc == EIO) fail(refused_after(lmdb_status(rc, "committing")));
  return check(rc, "committing");
}

status environment::sync() {
  if (journal_) return checkpoint();
  txn_guard pass;
  pass.hold(gate_);
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
  int rc = begin_txn(txn, MDB_RDONLY);
  if (rc == MDB_SUCCESS) rc = list_names(txn.get(), prefix, names);
  if (rc != MDB_SUCCESS) return lmdb_status(rc, "listing databases");
  return names;
}

result<size_t> environment::drop_databases_now(std::string_view prefix) {
  txn_guard txn;
  txn.hold(gate_);  // as in database(): the gate, the writer lock, then mu_
  if (int rc = env_ == nullptr ? EIO : txn.begin(env_, 0); rc != MDB_SUCCESS)
    return lmdb_status(rc, "dropping databases");
  std::lock_guard<std::mutex> guard{mu_};
  if (!sticky_.is_ok()) return sticky_;
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

result<size_t> environment::drop_databases(std::string_view prefix) {
  auto dropped = drop_databases_now(prefix);
  // Journal mode: durable before it returns, as in a flushed environment.
  if (dropped && *dropped > 0)
    if (auto st = checkpoint(); !st) return st;
  return dropped;
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
  {
    txn_guard read;
    if (int rc = begin_txn(read, MDB_RDONLY); rc != MDB_SUCCESS)
      return lmdb_status(rc, "scrubbing free pages");
    mdb_env_stat(mdb_txn_env(read.get()), &st);
  }
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
      int rc = begin_txn(read, MDB_RDONLY);
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
