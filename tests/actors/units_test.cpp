// Small parts of actors/: the batch transaction that view code sees, the
// waiter registry behind wait_for, and logging.

#include <atomic>
#include <cmath>
#include <iterator>
#include <random>
#include <thread>

#include "actors/batch_txn.hpp"
#include <derive/logging.hpp>
#include "actors/view_slot.hpp"
#include "actors/waiters.hpp"
#include "core/environment.hpp"
#include <lmdb.h>
#include "tests/actors/test_util.hpp"

namespace derive::testing {
namespace {

using namespace std::chrono_literals;

// --- batch_txn ---

class batch_txn_test : public ::testing::Test {
 protected:
  batch_txn_test() {
    env_ = environment::open(dir_.path()).value();
    store_ = view_store::open(*env_, "v", 1).value();
    offset_changes seed{1, {{"a", std::string("1")}}};
    EXPECT_TRUE(store_->commit({seed}, 1, {}, {{"p", std::string("1")}}));
    txn_ = std::make_unique<batch_txn>(*store_);
  }
  temp_dir dir_;
  std::unique_ptr<environment> env_;
  std::unique_ptr<view_store> store_;
  std::unique_ptr<batch_txn> txn_;
};

TEST_F(batch_txn_test, ReadsTheCommittedState) {
  txn_->begin_input(2);
  EXPECT_EQ(txn_->get("a"), json(1));
  EXPECT_FALSE(txn_->get("b"));
}

// Thousands of keys in one batch (its index grows many times over), read
// back in another order, each with its own value; absent keys stay absent.
TEST_F(batch_txn_test, ManyKeysInOneBatchKeepTheirOwnValues) {
  const int n = 5000;
  for (int i = 0; i < n; ++i) {
    txn_->begin_input(2 + i);
    const std::string key = "k" + std::to_string(i);
    EXPECT_FALSE(txn_->get(key));
    txn_->put(key, i);
    txn_->commit_input();
  }
  txn_->begin_input(2 + n);
  for (int i = n - 1; i >= 0; i -= 7) EXPECT_EQ(txn_->get("k" + std::to_string(i)), json(i));
  EXPECT_FALSE(txn_->get("k" + std::to_string(n)));
  EXPECT_EQ(txn_->get("a"), json(1));
  txn_->commit_input();
  // Committed, and carried to the next batch as its warm cache.
  auto changes = txn_->take_changes();
  auto blind = txn_->take_blind_changes();
  ASSERT_TRUE(store_->commit(changes, blind, 2 + n, {}, txn_->take_private_changes()));
  batch_txn next(*store_, txn_->warm());
  next.begin_input(3 + n);
  for (int i = 0; i < n; i += 11) EXPECT_EQ(next.get("k" + std::to_string(i)), json(i));
  EXPECT_FALSE(next.get("k" + std::to_string(n + 1)));
}

// Read transactions open in `env` (mdb_reader_list).
int active_readers(const environment& env) {
  int n = 0;
  mdb_reader_list(
      env.handle(),
      [](const char* line, void* ctx) {
        std::string s(line);
        // Lines: a header, "(no active readers)", or "pid thread txnid|-".
        bool reader = s.find("txnid") == std::string::npos && s.find('(') == std::string::npos;
        if (reader && s.find(" -") == std::string::npos) ++*static_cast<int*>(ctx);
        return 0;
      },
      &n);
  return n;
}

TEST_F(batch_txn_test, AnInputsReadSnapshotIsReleasedAtTheNextInput) {
  txn_->begin_input(2);
  EXPECT_EQ(txn_->get("a"), json(1));
  EXPECT_EQ(active_readers(*env_), 1);  // the input reads from a snapshot
  txn_->commit_input();
  txn_->begin_input(3);
  EXPECT_EQ(active_readers(*env_), 0);  // no page of the environment stays pinned
  EXPECT_EQ(txn_->get("a"), json(1));
  EXPECT_EQ(txn_->get_private("p"), json(1));
}

TEST_F(batch_txn_test, ReadsSeeEarlierWritesOfTheBatch) {
  txn_->begin_input(2);
  txn_->put("b", 2);
  EXPECT_EQ(txn_->get("b"), json(2));
  txn_->commit_input();
  txn_->begin_input(3);
  txn_->erase("a");
  EXPECT_FALSE(txn_->get("a"));
  EXPECT_EQ(txn_->get("b"), json(2));
}

TEST_F(batch_txn_test, EachKeptInputIsOneChangelogEntry) {
  txn_->begin_input(2);
  txn_->put("b", 2);
  txn_->put("b", 3);
  txn_->commit_input();
  txn_->begin_input(3);
  txn_->erase("a");
  txn_->commit_input();
  auto changes = txn_->take_changes();
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].offset, 2u);
  ASSERT_EQ(changes[0].changes.size(), 1u);
  EXPECT_EQ(changes[0].changes[0].value, std::optional<std::string>("3"));
  EXPECT_EQ(changes[1].offset, 3u);
  EXPECT_FALSE(changes[1].changes[0].value);
}

