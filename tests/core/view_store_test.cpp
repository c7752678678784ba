// Specification of core/view_store.hpp: state, private state, changelog and
// offset of one view version, committed together.

#include "core/view_store.hpp"

#include <chrono>
#include <functional>

#include "core/changelog_codec.hpp"
#include "core/lmdb_util.hpp"

#include <gtest/gtest.h>
#include <lmdb.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace derive {
namespace {

using state_map = std::map<std::string, std::string>;

key_change put(std::string key, std::string value) { return {std::move(key), std::move(value)}; }
key_change del(std::string key) { return {std::move(key), std::nullopt}; }
offset_changes at(uint64_t offset, std::vector<key_change> changes) {
  return {offset, std::move(changes)};
}

// "3: a=1 b=<deleted>", so that changelog comparisons print readably.
std::string describe(const offset_changes& entry) {
  std::string out = std::to_string(entry.offset) + ":";
  for (const auto& c : entry.changes) out += " " + c.key + "=" + c.value.value_or("<deleted>");
  return out;
}

std::vector<std::string> describe(const std::vector<offset_changes>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(describe(e));
  return out;
}

std::string make_temp_dir() {
  std::string path = "/tmp/derive-view-store-test-XXXXXX";
  if (mkdtemp(path.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
  return path;
}

class view_store_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir();
    open_env();
  }
  void TearDown() override {
    stores_.clear();
    env_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Unit tests check semantics, not syncing: relaxed durability keeps them fast.
  virtual environment_options env_options() {
    environment_options options;
    options.map_size = uint64_t{1} << 30;
    options.mode = durability::relaxed;
    return options;
  }

  void open_env() {
    auto env = environment::open(dir_, env_options());
    ASSERT_TRUE(env) << env.error().to_string();
    env_ = std::move(*env);
  }

  view_store& open_store(const std::string& name = "docs", uint32_t version = 1,
                         view_store_options options = {}) {
    auto store = view_store::open(*env_, name, version, options);
    EXPECT_TRUE(store) << store.error().to_string();
    stores_.push_back(std::move(*store));
    return *stores_.back();
  }

  void close_stores() { stores_.clear(); }

  // Closes every store and the environment, then opens the environment again.
  void reopen_env() {
    close_stores();
    env_.reset();
    open_env();
  }

  static state_map state_of(const view_snapshot& snap) {
    state_map state;
    auto page = snap.range("", "", 1'000'000);
    EXPECT_TRUE(page) << page.error().to_string();
    for (auto& item : page->items) state.emplace(item.key, item.value);
    return state;
  }

  static state_map state_of(const view_store& store) {
    auto snap = store.snapshot();
    EXPECT_TRUE(snap) << snap.error().to_string();
    return state_of(*snap);
  }

  // The value of `key` in the private state of the store's latest commit.
  static std::optional<std::string> private_of(const view_store& store, std::string_view key) {
    auto snap = store.snapshot();
    EXPECT_TRUE(snap) << snap.error().to_string();
    auto value = snap->get_private(key);
    EXPECT_TRUE(value) << value.error().to_string();
    return value ? *value : std::nullopt;
  }

  static std::vector<std::string> changelog_of(const view_store& store, uint64_t from = 0) {
    auto page = store.changes_since(from, 1'000'000);
    EXPECT_TRUE(page) << page.error().to_string();
    EXPECT_TRUE(page->served);
    return describe(page->entries);
  }

  static changelog_page page_since(const view_store& store, uint64_t from, size_t limit = 1000) {
    auto page = store.changes_since(from, limit);
    EXPECT_TRUE(page) << page.error().to_string();
    return page ? *page : changelog_page{};
  }

  static std::vector<std::string> keys_of(const view_snapshot::page& page) {
    std::vector<std::string> keys;
    for (const auto& item : page.items) keys.push_back(item.key);
    return keys;
  }

  // Commits one put of `key` at each offset from..to, one offset per commit.
  static void commit_each(view_store& store, uint64_t from, uint64_t to) {
    for (uint64_t o = from; o <= to; ++o)
      ASSERT_TRUE(store.commit({at(o, {put("k", std::to_string(o))})}, o));
  }

  std::string dir_;
  std::unique_ptr<environment> env_;
  std::vector<std::unique_ptr<view_store>> stores_;
};

// --- commit -----------------------------------------------------------------

TEST_F(view_store_test, a_new_store_is_empty_at_offset_zero) {
  auto& store = open_store();
  EXPECT_EQ(store.offset(), 0u);
  EXPECT_TRUE(state_of(store).empty());
  EXPECT_TRUE(changelog_of(store).empty());
  EXPECT_FALSE(store.failure());
}

TEST_F(view_store_test, commit_applies_puts_and_deletes_and_sets_the_offset) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({at(1, {put("a", "1"), put("b", "2")})}, 1));
  ASSERT_TRUE(store.commit({at(2, {del("a"), put("c", "3")}), at(4, {put("b", "4")})}, 5));
  EXPECT_EQ(store.offset(), 5u);
  EXPECT_EQ(state_of(store), (state_map{{"b", "4"}, {"c", "3"}}));
}

TEST_F(view_store_test, deleting_a_missing_key_is_a_change_that_removes_nothing) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({at(1, {del("never")})}, 1));
  EXPECT_TRUE(state_of(store).empty());
  EXPECT_EQ(changelog_of(store), (std::vector<std::string>{"1: never=<deleted>"}));
}

TEST_F(view_store_test, commit_writes_one_changelog_entry_per_non_empty_offset) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({at(1, {put("a", "1")}), at(2, {}), at(3, {put("b", "2"), del("a")})}, 4));
  EXPECT_EQ(changelog_of(store), (std::vector<std::string>{"1: a=1", "3: b=2 a=<deleted>"}));
}

TEST_F(view_store_test, a_key_changed_twice_at_one_offset_keeps_its_last_change) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({at(1, {put("a", "1"), put("b", "2"), del("a")})}, 1));
  EXPECT_EQ(state_of(store), (state_map{{"b", "2"}}));
  EXPECT_EQ(changelog_of(store), (std::vector<std::string>{"1: b=2 a=<deleted>"}));
}

// Blind changes (view_store::commit with `blind`): a change whose key's
// committed value was not read is kept only if it changes that value.
TEST_F(view_store_test, a_blind_change_that_changes_nothing_is_dropped) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({at(1, {put("a", "1"), put("b", "2")})}, 1));
  const view_digest before = store.digest();
  std::vector<offset_changes> batch = {
      at(2, {put("a", "1"), put("b", "3")}),  // the same value; another value
      at(3, {del("never")}),                  // an erase of a missing key
      at(4, {del("a"), put("c", "4")}),       // a's second change: not blind
      at(5, {put("c", "5")})};                // c's second change
  ASSERT_TRUE(store.commit(batch, {{0, 0}, {0, 1}, {1, 0}, {2, 1}}, 5));
  EXPECT_EQ(describe(batch), (std::vector<std::string>{"2: b=3", "4: a=<deleted> c=4", "5: c=5"}));
  EXPECT_EQ(changelog_of(store),
            (std::vector<std::string>{"1: a=1 b=2", "2: b=3", "4: a=<deleted> c=4", "5: c=5"}));
  EXPECT_EQ(state_of(store), (state_map{{"b", "3"}, {"c", "5"}}));
  // The digest of the state, as a store given only the real changes has it.
  auto& other = open_store("other");
  ASSERT_TRUE(other.commit({at(1, {put("a", "1"), put("b", "2")})}, 1));
  EXPECT_EQ(other.digest(), before);
  ASSERT_TRUE(other.commit({at(2, {put("b", "3")}), at(4, {del("a"), put("c", "4")}),
                            at(5, {put("c", "5")})},
                           5));
  EXPECT_EQ(store.digest(), other.digest());
}

