// The view runner, deterministically: woken only by head messages (no
// polling), large transactions when behind, small ones when live, and it
// publishes each commit after it is durable.

#include <lmdb.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <mutex>
#include <thread>

#include "actors/messages.hpp"
#include "actors/view_runner.hpp"
#include "tests/actors/deterministic.hpp"
#include "tests/actors/views_fixture.hpp"

namespace derive::testing {
namespace {

class runner_test : public deterministic_fixture {
 protected:
  // `live_pending`: the runtime's question "is live work pending?" (a slot
  // not served yields to it; slot_ is not served unless a test says so).
  void start_runner(uint64_t live_batch, uint64_t catch_up_batch,
                    std::function<bool()> live_pending = nullptr,
                    size_t read_chunk_bytes = size_t{1} << 20, size_t read_chunk = 10) {
    slot_.attach(view_store::open(*env_, "counts", 1).value());
    slot_.set_active(false);
    runner_context ctx;
    ctx.slot = &slot_;
    ctx.log = log_.get();
    ctx.live_batch = live_batch;
    ctx.catch_up_batch = catch_up_batch;
    ctx.read_chunk = read_chunk;
    ctx.read_chunk_bytes = read_chunk_bytes;
    ctx.building_wait = std::chrono::milliseconds(50);
    ctx.live_pending = std::move(live_pending);
    ctx.published = [this](view_slot& s, uint64_t offset, std::vector<offset_changes>& changes) {
      published_.push_back(offset);
      published_changes_ += changes.size();
      offset_seen_by_callback_ = s.offset();
    };
    runner_ = spawn_view_runner(sys_, std::move(ctx), false);
    sched().run();
  }
  void announce(uint64_t head) {
    caf::anon_send(runner_, head_atom::value, head);
    sched().run();
  }

  // Runs the runner over the log as it is; before its first commit the head
  // moves on by 50 events (its head message arrives while the batch runs,
  // as the sequencer's would). txn_at_ gets (offset, LMDB's last transaction id)
  // at each publication.
  void run_overtaken_batches(uint64_t step_changes) {
    slot_.attach(view_store::open(*env_, "counts", 1).value());
    slot_.set_active(false);
    runner_context ctx;
    ctx.slot = &slot_;
    ctx.log = log_.get();
    ctx.live_batch = 4;
    ctx.catch_up_batch = 100;
    ctx.step_changes = step_changes;
    ctx.before_commit = [this](view_slot&, uint64_t) {
      if (!std::exchange(appended_, true))  // the head moves on, its message waits
        caf::anon_send(runner_, head_atom::value, append_to_log(50));
      return status::ok();
    };
    ctx.published = [this](view_slot&, uint64_t offset, std::vector<offset_changes>&) {
      MDB_envinfo info;
      mdb_env_info(env_->handle(), &info);
      txn_at_.emplace_back(offset, info.me_last_txnid);
    };
    runner_ = spawn_view_runner(sys_, std::move(ctx), false);
    sched().run();
  }

