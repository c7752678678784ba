// Specification of the audit's core parts: the digest a view store keeps of
// its state (core/view_digest.hpp), the comparison of two states
// (core/state_compare.hpp) and the log scrub (core/log_scrub.hpp).

#include <gtest/gtest.h>
#include <lmdb.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/append_check.hpp"
#include "core/changelog_codec.hpp"
#include "core/lmdb_util.hpp"
#include "core/log.hpp"
#include "core/log_scrub.hpp"
#include "core/state_compare.hpp"
#include "core/view_store.hpp"

namespace derive {
namespace {

key_change put(std::string key, std::string value) { return {std::move(key), std::move(value)}; }
key_change del(std::string key) { return {std::move(key), std::nullopt}; }

class digest_test : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/derive-digest-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    open_env();
  }
  void TearDown() override {
    stores_.clear();
    log_.reset();
    env_.reset();
    std::filesystem::remove_all(dir_);
  }
  void open_env() {
    environment_options options;
    options.map_size = uint64_t{1} << 28;
    options.mode = durability::relaxed;
    auto env = environment::open(dir_, options);
    ASSERT_TRUE(env) << env.error().to_string();
    env_ = std::move(*env);
  }
  view_store& open_store(const std::string& name) {
    auto store = view_store::open(*env_, name, 1);
    EXPECT_TRUE(store) << store.error().to_string();
    stores_.push_back(std::move(*store));
    return *stores_.back();
  }
  void commit(view_store& store, std::vector<key_change> changes) {
    uint64_t offset = store.offset() + 1;
    ASSERT_TRUE(store.commit({{offset, std::move(changes)}}, offset));
  }
  // Writes `value` (nullopt: deletes) under a short state key directly in
  // LMDB, underneath the store: its digest does not know.
  void write_underneath(const std::string& view, const std::string& key,
                        std::optional<std::string> value) {
    auto dbi = env_->database("view/" + view + "/1/state");
    ASSERT_TRUE(dbi);
    txn_guard txn;
    ASSERT_TRUE(env_->begin_write(txn, "a test write"));
    std::string stored = "k" + key;
    std::string bytes = value.value_or("");  // outlives mdb_put
    MDB_val k = to_val(stored), v = to_val(bytes);
    int rc = value ? mdb_put(txn.get(), *dbi, &k, &v, 0) : mdb_del(txn.get(), *dbi, &k, nullptr);
    ASSERT_EQ(rc, MDB_SUCCESS);
    ASSERT_TRUE(env_->commit(txn));
  }
  state_comparison compare(const view_store& actual, const view_store& expected) {
    auto a = actual.snapshot();
    auto e = expected.snapshot();
    EXPECT_TRUE(a && e);
    auto c = compare_states(*a, *e, 10);
    EXPECT_TRUE(c) << c.error().to_string();
    return c ? *c : state_comparison{};
  }
  view_digest walked(const view_store& store) { return compare(store, store).actual_walked; }

  std::string dir_;
  std::unique_ptr<environment> env_;
  std::unique_ptr<event_log> log_;
  std::vector<std::unique_ptr<view_store>> stores_;
};

TEST_F(digest_test, an_empty_state_has_the_zero_digest) {
  EXPECT_EQ(open_store("a").digest(), view_digest{});
  EXPECT_EQ(view_digest{}.hex(), std::string(64, '0'));
}

// The stored format: SHA-256 of varint(key length) | key | value, as a
// little-endian number (hex: most significant first). The expected value was
// computed apart from this code: Python's
// hashlib.sha256(bytes([5]) + b'key-1' + b'{"a":1}').digest()[::-1].hex().
TEST(view_digest, an_entry_hash_is_sha256_of_its_length_prefixed_key_and_value) {
  view_digest d;
  d.add("key-1", "{\"a\":1}");
  EXPECT_EQ(d.hex(), "da9ea1e2d74e4ff9fdc25e3468620e3590a2943f1af327e0efe0eadf988aa013");
  d.remove("key-1", "{\"a\":1}");
  EXPECT_EQ(d, view_digest{});
}

TEST_F(digest_test, equal_states_have_equal_digests_whatever_the_order_of_writes) {
  auto& a = open_store("a");
  auto& b = open_store("b");
  commit(a, {put("x", "1"), put("y", "2")});
  commit(a, {put("z", "3")});
  commit(b, {put("z", "0"), put("gone", "4")});
  commit(b, {put("y", "2"), del("gone")});
  commit(b, {put("x", "1"), put("z", "3")});
  EXPECT_EQ(a.digest(), b.digest());
  EXPECT_NE(a.digest(), view_digest{});
  commit(b, {put("z", "4")});
  EXPECT_NE(a.digest(), b.digest());
}