TEST_F(view_store_test, a_blind_change_back_to_the_committed_value_is_kept) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({at(1, {put("a", "1")})}, 1));
  // Blind a=2, then a=1 again: both change the value at their offset.
  std::vector<offset_changes> batch = {at(2, {put("a", "2")}), at(3, {put("a", "1")})};
  ASSERT_TRUE(store.commit(batch, {{0, 0}}, 3));
  EXPECT_EQ(describe(batch), (std::vector<std::string>{"2: a=2", "3: a=1"}));
  EXPECT_EQ(state_of(store), (state_map{{"a", "1"}}));
}

// A blind change after the first of its key in the batch is compared with
// the key's previous change (batch_txn records every write blind until the
// batch first reads the state).
TEST_F(view_store_test, a_blind_change_equal_to_the_previous_change_is_dropped) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({at(1, {put("a", "1")})}, 1));
  std::vector<offset_changes> batch = {
      at(2, {put("a", "2"), del("b")}),  // a changes; b was missing
      at(3, {put("a", "2"), del("b")}),  // the same again: nothing
      at(4, {put("a", "1"), put("b", "5")}),
      at(5, {put("a", "1"), del("b")})};  // a as before; b erased
  ASSERT_TRUE(store.commit(batch, {{0, 0}, {0, 1}, {1, 0}, {1, 1}, {2, 0}, {2, 1}, {3, 0}, {3, 1}},
                           5));
  EXPECT_EQ(describe(batch), (std::vector<std::string>{"2: a=2", "4: a=1 b=5", "5: b=<deleted>"}));
  EXPECT_EQ(changelog_of(store),
            (std::vector<std::string>{"1: a=1", "2: a=2", "4: a=1 b=5", "5: b=<deleted>"}));
  EXPECT_EQ(state_of(store), (state_map{{"a", "1"}}));
  auto& other = open_store("other");
  ASSERT_TRUE(other.commit({at(1, {put("a", "1")}), at(2, {put("a", "2")}),
                            at(4, {put("a", "1"), put("b", "5")}), at(5, {del("b")})},
                           5));
  EXPECT_EQ(store.digest(), other.digest());
}

TEST_F(view_store_test, commit_refuses_blind_changes_outside_the_batch) {
  auto& store = open_store();
  std::vector<offset_changes> batch = {at(1, {put("a", "1")})};
  EXPECT_EQ(store.commit(batch, {{0, 1}}, 1).code(), errc::invalid_parameter);
  EXPECT_EQ(store.commit(batch, {{1, 0}}, 1).code(), errc::invalid_parameter);
  EXPECT_EQ(store.offset(), 0u);
}

TEST_F(view_store_test, commit_may_advance_the_offset_without_changes) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({}, 7));
  EXPECT_EQ(store.offset(), 7u);
  EXPECT_TRUE(changelog_of(store).empty());
}

TEST_F(view_store_test, commit_at_the_current_offset_changes_nothing) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({at(1, {put("a", "1")})}, 1));
  ASSERT_TRUE(store.commit({}, 1));
  EXPECT_EQ(store.offset(), 1u);
  EXPECT_EQ(state_of(store), (state_map{{"a", "1"}}));
}

TEST_F(view_store_test, commit_refuses_a_new_offset_behind_the_current_one) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({}, 5));
  EXPECT_EQ(store.commit({}, 4).code(), errc::invalid_parameter);
  EXPECT_EQ(store.offset(), 5u);
}

TEST_F(view_store_test, commit_refuses_batch_offsets_not_ascending_within_the_new_range) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({at(3, {put("a", "1")})}, 3));
  const std::vector<std::vector<offset_changes>> invalid_batches = {
      {at(3, {put("x", "1")})},                          // not after the offset
      {at(2, {put("x", "1")})},                          // behind the offset
      {at(11, {put("x", "1")})},                         // beyond the new offset
      {at(5, {put("x", "1")}), at(4, {put("y", "1")})},  // descending
      {at(5, {put("x", "1")}), at(5, {put("y", "1")})},  // one offset twice
  };
  for (const auto& batch : invalid_batches) {
    SCOPED_TRACE(describe(batch).front());
    EXPECT_EQ(store.commit(batch, 10).code(), errc::invalid_parameter);
  }
  EXPECT_EQ(store.offset(), 3u);
  EXPECT_EQ(state_of(store), (state_map{{"a", "1"}}));
  EXPECT_EQ(changelog_of(store), (std::vector<std::string>{"3: a=1"}));
}

TEST_F(view_store_test, commit_refuses_an_empty_value) {
  auto& store = open_store();
  EXPECT_EQ(store.commit({at(1, {put("a", "")})}, 1).code(), errc::invalid_parameter);
  EXPECT_EQ(store.offset(), 0u);
}

TEST_F(view_store_test, commit_refuses_dead_letters_outside_the_new_range) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({}, 3));
  EXPECT_EQ(store.commit({}, 5, {{3, "old"}}).code(), errc::invalid_parameter);
  EXPECT_EQ(store.commit({}, 5, {{6, "future"}}).code(), errc::invalid_parameter);
  auto letters = store.dead_letters();
  ASSERT_TRUE(letters);
  EXPECT_TRUE(letters->empty());
}

TEST_F(view_store_test, commit_is_refused_after_the_environment_failed) {
  auto& store = open_store();
  env_->fail({errc::io_error, "disk gone"});
  EXPECT_EQ(store.commit({at(1, {put("a", "1")})}, 1).code(), errc::io_error);
  EXPECT_EQ(store.set_failure(view_failure{1, "x"}).code(), errc::io_error);
  EXPECT_EQ(store.reset().code(), errc::io_error);
  EXPECT_EQ(store.offset(), 0u);
  EXPECT_TRUE(state_of(store).empty());
}

// --- keys -------------------------------------------------------------------

TEST_F(view_store_test, empty_and_long_keys_are_stored_and_read_in_byte_order) {
  auto& store = open_store();
  const std::string head(600, 'h');
  const std::vector<std::string> keys = {"",           "a",         head,
                                         head + "a", head + "b", head + "b\x01",
                                         head + std::string(400, 'z'), "i", "\xff"};
  std::vector<key_change> changes;
  for (size_t i = 0; i < keys.size(); ++i) changes.push_back(put(keys[i], std::to_string(i)));
  ASSERT_TRUE(store.commit({at(1, changes)}, 1));
  auto snap = store.snapshot();
  ASSERT_TRUE(snap);
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(*snap->get(keys[i]), std::to_string(i));
  EXPECT_EQ(*snap->get(head + "c"), std::nullopt);
  EXPECT_EQ(keys_of(*snap->range("", "", 100)), keys);  // already in byte order
}

TEST_F(view_store_test, keys_around_the_lmdb_key_size_limit_keep_byte_order) {
  auto& store = open_store();
  const std::string m(508, 'm');
  const std::vector<std::string> keys = {m + "m", m + "m" + std::string(1, '\0'), m + "mm",
                                         m + "mmm", m + "n"};  // in byte order
  std::vector<key_change> changes;
  for (auto i = keys.rbegin(); i != keys.rend(); ++i) changes.push_back(put(*i, "1"));
  ASSERT_TRUE(store.commit({at(1, changes)}, 1));
  auto snap = store.snapshot();
  ASSERT_TRUE(snap);
  EXPECT_EQ(keys_of(*snap->range("", "", 100)), keys);
  EXPECT_EQ(keys_of(*snap->range(m + "m", m + "mm", 100)),
            (std::vector<std::string>{m + "mm", m + "mmm"}));
}