  view_slot slot_{counts_view(), 0};
  caf::actor runner_;
  std::vector<uint64_t> published_;
  size_t published_changes_ = 0;
  uint64_t offset_seen_by_callback_ = 0;
  bool appended_ = false;
  std::vector<std::pair<uint64_t, uint64_t>> txn_at_;
};

TEST_F(runner_test, CatchesUpAtStartWithoutBeingTold) {
  append_to_log(10);
  start_runner(4, 100);
  EXPECT_EQ(slot_.offset(), 10u);
}

TEST_F(runner_test, IsWokenOnlyByHeadMessages) {
  start_runner(4, 100);
  uint64_t head = append_to_log(10);
  sched().run();
  EXPECT_EQ(slot_.offset(), 0u);  // nothing polls the log
  announce(head);
  EXPECT_EQ(slot_.offset(), head);
}

TEST_F(runner_test, WorksInLargeBatchesWhenFarBehind) {
  start_runner(4, 100);
  announce(append_to_log(250));
  EXPECT_EQ(published_, (std::vector<uint64_t>{100, 200, 250}));
}

// A read that ends at its byte bound is not the head: the batch reads on.
TEST_F(runner_test, ReadsBoundedByBytesStillFillTheirBatches) {
  start_runner(4, 100, nullptr, 1);  // one event per read
  announce(append_to_log(250));
  EXPECT_EQ(published_, (std::vector<uint64_t>{100, 200, 250}));
}

TEST_F(runner_test, WorksInSmallBatchesWhenLive) {
  start_runner(4, 100);
  announce(append_to_log(3));
  EXPECT_EQ(published_, (std::vector<uint64_t>{3}));
  EXPECT_EQ(slot_.commits.load(), 1u);
}

TEST_F(runner_test, PublishesAfterTheOffsetIsVisible) {
  start_runner(4, 100);
  announce(append_to_log(2));
  EXPECT_EQ(offset_seen_by_callback_, 2u);
  EXPECT_EQ(published_changes_, 2u);  // one entry per event (each changes its count)
  EXPECT_EQ(slot_.store()->offset(), 2u);
}

TEST_F(runner_test, CountsAppliedInputs) {
  start_runner(4, 100);
  announce(append_to_log(7));
  EXPECT_EQ(slot_.applied.load(), 7u);
}

// LMDB reuses the pages a commit freed only from the second commit after it:
// a catch-up batch that leaves the view behind is followed by a step (a
// small transaction, view_store::step) so that the next batch reuses them.
// "Behind" is the source's head as of the commit, not as announced before
// the batch: the head that moves while a batch runs is still in the
// mailbox (the last batches of docsearch's load grew the file by a copy of
// the search index each).
TEST_F(runner_test, StepsAfterABatchThatTheHeadOvertookWhileItRan) {
  append_to_log(10);
  run_overtaken_batches(100);
  ASSERT_EQ(txn_at_.size(), 2u);
  EXPECT_EQ(txn_at_[0].first, 10u);
  EXPECT_EQ(txn_at_[1].first, 60u);
  EXPECT_EQ(txn_at_[1].second, txn_at_[0].second + 2);  // the step, then the commit
}

// A live batch (it started within live_batch of its source) is followed by
// a step too when it changed at least step_changes keys: docsearch's live
// batches of a few hundred documents' postings rewrite most of the index's
// leaves, and without the step the file grew by a copy of them.
TEST_F(runner_test, StepsAfterALiveBatchThatChangedManyKeys) {
  append_to_log(3);  // within live_batch (4): a live batch of 3 inputs, 6 key changes
  run_overtaken_batches(6);
  ASSERT_EQ(txn_at_.size(), 2u);
  EXPECT_EQ(txn_at_[0].first, 3u);
  EXPECT_EQ(txn_at_[1].first, 53u);
  EXPECT_EQ(txn_at_[1].second, txn_at_[0].second + 2);  // the step, then the commit
}

TEST_F(runner_test, TakesNoStepAfterASmallLiveBatch) {
  append_to_log(3);
  run_overtaken_batches(7);  // 6 key changes < 7
  ASSERT_EQ(txn_at_.size(), 2u);
  EXPECT_EQ(txn_at_[0].first, 3u);
  EXPECT_EQ(txn_at_[1].first, 53u);
  EXPECT_EQ(txn_at_[1].second, txn_at_[0].second + 1);  // the next commit only
}

// A version built beside the served one yields to live work
// (docs/storage.md, "Building at a lower priority"): while a served view is
// behind, it puts its batches off, for at most building_wait in a row; then
// it runs one small batch (a 64th) all the same, and goes on at full size
// once live work is done.
TEST_F(runner_test, AVersionNotServedPutsItsBatchesOffWhileLiveWorkIsPending) {
  std::atomic<bool> pending{true};
  const uint64_t head = append_to_log(1000);
  start_runner(4, 640, [&] { return pending.load(); });
  EXPECT_EQ(slot_.offset(), 0u);  // put off, not run
  std::this_thread::sleep_for(std::chrono::milliseconds(60));  // > building_wait
  sched().trigger_timeouts();
  sched().run();
  EXPECT_EQ(published_, (std::vector<uint64_t>{10}));  // one batch of 640 / 64, whole
  pending = false;
  sched().trigger_timeouts();
  sched().run();
  EXPECT_EQ(slot_.offset(), head);
}

TEST_F(runner_test, AVersionNotServedEndsItsBatchWhenLiveWorkArrives) {
  int asked = 0;  // live work arrives after the first question, and is done at the fourth
  const uint64_t head = append_to_log(100);
  start_runner(4, 100, [&] { return ++asked > 1 && asked < 4; });
  EXPECT_EQ(published_, (std::vector<uint64_t>{10}));  // one read chunk, then it yields
  sched().trigger_timeouts();  // its batch put off (third question) runs now
  sched().run();
  EXPECT_EQ(slot_.offset(), head);
}

// Within a read of 256 inputs it looks for live work every 64.
TEST_F(runner_test, AVersionNotServedLooksForLiveWorkWithinALargeRead) {
  int asked = 0;  // live work arrives after the first question, and is done at the fourth
  const uint64_t head = append_to_log(300);
  start_runner(4, 300, [&] { return ++asked > 1 && asked < 4; }, size_t{1} << 20, 256);
  EXPECT_EQ(published_, (std::vector<uint64_t>{64}));
  sched().trigger_timeouts();
  sched().run();
  EXPECT_EQ(slot_.offset(), head);
}

// ... but only while it gains on its source (the trail guard): a version that
// applied less than twice what its source grew by over a window of
// building_recent builds the next window without yielding, so that a rebuild
// still converges when live input outruns what yielding lets it apply (here
// 100 new inputs per round against one batch of 640 / 64 per building_wait).
TEST_F(runner_test, AVersionNotServedThatLosesGroundToLiveInputStopsYielding) {
  std::atomic<bool> pending{true};  // live work always pending
  start_runner(4, 640, [&] { return pending.load(); });
  uint64_t head = 0;
  bool caught_up = false;
  for (int round = 0; round < 20 && !caught_up; ++round) {
    head = append_to_log(100);
    announce(head);
    std::this_thread::sleep_for(std::chrono::milliseconds(60));  // > building_wait
    sched().trigger_timeouts();
    sched().run();
    caught_up = slot_.offset() == head;
  }
  EXPECT_TRUE(caught_up) << "offset " << slot_.offset() << " of " << head;
  pending = false;  // nothing left put off for the fixture's end
  sched().trigger_timeouts();
  sched().run();
}

TEST_F(runner_test, AServedVersionDoesNotWaitForLiveWork) {
  slot_.serving = true;
  append_to_log(250);
  start_runner(4, 100, [] { return true; });
  EXPECT_EQ(published_, (std::vector<uint64_t>{100, 200, 250}));
}

// A batch whose time runs out before its first input still applies one: on
// a busy machine the deadline can pass while the first chunk is read, and a
// batch without progress would read as the end of the source (an audit's
// replay failed with "the source of view ... ends at offset").
TEST_F(runner_test, ABatchOutOfTimeBeforeItsFirstInputStillAppliesOne) {
  slot_.attach(view_store::open(*env_, "counts", 1).value());
  slot_.serving = true;  // a served slot's batch runs for batch_time: none here
  const uint64_t head = append_to_log(5);
  runner_context ctx;
  ctx.slot = &slot_;
  ctx.log = log_.get();
  ctx.batch_time = std::chrono::milliseconds(0);
  std::atomic<bool> cancel{false};
  uint64_t inputs = 0;
  std::optional<uint64_t> failed_offset;
  auto st = replay_until(ctx, head, cancel, inputs, failed_offset);
  EXPECT_TRUE(st) << st.to_string();
  EXPECT_EQ(inputs, head);
  EXPECT_EQ(slot_.store()->offset(), head);
}

// ---- commits beside the runner -------------------------------------------------

// A served view far behind, committing its catch-up batches beside the
// runner: each publication records its offset and the thread it ran on.
class beside_test : public deterministic_fixture {
 protected:
  // `run`: let the runner work until it has nothing left to do.
  // `views`: the store's environment (default: the log's).
  void start(view_def def, std::mutex* commit_mu = nullptr, bool run = true,
             environment* views = nullptr) {
    slot_ = std::make_unique<view_slot>(std::move(def), 0);
    slot_->attach(view_store::open(views ? *views : *env_, slot_->name(), 1).value());
    slot_->serving = true;
    slot_->set_active(false);
    runner_context ctx;
    ctx.slot = slot_.get();
    ctx.log = log_.get();
    ctx.live_batch = 4;
    ctx.catch_up_batch = 100;
    ctx.read_chunk = 10;
    ctx.commit_beside = true;
    ctx.commit_mu = commit_mu;
    ctx.published = [this](view_slot& s, uint64_t offset, std::vector<offset_changes>&) {
      published_.push_back(offset);
      on_runner_thread_.push_back(std::this_thread::get_id() == runner_thread_);
      offset_seen_by_callback_.push_back(s.offset());
      if (on_publish_) on_publish_(offset);
    };
    runner_ = spawn_view_runner(sys_, std::move(ctx), false);
    if (run) sched().run();
  }
  state_map state() { return read_all(slot_->store()->snapshot().value()); }