TEST_F(batch_txn_test, ADiscardedInputLeavesNoTrace) {
  txn_->begin_input(2);
  txn_->put("a", 99);
  txn_->discard_input();
  txn_->begin_input(3);
  EXPECT_EQ(txn_->get("a"), json(1));
  EXPECT_TRUE(txn_->take_changes().empty());
}

TEST_F(batch_txn_test, WritingTheCurrentValueChangesNothing) {
  txn_->begin_input(2);
  EXPECT_EQ(txn_->get("a"), json(1));
  txn_->put("a", 1);  // read first: known at once
  txn_->commit_input();
  EXPECT_TRUE(txn_->take_changes().empty());
  EXPECT_TRUE(txn_->take_blind_changes().empty());
  EXPECT_EQ(txn_->inputs(), 1u);
}

// Keys not read before they are written are written blind: the commit finds
// out that the changes change nothing and drops them (from the changelog and
// from the batch it was given).
TEST_F(batch_txn_test, BlindWritesOfTheCurrentValueAreDroppedByTheCommit) {
  const view_digest before = store_->digest();
  txn_->begin_input(2);
  txn_->put("a", 1);
  txn_->erase("missing");
  txn_->commit_input();
  auto changes = txn_->take_changes();
  auto blind = txn_->take_blind_changes();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(blind.size(), 2u);
  ASSERT_TRUE(store_->commit(changes, blind, 2, {}, txn_->take_private_changes()));
  EXPECT_TRUE(changes.empty());
  EXPECT_EQ(store_->offset(), 2u);
  EXPECT_TRUE(store_->changes_since(1, 10)->entries.empty());
  EXPECT_EQ(store_->digest(), before);
}

// Until the batch first reads the state, no write is looked up, not even in
// the batch: a key's later writes are blind too, and the commit compares each
// with the one before it. The first read sees every earlier write.
TEST_F(batch_txn_test, WritesBeforeTheFirstStateReadAreAllBlind) {
  for (uint64_t offset = 2; offset <= 4; ++offset) {
    txn_->begin_input(offset);
    txn_->put("a", offset == 2 ? 1 : 7);  // the committed value, then 7 twice
    txn_->put("b", 2);
    txn_->commit_input();
  }
  EXPECT_EQ(txn_->cache_bytes(), 0u);  // nothing cached
  txn_->begin_input(5);
  EXPECT_EQ(txn_->get("a"), json(7));
  EXPECT_EQ(txn_->count(""), 2u);
  txn_->put("b", 2);  // known now: records nothing
  txn_->commit_input();
  auto changes = txn_->take_changes();
  auto blind = txn_->take_blind_changes();
  EXPECT_EQ(blind.size(), 6u);
  ASSERT_TRUE(store_->commit(changes, blind, 5, {}, txn_->take_private_changes()));
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].offset, 2u);  // b=2
  ASSERT_EQ(changes[0].changes.size(), 1u);
  EXPECT_EQ(changes[0].changes[0].key, "b");
  EXPECT_EQ(changes[1].offset, 3u);  // a=7
  ASSERT_EQ(changes[1].changes.size(), 1u);
  EXPECT_EQ(changes[1].changes[0].key, "a");
  EXPECT_EQ(store_->changes_since(1, 10)->entries.size(), 2u);
}

// A batch that wrote the state without reading it cached none of its writes:
// it leaves no warm cache (the next batch reads the committed values).
TEST_F(batch_txn_test, ABatchThatNeverReadTheStateLeavesNoWarmCache) {
  txn_->begin_input(2);
  EXPECT_EQ(txn_->get("a"), json(1));
  txn_->commit_input();
  auto warm = txn_->warm();
  EXPECT_GT(warm.bytes(), 0u);
  batch_txn next(*store_, std::move(warm));
  next.begin_input(2);
  next.put("a", 5);
  next.commit_input();
  auto changes = next.take_changes();
  auto blind = next.take_blind_changes();
  ASSERT_TRUE(store_->commit(changes, blind, 2));
  auto leftover = next.warm();
  EXPECT_EQ(leftover.bytes(), 0u);
  batch_txn third(*store_, std::move(leftover));  // a stale 1 for "a" would show here
  third.begin_input(3);
  EXPECT_EQ(third.get("a"), json(5));
}