TEST_F(view_store_test, long_keys_sharing_a_beginning_are_deleted_one_by_one) {
  auto& store = open_store();
  const std::string head(700, 'h');
  ASSERT_TRUE(store.commit({at(1, {put(head + "1", "1"), put(head + "2", "2")})}, 1));
  ASSERT_TRUE(store.commit({at(2, {del(head + "1")})}, 2));
  EXPECT_EQ(state_of(store), (state_map{{head + "2", "2"}}));
  ASSERT_TRUE(store.commit({at(3, {del(head + "2")})}, 3));
  EXPECT_TRUE(state_of(store).empty());
}

TEST_F(view_store_test, range_pages_through_long_keys_sharing_a_beginning) {
  auto& store = open_store();
  const std::string head(600, 'h');
  ASSERT_TRUE(store.commit(
      {at(1, {put(head + "1", "1"), put(head + "2", "2"), put(head + "3", "3")})}, 1));
  auto snap = store.snapshot();
  ASSERT_TRUE(snap);
  auto page = snap->range(head, head + "2", 1);
  ASSERT_TRUE(page);
  EXPECT_EQ(keys_of(*page), (std::vector<std::string>{head + "2"}));
  EXPECT_EQ(page->next, head + "3");
}

// --- snapshots --------------------------------------------------------------

TEST_F(view_store_test, a_snapshot_keeps_seeing_the_state_and_offset_it_was_taken_at) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({at(1, {put("a", "1")})}, 1));
  auto before = store.snapshot();
  ASSERT_TRUE(before);
  ASSERT_TRUE(store.commit({at(2, {put("a", "2"), put("b", "2")})}, 2));
  EXPECT_EQ(before->offset(), 1u);
  EXPECT_EQ(*before->get("a"), "1");
  EXPECT_EQ(*before->get("b"), std::nullopt);
  EXPECT_EQ(state_of(*before), (state_map{{"a", "1"}}));
  EXPECT_EQ(store.snapshot()->offset(), 2u);
}

TEST_F(view_store_test, a_snapshot_may_move_to_another_thread) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({at(1, {put("a", "1")})}, 1));
  auto snap = store.snapshot();
  ASSERT_TRUE(snap);
  std::optional<std::string> seen;
  std::thread reader([s = std::move(*snap), &seen] { seen = *s.get("a"); });
  reader.join();
  EXPECT_EQ(seen, "1");
}

TEST_F(view_store_test, a_moved_snapshot_still_reads_and_releases_once) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({at(1, {put("a", "1")})}, 1));
  auto first = store.snapshot();
  auto second = store.snapshot();
  ASSERT_TRUE(first && second);
  *second = std::move(*first);
  EXPECT_EQ(*second->get("a"), "1");
  EXPECT_EQ(second->offset(), 1u);
}

// --- private state ----------------------------------------------------------

TEST_F(view_store_test, private_changes_are_committed_with_the_state_and_the_offset) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({at(1, {put("a", "1")})}, 1, {}, {put("p", "10")}));
  auto before = store.snapshot();
  ASSERT_TRUE(before);
  ASSERT_TRUE(store.commit({at(2, {put("a", "2")})}, 2, {}, {put("p", "20"), put("q", "1")}));
  EXPECT_EQ(*before->get_private("p"), "10");  // the snapshot's commit, not the latest
  EXPECT_EQ(*before->get_private("q"), std::nullopt);
  EXPECT_EQ(private_of(store, "p"), "20");
  EXPECT_EQ(private_of(store, "q"), "1");
}

TEST_F(view_store_test, private_state_is_invisible_to_get_range_and_the_changelog) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({at(1, {put("a", "1")})}, 1, {}, {put("p", "1")}));
  ASSERT_TRUE(store.commit({}, 2, {}, {put("q", "2")}));  // only private changes
  auto snap = store.snapshot();
  ASSERT_TRUE(snap);
  EXPECT_EQ(*snap->get("p"), std::nullopt);
  EXPECT_EQ(state_of(*snap), (state_map{{"a", "1"}}));
  EXPECT_EQ(changelog_of(store), (std::vector<std::string>{"1: a=1"}));
  EXPECT_EQ(store.offset(), 2u);
}

TEST_F(view_store_test, private_and_public_keys_are_independent) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({at(1, {put("k", "1")})}, 1, {}, {put("k", "2")}));
  ASSERT_TRUE(store.commit({at(2, {del("k")})}, 2));
  EXPECT_TRUE(state_of(store).empty());
  EXPECT_EQ(private_of(store, "k"), "2");
  ASSERT_TRUE(store.commit({at(3, {put("k", "3")})}, 3, {}, {del("k")}));
  EXPECT_EQ(state_of(store), (state_map{{"k", "3"}}));
  EXPECT_EQ(private_of(store, "k"), std::nullopt);
}

TEST_F(view_store_test, private_changes_apply_in_order) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({}, 1, {}, {put("p", "1"), del("p"), put("q", "1"), put("q", "2")}));
  EXPECT_EQ(private_of(store, "p"), std::nullopt);
  EXPECT_EQ(private_of(store, "q"), "2");
}

TEST_F(view_store_test, commit_refuses_private_changes_without_a_new_offset_or_with_empty_values) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({}, 1));
  EXPECT_EQ(store.commit({}, 1, {}, {put("p", "1")}).code(), errc::invalid_parameter);
  EXPECT_EQ(store.commit({at(2, {put("a", "1")})}, 2, {}, {put("p", "")}).code(),
            errc::invalid_parameter);
  EXPECT_EQ(store.offset(), 1u);
  EXPECT_TRUE(state_of(store).empty());
  EXPECT_EQ(private_of(store, "p"), std::nullopt);
}

TEST_F(view_store_test, empty_and_long_private_keys_are_stored_and_deleted) {
  auto& store = open_store();
  const std::string head(600, 'h');
  const std::vector<std::string> keys = {"", "a", head, head + "a", head + "b",
                                         head + std::string(400, 'z')};
  std::vector<key_change> changes;
  for (size_t i = 0; i < keys.size(); ++i) changes.push_back(put(keys[i], std::to_string(i)));
  ASSERT_TRUE(store.commit({}, 1, {}, changes));
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(private_of(store, keys[i]), std::to_string(i));
  EXPECT_EQ(private_of(store, head + "c"), std::nullopt);
  ASSERT_TRUE(store.commit({}, 2, {}, {del(head + "a")}));
  EXPECT_EQ(private_of(store, head + "a"), std::nullopt);
  EXPECT_EQ(private_of(store, head + "b"), "4");
  EXPECT_TRUE(state_of(store).empty());
}

TEST_F(view_store_test, a_moved_snapshot_still_reads_private_state) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({}, 1, {}, {put("p", "1")}));
  auto first = store.snapshot();
  auto second = store.snapshot();
  ASSERT_TRUE(first && second);
  *second = std::move(*first);
  EXPECT_EQ(*second->get_private("p"), "1");
}