  temp_dir views_dir_;
  std::unique_ptr<environment> views_;  // outlives slot_'s store
  std::unique_ptr<view_slot> slot_;
  caf::actor runner_;
  const std::thread::id runner_thread_ = std::this_thread::get_id();  // the test coordinator's
  std::vector<uint64_t> published_;
  std::vector<bool> on_runner_thread_;
  std::vector<uint64_t> offset_seen_by_callback_;
  std::function<void(uint64_t)> on_publish_;
};

// Holds `mu` on a thread of its own from construction until release() (or
// destruction): a commit beside the runner waits for it.
class mutex_holder {
 public:
  explicit mutex_holder(std::mutex& mu)
      : thread_([this, &mu] {
          std::unique_lock<std::mutex> lock(mu);
          held_ = true;
          while (!released_) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }) {
    while (!held_) std::this_thread::yield();
  }
  ~mutex_holder() {
    release();
    thread_.join();
  }
  void release() { released_ = true; }

 private:
  std::atomic<bool> held_{false};
  std::atomic<bool> released_{false};
  std::thread thread_;
};

// Every catch-up batch that leaves the view behind commits on the thread
// beside the runner, in order; the last one, which reaches the head, commits
// on the runner's own thread. The state is the log's, whatever thread
// committed it.
TEST_F(beside_test, CommitsCatchUpBatchesBesideTheRunnerInOrder) {
  append_to_log(100, "a");
  append_to_log(100, "b");
  append_to_log(50, "a");
  start(counts_view());
  EXPECT_EQ(published_, (std::vector<uint64_t>{100, 200, 250}));
  EXPECT_EQ(on_runner_thread_, (std::vector<bool>{false, false, true}));
  EXPECT_EQ(offset_seen_by_callback_, (std::vector<uint64_t>{100, 200, 250}));
  EXPECT_EQ(slot_->commits.load(), 3u);
  EXPECT_EQ(slot_->applied.load(), 250u);
  EXPECT_EQ(state(), (state_map{{"a", json(150)}, {"b", json(100)}, {"_total", json(250)}}));
}

// A batch that reads a key its warm cache lacks waits for the commit beside
// it first: here the first batch writes "x" blind (never reading the state,
// so it leaves no warm cache) while its commit is held up, and the second
// reads "x" back.
TEST_F(beside_test, ABatchReadsTheStoreOnlyOnceTheCommitBesideItLanded) {
  append_to_log(100, "set");
  append_to_log(150, "copy");
  std::mutex commit_mu;
  mutex_holder holder(commit_mu);
  // The second batch reads "x" while the first batch's commit waits for the
  // mutex: the read must wait for that commit (the holder lets go meanwhile).
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    holder.release();
  });
  start(view_def("copies").from_log().apply([](const event& e, view_txn& tx) {
    if (e.type == "set") tx.put("x", e.offset);
    else tx.put("copy", tx.get("x").value_or(0));
  }), &commit_mu);
  releaser.join();
  EXPECT_EQ(published_, (std::vector<uint64_t>{100, 200, 250}));
  EXPECT_EQ(state(), (state_map{{"x", json(100)}, {"copy", json(100)}}));
}

