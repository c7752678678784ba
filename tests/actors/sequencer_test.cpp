// The sequencer, deterministically: group commit forms one transaction of
// every request waiting in the mailbox, a lone request commits at once, and
// requesters hear back only once the commit is durable. Every test runs on a
// journaled log (the runtime's) and on one without a journal.

#include <derive/actor_handles.hpp>
#include "actors/sequencer.hpp"
#include "tests/actors/deterministic.hpp"

namespace derive::testing {
namespace {

class sequencer_test : public deterministic_fixture,
                       public ::testing::WithParamInterface<bool> {
 protected:
  sequencer_test() {
    // durability::full: when a group counts as durable is under test.
    log_.reset();
    env_.reset();
    environment_options o;
    o.map_size = uint64_t{1} << 30;
    o.journal_bytes = journaled() ? 1 << 20 : 0;
    env_ = environment::open(dir_.path(), o).value();
    log_ = event_log::open(*env_).value();
    sequencer_context ctx;
    ctx.log = log_.get();
    ctx.counters = &counters_;
    ctx.max_group = max_group_;
    ctx.committed = [this](uint64_t head) { heads_.push_back(head); };
    seq_ = spawn_sequencer(sys_, std::move(ctx), false);
    sched().run();
  }
  // Sends one append_job, as runtime::append does (after its checks); the
  // outcome lands in outcomes_[index].
  void submit(append_request r) {
    auto checked = check_append(std::move(r));
    ASSERT_TRUE(checked);
    size_t index = outcomes_.size();
    outcomes_.emplace_back(status{errc::unavailable, "no answer yet"});
    caf::anon_send(seq_, append_job{std::move(*checked), [this, index](result<append_outcome> out) {
                                      outcomes_[index] = std::move(out);
                                    }});
  }
  void submit_one(std::string key = "") { submit(make_request({make_event("a", "k")}, key)); }
  uint64_t commits() const { return counters_.commits.load(); }
  bool journaled() const { return GetParam(); }

  size_t max_group_ = 4096;
  sequencer_counters counters_;
  std::vector<uint64_t> heads_;
  std::vector<result<append_outcome>> outcomes_;
  caf::actor seq_;
};

TEST_P(sequencer_test, EveryWaitingRequestJoinsOneCommit) {
  submit_one();
  submit_one();
  submit_one();
  sched().run();
  EXPECT_EQ(commits(), 1u);
  ASSERT_EQ(outcomes_.size(), 3u);
  for (uint64_t i = 0; i < 3; ++i) EXPECT_EQ(outcomes_[i]->first_offset, i + 1);
  EXPECT_EQ(heads_, std::vector<uint64_t>{3});
}

TEST_P(sequencer_test, ALoneRequestCommitsWithoutATimer) {
  submit_one();
  sched().run();  // no timeout is ever triggered
  EXPECT_EQ(commits(), 1u);
  EXPECT_TRUE(outcomes_[0]);
  EXPECT_EQ(log_->head(), 1u);
}

TEST_P(sequencer_test, NoOutcomeBeforeTheCommit) {
  submit_one();
  sched().run_once();  // the request is queued, the flush not yet handled
  EXPECT_FALSE(outcomes_[0]);
  sched().run();
  EXPECT_TRUE(outcomes_[0]);
}

TEST_P(sequencer_test, RequestsArrivingDuringACommitFormTheNextGroup) {
  submit_one();
  sched().run_once();  // handles the request, queues flush
  submit_one();        // lands behind the flush
  submit_one();
  sched().run();
  EXPECT_EQ(commits(), 2u);
  EXPECT_EQ(heads_, (std::vector<uint64_t>{1, 3}));
}

// Pipelined durability: a written group is acknowledged once the next
// group's commit (whose flush makes it durable) or a sync follows it, and
// readers see its events only then.
TEST_P(sequencer_test, TheNextGroupsCommitMakesAWrittenGroupDurable) {
  if (journaled()) GTEST_SKIP() << "journaled: a group is durable when its commit returns";
  submit_one();
  sched().run_once();  // the request; flush queued
  submit_one();        // behind the flush
  sched().run_once();  // the flush: group 1 written, not yet durable
  EXPECT_EQ(log_->written_head(), 1u);
  EXPECT_EQ(log_->head(), 0u);
  EXPECT_FALSE(outcomes_[0]);
  sched().run_once();  // the second request: it waits for the next flush
  sched().run_once();  // its commit flushes group 1's meta page: group 1 is durable
  EXPECT_EQ(log_->written_head(), 2u);
  EXPECT_EQ(log_->head(), 1u);
  EXPECT_TRUE(outcomes_[0]);
  EXPECT_FALSE(outcomes_[1]);
  sched().run();  // nothing waits: one sync
  EXPECT_EQ(log_->head(), 2u);
  EXPECT_TRUE(outcomes_[1]);
  EXPECT_EQ(heads_, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(commits(), 2u);
}

TEST_P(sequencer_test, AReplayOfAWrittenGroupWaitsUntilItIsDurable) {
  if (journaled()) GTEST_SKIP() << "journaled: a group is durable when its commit returns";
  submit_one("key-1");
  sched().run_once();
  submit_one("key-1");
  sched().run_once();  // group 1 written
  sched().run_once();
  sched().run_once();  // group 2: a replay, nothing written, nothing flushed
  EXPECT_EQ(log_->head(), 0u);
  EXPECT_FALSE(outcomes_[0]);
  EXPECT_FALSE(outcomes_[1]);
  sched().run();  // the sync
  ASSERT_TRUE(outcomes_[0] && outcomes_[1]);
  EXPECT_TRUE(outcomes_[1]->replayed);
  EXPECT_EQ(log_->head(), 1u);
}

// With the journal a group is durable after one flush of its record, in its
// commit: it is answered at once, and the next group waits for nothing.
TEST_P(sequencer_test, AJournaledGroupIsAnsweredRightAfterItsCommit) {
  if (!journaled()) GTEST_SKIP() << "without a journal the next commit's flush counts";
  submit_one();
  sched().run_once();  // the request; flush queued
  submit_one();        // behind the flush
  sched().run_once();  // the flush: group 1 committed and durable
  EXPECT_EQ(log_->written_head(), 1u);
  EXPECT_EQ(log_->head(), 1u);
  EXPECT_TRUE(outcomes_[0]);
  EXPECT_FALSE(outcomes_[1]);
  sched().run();
  EXPECT_TRUE(outcomes_[1]);
  EXPECT_EQ(heads_, (std::vector<uint64_t>{1, 2}));
}

TEST_P(sequencer_test, TwoRequestsWithOneKeyInOneGroupAppendOnce) {
  submit_one("idem-1");
  submit_one("idem-1");
  sched().run();
  EXPECT_EQ(commits(), 1u);
  EXPECT_EQ(log_->head(), 1u);
  EXPECT_EQ(outcomes_[0]->first_offset, 1u);
  EXPECT_EQ(outcomes_[1]->first_offset, 1u);
  EXPECT_TRUE(outcomes_[1]->replayed);
}

TEST_P(sequencer_test, AGroupIsCappedAtMaxGroup) {
  // A second sequencer with max_group 2 on the same log.
  sequencer_context ctx;
  ctx.log = log_.get();
  ctx.counters = &counters_;
  ctx.max_group = 2;
  auto small = spawn_sequencer(sys_, std::move(ctx), false);
  std::vector<result<append_outcome>> out(5, status{errc::unavailable, "none"});
  for (size_t i = 0; i < 5; ++i) {
    auto checked = check_append(make_request({make_event("a", "k")}));
    ASSERT_TRUE(checked);
    caf::anon_send(small, append_job{std::move(*checked), [&out, i](result<append_outcome> r) {
                                       out[i] = std::move(r);
                                     }});
  }
  sched().run();
  EXPECT_EQ(commits(), 3u);
  for (auto& r : out) EXPECT_TRUE(r);
}

// An application actor appends through the typed handle.
TEST_P(sequencer_test, AnActorAppendsThroughTheTypedHandle) {
  auto handle = caf::actor_cast<sequencer_actor>(seq_);
  std::optional<append_outcome> got;
  sys_.spawn([&](caf::event_based_actor* self) {
    self->request(handle, caf::infinite, append_atom::value, make_request({make_event("a", "k")}))
        .then([&](const append_outcome& o) { got = o; });
  });
  sched().run();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->first_offset, 1u);
}

TEST_P(sequencer_test, AnInvalidRequestFromAnActorGetsTheStatusAsAnError) {
  auto handle = caf::actor_cast<sequencer_actor>(seq_);
  status got;
  sys_.spawn([&](caf::event_based_actor* self) {
    self->request(handle, caf::infinite, append_atom::value,
                  make_request({make_event("bad type", "k")}))
        .then([](const append_outcome&) {}, [&](caf::error& e) { got = to_status(e); });
  });
  sched().run();
  EXPECT_EQ(got.code(), errc::invalid_event);
  EXPECT_NE(got.message().find("type"), std::string::npos);
  EXPECT_EQ(log_->head(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Log, sequencer_test, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("journaled") : std::string("flushed");
                         });

}  // namespace
}  // namespace derive::testing