TEST_F(view_store_test, private_state_survives_a_reopen) {
  ASSERT_TRUE(open_store().commit({at(1, {put("a", "1")})}, 1, {}, {put("p", "1")}));
  reopen_env();
  auto& store = open_store();
  EXPECT_EQ(private_of(store, "p"), "1");
  EXPECT_EQ(state_of(store), (state_map{{"a", "1"}}));
}

TEST_F(view_store_test, reset_clears_the_private_state) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({at(1, {put("a", "1")})}, 1, {}, {put("p", "1")}));
  ASSERT_TRUE(store.reset());
  EXPECT_EQ(private_of(store, "p"), std::nullopt);
  reopen_env();
  EXPECT_EQ(private_of(open_store(), "p"), std::nullopt);
}

TEST_F(view_store_test, private_states_of_different_versions_are_independent) {
  auto& docs1 = open_store("docs", 1);
  auto& docs2 = open_store("docs", 2);
  ASSERT_TRUE(docs1.commit({}, 1, {}, {put("p", "1")}));
  ASSERT_TRUE(docs2.commit({}, 1, {}, {put("p", "2")}));
  ASSERT_TRUE(docs2.reset());
  EXPECT_EQ(private_of(docs1, "p"), "1");
  EXPECT_EQ(private_of(docs2, "p"), std::nullopt);
}

// --- range ------------------------------------------------------------------

class view_store_range_test : public view_store_test {
 protected:
  void SetUp() override {
    view_store_test::SetUp();
    auto& store = open_store();
    std::vector<key_change> changes;
    for (const char* key : {"a", "doc-1", "doc-2", "doc-3", "doc-4", "doc-5", "doc0", "e"})
      changes.push_back(put(key, "1"));
    ASSERT_TRUE(store.commit({at(1, changes)}, 1));
    auto snap = store.snapshot();
    ASSERT_TRUE(snap);
    snap_.emplace(std::move(*snap));
  }
  void TearDown() override {
    snap_.reset();
    view_store_test::TearDown();
  }
  view_snapshot::page range(std::string_view prefix, std::string_view start, size_t limit) {
    auto page = snap_->range(prefix, start, limit);
    EXPECT_TRUE(page) << page.error().to_string();
    return page ? *page : view_snapshot::page{};
  }
  std::optional<view_snapshot> snap_;
};

TEST_F(view_store_range_test, returns_keys_with_the_prefix_in_byte_order) {
  auto page = range("doc-", "", 100);
  EXPECT_EQ(keys_of(page),
            (std::vector<std::string>{"doc-1", "doc-2", "doc-3", "doc-4", "doc-5"}));
  EXPECT_EQ(page.next, std::nullopt);
}

TEST_F(view_store_range_test, starts_at_start_inclusive) {
  EXPECT_EQ(keys_of(range("doc-", "doc-4", 100)), (std::vector<std::string>{"doc-4", "doc-5"}));
  EXPECT_EQ(keys_of(range("doc-", "doc-35", 100)), (std::vector<std::string>{"doc-4", "doc-5"}));
}

TEST_F(view_store_range_test, a_start_before_the_prefix_starts_at_the_prefix) {
  EXPECT_EQ(keys_of(range("doc-", "a", 2)), (std::vector<std::string>{"doc-1", "doc-2"}));
}

TEST_F(view_store_range_test, a_start_after_the_prefix_range_returns_nothing) {
  auto page = range("doc-", "doc0", 100);
  EXPECT_TRUE(page.items.empty());
  EXPECT_EQ(page.next, std::nullopt);
}

TEST_F(view_store_range_test, pages_with_next_until_nothing_remains) {
  std::vector<std::string> all;
  std::string start;
  for (int pages = 0; pages < 10; ++pages) {
    auto page = range("doc-", start, 2);
    auto keys = keys_of(page);
    all.insert(all.end(), keys.begin(), keys.end());
    if (!page.next) break;
    start = *page.next;
  }
  EXPECT_EQ(all, (std::vector<std::string>{"doc-1", "doc-2", "doc-3", "doc-4", "doc-5"}));
}

TEST_F(view_store_range_test, next_is_set_only_when_more_keys_remain) {
  EXPECT_EQ(range("doc-", "", 4).next, "doc-5");
  EXPECT_EQ(range("doc-", "", 5).next, std::nullopt);
}

TEST_F(view_store_range_test, limit_zero_returns_no_items_but_the_next_key) {
  auto page = range("doc-", "", 0);
  EXPECT_TRUE(page.items.empty());
  EXPECT_EQ(page.next, "doc-1");
}

TEST_F(view_store_range_test, an_empty_prefix_covers_the_whole_view) {
  EXPECT_EQ(range("", "", 100).items.size(), 8u);
  EXPECT_EQ(keys_of(range("", "doc0", 100)), (std::vector<std::string>{"doc0", "e"}));
}

TEST_F(view_store_range_test, count_is_the_number_of_keys_range_lists) {
  auto count = [&](std::string_view prefix) { return snap_->count(prefix).value(); };
  EXPECT_EQ(count("doc-"), 5u);
  EXPECT_EQ(count("doc"), 6u);
  EXPECT_EQ(count(""), 8u);
  EXPECT_EQ(count("doc-3"), 1u);
  EXPECT_EQ(count("doc-33"), 0u);
  EXPECT_EQ(count("z"), 0u);
}

TEST_F(view_store_test, count_covers_long_keys_sharing_a_beginning) {
  auto& store = open_store();
  const std::string head(600, 'w');  // longer than the LMDB key limit: bucketed
  ASSERT_TRUE(store.commit({at(1, {put(head + "a", "1"), put(head + "b", "1"), put(head + "c", "1"),
                                   put("w", "1"), put("wx", "1"), put("x", "1")})},
                           1));
  auto snap = store.snapshot().value();
  EXPECT_EQ(snap.count("w").value(), 5u);
  EXPECT_EQ(snap.count(head).value(), 3u);
  EXPECT_EQ(snap.count(head + "b").value(), 1u);
  EXPECT_EQ(snap.count(std::string(509, 'w')).value(), 3u);  // exactly the direct limit
  EXPECT_EQ(snap.count(std::string(700, 'w')).value(), 0u);
  EXPECT_EQ(snap.range("w", "", 100).value().items.size(), 5u);
}

TEST_F(view_store_test, range_and_count_of_private_state_see_private_keys_only) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({at(1, {put("word/1", "1")})}, 1, {},
                           {put("word/2", "2"), put("word/3", "3"), put("other", "1")}));
  auto snap = store.snapshot().value();
  auto page = snap.range_private("word/", "", 10).value();
  ASSERT_EQ(page.items.size(), 2u);
  EXPECT_EQ(page.items[0].key, "word/2");
  EXPECT_EQ(page.items[1].value, "3");
  EXPECT_EQ(snap.count_private("word/").value(), 2u);
  EXPECT_EQ(snap.count("word/").value(), 1u);
  EXPECT_EQ(snap.range_private("word/", "", 1).value().next, "word/3");
}

// --- changelog --------------------------------------------------------------

TEST_F(view_store_test, changes_since_returns_entries_after_from_ascending_up_to_limit) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit(
      {at(1, {put("a", "1")}), at(2, {put("b", "2")}), at(4, {put("c", "4")}),
       at(5, {del("a")})},
      6));
  auto page = page_since(store, 1, 2);
  EXPECT_TRUE(page.served);
  EXPECT_EQ(describe(page.entries), (std::vector<std::string>{"2: b=2", "4: c=4"}));
  EXPECT_EQ(page.view_offset, 6u);
}