// A commit beside the runner that fails drops the batch applied on top of
// it: here the second batch's documents overflow a small map, the third
// (which writes little and would fit) is dropped, and the view pauses at
// the first batch's offset with its state, instead of committing the third
// over the missing second.
TEST_F(beside_test, ABatchAppliedOnAFailedCommitIsDropped) {
  environment_options o;
  o.mode = durability::relaxed;
  o.map_size = uint64_t{512} << 10;
  views_ = environment::open(views_dir_.path(), o).value();
  append_to_log(100, "small");
  append_to_log(100, "doc");
  append_to_log(100, "small");
  start(view_def("docs").from_log().apply([](const event& e, view_txn& tx) {
    if (e.type == "doc") tx.put("doc" + std::to_string(e.offset), std::string(8000, 'x'));
    tx.put("_total", tx.get("_total").value_or(0).get<int64_t>() + 1);
  }), nullptr, true, views_.get());
  EXPECT_EQ(published_, (std::vector<uint64_t>{100}));
  EXPECT_EQ(slot_->offset(), 100u);
  EXPECT_FALSE(slot_->failed());  // paused: it retries until space returns
  EXPECT_EQ(state(), (state_map{{"_total", json(100)}}));
  caf::anon_send(runner_, stop_atom::value, done_callback{});  // its retry is pending
  sched().run();
}