TEST_F(digest_test, the_incremental_digest_is_the_digest_of_the_state_and_is_stored_with_it) {
  auto& a = open_store("a");
  const std::string long_key(2000, 'l');  // stored in a bucket
  commit(a, {put("p", "1"), put(long_key, "2"), put(long_key + "b", "3"), put("q", "[]")});
  commit(a, {del(long_key), put("p", "\"s\""), del("missing"), put("q", "[]")});
  EXPECT_EQ(a.digest(), walked(a));
  auto snap = a.snapshot();
  ASSERT_TRUE(snap);
  auto stored = stored_digest(*snap);
  ASSERT_TRUE(stored && *stored);
  EXPECT_EQ(**stored, a.digest());
}

// A batch commit writes each key's last change only, in key order; the
// result must be the one of committing its offsets one by one, in order.
TEST_F(digest_test, a_batch_commit_equals_its_offsets_committed_one_by_one) {
  auto& batched = open_store("batched");
  auto& each = open_store("each");
  const std::string long_key(600, 'l');  // stored in buckets
  std::vector<std::string> keys;
  for (int i = 0; i < 40; ++i) keys.push_back("k" + std::to_string((i * 7919) % 97));
  for (int i = 0; i < 5; ++i) keys.push_back(long_key + std::to_string(i));
  // The empty key, and keys at and one past the longest stored directly
  // (D = 509 with LMDB's 511-byte keys; docs/storage.md, "State keys").
  for (size_t n : {size_t{0}, size_t{509}, size_t{510}}) keys.push_back(std::string(n, 'd'));
  uint32_t seed = 12345;
  auto next = [&] { return seed = seed * 1103515245u + 12345u, (seed >> 8) % 1000; };
  uint64_t offset = 0;
  for (int round = 0; round < 6; ++round) {
    std::vector<offset_changes> batch;  // offsets rewriting keys in any order
    for (int o = 0; o < 50; ++o) {
      ++offset;
      std::vector<key_change> changes;
      for (int c = 0, n = 1 + next() % 4; c < n; ++c) {
        const std::string& key = keys[next() % keys.size()];
        if (next() % 4 == 0) changes.push_back(del(key));
        else changes.push_back(put(key, std::to_string(next() % 5)));  // often a no-op
      }
      ASSERT_TRUE(each.commit({{offset, changes}}, offset));
      batch.push_back({offset, std::move(changes)});
    }
    ASSERT_TRUE(batched.commit(batch, offset));
    EXPECT_EQ(batched.digest(), each.digest()) << "round " << round;
    EXPECT_EQ(batched.digest(), walked(batched)) << "round " << round;
    auto c = compare(batched, each);
    EXPECT_TRUE(c.differences.empty() && !c.more) << "round " << round;
  }
  auto a = batched.changes_since(0, 100000);
  auto b = each.changes_since(0, 100000);
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a->entries.size(), b->entries.size());
  for (size_t i = 0; i < a->entries.size(); ++i) {
    EXPECT_EQ(a->entries[i].offset, b->entries[i].offset);
    EXPECT_EQ(encode_changelog_entry(a->entries[i].changes),
              encode_changelog_entry(b->entries[i].changes));
  }
}

TEST_F(digest_test, a_key_value_split_differently_gives_another_digest) {
  auto& a = open_store("a");
  auto& b = open_store("b");
  commit(a, {put("ab", "1")});
  commit(b, {put("a", "b1")});
  EXPECT_NE(a.digest(), b.digest());
}

TEST_F(digest_test, the_digest_survives_reopening_and_reset_clears_it) {
  view_digest before;
  {
    auto& a = open_store("a");
    commit(a, {put("x", "1")});
    before = a.digest();
  }
  stores_.clear();
  env_.reset();
  open_env();
  auto& a = open_store("a");
  EXPECT_EQ(a.digest(), before);
  ASSERT_TRUE(a.reset());
  EXPECT_EQ(a.digest(), view_digest{});
}

TEST_F(digest_test, a_store_without_a_digest_record_computes_it_once_on_open) {
  view_digest before;
  {
    auto& a = open_store("a");
    commit(a, {put("x", "1"), put("y", "2")});
    before = a.digest();
    stores_.clear();
  }
  {  // as written before digests existed
    auto dbi = env_->database("view/a/1/meta");
    ASSERT_TRUE(dbi);
    txn_guard txn;
    ASSERT_TRUE(env_->begin_write(txn, "a test write"));
    MDB_val k = to_val(meta_digest);
    ASSERT_EQ(mdb_del(txn.get(), *dbi, &k, nullptr), MDB_SUCCESS);
    ASSERT_TRUE(env_->commit(txn));
  }
  auto& a = open_store("a");
  EXPECT_EQ(a.digest(), before);
  {
    auto snap = a.snapshot();
    ASSERT_TRUE(snap);
    EXPECT_FALSE(*stored_digest(*snap));  // not recorded until the next commit
  }
  commit(a, {put("z", "3")});
  auto snap = a.snapshot();
  ASSERT_TRUE(snap);
  EXPECT_EQ(*stored_digest(*snap), a.digest());
  EXPECT_EQ(a.digest(), walked(a));
}

