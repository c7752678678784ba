#pragma once
// Views and a fixture shared by the runtime tests.

#include <condition_variable>
#include <memory>
#include <mutex>

#include "tests/actors/test_util.hpp"

namespace derive::testing {

// Counts events per type, and all events under "_total".
inline view_def counts_view(uint32_t version = 1) {
  return view_def("counts", version).from_log().apply([](const event& e, view_txn& tx) {
    tx.put(e.type, tx.get(e.type).value_or(0).get<int64_t>() + 1);
    tx.put("_total", tx.get("_total").value_or(0).get<int64_t>() + 1);
  });
}

// doc.put stores data under the event's key, doc.delete erases it; other
// types change nothing.
inline view_def docs_view() {
  return view_def("docs").from_log().apply([](const event& e, view_txn& tx) {
    if (e.type == "doc.put") tx.put(e.key, json::parse(e.data));
    else if (e.type == "doc.delete") tx.erase(e.key);
  });
}

// Derived from docs: for each document, its "tag" field; per tag, how many
// live documents carry it ("tag:<t>"), and per document its tag ("doc:<k>").
inline view_def tags_view() {
  return view_def("tags").from_view("docs").apply_change(
      [](const upstream_change& c, view_txn& tx) {
        std::string doc_key = "doc:" + c.key;
        if (auto old = tx.get(doc_key)) {
          std::string tag_key = "tag:" + old->get<std::string>();
          auto n = tx.get(tag_key).value_or(0).get<int64_t>() - 1;
          if (n == 0) tx.erase(tag_key);
          else tx.put(tag_key, n);
          tx.erase(doc_key);
        }
        if (c.value && c.value->is_object() && c.value->contains("tag")) {
          auto tag = (*c.value)["tag"].get<std::string>();
          tx.put(doc_key, tag);
          tx.put("tag:" + tag, tx.get("tag:" + tag).value_or(0).get<int64_t>() + 1);
        }
      });
}

// Like tags, but keeps each document's tag in private state: the view shows
// only "tag:<t>" -> the number of live documents with that tag; the private
// key "doc:<k>" holds document k's tag. Query "tag_of?doc=<k>" reads it.
inline view_def live_tags_view(uint32_t version = 1) {
  return view_def("live_tags", version)
      .from_view("docs")
      .apply_change([](const upstream_change& c, view_txn& tx) {
        std::string doc_key = "doc:" + c.key;
        if (auto old = tx.get_private(doc_key)) {
          std::string tag_key = "tag:" + old->get<std::string>();
          auto n = tx.get(tag_key).value_or(0).get<int64_t>() - 1;
          if (n == 0) tx.erase(tag_key);
          else tx.put(tag_key, n);
          tx.erase_private(doc_key);
        }
        if (c.value && c.value->is_object() && c.value->contains("tag")) {
          auto tag = (*c.value)["tag"].get<std::string>();
          tx.put_private(doc_key, tag);
          tx.put("tag:" + tag, tx.get("tag:" + tag).value_or(0).get<int64_t>() + 1);
        }
      })
      .query("tag_of", [](const view_snapshot& s, const query_params& p) -> result<json> {
        auto v = s.get_private("doc:" + p.at("doc"));
        if (!v) return v.error();
        return json{{"tag", *v ? json::parse(**v) : json(nullptr)}};
      });
}

// Records what a subscription receives.
class recording_sink : public change_sink {
 public:
  void on_changes(uint64_t, std::vector<change_ptr> items) override {
    std::lock_guard<std::mutex> lock(mu_);
    batches_.push_back(items);
    for (auto& item : items) items_.push_back(item);
    cv_.notify_all();
  }
  void on_lost(uint64_t) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++lost_;
    cv_.notify_all();
  }
  // Waits until at least `n` items arrived (or 10 s).
  std::vector<change_ptr> wait_items(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return items_.size() >= n; });
    return items_;
  }
  std::vector<change_ptr> items() {
    std::lock_guard<std::mutex> lock(mu_);
    return items_;
  }
  size_t batches() {
    std::lock_guard<std::mutex> lock(mu_);
    return batches_.size();
  }
  size_t lost() {
    std::lock_guard<std::mutex> lock(mu_);
    return lost_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::vector<change_ptr>> batches_;
  std::vector<change_ptr> items_;
  size_t lost_ = 0;
};

class runtime_fixture : public ::testing::Test {
 protected:
  runtime_options options() const {
    runtime_options o;
    o.data_dir = dir_.path();
    o.storage.mode = durability::relaxed;
    o.storage.map_size = uint64_t{1} << 30;
    return o;
  }
  // Creates (replacing any running one) and starts a runtime with `views`.
  status start(std::vector<view_def> views) { return start_with(options(), std::move(views)); }
  status start_with(runtime_options o, std::vector<view_def> views) {
    rt_.reset();
    rt_ = std::make_unique<runtime>(std::move(o));
    for (auto& v : views) rt_->add_view(std::move(v));
    return rt_->start();
  }
  runtime& rt() { return *rt_; }
  uint64_t append(std::string type, std::string key, json data = nullptr) {
    auto r = append_one(*rt_, std::move(type), std::move(key), std::move(data));
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().to_string());
    return r ? r->first_offset : 0;
  }
  std::optional<json> get(const std::string& view, const std::string& key) {
    auto snap = rt_->snapshot(view);
    if (!snap) return std::nullopt;
    auto v = snap->get(key);
    if (!v || !*v) return std::nullopt;
    return json::parse(**v);
  }
  // `key` of the private state of `view`.
  std::optional<json> get_private(const std::string& view, const std::string& key) {
    auto snap = rt_->snapshot(view);
    if (!snap) return std::nullopt;
    auto v = snap->get_private(key);
    if (!v || !*v) return std::nullopt;
    return json::parse(**v);
  }
  // Waits until `view` reached the head, then reads `key`.
  std::optional<json> get_at_head(const std::string& view, const std::string& key) {
    EXPECT_TRUE(wait_sync(*rt_, view, rt_->head()));
    return get(view, key);
  }

  temp_dir dir_;
  std::unique_ptr<runtime> rt_;
};

}  // namespace derive::testing
