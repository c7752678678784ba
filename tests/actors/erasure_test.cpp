// Specification of runtime::forget: the log is redacted, every view is
// rebuilt from the redacted log, subscribers are reset, clients resuming
// from before the erasure start over, a receipt is appended, and an
// interrupted erasure resumes at the next start.

#include <atomic>
#include <fstream>
#include <iterator>
#include <thread>

#include "test_util.hpp"
#include "core/log.hpp"
#include "core/view_names.hpp"
#include "core/view_store.hpp"

namespace derive::testing {
namespace {

using namespace std::chrono_literals;

view_def docs_view(uint32_t version = 1) {
  return view_def("docs", version).from_log().apply([](const event& e, view_txn& tx) {
    if (e.type == "doc.put") tx.put(e.key, json::parse(e.data));
  });
}

// docs: key -> data; titles (derived): key -> data.title.
std::vector<view_def> views(std::vector<uint32_t> doc_versions = {1}) {
  std::vector<view_def> out;
  for (uint32_t v : doc_versions) out.push_back(docs_view(v));
  out.push_back(view_def("titles").from_view("docs").apply_change(
              [](const upstream_change& c, view_txn& tx) {
                if (c.value) tx.put(c.key, (*c.value)["title"]);
                else tx.erase(c.key);
              }));
  return out;
}

event_input doc(const std::string& key, const std::string& title, const std::string& subject) {
  event_input e = make_event("doc.put", key, json{{"title", title}});
  e.subject = subject;
  return e;
}

result<erasure_receipt> forget_sync(runtime& rt, const std::string& subject) {
  std::promise<result<erasure_receipt>> done;
  auto future = done.get_future();
  rt.forget(subject, [&done](result<erasure_receipt> r) { done.set_value(std::move(r)); });
  return future.get();
}

// The generation of the served copy of `view` (view versions: a forget
// builds a new one beside it).
uint32_t served_generation(runtime& rt, const std::string& view) {
  auto info = rt.view(view);
  if (!info) return UINT32_MAX;
  for (const auto& v : info->versions)
    if (v.role == version_role::serving) return v.generation;
  return UINT32_MAX;
}

// How many copies of `view` are stored and not retired.
size_t generations(runtime& rt, const std::string& view) {
  auto info = rt.view(view);
  if (!info) return 0;
  size_t n = 0;
  for (const auto& v : info->versions) n += v.role != version_role::retired;
  return n;
}

struct recording_sink final : change_sink {
  std::atomic<int> lost{0};
  std::atomic<int> batches{0};
  void on_changes(uint64_t, std::vector<change_ptr>) override { ++batches; }
  void on_lost(uint64_t) override { ++lost; }
};

class erasure_test : public ::testing::Test {
 protected:
  std::unique_ptr<runtime> start(std::vector<uint32_t> doc_versions = {1}) {
    runtime_options o;
    o.data_dir = dir_.path();
    auto rt = std::make_unique<runtime>(o);
    for (auto& v : views(doc_versions)) rt->add_view(v);
    EXPECT_TRUE(rt->start());
    return rt;
  }
  // alice's documents at odd offsets, bob's at even ones.
  void append_people(runtime& rt, int n) {
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(append_sync(rt, make_request({doc("alice-doc-" + std::to_string(i),
                                                    "alice secret title", "alice")},
                                               "alice-idem-" + std::to_string(i))));
      ASSERT_TRUE(append_sync(rt, make_request({doc("bob-doc-" + std::to_string(i), "bob title",
                                                    "bob")})));
    }
  }
  void expect_only_bob(runtime& rt, int n) {
    ASSERT_TRUE(wait_sync(rt, "titles", rt.head()));
    for (const char* view : {"docs", "titles"}) {
      auto v = read_view(rt, view);
      ASSERT_EQ(v.state.size(), static_cast<size_t>(n)) << view;
      for (auto& [k, value] : v.state) {
        EXPECT_EQ(k.rfind("bob-doc-", 0), 0u) << view << ": " << k;
        EXPECT_EQ(value.dump().find("alice"), std::string::npos) << view;
      }
    }
  }
  temp_dir dir_;
};

TEST_F(erasure_test, ForgetRedactsTheLogRebuildsEveryViewAndAppendsAReceipt) {
  auto rt = start();
  append_people(*rt, 20);
  ASSERT_TRUE(wait_sync(*rt, "titles", rt->head()));
  ASSERT_EQ(read_view(*rt, "titles").state.count("alice-doc-3"), 1u);
  const uint64_t before = rt->head();

  auto receipt = forget_sync(*rt, "alice");
  ASSERT_TRUE(receipt) << receipt.error().to_string();
  EXPECT_EQ(receipt->offset, before + 1);
  EXPECT_EQ(receipt->offsets.size(), 20u);
  EXPECT_EQ(receipt->offsets.front(), 1u);
  EXPECT_EQ(receipt->subject_hash, erasure_subject_hash("alice"));
  EXPECT_EQ(receipt->views, (std::vector<std::string>{"docs", "titles"}));
  EXPECT_EQ(receipt->to_json().find("alice"), std::string::npos);

  auto log = rt->read_log(1, 1000);
  ASSERT_TRUE(log);
  ASSERT_EQ(log->size(), before + 1);
  for (auto& e : *log) {
    EXPECT_EQ(e.to_json().find("alice"), std::string::npos) << e.to_json();
    if (e.offset % 2 == 1 && e.offset <= before) {
      EXPECT_TRUE(e.redacted);
      EXPECT_EQ(e.type, "doc.put");
    }
  }
  EXPECT_EQ(log->back().type, erasure_event_type);
  EXPECT_EQ(log->back().data.find("alice"), std::string::npos);
  // The views hold what a recomputation from the redacted log holds.
  expect_only_bob(*rt, 20);
  // A reader as of an offset before the erasure starts over; after it, it is served.
  auto old = rt->changes_since("docs", 5, 100);
  ASSERT_TRUE(old);
  EXPECT_FALSE(old->served);
  auto fresh = rt->changes_since("docs", rt->head(), 100);
  ASSERT_TRUE(fresh);
  EXPECT_TRUE(fresh->served);
  // The request's idempotency key went with its events.
  rt->stop();
  auto env = environment::open(dir_.path());
  ASSERT_TRUE(env);
  auto l = event_log::open(**env);
  ASSERT_TRUE(l);
  EXPECT_FALSE((*l)->find_idempotency_key("alice-idem-0")->has_value());
  EXPECT_TRUE((*l)->offsets_of_subject("alice")->empty());
  EXPECT_TRUE((*l)->erasure_requests()->empty());
}

TEST_F(erasure_test, AnUnknownSubjectStillGetsAReceiptWithNoOffsets) {
  auto rt = start();
  append_people(*rt, 2);
  auto receipt = forget_sync(*rt, "nobody");
  ASSERT_TRUE(receipt) << receipt.error().to_string();
  EXPECT_TRUE(receipt->offsets.empty());
  EXPECT_TRUE(receipt->views.empty());
  EXPECT_EQ(receipt->offset, 5u);
  EXPECT_EQ(forget_sync(*rt, "").error().code(), errc::invalid_parameter);
  EXPECT_EQ(forget_sync(*rt, std::string(300, 'x')).error().code(), errc::invalid_parameter);
}

TEST_F(erasure_test, ApplicationsCannotAppendTheReservedType) {
  auto rt = start();
  auto r = append_one(*rt, erasure_event_type, "k");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::invalid_event);
}

