// Specification of processors (include/derive/processor.hpp): outputs are
// appended once per input, before the processor's offset passes the input,
// and a re-run replays instead of appending again.

#include <derive/processor.hpp>
#include <derive/runtime.hpp>

#include "tests/actors/processor_util.hpp"

namespace derive::testing {
namespace {

class processor_test : public ::testing::Test {
 protected:
  runtime_options options() {
    runtime_options o;
    o.data_dir = dir_.path();
    return o;
  }
  temp_dir dir_;
};

TEST_F(processor_test, EveryInputHasExactlyOneSetOfOutputs) {
  runtime rt(options());
  rt.add_processor(echo_processor());
  ASSERT_TRUE(rt.start());
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(append_one(rt, "in", "k" + std::to_string(i)));
  ASSERT_TRUE(wait_quiet(rt, "echo"));
  EXPECT_EQ(verify_outputs(rt), "");
  EXPECT_EQ(rt.head(), 50u * (1 + fanout));
  auto state = read_view(rt, "echo");  // the processor's state is a view
  EXPECT_EQ(state.state["inputs"], json(50));
}

TEST_F(processor_test, OutputsAreKeyedByNameVersionAndInput) {
  runtime rt(options());
  rt.add_processor(echo_processor("echo", 7));
  ASSERT_TRUE(rt.start());
  ASSERT_TRUE(append_one(rt, "in", "a"));
  ASSERT_TRUE(wait_quiet(rt, "echo"));
  auto key = rt.read_log(1, 10);
  ASSERT_TRUE(key);
  auto outcome = processor_def("echo", 7).output_key(1);
  EXPECT_EQ(outcome, "proc/echo/7/1");
  // A retry with the processor's key is a replay of its outputs.
  std::vector<event_input> same;
  for (int i = 0; i < fanout; ++i)
    same.push_back(make_event("out", "a", {{"in", 1}, {"i", i}}));
  auto again = append_sync(rt, make_request(same, outcome));
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(again->first_offset, 2u);
}

// The crash window: outputs durable, the processor's offset not yet past the
// input. Simulated by appending the outputs under the processor's key before
// the processor exists: its run must replay them, not append them again.
TEST_F(processor_test, ReRunAfterOutputsWereAppendedAppendsNothing) {
  {
    runtime rt(options());
    ASSERT_TRUE(rt.start());
    ASSERT_TRUE(append_one(rt, "in", "a"));
    std::vector<event_input> outputs;
    for (int i = 0; i < fanout; ++i)
      outputs.push_back(make_event("out", "a", {{"in", 1}, {"i", i}}));
    ASSERT_TRUE(append_sync(rt, make_request(outputs, echo_processor().output_key(1))));
    ASSERT_TRUE(append_one(rt, "in", "b"));
  }
  runtime rt(options());
  rt.add_processor(echo_processor());
  ASSERT_TRUE(rt.start());
  ASSERT_TRUE(wait_quiet(rt, "echo"));
  EXPECT_EQ(verify_outputs(rt), "");
  EXPECT_EQ(rt.head(), 2u + 2u * fanout);
}

TEST_F(processor_test, ReStartFromCommittedOffsetAppendsNothingAgain) {
  {
    runtime rt(options());
    rt.add_processor(echo_processor());
    ASSERT_TRUE(rt.start());
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(append_one(rt, "in", "k"));
    ASSERT_TRUE(wait_quiet(rt, "echo"));
  }
  runtime rt(options());
  rt.add_processor(echo_processor());
  ASSERT_TRUE(rt.start());
  ASSERT_TRUE(append_one(rt, "in", "last"));
  ASSERT_TRUE(wait_quiet(rt, "echo"));
  EXPECT_EQ(verify_outputs(rt), "");
  EXPECT_EQ(rt.head(), 21u * (1 + fanout));
}

TEST_F(processor_test, DifferentOutputsUnderAKnownKeyFailTheProcessor) {
  {
    runtime rt(options());
    ASSERT_TRUE(rt.start());
    ASSERT_TRUE(append_one(rt, "in", "a"));
    ASSERT_TRUE(append_sync(rt, make_request({make_event("other", "x")},
                                             echo_processor().output_key(1))));
  }
  runtime rt(options());
  rt.add_processor(echo_processor());
  ASSERT_TRUE(rt.start());
  EXPECT_FALSE(wait_sync(rt, "echo", 1, std::chrono::milliseconds(500)));
  auto info = rt.view("echo");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->offset, 0u);
  EXPECT_EQ(rt.head(), 2u);  // nothing appended
}

TEST_F(processor_test, AnInvalidOutputFailsItsInputByThePolicy) {
  runtime rt(options());
  rt.add_processor(processor_def("bad").on_failure(failure_policy::dead_letter)
                       .apply([](const event& e, processor_txn& tx) {
                         if (e.type != "in") return;
                         tx.emit(make_event(e.key == "bad" ? "" : "out", e.key));
                       }));
  ASSERT_TRUE(rt.start());
  ASSERT_TRUE(append_one(rt, "in", "good"));
  auto bad = append_one(rt, "in", "bad");
  ASSERT_TRUE(bad);
  ASSERT_TRUE(wait_quiet(rt, "bad"));
  auto dead = rt.dead_letters("bad");
  ASSERT_TRUE(dead);
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].offset, bad->first_offset);
  EXPECT_EQ(rt.head(), 3u);  // two inputs, one output
}

TEST_F(processor_test, ADerivedProcessorEmitsPerUpstreamOffset) {
  runtime rt(options());
  rt.add_view(view_def("latest").apply([](const event& e, view_txn& tx) {
    if (e.type == "in") tx.put(e.key, e.offset);
  }));
  rt.add_processor(processor_def("watch").from_view("latest").apply_change(
      [](const upstream_change& c, processor_txn& tx) {
        tx.emit(make_event("seen", c.key, {{"at", c.offset}}));
      }));
  ASSERT_TRUE(rt.start());
  ASSERT_TRUE(append_sync(rt, make_request({make_event("in", "a"), make_event("in", "b")})));
  ASSERT_TRUE(wait_quiet(rt, "watch"));
  ASSERT_TRUE(wait_quiet(rt, "latest"));
  auto log = rt.read_log(1, 100);
  ASSERT_TRUE(log);
  ASSERT_EQ(log->size(), 4u);  // one output per upstream offset
  EXPECT_EQ((*log)[2].type, "seen");
  EXPECT_EQ((*log)[3].type, "seen");
}

TEST_F(processor_test, StartRefusesAProcessorWithoutFunction) {
  runtime rt(options());
  rt.add_processor(processor_def("nothing"));
  auto s = rt.start();
  EXPECT_FALSE(s);
  EXPECT_EQ(s.code(), errc::invalid_parameter);
}

}  // namespace
}  // namespace derive::testing
