#pragma once
// The server's limits per client (docs/security.md): on appends, a token
// bucket per client and a quota of new idempotency keys per client and
// window; open connections in total and per address; the budget of large
// responses being written, in total and per address. Plain C++ (no Beast);
// thread-safe; time is passed in, so tests step it.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "web/access_rules.hpp"

namespace derive::web {

using limit_clock = std::chrono::steady_clock;

// Who an append is charged to: the token's subject when the client sent a
// valid token, else its IP address.
std::string client_key(const principal& who, std::string_view remote_address);

// A token bucket per key: `rate` tokens a second, at most `burst` saved.
// rate 0: unlimited.
class rate_limiter {
 public:
  rate_limiter(double rate, double burst);
  // Takes one token of `key`'s bucket. nullopt: admitted; else how long until
  // a token is available (at least 1 ms).
  std::optional<std::chrono::milliseconds> take(const std::string& key, limit_clock::time_point now);

 private:
  struct bucket {
    double tokens;
    limit_clock::time_point at;
  };
  void forget_full(limit_clock::time_point now);  // REQUIRES: mu_ held

  const double rate_;
  const double burst_;
  std::mutex mu_;
  std::unordered_map<std::string, bucket> buckets_;
  size_t next_sweep_ = 1024;
};

// At most `max_keys` charges per key in each window of `window` (fixed
// windows starting at a key's first charge). max_keys 0: unlimited.
class key_quota {
 public:
  key_quota(size_t max_keys, std::chrono::milliseconds window);
  // Charges one key. nullopt: admitted; else how long until the window ends.
  std::optional<std::chrono::milliseconds> take(const std::string& key, limit_clock::time_point now);
  // Gives a charge back (the append failed or replayed a known key).
  void refund(const std::string& key);

 private:
  struct usage {
    size_t used;
    limit_clock::time_point ends;
  };
  void forget_ended(limit_clock::time_point now);  // REQUIRES: mu_ held

  const size_t max_keys_;
  const std::chrono::milliseconds window_;
  std::mutex mu_;
  std::unordered_map<std::string, usage> clients_;
  size_t next_sweep_ = 1024;
};

// Why an append is refused before it reaches the log.
struct append_refusal {
  std::string code;     // rate_limited, too_many_idempotency_keys
  std::string message;  // names the limit and when to retry
  std::chrono::milliseconds retry_after;
  unsigned retry_after_seconds() const;  // Retry-After: at least 1
};

// Both limits of the appends of one server.
class append_limits {
 public:
  append_limits(double rate, double burst, size_t max_new_keys, std::chrono::milliseconds window);
  // Admits an append of `client` (with an Idempotency-Key or not). When
  // admitted with a key, the caller calls settle() once the outcome is known.
  std::optional<append_refusal> admit(const std::string& client, bool with_key,
                                      limit_clock::time_point now = limit_clock::now());
  // `new_key`: the append stored its key (not replayed, not failed).
  void settle(const std::string& client, bool new_key);

 private:
  rate_limiter rate_;
  key_quota keys_;
  const double per_second_;
  const size_t max_new_keys_;
  const std::chrono::milliseconds window_;
};

// Open connections, in total and per client address (the listener admits,
// the sessions hold the ticket until the socket is closed).
class connection_limits {
 public:
  // One counted connection; the count drops when it is destroyed.
  class ticket {
   public:
    ticket(connection_limits& owner, std::string address)
        : owner_(owner), address_(std::move(address)) {}
    ~ticket() { owner_.release(address_); }
    ticket(const ticket&) = delete;
    ticket& operator=(const ticket&) = delete;
    const std::string& address() const { return address_; }

   private:
    connection_limits& owner_;
    std::string address_;
  };
  using ticket_ptr = std::shared_ptr<const ticket>;

  // max_per_address 0: no per-address limit.
  connection_limits(size_t max_total, size_t max_per_address);
  // A ticket for a new connection from `address`, or nullptr when a limit is
  // reached (`why` then says which). REQUIRES: this outlives every ticket.
  ticket_ptr admit(const std::string& address, std::string& why);
  size_t open() const;

 private:
  void release(const std::string& address);

  const size_t max_total_;
  const size_t max_per_address_;
  mutable std::mutex mu_;
  size_t total_ = 0;
  std::unordered_map<std::string, size_t> per_address_;
};

// max_connections kept below the process's file descriptor limit (with
// room for the data files and the listener).
size_t effective_max_connections(size_t configured);

// The bytes of large HTTP responses being written, over all connections: a
// client that stops reading pins its response until the write completes or
// the connection times out, and this budget caps what such clients pin
// between them (docs/protocol.md, "Limits"). A response of at most
// small_bytes is neither counted nor refused (connection limits bound
// those). A larger one is admitted when it fits in what remains, or when
// nothing else is counted: one response larger than the whole budget still
// goes out. One client address holds at most 1/address_share of the budget
// (or one response, when it holds nothing), so that a few connections from
// one address cannot hold all of it. Thread-safe.
class response_budget {
 public:
  static constexpr size_t small_bytes = 64 * 1024;
  static constexpr size_t address_share = 8;

  // Bytes held against the budget; returned when destroyed or reset.
  class charge {
   public:
    charge() = default;
    charge(charge&& other) noexcept { *this = std::move(other); }
    charge& operator=(charge&& other) noexcept;
    ~charge() { reset(); }
    void reset();
    size_t bytes() const { return bytes_; }

   private:
    friend class response_budget;
    charge(response_budget* owner, std::string address, size_t bytes)
        : owner_(owner), address_(std::move(address)), bytes_(bytes) {}
    response_budget* owner_ = nullptr;
    std::string address_;
    size_t bytes_ = 0;
  };

  enum class verdict { admitted, over_total, over_address };

  // max_bytes 0: no budget (nothing is refused; large responses are still
  // counted). REQUIRES: this outlives every charge.
  explicit response_budget(size_t max_bytes) : max_bytes_(max_bytes) {}
  // Charges a response body of `bytes` written to a client at `address`;
  // unless admitted, `out` is left empty. A small body is admitted without a
  // charge.
  verdict admit(size_t bytes, const std::string& address, charge& out);
  size_t used() const { return used_.load(std::memory_order_relaxed); }

 private:
  void release(const std::string& address, size_t bytes);

  const size_t max_bytes_;
  std::mutex mu_;  // guards by_address_ and the updates of used_
  std::atomic<size_t> used_{0};  // read without the lock (metrics)
  std::unordered_map<std::string, size_t> by_address_;
};

}  // namespace derive::web