TEST_F(view_store_test, changes_since_the_offset_or_beyond_is_served_and_empty) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({at(1, {put("a", "1")})}, 3));
  for (uint64_t from : {3u, 4u, 1000u}) {
    auto page = page_since(store, from);
    EXPECT_TRUE(page.served);
    EXPECT_TRUE(page.entries.empty());
    EXPECT_EQ(page.view_offset, 3u);
  }
}

// Options keeping `retention` view offsets of changelog, pruning at most
// `prune_per_commit` entries per commit; byte and age limits as by default.
view_store_options keep_count(uint64_t retention, unsigned prune_per_commit) {
  view_store_options o;
  o.changelog_retention = retention;
  o.prune_per_commit = prune_per_commit;
  return o;
}

TEST_F(view_store_test, changelog_keeps_retention_offsets_behind_the_offset) {
  auto& store = open_store("docs", 1, keep_count(10, 256));
  for (uint64_t o = 10; o <= 100; o += 10) {
    std::vector<offset_changes> batch;
    for (uint64_t i = o - 9; i <= o; ++i) batch.push_back(at(i, {put("k", std::to_string(i))}));
    ASSERT_TRUE(store.commit(batch, o));
  }
  auto page = page_since(store, 90);
  EXPECT_TRUE(page.served);
  ASSERT_EQ(page.entries.size(), 10u);
  EXPECT_EQ(page.entries.front().offset, 91u);
}

TEST_F(view_store_test, changes_since_before_the_low_water_mark_is_not_served) {
  auto& store = open_store("docs", 1, keep_count(10, 256));
  commit_each(store, 1, 30);
  auto page = page_since(store, 19);
  EXPECT_FALSE(page.served);
  EXPECT_TRUE(page.entries.empty());
  EXPECT_EQ(page.view_offset, 30u);
  EXPECT_TRUE(page_since(store, 20).served);
}

TEST_F(view_store_test, the_low_water_mark_is_the_last_pruned_offset) {
  auto& store = open_store("docs", 1, keep_count(10, 256));
  ASSERT_TRUE(store.commit({at(1, {put("a", "1")}), at(50, {put("b", "1")})}, 100));
  EXPECT_FALSE(page_since(store, 49).served);
  auto page = page_since(store, 50);
  EXPECT_TRUE(page.served);
  EXPECT_TRUE(page.entries.empty());
}

TEST_F(view_store_test, offsets_without_entries_are_never_reported_as_pruned) {
  auto& store = open_store("docs", 1, keep_count(10, 256));
  ASSERT_TRUE(store.commit({at(95, {put("a", "1")})}, 100));
  auto page = page_since(store, 0);
  EXPECT_TRUE(page.served);
  EXPECT_EQ(describe(page.entries), (std::vector<std::string>{"95: a=1"}));
}

TEST_F(view_store_test, pruning_is_bounded_per_commit) {
  std::vector<offset_changes> batch;
  for (uint64_t o = 1; o <= 10; ++o) batch.push_back(at(o, {put("k", std::to_string(o))}));
  ASSERT_TRUE(open_store("docs", 1, keep_count(0, 256)).commit(batch, 10));
  close_stores();
  auto& store = open_store("docs", 1, keep_count(1, 3));
  // prune_per_commit plus as many as the commit appends: 3 + 1.
  ASSERT_TRUE(store.commit({at(11, {put("k", "11")})}, 11));
  EXPECT_FALSE(page_since(store, 3).served);
  ASSERT_TRUE(page_since(store, 4).served);
  EXPECT_EQ(page_since(store, 4).entries.front().offset, 5u);
  ASSERT_TRUE(store.commit({}, 12));  // 3 + 0
  EXPECT_FALSE(page_since(store, 6).served);
  ASSERT_TRUE(page_since(store, 7).served);
  EXPECT_EQ(page_since(store, 7).entries.front().offset, 8u);
}

// --- retention by bytes and by age -----------------------------------------

view_store_options keep_only(uint64_t max_bytes, std::chrono::milliseconds max_age,
                             std::function<int64_t()> clock = {}) {
  view_store_options o;
  o.changelog_retention = 0;
  o.changelog_max_bytes = max_bytes;
  o.changelog_state_fraction = 0;
  o.changelog_max_age = max_age;
  o.clock = std::move(clock);
  return o;
}

TEST_F(view_store_test, changelog_bytes_is_the_size_of_the_entries_it_holds) {
  auto& store = open_store("docs", 1, keep_only(0, std::chrono::milliseconds(0)));
  EXPECT_EQ(store.changelog_bytes(), 0u);
  std::vector<key_change> first{put("a", "1"), del("b")}, second{put("c", "[1,2,3]")};
  ASSERT_TRUE(store.commit({at(1, first), at(3, second)}, 3));
  const uint64_t expected = 8 + encode_changelog_entry(first).size() + 8 +
                            encode_changelog_entry(second).size();
  EXPECT_EQ(store.changelog_bytes(), expected);
  close_stores();
  EXPECT_EQ(open_store("docs", 1).changelog_bytes(), expected);  // kept in meta
}

TEST_F(view_store_test, retention_by_bytes_keeps_the_changelog_under_its_limit) {
  auto& store = open_store("docs", 1, keep_only(1000, std::chrono::milliseconds(0)));
  const std::string value = "\"" + std::string(100, 'x') + "\"";
  for (uint64_t o = 1; o <= 100; ++o) ASSERT_TRUE(store.commit({at(o, {put("k", value)})}, o));
  EXPECT_LE(store.changelog_bytes(), 1000u);
  EXPECT_GT(store.changelog_bytes(), 500u);  // oldest first, only what is needed
  EXPECT_FALSE(page_since(store, 0).served);  // a resume before it gets a reset
  auto recent = page_since(store, 95);
  ASSERT_TRUE(recent.served);
  EXPECT_EQ(recent.entries.size(), 5u);
}

TEST_F(view_store_test, retention_by_bytes_keeps_the_newest_entry) {
  auto& store = open_store("docs", 1, keep_only(10, std::chrono::milliseconds(0)));
  const std::string value = "\"" + std::string(100, 'x') + "\"";
  ASSERT_TRUE(store.commit({at(1, {put("a", value)})}, 1));
  ASSERT_TRUE(store.commit({at(2, {put("b", value)})}, 2));
  EXPECT_FALSE(page_since(store, 0).served);
  auto page = page_since(store, 1);
  ASSERT_TRUE(page.served);
  ASSERT_EQ(page.entries.size(), 1u);
  EXPECT_EQ(page.entries[0].offset, 2u);
}

TEST_F(view_store_test, retention_by_age_prunes_entries_older_than_max_age) {
  int64_t now = 0;
  auto& store = open_store("docs", 1,
                           keep_only(0, std::chrono::milliseconds(3200), [&] { return now; }));
  std::vector<offset_changes> early, later;
  for (uint64_t o = 1; o <= 5; ++o) early.push_back(at(o, {put("k", std::to_string(o))}));
  for (uint64_t o = 6; o <= 10; ++o) later.push_back(at(o, {put("k", std::to_string(o))}));
  ASSERT_TRUE(store.commit(early, 5));
  now = 2000;
  ASSERT_TRUE(store.commit(later, 10));
  now = 3000;  // nothing is 3.2 s old yet
  ASSERT_TRUE(store.commit({at(11, {put("k", "11")})}, 11));
  EXPECT_TRUE(page_since(store, 0).served);
  now = 4300;  // offsets 1..5 (written at 0) are; 6..10 (at 2000) are not
  ASSERT_TRUE(store.commit({at(12, {put("k", "12")})}, 12));
  EXPECT_FALSE(page_since(store, 4).served);
  ASSERT_TRUE(page_since(store, 5).served);
  EXPECT_EQ(page_since(store, 5).entries.front().offset, 6u);
  now = 5300;  // now 6..10 are too
  ASSERT_TRUE(store.commit({at(13, {put("k", "13")})}, 13));
  EXPECT_FALSE(page_since(store, 9).served);
  EXPECT_EQ(page_since(store, 10).entries.front().offset, 11u);
}

