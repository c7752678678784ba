#include "core/journal.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/coding.hpp"
#include "core/file_io.hpp"
#include "core/hash.hpp"

namespace derive {

namespace {

constexpr char slot_magic[4] = {'D', 'J', 'C', '1'};

status io_error(const std::string& path, const std::string& what, int error) {
  return {errc::io_error, "journal '" + path + "': " + what + ": " + std::strerror(error)};
}

// A slot that holds a whole checkpoint.
struct slot {
  uint64_t generation = 0;
  uint64_t first_seq = 0;
  std::string payload;
};

std::optional<slot> decode_slot(std::string_view bytes) {
  if (bytes.size() < journal::slot_header_bytes) return std::nullopt;
  if (std::memcmp(bytes.data() + 4, slot_magic, 4) != 0) return std::nullopt;
  const uint32_t length = decode_fixed32(bytes.data() + 24);
  if (length > journal::max_checkpoint_bytes) return std::nullopt;
  const std::string_view covered = bytes.substr(4, journal::slot_header_bytes - 4 + length);
  if (decode_fixed32(bytes.data()) != detail::crc32c(covered)) return std::nullopt;
  slot s;
  s.generation = decode_fixed64(bytes.data() + 8);
  s.first_seq = decode_fixed64(bytes.data() + 16);
  s.payload.assign(bytes.data() + journal::slot_header_bytes, length);
  if (s.generation == 0) return std::nullopt;
  return s;
}

}  // namespace

journal::journal(int fd, std::string path, uint64_t capacity)
    : fd_(fd), path_(std::move(path)), capacity_(capacity) {}

journal::~journal() { ::close(fd_); }

result<std::unique_ptr<journal>> journal::open(const std::string& path, uint64_t capacity) {
  capacity = std::max(capacity, records_begin + record_header_bytes);
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0 && errno != ENOENT) return io_error(path, "cannot open", errno);
  if (fd < 0) {
    // Created whole under a temporary name, then renamed: a crash leaves no
    // journal of the wrong size.
    const std::string temp = path + ".new";
    fd = ::open(temp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return io_error(temp, "cannot create", errno);
    // Allocated, not written (reads as zeros): records overwrite the same
    // first megabytes lap after lap, so only the first lap allocates extents.
    bool ok = ::posix_fallocate(fd, 0, static_cast<off_t>(capacity)) == 0;
    if (!ok) {  // a filesystem without fallocate: zeros
      const std::string zeros(1 << 20, '\0');
      ok = true;
      for (uint64_t at = 0; ok && at < capacity; at += zeros.size())
        ok = write_exact(fd, zeros.data(), std::min<uint64_t>(zeros.size(), capacity - at), at);
    }
    if (!ok || ::fdatasync(fd) != 0 || ::rename(temp.c_str(), path.c_str()) != 0) {
      const int error = errno;
      ::close(fd);
      ::unlink(temp.c_str());
      return io_error(path, "cannot create", error);
    }
    const std::string dir = path.substr(0, path.find_last_of('/') + 1);
    int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
  // One process at a time: a second would write the checkpoint's meta pages
  // back into the first's live file (held until the journal closes).
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    ::close(fd);
    if (error == EWOULDBLOCK)
      return status{errc::unavailable, "journal '" + path +
                                           "' is open in another process (or another environment "
                                           "of this one): one process per data directory"};
    return io_error(path, "cannot lock", error);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    ::close(fd);
    return io_error(path, "cannot read its size", error);
  }
  if (static_cast<uint64_t>(st.st_size) < records_begin + record_header_bytes) {
    ::close(fd);
    return status{errc::corruption, "journal '" + path + "' is shorter than its header"};
  }
  std::unique_ptr<journal> j(new journal(fd, path, static_cast<uint64_t>(st.st_size)));
  if (auto s = j->load(); !s) return s;
  return j;
}

result<journal::contents> journal::read() const {
  contents out;
  std::optional<slot> newest;
  std::string bytes(slot_bytes, '\0');
  for (int i = 0; i < 2; ++i) {
    if (!read_exact(fd_, bytes.data(), bytes.size(), i * slot_bytes))
      return io_error(path_, "cannot read a checkpoint", errno);
    auto s = decode_slot(bytes);
    if (s && (!newest || s->generation > newest->generation)) newest = std::move(s);
  }
  uint64_t seq = 1;
  if (newest) {
    out.checkpoint = std::move(newest->payload);
    out.generation = newest->generation;
    seq = newest->first_seq;
  }
  char header[record_header_bytes];
  for (uint64_t at = records_begin; at + record_header_bytes <= capacity_;) {
    if (!read_exact(fd_, header, sizeof header, at))
      return io_error(path_, "cannot read a record", errno);
    const uint32_t length = decode_fixed32(header + 4);
    if (decode_fixed64(header + 8) != seq || length > capacity_ - at - record_header_bytes) break;
    std::string record(record_header_bytes - 4 + length, '\0');
    std::memcpy(record.data(), header + 4, record_header_bytes - 4);
    if (!read_exact(fd_, record.data() + record_header_bytes - 4, length, at + record_header_bytes))
      return io_error(path_, "cannot read a record", errno);
    if (decode_fixed32(header) != detail::crc32c(record)) break;
    out.records.push_back(record.substr(record_header_bytes - 4));
    at += record_header_bytes + length;
    ++seq;
  }
  return out;
}

status journal::load() {
  auto c = read();
  if (!c) return c.error();
  std::string bytes(slot_bytes, '\0');
  generation_ = c->generation;
  newest_slot_ = -1;
  uint64_t first_seq = 1;
  for (int i = 0; i < 2 && generation_ != 0; ++i) {
    if (!read_exact(fd_, bytes.data(), bytes.size(), i * slot_bytes))
      return io_error(path_, "cannot read a checkpoint", errno);
    if (auto s = decode_slot(bytes); s && s->generation == generation_) {
      newest_slot_ = i;
      first_seq = s->first_seq;
    }
  }
  tail_ = records_begin;
  for (const auto& r : c->records) tail_ += record_header_bytes + r.size();
  first_seq_ = first_seq;
  next_seq_ = first_seq + c->records.size();
  return status::ok();
}

status journal::fail(const std::string& what, int error) {
  failed_ = io_error(path_, what, error);
  return *failed_;
}

status journal::append(std::string_view payload) {
  if (failed_) return *failed_;
  const uint64_t size = record_header_bytes + payload.size();
  if (size > capacity_ - tail_)
    return {errc::storage_full, "journal '" + path_ + "' has no room for a record of " +
                                    std::to_string(payload.size()) + " bytes: checkpoint first"};
  buffer_.resize(size);
  encode_fixed32(buffer_.data() + 4, static_cast<uint32_t>(payload.size()));
  encode_fixed64(buffer_.data() + 8, next_seq_);
  std::memcpy(buffer_.data() + record_header_bytes, payload.data(), payload.size());
  encode_fixed32(buffer_.data(),
                 detail::crc32c(std::string_view(buffer_).substr(4)));
  // A failed write may have written part of the record: the next one goes
  // over it, so a short write fails only this record.
  if (!write_exact(fd_, buffer_.data(), buffer_.size(), tail_))
    return io_error(path_, "cannot write a record", errno);
  tail_ += size;
  ++next_seq_;
  unsynced_ = true;
  return status::ok();
}

status journal::sync() {
  if (failed_) return *failed_;
  if (::fdatasync(fd_) != 0) return fail("cannot flush", errno);
  unsynced_ = false;
  return status::ok();
}

status journal::checkpoint(std::string_view payload) {
  // Records must be durable before the checkpoint that ends them is.
  if (unsynced_)
    if (auto s = sync(); !s) return s;
  if (auto s = write_slot(payload, next_seq_); !s) return s;
  first_seq_ = next_seq_;
  tail_ = records_begin;
  return status::ok();
}

status journal::rebase(std::string_view payload) {
  if (generation_ == 0)
    return {errc::invalid_parameter, "journal '" + path_ + "' has no checkpoint to rebase"};
  if (unsynced_)
    if (auto s = sync(); !s) return s;
  return write_slot(payload, first_seq_);
}

status journal::write_slot(std::string_view payload, uint64_t first_seq) {
  if (failed_) return *failed_;
  if (payload.size() > max_checkpoint_bytes)
    return {errc::invalid_parameter, "journal checkpoint of " + std::to_string(payload.size()) +
                                         " bytes exceeds " + std::to_string(max_checkpoint_bytes)};
  const int target = newest_slot_ == 0 ? 1 : 0;
  std::string bytes(slot_header_bytes + payload.size(), '\0');
  std::memcpy(bytes.data() + 4, slot_magic, 4);
  encode_fixed64(bytes.data() + 8, generation_ + 1);
  encode_fixed64(bytes.data() + 16, first_seq);
  encode_fixed32(bytes.data() + 24, static_cast<uint32_t>(payload.size()));
  std::memcpy(bytes.data() + slot_header_bytes, payload.data(), payload.size());
  encode_fixed32(bytes.data(), detail::crc32c(std::string_view(bytes).substr(4)));
  if (!write_exact(fd_, bytes.data(), bytes.size(), target * slot_bytes))
    return io_error(path_, "cannot write a checkpoint", errno);
  if (::fdatasync(fd_) != 0) return fail("cannot flush a checkpoint", errno);
  ++generation_;
  newest_slot_ = target;
  return status::ok();
}

status journal::scrub() {
  if (failed_) return *failed_;
  const std::string zeros(1 << 20, '\0');
  for (uint64_t at = tail_; at < capacity_; at += zeros.size())
    if (!write_exact(fd_, zeros.data(), std::min<uint64_t>(zeros.size(), capacity_ - at), at))
      return io_error(path_, "cannot overwrite old records", errno);
  if (::fdatasync(fd_) != 0) return fail("cannot flush", errno);
  return status::ok();
}

}  // namespace derive