TEST_F(erasure_test, SubscribersAreResetAndRequestsTogetherShareOneRebuild) {
  auto rt = start();
  append_people(*rt, 5);
  ASSERT_TRUE(wait_sync(*rt, "titles", rt->head()));
  auto sink = std::make_shared<recording_sink>();
  ASSERT_TRUE(rt->subscribe({"titles", std::nullopt, ""}, sink));
  std::promise<void> both;
  std::atomic<int> answered{0};
  std::vector<result<erasure_receipt>> receipts(2, status{errc::unavailable, ""});
  for (int i = 0; i < 2; ++i)
    rt->forget(i == 0 ? "alice" : "bob", [&, i](result<erasure_receipt> r) {
      receipts[i] = std::move(r);
      if (++answered == 2) both.set_value();
    });
  both.get_future().wait();
  ASSERT_TRUE(receipts[0]) << receipts[0].error().to_string();
  ASSERT_TRUE(receipts[1]) << receipts[1].error().to_string();
  EXPECT_EQ(receipts[0]->offsets.size() + receipts[1]->offsets.size(), 10u);
  for (int i = 0; i < 200 && sink->lost == 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_GE(sink->lost.load(), 1);
  EXPECT_TRUE(read_view(*rt, "docs").state.empty());
  // A new generation serves, the old copies retired: one for both requests
  // when they met in the queue, two when the first had started alone
  // (RequestsQueuedBehindARunningErasureShareOneRebuild pins the sharing down).
  const uint32_t docs_generation = served_generation(*rt, "docs");
  EXPECT_TRUE(docs_generation == 1u || docs_generation == 2u) << docs_generation;
  EXPECT_EQ(served_generation(*rt, "titles"), 0u);
  for (const char* view : {"docs", "titles"}) EXPECT_EQ(generations(*rt, view), 1u) << view;
  auto titles = rt->view("titles");
  ASSERT_TRUE(titles);
  for (const auto& v : titles->versions) {
    if (v.role == version_role::serving)
      EXPECT_EQ(v.upstream, "docs/1.g" + std::to_string(docs_generation));
  }
}

TEST_F(erasure_test, AnInterruptedErasureResumesAtTheNextStart) {
  {
    auto rt = start();
    append_people(*rt, 10);
    ASSERT_TRUE(wait_sync(*rt, "titles", rt->head()));
  }
  {  // as if the process died right after recording the request
    auto env = environment::open(dir_.path());
    ASSERT_TRUE(env);
    auto l = event_log::open(**env);
    ASSERT_TRUE(l);
    ASSERT_TRUE((*l)->record_erasures({"alice"}, 42));
  }
  auto rt = start();
  std::optional<event> receipt;
  for (int i = 0; i < 1000 && !receipt; ++i) {
    auto log = rt->read_log(21, 10);
    ASSERT_TRUE(log);
    if (!log->empty()) receipt = log->front();
    else std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(receipt);
  EXPECT_EQ(receipt->type, erasure_event_type);
  EXPECT_NE(receipt->data.find("\"requested_at\":42"), std::string::npos);
  EXPECT_NE(receipt->data.find("\"redacted\":10"), std::string::npos);
  // The views are served again once rebuilt, without alice.
  for (int i = 0; i < 1000 && !rt->snapshot("titles"); ++i) std::this_thread::sleep_for(10ms);
  expect_only_bob(*rt, 10);
}

// Every file under `dir` that holds one of `needles`, with the needle.
std::vector<std::string> files_holding(const std::string& dir,
                                       const std::vector<std::string>& needles) {
  std::vector<std::string> hits;
  for (auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (auto& n : needles)
      if (bytes.find(n) != std::string::npos) hits.push_back(entry.path().string() + ": " + n);
  }
  return hits;
}

TEST_F(erasure_test, NoFileUnderTheDataDirectoryHoldsTheSubjectsBytesAfterForget) {
  auto rt = start();
  // Unique strings in keys, titles (one with a quote, so JSON escapes it)
  // and the subject, spread over 10,000 events among bob's.
  const std::string key_mark = "zqkeyAL1CE", title_mark = "zqti\"tleAL1CE";
  const std::string subject = "zqsubjAL1CE";
  const std::string title_escaped = "zqti\\\"tleAL1CE";
  for (int batch = 0; batch < 100; ++batch) {
    std::vector<event_input> events;
    for (int i = 0; i < 100; ++i) {
      const int n = batch * 100 + i;
      if (n % 5 == 0)
        events.push_back(doc(key_mark + "-" + std::to_string(n), title_mark + std::to_string(n), subject));
      else
        events.push_back(doc("bob-doc-" + std::to_string(n), "bob title", "bob"));
    }
    ASSERT_TRUE(append_sync(*rt, make_request(std::move(events))));
  }
  ASSERT_TRUE(wait_sync(*rt, "titles", rt->head()));
  const std::vector<std::string> needles{key_mark, title_mark, title_escaped, subject};
  ASSERT_FALSE(files_holding(dir_.path(), needles).empty());  // the scan can fail

  // A subscriber stays connected and appends keep flowing from another
  // thread while forget runs and while the files are scanned.
  auto sink = std::make_shared<recording_sink>();
  ASSERT_TRUE(rt->subscribe({"titles", std::nullopt, ""}, sink));
  std::atomic<bool> appending{true};
  std::atomic<int> appended{0}, failed{0};
  std::thread appender([&] {
    for (int n = 0; appending.load() || n < 20; ++n) {
      if (append_sync(*rt, make_request({doc("carol-doc-" + std::to_string(n), "carol title",
                                             "carol")})))
        ++appended;
      else
        ++failed;
    }
  });
  auto receipt = forget_sync(*rt, subject);
  // Right after forget returns, without a restart.
  auto hits = files_holding(dir_.path(), needles);
  appending = false;
  appender.join();
  ASSERT_TRUE(receipt) << receipt.error().to_string();
  EXPECT_EQ(receipt->offsets.size(), 2000u);
  for (auto& h : hits) ADD_FAILURE() << h;
  EXPECT_FALSE(files_holding(dir_.path(), {"bob title"}).empty());  // the scan can find
  // No append was lost or refused, and the offsets have no gap.
  EXPECT_EQ(failed.load(), 0);
  std::vector<event> log;
  for (;;) {
    auto page = rt->read_log(log.size() + 1, 1000);
    ASSERT_TRUE(page);
    if (page->empty()) break;
    log.insert(log.end(), page->begin(), page->end());
  }
  int carols = 0;
  for (size_t i = 0; i < log.size(); ++i) {
    EXPECT_EQ(log[i].offset, i + 1);
    if (log[i].subject == "carol") ++carols;
  }
  EXPECT_EQ(log.size(), rt->head());
  EXPECT_EQ(carols, appended.load());
  // The views keep serving; the subscriber was reset by the cutover to the
  // new generation and, subscribed again, keeps receiving.
  ASSERT_TRUE(wait_sync(*rt, "titles", rt->head()));
  auto titles = read_view(*rt, "titles").state;
  EXPECT_EQ(titles.size(), 8000u + static_cast<size_t>(carols));
  EXPECT_EQ(titles["bob-doc-1"], "bob title");
  EXPECT_GE(sink->lost.load(), 1);
  ASSERT_TRUE(rt->subscribe({"titles", std::nullopt, ""}, sink));
  const int batches = sink->batches.load();
  ASSERT_TRUE(append_sync(*rt, make_request({doc("carol-doc-last", "carol title", "carol")})));
  for (int i = 0; i < 500 && sink->batches.load() == batches; ++i)
    std::this_thread::sleep_for(10ms);
  EXPECT_GT(sink->batches.load(), batches);
  // And after a restart.
  rt->stop();
  rt = start();
  for (auto& h : files_holding(dir_.path(), needles)) ADD_FAILURE() << h;
  EXPECT_EQ(read_view(*rt, "titles").state.size(), 8001u + static_cast<size_t>(carols));
}

// Every version's store: the served one, one built beside, the derived
// view's binding to each, and a stale one kept from disk.
TEST_F(erasure_test, EveryVersionOfAViewForgetsTheSubject) {
  const std::vector<std::string> needles{"alice secret title", "alice-doc-"};
  {
    auto rt = start({1});
    append_people(*rt, 10);
    ASSERT_TRUE(wait_sync(*rt, "titles", rt->head()));
  }
  {  // version 1 served, version 2 built beside (or already cut over)
    auto rt = start({1, 2});
    auto receipt = forget_sync(*rt, "alice");
    ASSERT_TRUE(receipt) << receipt.error().to_string();
    EXPECT_EQ(receipt->views, (std::vector<std::string>{"docs", "titles"}));
    expect_only_bob(*rt, 10);
    append_people(*rt, 2);  // alice again, forgotten below with a stale version
  }
  {  // only version 3 declared: version 1 or 2 is kept, stale, until 3 is ready
    auto rt = start({3});
    auto receipt = forget_sync(*rt, "alice");
    ASSERT_TRUE(receipt) << receipt.error().to_string();
    EXPECT_EQ(receipt->offsets.size(), 2u);
    auto info = rt->view("docs");
    ASSERT_TRUE(info);
    EXPECT_EQ(info->version, 3u);
    expect_only_bob(*rt, 10);
  }
  auto rt = start({3});  // the compaction at open
  for (auto& h : files_holding(dir_.path(), needles)) ADD_FAILURE() << h;
  expect_only_bob(*rt, 10);
}

// View checkpoints (docs/storage.md, "View checkpoints").

// docs and titles as above, and "count": the number of doc.put events, with
// the last offset in its private state; `first` counts the applications of
// offset 1 (each rebuild from offset 1 applies it once more), and while
// `hold` is set the application of offset 1 waits.
struct counting {
  std::atomic<int> first{0};
  std::atomic<bool> hold{false};
};

std::vector<view_def> counted_views(counting& c) {
  auto out = views();
  out.push_back(view_def("count").from_log().apply([&c](const event& e, view_txn& tx) {
    if (e.offset == 1) {
      while (c.hold.load()) std::this_thread::sleep_for(1ms);
      ++c.first;
    }
    if (e.type != "doc.put") return;
    tx.put("n", tx.get("n").value_or(0).get<int64_t>() + 1);
    tx.put_private("last", e.offset);
  }));
  return out;
}

std::unique_ptr<runtime> start_counted(const std::string& dir, counting& c, uint64_t every) {
  runtime_options o;
  o.data_dir = dir;
  o.view_checkpoint_every = every;
  o.view_checkpoints_kept = 3;
  auto rt = std::make_unique<runtime>(o);
  for (auto& v : counted_views(c)) rt->add_view(v);
  EXPECT_TRUE(rt->start());
  return rt;
}

// 300 of bob's documents (offsets 1..300, in commits of 50), then 50 of
// alice's and 50 of bob's, alternating (301..400).
void append_late_alice(runtime& rt) {
  for (int batch = 0; batch < 8; ++batch) {
    std::vector<event_input> events;
    for (int i = 0; i < 50; ++i) {
      const int n = batch * 50 + i;
      if (n >= 300 && n % 2 == 0)
        events.push_back(doc("alice-doc-" + std::to_string(n), "alice secret title", "alice"));
      else
        events.push_back(doc("bob-doc-" + std::to_string(n), "bob title", "bob"));
    }
    ASSERT_TRUE(append_sync(rt, make_request(std::move(events))));
    ASSERT_TRUE(wait_sync(rt, "count", rt.head()));  // one commit per batch
  }
  ASSERT_TRUE(wait_sync(rt, "titles", rt.head()));
}

// The stored checkpoints of every store of view `name` (views' environment
// of `dir`: the generation served, and one retired but not yet dropped),
// each restored in turn, newest first: none may hold alice's data.
void expect_clean_checkpoints(const std::string& dir, const std::string& name) {
  auto env = environment::open((std::filesystem::path(dir) / "views").string());
  ASSERT_TRUE(env);
  auto stored = stored_versions(**env, name);
  ASSERT_TRUE(stored);
  size_t held = 0;
  for (const auto& v : *stored) {
    auto store = view_store::open(**env, name, v.version, {}, v.label);
    ASSERT_TRUE(store) << store.error().to_string();
    auto points = (*store)->checkpoints();
    held += points.size();
    for (auto it = points.rbegin(); it != points.rend(); ++it) {
      auto restored = (*store)->restore(*it, *it);
      ASSERT_TRUE(restored);
      ASSERT_EQ(*restored, *it);
      auto snap = (*store)->snapshot();
      ASSERT_TRUE(snap);
      for (auto& [k, v] : read_all(*snap))
        EXPECT_EQ(k.find("alice"), std::string::npos) << name << " checkpoint " << *it;
    }
  }
  EXPECT_GT(held, 0u) << name;
}

TEST_F(erasure_test, ForgetFromCheckpointsEqualsARecomputationAndAForgetWithout) {
  temp_dir plain_dir;
  counting with, without;
  auto rt = start_counted(dir_.path(), with, 64);
  auto plain = start_counted(plain_dir.path(), without, 0);
  append_late_alice(*rt);
  append_late_alice(*plain);
  ASSERT_EQ(with.first.load(), 1);

  auto receipt = forget_sync(*rt, "alice");
  ASSERT_TRUE(receipt) << receipt.error().to_string();
  EXPECT_EQ(receipt->offsets.front(), 301u);
  ASSERT_TRUE(forget_sync(*plain, "alice"));
  ASSERT_TRUE(wait_sync(*rt, "titles", rt->head()));
  ASSERT_TRUE(wait_sync(*plain, "titles", plain->head()));
  // Rebuilt from a checkpoint before offset 301: offset 1 was not applied again.
  EXPECT_EQ(with.first.load(), 1);
  EXPECT_EQ(without.first.load(), 2);
  // The new generation (served) applied the events after the checkpoint at
  // 300 (and the receipt), its copy without checkpoints all of them.
  auto applied = [](runtime& r) {
    for (const auto& v : r.metrics().views)
      if (v.name == "count") return v.applied;
    return uint64_t{0};
  };
  EXPECT_EQ(served_generation(*rt, "count"), 1u);
  EXPECT_GT(applied(*rt), 0u);
  EXPECT_LE(applied(*rt), 101u);
  EXPECT_GE(applied(*plain), 350u);  // every event not redacted
  // Equal to a forget without checkpoints, and to a recomputation.
  for (const char* view : {"docs", "titles", "count"})
    EXPECT_EQ(read_view(*rt, view).state, read_view(*plain, view).state) << view;
  expect_only_bob(*rt, 350);
  EXPECT_EQ(read_view(*rt, "count").state["n"], 350);
  {
    auto last = rt->snapshot("count");  // closed before the runtime stops
    ASSERT_TRUE(last);
    auto private_last = last->get_private("last");
    ASSERT_TRUE(private_last && *private_last);
    EXPECT_EQ(**private_last, "400");
  }
  rt->stop();
  rt.reset();
  // Every checkpoint left is clean, and no file holds alice's bytes (after the
  // compaction at the next open).
  expect_clean_checkpoints(dir_.path(), "docs");
  expect_clean_checkpoints(dir_.path(), "count");
  rt = start_counted(dir_.path(), with, 64);
  for (auto& h : files_holding(dir_.path(), {"alice secret title", "alice-doc-"}))
    ADD_FAILURE() << h;
  ASSERT_TRUE(wait_sync(*rt, "docs", rt->head()));  // restored above to a checkpoint
  expect_only_bob(*rt, 350);
}

TEST_F(erasure_test, RequestsQueuedBehindARunningErasureShareOneRebuild) {
  counting c;
  auto rt = start_counted(dir_.path(), c, 0);
  ASSERT_TRUE(append_sync(*rt, make_request({doc("dave-doc", "title", "dave")})));  // offset 1
  for (const char* who : {"carol", "alice", "bob"})
    for (int i = 0; i < 5; ++i)
      ASSERT_TRUE(append_sync(*rt, make_request({doc(std::string(who) + "-doc-" + std::to_string(i),
                                                     "title", who)})));
  ASSERT_TRUE(wait_sync(*rt, "titles", rt->head()));
  ASSERT_EQ(c.first.load(), 1);
  // carol's erasure holds the eraser (its rebuild waits at offset 1) while
  // alice's and bob's requests queue behind it.
  c.hold = true;
  std::promise<void> all;
  std::atomic<int> answered{0};
  std::vector<result<erasure_receipt>> receipts(3, status{errc::unavailable, ""});
  auto ask = [&](int i, const char* who) {
    rt->forget(who, [&, i](result<erasure_receipt> r) {
      receipts[i] = std::move(r);
      if (++answered == 3) all.set_value();
    });
  };
  ask(0, "carol");
  for (int i = 0; i < 500 && generations(*rt, "count") < 2; ++i)  // carol's copy started?
    std::this_thread::sleep_for(10ms);
  ask(1, "alice");
  ask(2, "bob");
  c.hold = false;
  all.get_future().wait();
  for (auto& r : receipts) ASSERT_TRUE(r) << r.error().to_string();
  // Two rebuilds: carol's, then one for alice and bob together.
  EXPECT_EQ(c.first.load(), 3);
  EXPECT_EQ(served_generation(*rt, "count"), 2u);
  EXPECT_EQ(receipts[1]->offsets.size(), 5u);
  EXPECT_EQ(receipts[2]->offsets.size(), 5u);
  EXPECT_EQ(read_view(*rt, "docs").state.size(), 1u);
}

// A forget builds a new generation of each view beside the served copy and
// cuts over: reads meanwhile never fail and never go back in offsets; the
// result equals a recomputation from the redacted log and only the new
// generation is stored.
TEST_F(erasure_test, ReadsDuringAForgetNeverFailAndTheNewGenerationAloneIsStored) {
  auto rt = start();
  // 1,200 events: alice's and bob's documents alternating, 100 a request.
  for (int batch = 0; batch < 12; ++batch) {
    std::vector<event_input> events;
    for (int i = 0; i < 100; ++i) {
      const int n = batch * 100 + i;
      if (n % 2 == 0)
        events.push_back(doc("alice-doc-" + std::to_string(n), "alice secret title", "alice"));
      else
        events.push_back(doc("bob-doc-" + std::to_string(n), "bob title", "bob"));
    }
    ASSERT_TRUE(append_sync(*rt, make_request(std::move(events))));
  }
  ASSERT_TRUE(wait_sync(*rt, "titles", rt->head()));
  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, errors{0}, backwards{0};
  std::string first_error;
  std::thread reader([&] {
    uint64_t last[2] = {0, 0};
    while (!done.load()) {
      for (int v = 0; v < 2; ++v) {
        auto snap = rt->snapshot(v == 0 ? "docs" : "titles");
        if (!snap) {
          if (errors++ == 0) first_error = snap.error().to_string();
          continue;
        }
        if (snap->offset() < last[v]) ++backwards;
        last[v] = snap->offset();
        ++reads;
      }
    }
  });
  auto receipt = forget_sync(*rt, "alice");
  done = true;
  reader.join();
  ASSERT_TRUE(receipt) << receipt.error().to_string();
  EXPECT_EQ(receipt->offsets.size(), 600u);
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(errors.load(), 0) << first_error;
  EXPECT_EQ(backwards.load(), 0);
  expect_only_bob(*rt, 600);
  // A recomputation from the redacted log.
  memory_view docs;
  for (uint64_t from = 1;;) {
    auto page = rt->read_log(from, 500);
    ASSERT_TRUE(page);
    if (page->empty()) break;
    for (const auto& e : *page) {
      if (!e.redacted && e.type == "doc.put")
        docs.apply(e.offset, [&](view_txn& tx) { tx.put(e.key, json::parse(e.data)); });
      from = e.offset + 1;
    }
  }
  EXPECT_EQ(read_view(*rt, "docs").state, docs.state());
  // Only the new generation is stored: the old copy is retired (its store
  // emptied now, dropped at the next start).
  auto info = rt->view("docs");
  ASSERT_TRUE(info);
  ASSERT_EQ(info->versions.size(), 2u);
  for (const auto& v : info->versions)
    EXPECT_EQ(v.role, v.generation == 1 ? version_role::serving : version_role::retired);
  const uint64_t head = rt->head();
  rt->stop();
  {
    auto env = environment::open((std::filesystem::path(dir_.path()) / "views").string());
    ASSERT_TRUE(env);
    auto stored = stored_versions(**env, "docs");
    ASSERT_TRUE(stored);
    for (const auto& v : *stored) {
      auto store = view_store::open(**env, "docs", v.version, {}, v.label);
      ASSERT_TRUE(store);
      EXPECT_EQ((*store)->offset(), v.generation == 1 ? head : 0u) << v.label;
    }
  }
  rt = start();
  EXPECT_EQ(generations(*rt, "docs"), 1u);
  EXPECT_EQ(served_generation(*rt, "docs"), 1u);
  expect_only_bob(*rt, 600);
}

}  // namespace
}  // namespace derive::testing