TEST_F(view_store_test, retention_by_age_survives_a_reopen) {
  int64_t now = 0;
  auto clock = [&] { return now; };
  ASSERT_TRUE(open_store("docs", 1, keep_only(0, std::chrono::milliseconds(3200), clock))
                  .commit({at(1, {put("k", "1")})}, 1));
  close_stores();
  now = 5000;
  auto& store = open_store("docs", 1, keep_only(0, std::chrono::milliseconds(3200), clock));
  ASSERT_TRUE(store.commit({at(2, {put("k", "2")})}, 2));
  EXPECT_FALSE(page_since(store, 0).served);
  EXPECT_EQ(page_since(store, 1).entries.size(), 1u);
}

TEST_F(view_store_test, the_changelog_limit_grows_with_the_state) {
  view_store_options o = keep_only(1000, std::chrono::milliseconds(0));
  o.changelog_state_fraction = 0.25;  // at most a quarter of the state
  auto& store = open_store("docs", 1, o);
  const std::string value = "\"" + std::string(100, 'x') + "\"";
  for (uint64_t o2 = 1; o2 <= 300; ++o2)  // 300 distinct keys: the state grows too
    ASSERT_TRUE(store.commit({at(o2, {put("k" + std::to_string(o2), value)})}, o2));
  EXPECT_GT(store.changelog_bytes(), 1000u);  // above the floor...
  EXPECT_LE(store.changelog_bytes(), 300u * 130u);  // ...but pruned: not every entry
  EXPECT_FALSE(page_since(store, 0).served);
}

TEST_F(view_store_test, unlimited_retention_keeps_every_entry) {
  auto& store = open_store("docs", 1, keep_count(0, 256));
  commit_each(store, 1, 300);
  auto page = page_since(store, 0, 1000);
  EXPECT_TRUE(page.served);
  EXPECT_EQ(page.entries.size(), 300u);
}

// --- failure, dead letters, reset -------------------------------------------

TEST_F(view_store_test, dead_letters_are_listed_ascending) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({at(1, {put("a", "1")})}, 3, {{3, "bad three"}, {2, "bad two"}}));
  ASSERT_TRUE(store.commit({}, 5, {{5, "bad five"}}));
  auto letters = store.dead_letters();
  ASSERT_TRUE(letters);
  ASSERT_EQ(letters->size(), 3u);
  EXPECT_EQ((*letters)[0].offset, 2u);
  EXPECT_EQ((*letters)[0].error, "bad two");
  EXPECT_EQ((*letters)[2].offset, 5u);
}

TEST_F(view_store_test, failure_record_is_set_and_cleared) {
  auto& store = open_store();
  ASSERT_TRUE(store.set_failure(view_failure{7, "division by zero"}));
  ASSERT_TRUE(store.failure());
  EXPECT_EQ(store.failure()->offset, 7u);
  EXPECT_EQ(store.failure()->error, "division by zero");
  ASSERT_TRUE(store.set_failure(std::nullopt));
  EXPECT_FALSE(store.failure());
}

TEST_F(view_store_test, everything_survives_a_reopen) {
  {
    auto& store = open_store();
    ASSERT_TRUE(store.commit({at(1, {put("a", "1")}), at(2, {put("b", "2")})}, 3, {{3, "bad"}}));
    ASSERT_TRUE(store.set_failure(view_failure{4, "broken"}));
  }
  reopen_env();
  auto& store = open_store();
  EXPECT_EQ(store.offset(), 3u);
  EXPECT_EQ(state_of(store), (state_map{{"a", "1"}, {"b", "2"}}));
  EXPECT_EQ(changelog_of(store), (std::vector<std::string>{"1: a=1", "2: b=2"}));
  ASSERT_EQ(store.dead_letters()->size(), 1u);
  ASSERT_TRUE(store.failure());
  EXPECT_EQ(store.failure()->error, "broken");
}

TEST_F(view_store_test, a_cleared_failure_stays_cleared_after_a_reopen) {
  ASSERT_TRUE(open_store().set_failure(view_failure{4, "broken"}));
  ASSERT_TRUE(stores_.back()->set_failure(std::nullopt));
  reopen_env();
  EXPECT_FALSE(open_store().failure());
}

TEST_F(view_store_test, reset_erases_everything_of_the_view) {
  auto& store = open_store("docs", 1, keep_count(5, 256));
  commit_each(store, 1, 20);
  ASSERT_TRUE(store.commit({}, 21, {{21, "bad"}}));
  ASSERT_TRUE(store.set_failure(view_failure{21, "bad"}));
  ASSERT_TRUE(store.reset());
  EXPECT_EQ(store.offset(), 0u);
  EXPECT_TRUE(state_of(store).empty());
  EXPECT_TRUE(changelog_of(store).empty());  // served again: the low-water mark is gone
  EXPECT_TRUE(store.dead_letters()->empty());
  EXPECT_FALSE(store.failure());
}

TEST_F(view_store_test, a_reset_store_rebuilds_from_offset_zero_and_stays_reset_after_reopen) {
  commit_each(open_store(), 1, 5);
  ASSERT_TRUE(stores_.back()->reset());
  ASSERT_TRUE(stores_.back()->commit({at(1, {put("x", "1")})}, 1));
  reopen_env();
  auto& store = open_store();
  EXPECT_EQ(store.offset(), 1u);
  EXPECT_EQ(state_of(store), (state_map{{"x", "1"}}));
  EXPECT_EQ(changelog_of(store), (std::vector<std::string>{"1: x=1"}));
}

// --- several stores ---------------------------------------------------------

TEST_F(view_store_test, stores_of_different_names_and_versions_are_independent) {
  auto& docs1 = open_store("docs", 1);
  auto& docs2 = open_store("docs", 2);
  auto& search = open_store("search", 1);
  ASSERT_TRUE(docs1.commit({at(1, {put("a", "1")})}, 1));
  ASSERT_TRUE(docs2.commit({at(1, {put("b", "2")}), at(2, {put("c", "2")})}, 2));
  ASSERT_TRUE(search.set_failure(view_failure{1, "broken"}));
  ASSERT_TRUE(docs2.reset());
  EXPECT_EQ(docs1.offset(), 1u);
  EXPECT_EQ(state_of(docs1), (state_map{{"a", "1"}}));
  EXPECT_EQ(changelog_of(docs1), (std::vector<std::string>{"1: a=1"}));
  EXPECT_FALSE(docs1.failure());
  EXPECT_EQ(search.offset(), 0u);
  EXPECT_TRUE(search.failure());
}

