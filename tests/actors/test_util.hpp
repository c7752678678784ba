#pragma once
// Helpers shared by the actors/ tests: temporary data directories, blocking
// wrappers around the runtime's callback API (tests run on their own thread,
// so blocking there is fine), and an in-memory reference implementation of
// view semantics used to recompute views from scratch.

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <derive/runtime.hpp>
#include <derive/view.hpp>

namespace derive::testing {

// A fresh directory under /tmp, removed with everything in it.
class temp_dir {
 public:
  temp_dir() {
    std::string pattern = "/tmp/derive-actors-XXXXXX";
    path_ = ::mkdtemp(pattern.data());
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline event_input make_event(std::string type, std::string key, json data = nullptr) {
  event_input e;
  e.type = std::move(type);
  e.key = std::move(key);
  e.data = data.dump();
  return e;
}

inline append_request make_request(std::vector<event_input> events, std::string key = "") {
  append_request r;
  r.events = std::move(events);
  r.idempotency_key = std::move(key);
  return r;
}

// Appends and waits for the outcome.
inline result<append_outcome> append_sync(runtime& rt, append_request request) {
  std::promise<result<append_outcome>> done;
  auto future = done.get_future();
  rt.append(std::move(request), [&done](result<append_outcome> r) { done.set_value(std::move(r)); });
  return future.get();
}

inline result<append_outcome> append_one(runtime& rt, std::string type, std::string key,
                                         json data = nullptr) {
  return append_sync(rt, make_request({make_event(std::move(type), std::move(key), std::move(data))}));
}

// wait_for, blocking.
inline status wait_sync(runtime& rt, const std::string& view, uint64_t offset,
                        std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  std::promise<status> done;
  auto future = done.get_future();
  rt.wait_for(view, offset, timeout, [&done](status s) { done.set_value(std::move(s)); });
  return future.get();
}

using state_map = std::map<std::string, json>;

// Every key and value of a snapshot.
inline state_map read_all(const view_snapshot& snap) {
  state_map out;
  std::string start;
  for (;;) {
    auto page = snap.range("", start, 1000);
    EXPECT_TRUE(page.has_value());
    if (!page) return out;
    for (auto& kv : page->items) out[kv.key] = json::parse(kv.value);
    if (!page->next) return out;
    start = *page->next;
  }
}

struct view_state {
  uint64_t offset = 0;
  state_map state;
};

inline view_state read_view(runtime& rt, const std::string& view) {
  auto snap = rt.snapshot(view);
  EXPECT_TRUE(snap.has_value());
  if (!snap) return {};
  return {snap->offset(), read_all(*snap)};
}

// Every record of the log, redacted ones included, in offset order.
inline std::vector<event> whole_log(runtime& rt) {
  std::vector<event> out;
  for (;;) {
    auto page = rt.read_log(out.size() + 1, 1000);
    if (!page || page->empty()) return out;
    out.insert(out.end(), page->begin(), page->end());
  }
}

// The reference semantics of a view, in memory: each input's net writes become
// the changes of its offset; writing a key's current value changes nothing.
class memory_view final : public view_txn {
 public:
  std::optional<json> get(std::string_view key) override {
    if (auto it = input_.find(std::string(key)); it != input_.end()) return it->second;
    if (auto it = state_.find(std::string(key)); it != state_.end()) return it->second;
    return std::nullopt;
  }
  void put(std::string_view key, json value) override { input_[std::string(key)] = std::move(value); }
  void erase(std::string_view key) override { input_[std::string(key)] = std::nullopt; }
  // Private state is never published: it is kept apart and reported by nothing.
  std::optional<json> get_private(std::string_view key) override {
    if (auto it = private_input_.find(std::string(key)); it != private_input_.end())
      return it->second;
    if (auto it = private_.find(std::string(key)); it != private_.end()) return it->second;
    return std::nullopt;
  }
  void put_private(std::string_view key, json value) override {
    private_input_[std::string(key)] = std::move(value);
  }
  void erase_private(std::string_view key) override {
    private_input_[std::string(key)] = std::nullopt;
  }
  page range(std::string_view prefix, std::string_view start, size_t limit) override {
    return merged(state_, input_, prefix, start, limit);
  }
  uint64_t count(std::string_view prefix) override {
    return merged(state_, input_, prefix, {}, SIZE_MAX).items.size();
  }
  page range_private(std::string_view prefix, std::string_view start, size_t limit) override {
    return merged(private_, private_input_, prefix, start, limit);
  }
  uint64_t count_private(std::string_view prefix) override {
    return merged(private_, private_input_, prefix, {}, SIZE_MAX).items.size();
  }

  // Applies one input; returns the upstream_changes it produced at `offset`.
  template <class F>
  std::vector<upstream_change> apply(uint64_t offset, F&& f) {
    input_.clear();
    private_input_.clear();
    f(static_cast<view_txn&>(*this));
    std::vector<upstream_change> out;
    for (auto& [key, value] : input_) {
      auto it = state_.find(key);
      std::optional<json> old;
      if (it != state_.end()) old = it->second;
      if (old == value) continue;
      out.push_back({offset, key, value});
      if (value) state_[key] = *value;
      else state_.erase(key);
    }
    for (auto& [key, value] : private_input_) {
      if (value) private_[key] = *value;
      else private_.erase(key);
    }
    input_.clear();
    private_input_.clear();
    return out;
  }

  const state_map& state() const { return state_; }

 private:
  template <class State, class Input>
  static page merged(const State& state, const Input& input, std::string_view prefix,
                     std::string_view start, size_t limit) {
    std::map<std::string, json> all;
    for (const auto& [k, v] : state) all[k] = v;
    for (const auto& [k, v] : input) {
      if (v) all[k] = *v;
      else all.erase(k);
    }
    page out;
    std::string lo(std::max(prefix, start));
    for (auto it = all.lower_bound(lo);
         it != all.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      if (out.items.size() == limit) {
        out.next = it->first;
        break;
      }
      out.items.push_back({it->first, it->second});
    }
    return out;
  }

  std::map<std::string, std::optional<json>> input_;
  state_map state_;
  std::map<std::string, std::optional<json>> private_input_;
  state_map private_;
};

}  // namespace derive::testing