TEST_F(digest_test, comparing_finds_the_keys_changed_underneath_in_key_order) {
  auto& live = open_store("live");
  auto& copy = open_store("copy");
  for (auto* s : {&live, &copy}) commit(*s, {put("a", "1"), put("b", "2"), put("c", "3")});
  EXPECT_TRUE(compare(live, copy).differences.empty());
  write_underneath("live", "b", "\"corrupt\"");
  write_underneath("live", "d", "4");
  write_underneath("live", "a", std::nullopt);
  auto c = compare(live, copy);
  ASSERT_EQ(c.differences.size(), 3u);
  EXPECT_EQ(c.differences[0].key, "a");
  EXPECT_FALSE(c.differences[0].actual);
  EXPECT_EQ(c.differences[0].expected, "1");
  EXPECT_EQ(c.differences[1].key, "b");
  EXPECT_EQ(c.differences[1].actual, "\"corrupt\"");
  EXPECT_EQ(c.differences[1].expected, "2");
  EXPECT_EQ(c.differences[2].key, "d");
  EXPECT_FALSE(c.differences[2].expected);
  // The stored digest does not know; the walked one does.
  EXPECT_EQ(live.digest(), copy.digest());
  EXPECT_NE(c.actual_walked, copy.digest());
}

TEST_F(digest_test, comparing_collects_at_most_the_cap) {
  auto& live = open_store("live");
  auto& copy = open_store("copy");
  std::vector<key_change> changes;
  for (int i = 0; i < 20; ++i) changes.push_back(put("k" + std::to_string(100 + i), "1"));
  commit(live, changes);
  auto c = compare(live, copy);
  EXPECT_EQ(c.differences.size(), 10u);
  EXPECT_TRUE(c.more);
  EXPECT_EQ(c.differences.front().key, "k100");
}

class scrub_test : public digest_test {
 protected:
  void SetUp() override {
    digest_test::SetUp();
    auto log = event_log::open(*env_);
    ASSERT_TRUE(log) << log.error().to_string();
    log_ = std::move(*log);
    for (int i = 0; i < 10; ++i) {
      std::vector<event_input> events{{"t", "k" + std::to_string(i), "", "{\"n\":1}"}};
      ASSERT_TRUE(log_->append(checked_append_access::make(std::move(events), "", "")));
    }
  }
  // Rewrites the record at `offset` with `edit` applied (nullptr: deletes it).
  void edit_record(uint64_t offset, void (*edit)(std::string&)) {
    auto dbi = env_->database("log", MDB_INTEGERKEY);
    ASSERT_TRUE(dbi);
    txn_guard txn;
    ASSERT_TRUE(env_->begin_write(txn, "a test write"));
    MDB_val k = uint64_val(offset), v;
    ASSERT_EQ(mdb_get(txn.get(), *dbi, &k, &v), MDB_SUCCESS);
    std::string record(to_view(v));
    if (edit) {
      edit(record);
      v = to_val(record);
      ASSERT_EQ(mdb_put(txn.get(), *dbi, &k, &v, 0), MDB_SUCCESS);
    } else {
      ASSERT_EQ(mdb_del(txn.get(), *dbi, &k, nullptr), MDB_SUCCESS);
    }
    ASSERT_TRUE(env_->commit(txn));
  }
  scrub_report scrub(size_t chunk = 3) {
    scrub_options options;
    options.chunk = chunk;
    options.progress = [this](uint64_t checked, uint64_t head) {
      progress_.push_back(checked);
      EXPECT_EQ(head, 10u);
      return true;
    };
    auto r = scrub_log(*log_, options);
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? *r : scrub_report{};
  }
  std::vector<uint64_t> progress_;
};

TEST_F(scrub_test, a_sound_log_passes_with_progress_per_chunk) {
  auto r = scrub();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.checked, 10u);
  EXPECT_EQ(r.head, 10u);
  EXPECT_EQ(progress_, (std::vector<uint64_t>{3, 6, 9, 10}));
}

TEST_F(scrub_test, a_flipped_byte_is_found_at_its_offset) {
  edit_record(7, [](std::string& r) { r[r.size() / 2] ^= 0x01; });
  auto r = scrub();
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_EQ(r.problems[0].offset, 7u);
  EXPECT_NE(r.problems[0].error.find("7"), std::string::npos) << r.problems[0].error;
  EXPECT_EQ(r.checked, 10u);
}

TEST_F(scrub_test, a_missing_record_is_a_gap) {
  edit_record(4, nullptr);
  edit_record(10, nullptr);
  auto r = scrub(100);
  ASSERT_EQ(r.problems.size(), 2u);
  EXPECT_EQ(r.problems[0].offset, 4u);
  EXPECT_NE(r.problems[0].error.find("missing"), std::string::npos);
  EXPECT_EQ(r.problems[1].offset, 10u);
}

TEST_F(scrub_test, progress_can_stop_it) {
  scrub_options options;
  options.chunk = 2;
  options.progress = [](uint64_t, uint64_t) { return false; };
  auto r = scrub_log(*log_, options);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::unavailable);
}

}  // namespace
}  // namespace derive