TEST_F(batch_txn_test, PrivateReadsSeeTheCommittedAndEarlierPrivateWrites) {
  txn_->begin_input(2);
  EXPECT_EQ(txn_->get_private("p"), json(1));
  EXPECT_FALSE(txn_->get_private("a"));  // the key spaces are independent
  EXPECT_FALSE(txn_->get("p"));
  txn_->put_private("q", 2);
  EXPECT_EQ(txn_->get_private("q"), json(2));
  txn_->commit_input();
  txn_->begin_input(3);
  txn_->erase_private("p");
  EXPECT_FALSE(txn_->get_private("p"));
  EXPECT_EQ(txn_->get_private("q"), json(2));
}

// A private write is a change when its text differs from the committed
// value's (the store keeps text): 1.0 over a stored 1 is equal as JSON, yet
// the stored text must become "1.0", as it would in one batch with the 1.
TEST_F(batch_txn_test, APrivateWriteEqualAsJsonButNotAsTextIsAChange) {
  txn_->begin_input(2);
  EXPECT_EQ(txn_->get_private("p"), json(1));
  txn_->put_private("p", 1.0);
  txn_->put_private("n", std::nan(""));  // written "null"
  txn_->commit_input();
  auto changes = txn_->take_private_changes();
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].key, "n");
  EXPECT_EQ(changes[1].key, "p");
  EXPECT_EQ(changes[1].value, std::optional<std::string>("1.0"));
}

TEST_F(batch_txn_test, APrivateWriteOfTheSameTextIsNoChange) {
  txn_->begin_input(2);
  txn_->put_private("p", 1u);  // unsigned 1: written "1", as stored
  txn_->commit_input();
  EXPECT_TRUE(txn_->take_private_changes().empty());
}

// A looked-up put is no change exactly when it would store the same text:
// every pair of these values, the put's decision against dump_compact's.
TEST_F(batch_txn_test, ALookedUpPutIsNoChangeExactlyWhenItsTextIsTheStoredOne) {
  const std::vector<json> values = {
      nullptr, true, false, 0, 1, -1, 1u, json(UINT64_MAX), json(INT64_MIN), 1.0, 0.0, -0.0,
      1e17, std::nan(""), INFINITY, "", "a", "\xff", "\xfe", "\xef\xbf\xbd",
      json::array(), json::array({1}), json::array({1.0}), json::array({nullptr, "\xff"}),
      json::array({std::nan(""), "\xfe"}), json::object(), json::object({{"a", 1}}),
      json::object({{"a", 1u}}), json::object({{"b", 1}}), json::object({{"\xff", 1}}),
      json::object({{"\xfe", 1}})};
  uint64_t offset = 1;
  for (const auto& stored : values)
    for (const auto& put : values) {
      ++offset;
      batch_txn seed(*store_);
      seed.begin_input(offset);
      seed.put("k", stored);
      seed.commit_input();
      auto seeded = seed.take_changes();
      ASSERT_TRUE(store_->commit(seeded, seed.take_blind_changes(), offset));
      ++offset;
      batch_txn txn(*store_);
      txn.begin_input(offset);
      txn.get("k");  // looked up: the stored text, parsed
      txn.put("k", put);
      txn.commit_input();
      const bool same = dump_compact(json::parse(dump_compact(stored))) == dump_compact(put);
      EXPECT_EQ(txn.take_changes().empty(), same) << stored.dump(-1, ' ', false, json::error_handler_t::replace) << " then " << put.dump(-1, ' ', false, json::error_handler_t::replace);
    }
}

TEST_F(batch_txn_test, PrivateWritesAreTheBatchsNetChangesInKeyOrderAndNoChangelog) {
  txn_->begin_input(2);
  txn_->put_private("q", 2);
  txn_->put_private("r", 1);
  txn_->commit_input();
  txn_->begin_input(3);
  txn_->put_private("q", 3);
  txn_->erase_private("p");
  txn_->erase_private("r");  // back to absent: no change
  txn_->commit_input();
  EXPECT_TRUE(txn_->take_changes().empty());
  auto changes = txn_->take_private_changes();
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].key, "p");
  EXPECT_FALSE(changes[0].value);
  EXPECT_EQ(changes[1].key, "q");
  EXPECT_EQ(changes[1].value, std::optional<std::string>("3"));
}

TEST_F(batch_txn_test, ADiscardedInputLeavesNoPrivateTrace) {
  txn_->begin_input(2);
  txn_->put("a", 2);
  txn_->put_private("p", 99);
  txn_->discard_input();
  txn_->begin_input(3);
  EXPECT_EQ(txn_->get_private("p"), json(1));
  txn_->commit_input();
  EXPECT_TRUE(txn_->take_changes().empty());
  EXPECT_TRUE(txn_->take_private_changes().empty());
}