// An online compaction reopens every database, and their handles may change:
// a snapshot asked for while one runs (it waits at the gate) reads its own
// store afterwards, not the database that now has its old handle.
TEST_F(view_store_test, snapshots_asked_for_during_an_online_compaction_read_their_own_store) {
  const std::vector<std::string> names{"zeta", "mu", "delta", "alpha", "omega", "beta"};
  std::vector<view_store*> stores;
  for (const auto& name : names) {
    stores.push_back(&open_store(name));
    ASSERT_TRUE(stores.back()->commit({at(1, {put("of", "\"" + name + "\"")})}, 1));
  }
  auto reader = std::make_unique<txn_guard>();  // holds the compaction back
  ASSERT_EQ(env_->begin_txn(*reader, MDB_RDONLY), MDB_SUCCESS);
  status compacted = status::ok();
  std::thread compaction([&] { compacted = env_->compact_online(std::chrono::seconds(30)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the gate is closed
  std::vector<state_map> seen(names.size());
  std::vector<std::thread> readers;
  for (size_t i = 0; i < names.size(); ++i)
    readers.emplace_back([&, i] { seen[i] = state_of(*stores[i]); });  // each waits at the gate
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  reader.reset();  // the compaction runs, then the snapshots
  compaction.join();
  for (auto& r : readers) r.join();
  ASSERT_TRUE(compacted) << compacted.to_string();
  for (size_t i = 0; i < names.size(); ++i)
    EXPECT_EQ(seen[i], (state_map{{"of", "\"" + names[i] + "\""}})) << names[i];
}

TEST_F(view_store_test, open_refuses_a_store_written_in_another_format) {
  ASSERT_TRUE(open_store("docs", 1).commit({at(1, {put("a", "1")})}, 1));
  close_stores();
  auto meta = env_->database("view/docs/1/meta");
  ASSERT_TRUE(meta);
  MDB_txn* txn = nullptr;
  ASSERT_EQ(mdb_txn_begin(env_->handle(), nullptr, 0, &txn), MDB_SUCCESS);
  std::string name = "format", format2("\x02\0\0\0\0\0\0\0", 8);
  MDB_val k{name.size(), name.data()}, v{format2.size(), format2.data()};
  ASSERT_EQ(mdb_put(txn, *meta, &k, &v, 0), MDB_SUCCESS);
  ASSERT_EQ(mdb_txn_commit(txn), MDB_SUCCESS);
  auto store = view_store::open(*env_, "docs", 1);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code(), errc::corruption);
}

TEST_F(view_store_test, open_refuses_an_empty_view_name) {
  auto store = view_store::open(*env_, "", 1);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code(), errc::invalid_parameter);
}

// --- a full map ---------------------------------------------------------------

// An environment whose map holds about 1 MiB.
class view_store_full_map_test : public view_store_test {
 protected:
  environment_options env_options() override {
    environment_options options = view_store_test::env_options();
    options.map_size = uint64_t{1} << 20;
    return options;
  }
  // About 2 MiB of values at `offset`.
  static offset_changes too_big(uint64_t offset) {
    std::vector<key_change> changes;
    for (int i = 0; i < 200; ++i)
      changes.push_back(put("big-" + std::to_string(i), "\"" + std::string(10'000, 'x') + "\""));
    return at(offset, std::move(changes));
  }
};

TEST_F(view_store_full_map_test, a_failed_commit_changes_nothing) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({at(1, {put("a", "1")})}, 1));
  EXPECT_EQ(store.commit({too_big(2)}, 2, {{2, "bad"}}).code(), errc::storage_full);
  EXPECT_EQ(store.offset(), 1u);
  EXPECT_EQ(store.snapshot()->offset(), 1u);
  EXPECT_EQ(state_of(store), (state_map{{"a", "1"}}));
  EXPECT_EQ(changelog_of(store), (std::vector<std::string>{"1: a=1"}));
  EXPECT_TRUE(store.dead_letters()->empty());
}

TEST_F(view_store_full_map_test, a_failed_commit_changes_neither_state_nor_private_state) {
  auto& store = open_store();
  ASSERT_TRUE(store.commit({at(1, {put("a", "1")})}, 1, {}, {put("p", "1")}));
  EXPECT_EQ(store.commit({too_big(2)}, 2, {}, {put("p", "2"), put("q", "2")}).code(),
            errc::storage_full);
  EXPECT_EQ(store.commit({at(2, {put("a", "2")})}, 2, {}, too_big(2).changes).code(),
            errc::storage_full);
  EXPECT_EQ(store.offset(), 1u);
  EXPECT_EQ(state_of(store), (state_map{{"a", "1"}}));
  EXPECT_EQ(changelog_of(store), (std::vector<std::string>{"1: a=1"}));
  EXPECT_EQ(private_of(store, "p"), "1");
  EXPECT_EQ(private_of(store, "q"), std::nullopt);
  EXPECT_EQ(private_of(store, "big-0"), std::nullopt);
}

TEST_F(view_store_full_map_test, the_store_keeps_working_after_a_full_map) {
  auto& store = open_store();
  ASSERT_EQ(store.commit({too_big(1)}, 1).code(), errc::storage_full);
  ASSERT_TRUE(store.commit({at(1, {put("a", "1")})}, 1));
  reopen_env();
  auto& reopened = open_store();
  EXPECT_EQ(reopened.offset(), 1u);
  EXPECT_EQ(state_of(reopened), (state_map{{"a", "1"}}));
}

// View checkpoints (docs/storage.md, "View checkpoints").

view_store_options every(uint64_t n, unsigned kept = 2) {
  view_store_options o;
  o.checkpoint_every = n;
  o.checkpoints_kept = kept;
  return o;
}

// Commits "k<o>" = o, a private "p" = o and "total" = o at each offset from..to.
void commit_counting(view_store& store, uint64_t from, uint64_t to) {
  for (uint64_t o = from; o <= to; ++o) {
    auto s = store.commit({at(o, {put("k" + std::to_string(o), std::to_string(o)),
                                  put("total", std::to_string(o))})},
                          o, {}, {put("p", std::to_string(o))});
    ASSERT_TRUE(s) << s.to_string();
  }
}

TEST_F(view_store_test, checkpoints_are_taken_every_n_offsets_and_a_bounded_number_is_kept) {
  auto& store = open_store("docs", 1, every(10, 3));
  commit_counting(store, 1, 9);
  EXPECT_TRUE(store.checkpoints().empty());
  commit_counting(store, 10, 55);
  EXPECT_EQ(store.checkpoints(), (std::vector<uint64_t>{30, 40, 50}));
  reopen_env();
  auto& reopened = open_store("docs", 1, every(10, 3));
  EXPECT_EQ(reopened.checkpoints(), (std::vector<uint64_t>{30, 40, 50}));
}

TEST_F(view_store_test, no_checkpoints_by_default) {
  auto& store = open_store();
  commit_counting(store, 1, 50);
  EXPECT_TRUE(store.checkpoints().empty());
  auto names = env_->database_names("view/docs/1/checkpoint");
  ASSERT_TRUE(names);
  EXPECT_TRUE(names->empty());
}

TEST_F(view_store_test, restore_returns_to_the_newest_checkpoint_at_or_before_and_drops_later_ones) {
  auto& store = open_store("docs", 1, every(10, 3));
  commit_counting(store, 1, 20);
  const state_map at20 = state_of(store);
  const view_digest digest20 = store.digest();
  commit_counting(store, 21, 35);
  ASSERT_EQ(store.checkpoints(), (std::vector<uint64_t>{10, 20, 30}));
  auto restored = store.restore(/*keep_through=*/24, /*resume_floor=*/35);
  ASSERT_TRUE(restored) << restored.error().to_string();
  EXPECT_EQ(*restored, 20u);
  EXPECT_EQ(store.offset(), 20u);
  EXPECT_EQ(state_of(store), at20);
  EXPECT_EQ(private_of(store, "p"), std::optional<std::string>("20"));
  EXPECT_EQ(store.digest(), digest20);
  EXPECT_EQ(store.checkpoints(), (std::vector<uint64_t>{10, 20}));
  auto floor = store.resume_floor();
  ASSERT_TRUE(floor);
  EXPECT_EQ(*floor, 35u);
  // The changelog ends at the checkpoint; the rebuild appends after it.
  EXPECT_EQ(page_since(store, 19).entries.size(), 1u);
  commit_counting(store, 21, 25);
  EXPECT_EQ(page_since(store, 19).entries.size(), 6u);
  // The same after a reopen: every record of the restore is durable.
  reopen_env();
  auto& reopened = open_store("docs", 1, every(10, 3));
  EXPECT_EQ(reopened.offset(), 25u);
  EXPECT_EQ(reopened.checkpoints(), (std::vector<uint64_t>{10, 20}));
  EXPECT_EQ(state_of(reopened).at("total"), "25");
}

TEST_F(view_store_test, restore_without_a_checkpoint_before_resets_and_drops_every_checkpoint) {
  auto& store = open_store("docs", 1, every(10, 2));
  commit_counting(store, 1, 30);
  auto restored = store.restore(/*keep_through=*/5, /*resume_floor=*/30);
  ASSERT_TRUE(restored) << restored.error().to_string();
  EXPECT_EQ(*restored, 0u);
  EXPECT_EQ(store.offset(), 0u);
  EXPECT_TRUE(state_of(store).empty());
  EXPECT_TRUE(store.checkpoints().empty());
}

TEST_F(view_store_test, reset_drops_the_checkpoints) {
  auto& store = open_store("docs", 1, every(10, 2));
  commit_counting(store, 1, 30);
  ASSERT_FALSE(store.checkpoints().empty());
  ASSERT_TRUE(store.reset());
  EXPECT_TRUE(store.checkpoints().empty());
  reopen_env();
  EXPECT_TRUE(open_store("docs", 1, every(10, 2)).checkpoints().empty());
}

TEST_F(view_store_test, checkpoints_on_disk_serve_a_restore_when_new_ones_are_off) {
  commit_counting(open_store("docs", 1, every(10, 2)), 1, 25);
  reopen_env();
  auto& store = open_store();  // checkpoints off
  EXPECT_EQ(store.checkpoints(), (std::vector<uint64_t>{10, 20}));
  auto restored = store.restore(24, 25);
  ASSERT_TRUE(restored);
  EXPECT_EQ(*restored, 20u);
}

// A new generation built beside a store after an erasure starts from the
// source's checkpoint; the source is untouched.
TEST_F(view_store_test, restore_from_copies_a_checkpoint_of_another_store_and_keeps_it) {
  auto& source = open_store("docs", 1, every(10, 3));
  commit_counting(source, 1, 20);
  const state_map at20 = state_of(source);
  const view_digest digest20 = source.digest();
  commit_counting(source, 21, 35);
  const state_map at35 = state_of(source);
  auto& copy = open_store("docs", 2, every(10, 3));
  auto from = copy.restore_from(source, /*keep_through=*/24, /*with_changelog=*/true);
  ASSERT_TRUE(from) << from.error().to_string();
  EXPECT_EQ(*from, 20u);
  EXPECT_EQ(copy.offset(), 20u);
  EXPECT_EQ(state_of(copy), at20);
  EXPECT_EQ(private_of(copy, "p"), std::optional<std::string>("20"));
  EXPECT_EQ(copy.digest(), digest20);
  EXPECT_EQ(copy.checkpoints(), (std::vector<uint64_t>{20}));
  // The changelog up to the checkpoint, for a consumer restoring its own.
  EXPECT_EQ(page_since(copy, 0).entries.size(), 20u);
  EXPECT_EQ(source.offset(), 35u);
  EXPECT_EQ(state_of(source), at35);
  commit_counting(copy, 21, 35);
  EXPECT_EQ(state_of(copy), at35);
  EXPECT_EQ(copy.digest(), source.digest());
  // Without the changelog: served from the checkpoint on; durable.
  auto& bare = open_store("docs", 3, every(10, 3));
  ASSERT_TRUE(bare.restore_from(source, 24, false));
  EXPECT_FALSE(page_since(bare, 19).served);
  EXPECT_TRUE(page_since(bare, 20).served);
  reopen_env();
  auto& reopened = open_store("docs", 3, every(10, 3));
  EXPECT_EQ(reopened.offset(), 20u);
  EXPECT_EQ(reopened.checkpoints(), (std::vector<uint64_t>{20}));
  EXPECT_EQ(reopened.digest(), digest20);
}

TEST_F(view_store_test, restore_from_without_a_checkpoint_before_changes_nothing) {
  auto& source = open_store("docs", 1, every(10, 3));
  commit_counting(source, 1, 15);
  auto& copy = open_store("docs", 2, every(10, 3));
  auto from = copy.restore_from(source, 9, true);
  ASSERT_TRUE(from);
  EXPECT_EQ(*from, 0u);
  EXPECT_EQ(copy.offset(), 0u);
  EXPECT_TRUE(state_of(copy).empty());
  EXPECT_TRUE(copy.checkpoints().empty());
}

// LMDB reuses the pages a commit freed only from the second commit after it:
// commits that each rewrite the whole state back to back keep two freed copies
// besides the live one. A step between them (view_store::step) lets each
// commit reuse the previous one's pages, so the file holds about two copies.
TEST_F(view_store_test, a_step_between_rewrites_lets_each_commit_reuse_the_last_ones_pages) {
  auto rewrite_file_bytes = [&](environment& env, bool step) -> std::pair<uint64_t, uint64_t> {
    view_store_options options;
    options.changelog_retention = 1;  // the changelog keeps one entry
    auto opened = view_store::open(env, "docs", 1, options);
    if (!opened) {
      ADD_FAILURE() << opened.error().to_string();
      return std::pair<uint64_t, uint64_t>{0, 0};
    }
    auto& store = **opened;
    uint64_t first = 0;
    for (uint64_t offset = 1; offset <= 8; ++offset) {
      std::vector<key_change> changes;
      for (int k = 0; k < 1000; ++k)
        changes.push_back(put("key" + std::to_string(1000 + k),
                              std::string(1500, static_cast<char>('a' + offset))));
      EXPECT_TRUE(store.commit({at(offset, std::move(changes))}, offset).is_ok());
      if (step) EXPECT_TRUE(store.step().is_ok());
      EXPECT_EQ(store.offset(), offset);  // a step changes nothing
      if (offset == 1) first = env.space()->file_bytes;
    }
    EXPECT_EQ(state_of(store).at("key1000"), std::string(1500, 'a' + 8));
    return {first, env.space()->file_bytes};
  };
  const auto [one_copy, stepped] = rewrite_file_bytes(*env_, true);
  const std::string other = dir_ + "/without-steps";
  std::filesystem::create_directories(other);
  auto env = environment::open(other, env_options());
  ASSERT_TRUE(env) << env.error().to_string();
  const auto [one_copy_too, unstepped] = rewrite_file_bytes(**env, false);
  // One copy is the state and the changelog's one entry, as the first commit
  // wrote them.
  EXPECT_LE(stepped, one_copy * 5 / 2) << "with steps: two copies (live, and the freed one)";
  EXPECT_GT(unstepped, one_copy_too * 5 / 2) << "without: three copies";
}

}  // namespace
}  // namespace derive
