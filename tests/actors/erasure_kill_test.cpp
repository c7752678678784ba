// SIGKILL at each of the 12 crash points of an erasure (docs/storage.md,
// "Erasure", core/crash_point.hpp): a child fills a log with alice's and
// bob's documents, forgets alice with DERIVE_CRASH_POINT set and dies there.
// After a restart:
//  - the erasure completes by itself, with one receipt that names offsets
//    (a forget queued behind it gets a receipt without),
//  - every view equals a recomputation from the redacted log,
//  - after the next start (compaction) no file holds alice's bytes (the
//    views' checkpoints after alice's first event included),
//  - bob's documents are untouched.

#include <fstream>
#include <future>
#include <iterator>
#include <thread>

#include "tests/actors/views_fixture.hpp"
#include "tests/common/child_process.hpp"

namespace derive::testing {
namespace {

using namespace std::chrono_literals;

constexpr int people = 60;  // documents each for alice and bob
const std::string alice_mark = "zqALICEsecret";

std::vector<view_def> views() {
  return {view_def("docs").from_log().apply([](const event& e, view_txn& tx) {
            if (e.type == "doc.put") tx.put(e.key, json::parse(e.data));
          }),
          view_def("titles").from_view("docs").apply_change(
              [](const upstream_change& c, view_txn& tx) {
                if (c.value) tx.put(c.key, (*c.value)["title"]);
                else tx.erase(c.key);
              })};
}

runtime_options options(const std::string& dir) {
  runtime_options o;
  o.data_dir = dir;
  o.storage.map_size = uint64_t{1} << 30;
  o.views_storage.map_size = uint64_t{1} << 30;
  o.view_checkpoint_every = 16;  // checkpoints before and after alice's first event
  o.view_checkpoints_kept = 8;
  return o;
}

event_input doc(const std::string& key, const std::string& title, const std::string& subject) {
  event_input e = make_event("doc.put", key, json{{"title", title}});
  e.subject = subject;
  return e;
}

// The child: fills the log, forgets alice (compacting online), then stops and
// starts again (the compaction at open, when a crash left it pending); it
// must die at `point` on the way.
[[noreturn]] void child_main(const std::string& dir, const std::string& point) {
  ::setenv("DERIVE_CRASH_POINT", point.c_str(), 1);
  {
    runtime rt(options(dir));
    for (auto& v : views()) rt.add_view(v);
    if (!rt.start()) ::_exit(3);
    // bob's first 40 documents (offsets 1..40), then alice's 60 with bob's
    // last 20 among them: the views restore their checkpoint at 32.
    auto bob = [&](int i) {
      if (!append_sync(rt, make_request({doc("bob-" + std::to_string(i), "bob title", "bob")})))
        ::_exit(3);
      if (!wait_sync(rt, "titles", rt.head(), 30s)) ::_exit(3);  // commits of one event
    };
    for (int i = 0; i < 40; ++i) bob(i);
    for (int i = 0; i < people; ++i) {
      if (!append_sync(rt, make_request({doc("alice-" + std::to_string(i),
                                             alice_mark + std::to_string(i), "alice")},
                                        "alice-key-" + std::to_string(i))))
        ::_exit(3);
      if (i < people - 40) bob(40 + i);
    }
    if (!wait_sync(rt, "titles", rt.head(), 30s)) ::_exit(3);
    std::promise<void> done;
    rt.forget("alice", [&done](result<erasure_receipt>) { done.set_value(); });
    done.get_future().wait();
  }
  runtime rt(options(dir));
  for (auto& v : views()) rt.add_view(v);
  (void)rt.start();
  ::_exit(4);  // never reached the point
}

std::vector<std::string> files_holding(const std::string& dir, const std::string& needle) {
  std::vector<std::string> hits;
  for (auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.find(needle) != std::string::npos) hits.push_back(entry.path().string());
  }
  return hits;
}

class erasure_kill_test : public ::testing::TestWithParam<const char*> {
 protected:
  std::unique_ptr<runtime> start() {
    auto rt = std::make_unique<runtime>(options(dir_.path()));
    for (auto& v : views()) rt->add_view(v);
    EXPECT_TRUE(rt->start());
    return rt;
  }

  // A forget queues behind the resumed erasure, so once it returns that one
  // is complete; checks the log and the views.
  void verify_erased(runtime& rt) {
    std::promise<result<erasure_receipt>> done;
    rt.forget("alice", [&done](result<erasure_receipt> r) { done.set_value(std::move(r)); });
    auto again = done.get_future().get();
    ASSERT_TRUE(again) << again.error().to_string();
    auto log = whole_log(rt);
    size_t receipts = 0, with_offsets = 0;
    for (const auto& e : log) {
      if (e.type != erasure_event_type) continue;
      ++receipts;
      if (e.data.find("\"redacted\":0,") == std::string::npos) ++with_offsets;
    }
    ASSERT_EQ(with_offsets, 1u) << "the erasure did not complete once";
    ASSERT_EQ(log.size(), 2u * people + receipts);
    // The views serve throughout (their old copies while the new generations build).
    for (int i = 0; i < 3000 && !rt.snapshot("titles"); ++i) std::this_thread::sleep_for(10ms);
    ASSERT_TRUE(wait_sync(rt, "titles", rt.head(), 30s));
    memory_view docs;
    for (const auto& e : log) {
      EXPECT_EQ(e.to_json().find(alice_mark), std::string::npos) << e.to_json();
      if (e.subject == "alice") ADD_FAILURE() << "offset " << e.offset << " keeps its subject";
      if (e.redacted || e.type != "doc.put") continue;
      docs.apply(e.offset, [&](view_txn& tx) { tx.put(e.key, json::parse(e.data)); });
    }
    EXPECT_EQ(docs.state().size(), static_cast<size_t>(people));
    EXPECT_EQ(read_view(rt, "docs").state, docs.state());
    auto titles = read_view(rt, "titles").state;
    EXPECT_EQ(titles.size(), static_cast<size_t>(people));
    for (auto& [key, value] : titles) EXPECT_EQ(value, "bob title") << key;
  }

  temp_dir dir_;
};

TEST_P(erasure_kill_test, TheErasureCompletesAfterARestart) {
  const std::string point = GetParam();
  {
    auto child = child_process::fork([&](int) { child_main(dir_.path(), point); });
    ASSERT_TRUE(child.started());
    int wstatus = child.wait();
    ASSERT_TRUE(child_process::killed(wstatus))
        << "the child did not die at " << point << " (exit code " << WEXITSTATUS(wstatus) << ")";
  }
  {
    auto rt = start();
    ASSERT_NO_FATAL_FAILURE(verify_erased(*rt));
  }
  auto rt = start();  // the compaction at open
  for (auto& f : files_holding(dir_.path(), alice_mark)) ADD_FAILURE() << f << " holds alice";
  EXPECT_FALSE(files_holding(dir_.path(), "bob title").empty());  // the scan can find
  ASSERT_NO_FATAL_FAILURE(verify_erased(*rt));
}

INSTANTIATE_TEST_SUITE_P(points, erasure_kill_test,
                         ::testing::Values("erasure_recorded", "before_redaction_commit",
                                           "erasure_redacted", "erasure_generation_built",
                                           "erasure_cut_over", "erasure_views_rebuilt",
                                           "erasure_views_scrubbed",
                                           "erasure_receipts_appended", "erasure_indexes_copied",
                                           "erasure_finished", "erasure_compaction_renamed",
                                           "erasure_compacted"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace derive::testing