TEST_F(batch_txn_test, WritingTheCurrentPrivateValueChangesNothing) {
  txn_->begin_input(2);
  txn_->put_private("p", 1);
  txn_->erase_private("missing");
  txn_->commit_input();
  EXPECT_TRUE(txn_->take_private_changes().empty());
}

// An input of many writes (past the few that are found by a scan): each key
// reads its last write, and the kept entry holds each key once, in key order.
TEST_F(batch_txn_test, AnInputOfManyWritesKeepsEachKeysLastWrite) {
  txn_->begin_input(2);
  for (int i = 0; i < 100; ++i) txn_->put("k" + std::to_string(i), i);
  for (int i = 0; i < 100; i += 3) txn_->put("k" + std::to_string(i), 1000 + i);
  for (int i = 1; i < 100; i += 3) txn_->erase("k" + std::to_string(i));
  txn_->erase("a");
  for (int i = 0; i < 100; ++i) {
    auto v = txn_->get("k" + std::to_string(i));
    const std::optional<json> expected =
        i % 3 == 1 ? std::nullopt : std::optional<json>(i % 3 == 0 ? 1000 + i : i);
    EXPECT_EQ(v, expected) << i;
  }
  EXPECT_EQ(txn_->count("k"), 67u);
  txn_->commit_input();
  txn_->begin_input(3);
  txn_->put("k5", 5);  // the value it has: no change
  txn_->put("k6", 6);
  EXPECT_EQ(txn_->get("k6"), json(6));
  txn_->commit_input();
  auto changes = txn_->take_changes();
  ASSERT_EQ(changes.size(), 2u);
  ASSERT_EQ(changes[0].changes.size(), 68u);  // 67 keys and "a" erased
  EXPECT_EQ(changes[0].changes[0].key, "a");
  EXPECT_FALSE(changes[0].changes[0].value);
  for (size_t i = 1; i < changes[0].changes.size(); ++i)
    EXPECT_LT(changes[0].changes[i - 1].key, changes[0].changes[i].key);
  ASSERT_EQ(changes[1].changes.size(), 1u);
  EXPECT_EQ(changes[1].changes[0].key, "k6");
  EXPECT_EQ(changes[1].changes[0].value, std::optional<std::string>("6"));
}

// --- batch_txn ranges: the committed state merged with the batch's writes ---

class batch_txn_range_test : public ::testing::Test {
 protected:
  batch_txn_range_test() {
    env_ = environment::open(dir_.path()).value();
    store_ = view_store::open(*env_, "v", 1).value();
    offset_changes seed{1, {{"w/1", std::string("1")}, {"w/3", std::string("3")},
                            {"w/5", std::string("5")}, {"x", std::string("0")}}};
    EXPECT_TRUE(store_->commit({seed}, 1, {},
                               {{"p/1", std::string("1")}, {"p/3", std::string("3")}}));
    txn_ = std::make_unique<batch_txn>(*store_);
  }
  static std::vector<std::string> keys(const view_txn::page& p) {
    std::vector<std::string> out;
    for (const auto& e : p.items) out.push_back(e.key);
    return out;
  }
  using strings = std::vector<std::string>;
  temp_dir dir_;
  std::unique_ptr<environment> env_;
  std::unique_ptr<view_store> store_;
  std::unique_ptr<batch_txn> txn_;
};

TEST_F(batch_txn_range_test, ReadsTheCommittedKeysWithThePrefix) {
  txn_->begin_input(2);
  auto p = txn_->range("w/");
  EXPECT_EQ(keys(p), (strings{"w/1", "w/3", "w/5"}));
  EXPECT_EQ(p.items[1].value, json(3));
  EXPECT_EQ(txn_->count("w/"), 3u);
  EXPECT_EQ(txn_->count(""), 4u);
}

TEST_F(batch_txn_range_test, SeesPutsAndErasesOfTheCurrentInput) {
  txn_->begin_input(2);
  txn_->put("w/2", 2);
  txn_->erase("w/3");
  txn_->put("w/5", 50);
  auto p = txn_->range("w/");
  EXPECT_EQ(keys(p), (strings{"w/1", "w/2", "w/5"}));
  EXPECT_EQ(p.items[2].value, json(50));
  EXPECT_EQ(txn_->count("w/"), 3u);
}