// Other messages wait for the commit beside the runner: a stop handled
// while the first batch commits beside it finds that batch committed and
// published before it reports the runner stopped.
TEST_F(beside_test, AStopWaitsForTheCommitBesideTheRunner) {
  append_to_log(250);
  std::mutex commit_mu;
  mutex_holder holder(commit_mu);
  start(counts_view(), &commit_mu, false);
  ASSERT_TRUE(sched().try_run_once());  // the first batch: its commit goes beside, held up
  EXPECT_EQ(slot_->store()->offset(), 0u);
  uint64_t offset_at_stop = 0;
  caf::anon_send<caf::message_priority::high>(
      runner_, stop_atom::value, done_callback{[&] { offset_at_stop = slot_->store()->offset(); }});
  holder.release();
  ASSERT_TRUE(sched().try_run_once());  // the stop, ahead of the next batch
  EXPECT_EQ(offset_at_stop, 100u);
  EXPECT_EQ(published_, (std::vector<uint64_t>{100}));
}

// A commit beside the runner that throws (here its publication) fails the
// view with the error, as a failed commit does; the runner lives on.
TEST_F(beside_test, ACommitBesideTheRunnerThatThrowsFailsTheView) {
  append_to_log(250);
  on_publish_ = [](uint64_t offset) {
    if (offset == 100) throw std::runtime_error("publication refused");
  };
  start(counts_view());
  EXPECT_TRUE(slot_->failed());
  EXPECT_EQ(slot_->store()->offset(), 100u);  // committed before the publication threw
  bool alive = false;
  caf::anon_send(runner_, run_atom::value, done_callback{[&] { alive = true; }});
  sched().run();
  EXPECT_TRUE(alive);
}

}  // namespace
}  // namespace derive::testing
