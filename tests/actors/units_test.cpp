// Small parts of actors/: the batch transaction that view code sees, the
// waiter registry behind wait_for, and logging.

#include <atomic>
#include <thread>

#include "actors/batch_txn.hpp"
#include <derive/logging.hpp>
#include "actors/view_slot.hpp"
#include "actors/waiters.hpp"
#include "core/environment.hpp"
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
  txn_->put("a", 1);
  txn_->erase("missing");
  txn_->commit_input();
  EXPECT_TRUE(txn_->take_changes().empty());
  EXPECT_EQ(txn_->inputs(), 1u);
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