TEST_F(batch_txn_range_test, SeesPutsAndErasesOfEarlierInputsOfTheBatch) {
  txn_->begin_input(2);
  txn_->put("w/0", 0);
  txn_->erase("w/1");
  txn_->commit_input();
  txn_->begin_input(3);
  txn_->put("w/1", 10);  // erased earlier in the batch, put again now
  txn_->erase("w/5");
  txn_->commit_input();
  txn_->begin_input(4);
  EXPECT_EQ(keys(txn_->range("w/")), (strings{"w/0", "w/1", "w/3"}));
  EXPECT_EQ(txn_->range("w/").items[1].value, json(10));
  EXPECT_EQ(txn_->count("w/"), 3u);
}

// The runner hands a committed batch's cache to the next batch (warm()): the
// next batch must see the committed state, counted and ranged as such.
TEST_F(batch_txn_range_test, TheNextBatchOnAWarmCacheSeesTheCommittedState) {
  txn_->begin_input(2);
  EXPECT_FALSE(txn_->get("w/9"));  // a batch that reads caches its writes
  txn_->put("w/2", 2);  // created
  txn_->put("w/4", 4);  // created
  txn_->erase("w/3");   // deleted
  txn_->put("w/5", 50);
  txn_->commit_input();
  ASSERT_TRUE(store_->commit(txn_->take_changes(), 2, {}, txn_->take_private_changes()));
  auto warm = txn_->warm();
  EXPECT_GT(warm.bytes(), 0u);
  batch_txn next(*store_, std::move(warm));
  next.begin_input(3);
  EXPECT_EQ(next.get("w/2"), json(2));
  EXPECT_FALSE(next.get("w/3"));
  EXPECT_EQ(next.count("w/"), 4u);  // w/1, w/2, w/4, w/5: each counted once
  EXPECT_EQ(keys(next.range("w/")), (strings{"w/1", "w/2", "w/4", "w/5"}));
  next.put("w/2", 2);  // the committed value: no change
  next.erase("w/3");   // already absent: no change
  next.put("w/5", 51);
  next.commit_input();
  auto changes = next.take_changes();
  ASSERT_EQ(changes.size(), 1u);
  ASSERT_EQ(changes[0].changes.size(), 1u);
  EXPECT_EQ(changes[0].changes[0].key, "w/5");
}

// The batch's keys are put in order only when a range or a count first asks;
// keys the batch touches after that are kept in order too.
TEST_F(batch_txn_range_test, KeysWrittenAfterTheFirstRangeAreRangedInOrder) {
  txn_->begin_input(2);
  txn_->put("w/4", 4);
  txn_->commit_input();
  txn_->begin_input(3);
  EXPECT_EQ(keys(txn_->range("w/")), (strings{"w/1", "w/3", "w/4", "w/5"}));
  txn_->put("w/2", 2);
  txn_->put("w/0", 0);
  txn_->erase("w/5");
  txn_->commit_input();
  txn_->begin_input(4);
  EXPECT_EQ(keys(txn_->range("w/")), (strings{"w/0", "w/1", "w/2", "w/3", "w/4"}));
  EXPECT_EQ(txn_->count("w/"), 5u);
  txn_->put("w/6", 6);  // the input's own write, then kept
  EXPECT_EQ(txn_->count("w/"), 6u);
  txn_->commit_input();
  txn_->begin_input(5);
  EXPECT_EQ(keys(txn_->range("w/", "w/4")), (strings{"w/4", "w/6"}));
}

TEST_F(batch_txn_range_test, ADiscardedInputIsNotSeen) {
  txn_->begin_input(2);
  txn_->put("w/2", 2);
  txn_->erase("w/1");
  txn_->discard_input();
  txn_->begin_input(3);
  EXPECT_EQ(keys(txn_->range("w/")), (strings{"w/1", "w/3", "w/5"}));
  EXPECT_EQ(txn_->count("w/"), 3u);
}

TEST_F(batch_txn_range_test, PagesWithNextAcrossCommittedAndWrittenKeys) {
  txn_->begin_input(2);
  txn_->put("w/2", 2);
  txn_->erase("w/3");
  txn_->put("w/4", 4);
  auto first = txn_->range("w/", "", 2);
  EXPECT_EQ(keys(first), (strings{"w/1", "w/2"}));
  ASSERT_EQ(first.next, std::optional<std::string>("w/4"));  // w/3 is erased
  auto second = txn_->range("w/", *first.next, 2);
  EXPECT_EQ(keys(second), (strings{"w/4", "w/5"}));
  EXPECT_EQ(second.next, std::nullopt);
  EXPECT_EQ(txn_->range("w/", "", 0).next, std::optional<std::string>("w/1"));
}

TEST_F(batch_txn_range_test, AnErasedLastKeyLeavesNoNext) {
  txn_->begin_input(2);
  txn_->erase("w/5");
  auto p = txn_->range("w/", "", 2);
  EXPECT_EQ(keys(p), (strings{"w/1", "w/3"}));
  EXPECT_EQ(p.next, std::nullopt);
}

TEST_F(batch_txn_range_test, PrivateRangesMergeThePrivateStateOnly) {
  txn_->begin_input(2);
  txn_->put_private("p/2", 2);
  txn_->commit_input();
  txn_->begin_input(3);
  txn_->erase_private("p/1");
  EXPECT_EQ(keys(txn_->range_private("p/")), (strings{"p/2", "p/3"}));
  EXPECT_EQ(txn_->count_private("p/"), 2u);
  EXPECT_EQ(txn_->count("p/"), 0u);
  EXPECT_EQ(txn_->count_private("w/"), 0u);
}

TEST_F(batch_txn_range_test, RangesAgreeWithTheReferenceOverRandomWrites) {
  memory_view reference;
  reference.apply(1, [](view_txn& tx) {
    tx.put("w/1", 1);
    tx.put("w/3", 3);
    tx.put("w/5", 5);
    tx.put("x", 0);
  });
  std::mt19937 rng(7);
  auto random_key = [&] { return "w/" + std::to_string(rng() % 12); };
  for (uint64_t offset = 2; offset < 60; ++offset) {
    txn_->begin_input(offset);
    bool keep = rng() % 5 != 0;
    std::vector<std::pair<std::string, std::optional<int>>> writes;
    for (int i = 0; i < 4; ++i) {
      auto key = random_key();
      std::optional<int> v;
      if (rng() % 3 != 0) v = static_cast<int>(rng() % 100);
      writes.emplace_back(key, v);
    }
    auto apply = [&](view_txn& tx) {
      for (auto& [k, v] : writes) {
        if (v) tx.put(k, *v);
        else tx.erase(k);
      }
    };
    apply(*txn_);
    if (keep) {
      txn_->commit_input();
      reference.apply(offset, apply);
    } else {
      txn_->discard_input();
    }
    txn_->begin_input(offset);  // a fresh input: compare the merged views
    auto expected = reference.range("w/", "", 1000);
    ASSERT_EQ(keys(txn_->range("w/")), keys(expected)) << "offset " << offset;
    for (size_t i = 0; i < expected.items.size(); ++i)
      EXPECT_EQ(txn_->range("w/").items[i].value, expected.items[i].value);
    EXPECT_EQ(txn_->count("w/"), expected.items.size());
    txn_->discard_input();
  }
}

TEST_F(batch_txn_range_test, BytesGrowWithWhatTheBatchHolds) {
  txn_->begin_input(2);
  uint64_t before = txn_->bytes();
  txn_->put("big", std::string(10'000, 'x'));
  txn_->commit_input();
  EXPECT_GE(txn_->bytes(), before + 10'000);
}

// --- blind writes: the same state, changelog and digest as looked-up writes ---

// Text of a batch of changes, for comparisons.
std::string text_of(const std::vector<offset_changes>& batch) {
  std::string out;
  for (const auto& e : batch) {
    out += std::to_string(e.offset) + ":";
    for (const auto& c : e.changes) out += " " + c.key + "=" + c.value.value_or("-");
    out += "\n";
  }
  return out;
}

std::string text_of(const std::optional<json>& v) { return v ? dump_compact(*v) : "-"; }

// Two stores get the same inputs: one through writes that read nothing first
// (blind: the batch has not seen the key), one reading every key before
// writing it (each value looked up, as before blind writes existed). Puts of
// the committed value, of another value, erases of present and of missing
// keys, keys written twice in a batch, discarded inputs, counts and warm
// caches, values equal as JSON but not as text: state, changelog, digest and
// the batches as committed (what the runner publishes) must be the same.
TEST(blind_write_test, GivesTheStateChangelogAndDigestOfLookedUpWrites) {
  temp_dir dir;
  auto env = environment::open(dir.path()).value();
  auto blind_store = view_store::open(*env, "blind", 1).value();
  auto read_store = view_store::open(*env, "read", 1).value();
  offset_changes seed{1, {}};
  for (int i = 0; i < 16; i += 2)
    seed.changes.push_back({"k" + std::to_string(10 + i), std::to_string(i % 3)});
  ASSERT_TRUE(blind_store->commit({seed}, 1));
  ASSERT_TRUE(read_store->commit({seed}, 1));
  std::mt19937 rng(11);
  batch_txn::warm_cache blind_warm, read_warm;
  uint64_t offset = 1;
  for (int batch = 0; batch < 40; ++batch) {
    batch_txn blind_txn(*blind_store, std::exchange(blind_warm, {}));
    batch_txn read_txn(*read_store, std::exchange(read_warm, {}));
    // The blind batch reads the state from this input on (12: never), so
    // that some keys are written several times before any read.
    const int reads_from = static_cast<int>(rng() % 13);
    for (int input = 0; input < 12; ++input) {
      ++offset;
      blind_txn.begin_input(offset);
      read_txn.begin_input(offset);
      const int writes = 1 + static_cast<int>(rng() % 4);
      for (int w = 0; w < writes; ++w) {
        const std::string key = "k" + std::to_string(10 + rng() % 20);
        const bool erase = rng() % 4 == 0;
        // Equal as JSON numbers but written differently (1 and 1.0, 0.0 and
        // -0.0): a change either way, blind or looked up. Different as JSON
        // but written the same (NaN and null; two invalid UTF-8 strings,
        // both written U+FFFD): no change either way.
        // Equal as JSON but not as text: -1 and 2^64 - 1; different as JSON
        // but the same text inside arrays and objects too.
        static const json values[] = {0, 1, 2, 1.0, 0.0, -0.0, std::nan(""), nullptr, "\xff", "\xfe",
                                      -1, json(UINT64_MAX),
                                      json::array({std::nan(""), "\xff"}),
                                      json::array({nullptr, "\xfe"}),
                                      json::object({{"a", 1}}), json::object({{"a", 1.0}})};
        const json value = values[rng() % std::size(values)];
        // Reads of other keys between the writes: some keys are known when written.
        const std::string other = "k" + std::to_string(10 + rng() % 20);
        if (input >= reads_from && rng() % 3 == 0) {
          EXPECT_EQ(text_of(blind_txn.get(other)), text_of(read_txn.get(other)));
        }
        read_txn.get(key);
        if (erase) {
          blind_txn.erase(key);
          read_txn.erase(key);
        } else {
          blind_txn.put(key, value);
          read_txn.put(key, value);
        }
      }
      if (input >= reads_from && rng() % 8 == 0) {
        EXPECT_EQ(blind_txn.count("k"), read_txn.count("k")) << offset;
      }
      if (rng() % 10 == 0) {
        blind_txn.discard_input();
        read_txn.discard_input();
      } else {
        blind_txn.commit_input();
        read_txn.commit_input();
      }
    }
    auto blind_changes = blind_txn.take_changes();
    auto blind_marks = blind_txn.take_blind_changes();
    auto read_changes = read_txn.take_changes();
    EXPECT_TRUE(read_txn.take_blind_changes().empty());
    ASSERT_TRUE(blind_store->commit(blind_changes, blind_marks, offset));
    ASSERT_TRUE(read_store->commit(read_changes, {}, offset));
    ASSERT_EQ(text_of(blind_changes), text_of(read_changes)) << "batch " << batch;
    EXPECT_EQ(blind_store->digest(), read_store->digest()) << "batch " << batch;
    if (batch % 3 != 0) {  // warm caches carried into the next batch, or not
      blind_warm = blind_txn.warm();
      read_warm = read_txn.warm();
    }
  }
  auto blind_log = blind_store->changes_since(0, 100'000).value();
  auto read_log = read_store->changes_since(0, 100'000).value();
  EXPECT_EQ(text_of(blind_log.entries), text_of(read_log.entries));
  auto blind_snap = blind_store->snapshot().value();
  auto read_snap = read_store->snapshot().value();
  auto blind_state = blind_snap.range("", "", 1000).value();
  auto read_state = read_snap.range("", "", 1000).value();
  ASSERT_EQ(blind_state.items.size(), read_state.items.size());
  for (size_t i = 0; i < blind_state.items.size(); ++i) {
    EXPECT_EQ(blind_state.items[i].key, read_state.items[i].key);
    EXPECT_EQ(blind_state.items[i].value, read_state.items[i].value);
  }
  // Recomputed from the state, the digest is the one the commits kept.
  view_digest recomputed;
  for (const auto& item : blind_state.items) recomputed.add(item.key, item.value);
  EXPECT_EQ(blind_store->digest(), recomputed);
}

// --- waiter_registry ---

class waiters_test : public ::testing::Test {
 protected:
  // Declared before the registry, which answers its waiters when destroyed.
  std::atomic<uint64_t> offset_{0};
  std::vector<status> results_;
  std::mutex mu_;
  waiter_registry waiters_{[this](size_t) { return offset_.load(); }};

  waiter_registry::callback record() {
    return [this](status s) {
      std::lock_guard<std::mutex> lock(mu_);
      results_.push_back(s);
    };
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu_);
    return results_.size();
  }
  auto later() { return waiter_registry::clock::now() + 20s; }
};

TEST_F(waiters_test, AReachedOffsetAnswersAtOnce) {
  offset_ = 5;
  waiters_.wait(0, 5, later(), record());
  ASSERT_EQ(count(), 1u);
  EXPECT_TRUE(results_[0]);
}

TEST_F(waiters_test, NotifyAnswersTheWaitersItReached) {
  waiters_.wait(0, 3, later(), record());
  waiters_.wait(0, 9, later(), record());
  offset_ = 4;
  waiters_.notify(0, 4);
  ASSERT_EQ(count(), 1u);
  EXPECT_TRUE(results_[0]);
  EXPECT_EQ(waiters_.size(), 1u);
}

TEST_F(waiters_test, NotifyOfAnotherViewAnswersNobody) {
  waiters_.wait(0, 3, later(), record());
  waiters_.notify(1, 10);
  EXPECT_EQ(count(), 0u);
}

TEST_F(waiters_test, ADeadlineAnswersNotCaughtUpOnce) {
  waiters_.wait(0, 3, waiter_registry::clock::now() + 30ms, record());
  for (int i = 0; i < 500 && count() == 0; ++i) std::this_thread::sleep_for(10ms);
  offset_ = 3;
  waiters_.notify(0, 3);
  ASSERT_EQ(count(), 1u);
  EXPECT_EQ(results_[0].code(), errc::not_caught_up);
}

TEST_F(waiters_test, ShutdownAnswersEveryWaiterUnavailable) {
  waiters_.wait(0, 3, later(), record());
  waiters_.shutdown();
  waiters_.wait(0, 4, later(), record());
  ASSERT_EQ(count(), 2u);
  EXPECT_EQ(results_[0].code(), errc::unavailable);
  EXPECT_EQ(results_[1].code(), errc::unavailable);
}

// --- view_slot: statuses ---

class view_slot_test : public ::testing::Test {
 protected:
  view_info info(uint64_t head) { return slot_.info(head, 10); }
  view_slot slot_{view_def("v", 2).from_log().apply([](const event&, view_txn&) {}), 0};
};

TEST_F(view_slot_test, IsStoppedUntilActive) {
  EXPECT_EQ(info(0).status, view_status::stopped);
}

TEST_F(view_slot_test, IsRunningWhenAtMostLiveBatchBehind) {
  slot_.set_active(false);
  slot_.publish_offset(90);
  EXPECT_EQ(info(100).status, view_status::running);
  EXPECT_EQ(info(101).status, view_status::catching_up);
  EXPECT_EQ(info(101).lag, 11u);
}

TEST_F(view_slot_test, ANewVersionRebuildsUntilItCaughtUp) {
  slot_.set_active(true);
  EXPECT_EQ(info(1000).status, view_status::rebuilding);
  slot_.set_caught_up();
  EXPECT_EQ(info(1000).status, view_status::catching_up);
}

TEST_F(view_slot_test, AFailureStaysUntilActiveAgain) {
  slot_.set_active(false);
  slot_.set_failed(7, "boom");
  slot_.set_stopped();
  auto v = info(10);
  EXPECT_EQ(v.status, view_status::failed);
  EXPECT_EQ(v.failed_offset, 7u);
  EXPECT_EQ(v.error, "boom");
  slot_.set_active(false);
  EXPECT_EQ(info(10).error, "");
}

// --- logging ---

TEST(logging_test, ParsesLevelNames) {
  EXPECT_EQ(parse_log_level("DEBUG"), log_level::debug);
  EXPECT_EQ(parse_log_level("warning"), log_level::warn);
  EXPECT_EQ(parse_log_level("nonsense", log_level::info), log_level::info);
}

TEST(logging_test, IsQuietByDefault) {
  // The tests run without DERIVE_LOG_LEVEL: warnings and errors only.
  if (std::getenv("DERIVE_LOG_LEVEL")) GTEST_SKIP() << "DERIVE_LOG_LEVEL is set";
  EXPECT_EQ(current_log_level(), log_level::warn);
  EXPECT_FALSE(log_enabled(log_level::info));
}

TEST(logging_test, WritesOneLinePerMessageAtOrAboveTheLevel) {
  auto before = current_log_level();
  set_log_level(log_level::info);
  ::testing::internal::CaptureStderr();
  log_info("unit", "two\nlines ", 42);
  log_debug("unit", "hidden");
  auto out = ::testing::internal::GetCapturedStderr();
  set_log_level(before);
  EXPECT_NE(out.find("INFO  [unit] two lines 42\n"), std::string::npos);
  EXPECT_EQ(out.find("hidden"), std::string::npos);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
}

}  // namespace
}  // namespace derive::testing
