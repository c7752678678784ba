// View versions side by side (docs/storage.md, "View versions"): the served
// version keeps answering while a newer one builds, the cutover switches
// readers, waiters and subscribers at once, rollback, rebuild, retirement.

#include <filesystem>
#include <thread>

#include <lmdb.h>

#include "core/environment.hpp"
#include "core/lmdb_util.hpp"
#include "core/view_names.hpp"
#include "tests/actors/views_fixture.hpp"

namespace derive::testing {
namespace {

using namespace std::chrono_literals;

// Counts per type like counts_view, times 10; waits while `gate` is closed,
// so that the test sees it building.
view_def counts_v2(std::shared_ptr<std::atomic<bool>> gate, uint32_t version = 2) {
  return view_def("counts", version).from_log().apply([gate](const event& e, view_txn& tx) {
    while (!gate->load()) std::this_thread::sleep_for(1ms);
    tx.put(e.type, tx.get(e.type).value_or(0).get<int64_t>() + 10);
    tx.put("_total", tx.get("_total").value_or(0).get<int64_t>() + 10);
  });
}

template <class F>
bool eventually(F pred, std::chrono::milliseconds limit = 15s) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

class versions_test : public runtime_fixture {
 protected:
  std::shared_ptr<std::atomic<bool>> gate_ = std::make_shared<std::atomic<bool>>(false);
  uint32_t served(const std::string& view = "counts") { return rt().view(view)->version; }
  std::optional<view_version_info> version(const std::string& view, uint32_t v) {
    auto info = rt().view(view);  // (not in the range-for: it would dangle)
    for (auto& ver : info->versions)
      if (ver.version == v) return ver;
    return std::nullopt;
  }
  void fill(int n) {
    for (int i = 0; i < n; ++i) append("a", "k");
  }
  void TearDown() override { gate_->store(true); }
};

TEST_F(versions_test, TheOldVersionServesWhileTheNewOneBuildsBeside) {
  ASSERT_TRUE(start({counts_view(1)}));
  fill(20);
  ASSERT_TRUE(wait_sync(rt(), "counts", 20));
  ASSERT_TRUE(start({counts_view(1), counts_v2(gate_)}));
  EXPECT_EQ(served(), 1u);
  EXPECT_EQ(get_at_head("counts", "a"), json(20));
  ASSERT_TRUE(version("counts", 2));
  EXPECT_EQ(version("counts", 2)->role, version_role::building);
  EXPECT_EQ(version("counts", 1)->role, version_role::serving);
  gate_->store(true);
  ASSERT_TRUE(eventually([&] { return served() == 2; }));
  EXPECT_EQ(get("counts", "a"), json(200));
  EXPECT_EQ(version("counts", 1)->role, version_role::building);  // still declared: runs
}

TEST_F(versions_test, AnUndeclaredVersionStaysServedFrozenUntilTheNewIsReady) {
  ASSERT_TRUE(start({counts_view(1)}));
  fill(10);
  ASSERT_TRUE(wait_sync(rt(), "counts", 10));
  ASSERT_TRUE(start({counts_v2(gate_)}));
  auto v = rt().view("counts");
  EXPECT_EQ(v->version, 1u);
  EXPECT_EQ(v->status, view_status::stale);
  EXPECT_EQ(get("counts", "a"), json(10));
  uint64_t at = append("a", "k");
  EXPECT_EQ(rt().view("counts")->lag, 1u);
  // after= waits for the version that will be served: not for the frozen one.
  EXPECT_EQ(wait_sync(rt(), "counts", at, 100ms).code(), errc::not_caught_up);
  auto sink = std::make_shared<recording_sink>();
  ASSERT_TRUE(rt().subscribe({"counts", std::nullopt, ""}, sink));
  gate_->store(true);
  EXPECT_TRUE(wait_sync(rt(), "counts", at));
  EXPECT_EQ(served(), 2u);
  EXPECT_EQ(get("counts", "a"), json(110));
  // A reader resuming from an offset served by v1 starts over; from v2's on it resumes.
  auto before = rt().changes_since("counts", 5, 10);
  ASSERT_TRUE(before);
  EXPECT_FALSE(before->served);
  auto after = rt().changes_since("counts", rt().view("counts")->offset, 10);
  ASSERT_TRUE(after);
  EXPECT_TRUE(after->served);
  // The subscriber of v1 is told to start over (a reset snapshot on the wire).
  EXPECT_TRUE(eventually([&] { return sink->lost() == 1; }));
  // The next deployment retires v1: its databases are gone.
  ASSERT_TRUE(start({counts_v2(gate_)}));
  EXPECT_EQ(served(), 2u);
  ASSERT_TRUE(version("counts", 1));
  EXPECT_EQ(version("counts", 1)->role, version_role::retired);
  rt().stop();
  auto env = environment::open((std::filesystem::path(dir_.path()) / "views").string());
  ASSERT_TRUE(env);
  auto stored = stored_versions(**env, "counts");
  ASSERT_TRUE(stored);
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ((*stored)[0].version, 2u);
}

TEST_F(versions_test, TheServedVersionSurvivesARestartWhileANewerOneBuilds) {
  ASSERT_TRUE(start({counts_view(1)}));
  fill(10);
  ASSERT_TRUE(wait_sync(rt(), "counts", 10));
  ASSERT_TRUE(start({counts_view(1), counts_v2(gate_)}));
  EXPECT_EQ(served(), 1u);
  gate_->store(true);
  ASSERT_TRUE(eventually([&] { return served() == 2; }));
  gate_->store(false);
  ASSERT_TRUE(start({counts_view(1), counts_v2(gate_), counts_v2(gate_, 3)}));
  EXPECT_EQ(served(), 2u);  // recorded: not the newest, not the first
  EXPECT_EQ(get("counts", "a"), json(100));
  gate_->store(true);
  ASSERT_TRUE(eventually([&] { return served() == 3; }));
}

TEST_F(versions_test, RollbackAndCutoverSwitchBetweenDeclaredVersions) {
  gate_->store(true);
  ASSERT_TRUE(start({counts_view(1), counts_v2(gate_)}));
  fill(5);
  ASSERT_TRUE(eventually([&] { return served() == 2; }));
  ASSERT_TRUE(wait_sync(rt(), "counts", 5));
  auto back = rt().rollback("counts");
  ASSERT_TRUE(back) << back.error().to_string();
  ASSERT_TRUE(eventually([&] { return served() == 1; }));
  EXPECT_EQ(get("counts", "a"), json(5));
  fill(3);  // pinned: the newer version being ready does not switch back
  ASSERT_TRUE(wait_sync(rt(), "counts", 8));
  EXPECT_EQ(served(), 1u);
  auto forward = rt().cutover("counts", 2);
  ASSERT_TRUE(forward);
  ASSERT_TRUE(eventually([&] { return served() == 2; }));
  EXPECT_EQ(get("counts", "a"), json(80));
  EXPECT_EQ(rt().cutover("counts", 7).error().code(), errc::not_found);
  EXPECT_EQ(rt().cutover("nope", 1).error().code(), errc::unknown_view);
}

TEST_F(versions_test, APinSurvivesARestartWhileItsVersionIsDeclared) {
  gate_->store(true);
  ASSERT_TRUE(start({counts_view(1), counts_v2(gate_)}));
  fill(5);
  ASSERT_TRUE(eventually([&] { return served() == 2; }));
  ASSERT_TRUE(rt().rollback("counts"));
  ASSERT_TRUE(eventually([&] { return served() == 1; }));
  EXPECT_EQ(rt().view("counts")->pinned, 1u);
  EXPECT_TRUE(version("counts", 1)->pinned);
  EXPECT_FALSE(version("counts", 2)->pinned);
  // Restarted with both declared: v2 is ready, yet the rolled-back v1 serves.
  ASSERT_TRUE(start({counts_view(1), counts_v2(gate_)}));
  fill(3);
  ASSERT_TRUE(wait_sync(rt(), "counts", 8));
  ASSERT_TRUE(eventually([&] { return version("counts", 2)->offset == 8; }));
  EXPECT_EQ(served(), 1u);
  EXPECT_EQ(rt().view("counts")->pinned, 1u);
  EXPECT_EQ(get("counts", "a"), json(8));
  // v1 no longer declared: the pin is cleared and the newest ready version serves.
  ASSERT_TRUE(start({counts_v2(gate_)}));
  ASSERT_TRUE(eventually([&] { return served() == 2; }));
  EXPECT_FALSE(rt().view("counts")->pinned);
  EXPECT_EQ(get("counts", "a"), json(80));
  // ... and stays cleared when v1 is declared again.
  ASSERT_TRUE(start({counts_view(1), counts_v2(gate_)}));
  EXPECT_FALSE(rt().view("counts")->pinned);
  EXPECT_EQ(served(), 2u);
}

TEST_F(versions_test, RebuildStartsAVersionOverBesideTheServedOne) {
  gate_->store(true);
  ASSERT_TRUE(start({counts_view(1), counts_v2(gate_)}));
  fill(30);
  ASSERT_TRUE(eventually([&] { return served() == 2; }));
  ASSERT_TRUE(eventually([&] { return version("counts", 1)->offset == 30; }));
  ASSERT_TRUE(rt().rebuild("counts", 1));
  ASSERT_TRUE(eventually([&] { return version("counts", 1)->offset == 30; }));
  EXPECT_EQ(served(), 2u);
  // v2 became served when it caught up, possibly before the last append.
  ASSERT_TRUE(wait_sync(rt(), "counts", 30));
  EXPECT_EQ(get("counts", "a"), json(300));
}

// A version built beside the served one yields to live work (view_runner.hpp:
// it puts its batches off while a served view is behind), yet it still makes
// progress and cuts over while live appends arrive without a pause; the
// version served from then on keeps up with them.
TEST_F(versions_test, AVersionBuildsAndCutsOverWhileLiveAppendsArriveContinuously) {
  ASSERT_TRUE(start({counts_view(1), docs_view()}));
  for (int i = 0; i < 40; ++i) {
    std::vector<event_input> events(500, make_event("a", "k"));
    ASSERT_TRUE(append_sync(rt(), make_request(std::move(events))));
  }
  ASSERT_TRUE(wait_sync(rt(), "counts", 20'000));
  gate_->store(true);
  ASSERT_TRUE(start({counts_view(1), counts_v2(gate_), docs_view()}));
  std::atomic<bool> appending{true};
  std::atomic<int> live{0};
  std::thread writer([&] {
    while (appending.load() && append_one(rt(), "doc.put", "d" + std::to_string(live.load()),
                                          {{"n", live.load()}}))
      ++live;
  });
  const bool cut_over = eventually([&] { return served() == 2; }, 60s);
  const int during = live.load();
  std::this_thread::sleep_for(100ms);  // live appends go on after the cutover too
  appending = false;
  writer.join();
  ASSERT_TRUE(cut_over);
  EXPECT_GT(during, 0);  // the appends did not wait for the rebuild
  ASSERT_TRUE(wait_sync(rt(), "counts", rt().head()));
  ASSERT_TRUE(wait_sync(rt(), "docs", rt().head()));
  EXPECT_EQ(get("counts", "a"), json(200'000));
  EXPECT_EQ(get("counts", "doc.put"), json(10 * live.load()));
  EXPECT_EQ(get("docs", "d" + std::to_string(live.load() - 1)), json({{"n", live.load() - 1}}));
  ASSERT_TRUE(eventually([&] { return version("counts", 1)->offset == rt().head(); }));
}

// docs v2 adds a tag to every document; tags (derived) follows docs' version.
view_def docs_v2(std::shared_ptr<std::atomic<bool>> gate) {
  return view_def("docs", 2).from_log().apply([gate](const event& e, view_txn& tx) {
    while (!gate->load()) std::this_thread::sleep_for(1ms);
    if (e.type == "doc.put") {
      auto doc = json::parse(e.data);
      doc["tag"] = "v2";
      tx.put(e.key, doc);
    } else if (e.type == "doc.delete") {
      tx.erase(e.key);
    }
  });
}

TEST_F(versions_test, DerivedViewsFollowTheirUpstreamsVersionTogether) {
  ASSERT_TRUE(start({docs_view(), tags_view()}));
  append("doc.put", "d1", {{"tag", "x"}});
  append("doc.put", "d2", {{"tag", "x"}});
  ASSERT_TRUE(wait_sync(rt(), "tags", 2));
  EXPECT_EQ(get("tags", "tag:x"), json(2));
  ASSERT_TRUE(start({docs_v2(gate_), tags_view()}));
  EXPECT_EQ(served("docs"), 1u);
  EXPECT_EQ(get("tags", "tag:x"), json(2));  // computed from docs v1, still served
  gate_->store(true);
  ASSERT_TRUE(eventually([&] { return served("docs") == 2; }));
  // From the instant docs serves v2, tags serves the version computed from it.
  EXPECT_EQ(get("tags", "tag:v2"), json(2));
  EXPECT_FALSE(get("tags", "tag:x"));
  std::string upstream;
  auto tags = rt().view("tags");
  for (auto& v : tags->versions)
    if (v.role == version_role::serving) upstream = v.upstream;
  EXPECT_EQ(upstream, "docs/2");
}

// Deploying version after version: each deployment retires the version two
// back, whose pages LMDB reuses, so the views' file stops growing.
TEST_F(versions_test, RepeatedDeploymentsDoNotGrowTheDataDirectory) {
  gate_->store(true);
  auto padded = [](uint32_t version) {
    return view_def("pad", version).from_log().apply([](const event& e, view_txn& tx) {
      tx.put(e.key, std::string(400, 'x'));
    });
  };
  ASSERT_TRUE(start({padded(1)}));
  for (int i = 0; i < 2000; ++i) append("p", "k" + std::to_string(i));
  ASSERT_TRUE(wait_sync(rt(), "pad", 2000));
  auto file = std::filesystem::path(dir_.path()) / "views" / "data.mdb";
  uintmax_t after_third = 0;
  for (uint32_t v = 2; v <= 7; ++v) {
    ASSERT_TRUE(start({padded(v)}));
    ASSERT_TRUE(eventually([&] { return served("pad") == v; }));
    rt().stop();
    if (v == 3) after_third = std::filesystem::file_size(file);
  }
  EXPECT_LE(std::filesystem::file_size(file), after_third + after_third / 4);
}

// A stale version is retired as soon as it is no longer served: the data
// appended after the cutover reuses its pages instead of growing the file.
TEST_F(versions_test, AStaleVersionIsRetiredOnceNoLongerServed) {
  gate_->store(true);
  auto padded = [](uint32_t version) {
    return view_def("pad", version).from_log().apply([](const event& e, view_txn& tx) {
      tx.put(e.key, std::string(400, 'x'));
    });
  };
  ASSERT_TRUE(start({padded(1)}));
  for (int i = 0; i < 2000; ++i) append("p", "k" + std::to_string(i));
  ASSERT_TRUE(wait_sync(rt(), "pad", 2000));
  ASSERT_TRUE(start({padded(2)}));  // v1 served, stale, until v2 is ready
  ASSERT_TRUE(eventually([&] { return served("pad") == 2; }));
  ASSERT_TRUE(eventually([&] {
    auto v = version("pad", 1);
    return v && v->role == version_role::retired;
  }));
  auto file = std::filesystem::path(dir_.path()) / "views" / "data.mdb";
  uintmax_t at_cutover = std::filesystem::file_size(file);
  for (int i = 2000; i < 3500; ++i) append("p", "k" + std::to_string(i));
  ASSERT_TRUE(wait_sync(rt(), "pad", 3500));
  EXPECT_EQ(get("pad", "k0"), json(std::string(400, 'x')));
  // 1,500 keys more, in the pages of v1's 2,000 (without retirement: +~1 MiB).
  EXPECT_LE(std::filesystem::file_size(file), at_cutover + 256 * 1024);
  ASSERT_TRUE(start({padded(2)}));  // the emptied databases go at the next start
  EXPECT_EQ(version("pad", 1)->role, version_role::retired);
  EXPECT_EQ(get("pad", "k3499"), json(std::string(400, 'x')));
  rt().stop();
  auto env = environment::open((std::filesystem::path(dir_.path()) / "views").string());
  ASSERT_TRUE(env);
  auto stored = stored_versions(**env, "pad");
  ASSERT_TRUE(stored);
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ((*stored)[0].version, 2u);
}

// docs (v1) whose code waits while `gate` is closed.
view_def gated_docs(std::shared_ptr<std::atomic<bool>> gate) {
  return view_def("docs", 1).from_log().apply([gate](const event& e, view_txn& tx) {
    while (!gate->load()) std::this_thread::sleep_for(1ms);
    if (e.type == "doc.put") tx.put(e.key, json::parse(e.data));
  });
}

// Issue 12: "a failed audit never changes the served view by itself; the
// operator can rebuild": the served version is rebuilt under its own number,
// beside itself, while it serves; then the copy serves and the old one's
// storage goes.
TEST_F(versions_test, RebuildingTheServedVersionRepairsACorruptedKeyWhileItServes) {
  gate_->store(true);
  ASSERT_TRUE(start({gated_docs(gate_), tags_view()}));
  append("doc.put", "d1", {{"tag", "x"}});
  append("doc.put", "d2", {{"tag", "x"}});
  for (int i = 0; i < 200; ++i) append("doc.put", "y" + std::to_string(i), {{"tag", "y"}});
  ASSERT_TRUE(wait_sync(rt(), "tags", 202));
  rt_.reset();
  {  // a disk (or a person) changes a key underneath
    auto env = environment::open((std::filesystem::path(dir_.path()) / "views").string());
    ASSERT_TRUE(env);
    auto dbi = (*env)->database("view/docs/1/state");
    ASSERT_TRUE(dbi);
    txn_guard txn;
    ASSERT_TRUE((*env)->begin_write(txn, "a test write"));
    std::string key = "kd1", value = R"({"tag":"z"})";
    MDB_val k = to_val(key), v = to_val(value);
    ASSERT_EQ(mdb_put(txn.get(), *dbi, &k, &v, 0), MDB_SUCCESS);
    ASSERT_TRUE((*env)->commit(txn));
  }
  ASSERT_TRUE(start({gated_docs(gate_), tags_view()}));
  auto audit = rt().audit("docs");
  ASSERT_TRUE(audit);
  EXPECT_FALSE(audit->ok);
  ASSERT_EQ(audit->differences.size(), 1u);
  EXPECT_EQ(audit->differences[0].key, "d1");
  EXPECT_EQ(get("docs", "d1"), json({{"tag", "z"}}));  // the audit changed nothing

  gate_->store(false);  // the copy builds slowly, so that it is seen building
  std::atomic<bool> reading{true};
  std::atomic<int> bad_reads{0}, reads{0};
  std::thread reader([&] {  // every read answers, complete, from one copy or the other
    uint64_t last = 0;
    while (reading) {
      auto d2 = get("docs", "d2");
      auto y = get("tags", "tag:y");
      auto info = rt().view("docs");
      if (d2 != json({{"tag", "x"}}) || y != json(200) || !info || info->offset < last)
        ++bad_reads;
      if (info) last = info->offset;
      ++reads;
    }
  });
  ASSERT_TRUE(rt().rebuild("docs", 1));
  auto copy = [&](uint32_t generation) -> std::optional<view_version_info> {
    auto info = rt().view("docs");
    for (auto& v : info->versions)
      if (v.version == 1 && v.generation == generation) return v;
    return std::nullopt;
  };
  ASSERT_TRUE(copy(1));
  EXPECT_EQ(copy(1)->role, version_role::building);
  EXPECT_EQ(copy(0)->role, version_role::serving);
  EXPECT_TRUE(rt().rebuild("docs", 1));  // asked again: the copy starts over
  EXPECT_EQ(get("docs", "d1"), json({{"tag", "z"}}));  // still the old copy
  gate_->store(true);
  ASSERT_TRUE(eventually([&] { return copy(1) && copy(1)->role == version_role::serving; }));
  EXPECT_EQ(get("docs", "d1"), json({{"tag", "x"}}));
  EXPECT_EQ(get("tags", "tag:x"), json(2));
  ASSERT_TRUE(eventually([&] { return copy(0) && copy(0)->role == version_role::retired; }));
  std::this_thread::sleep_for(50ms);
  reading = false;
  reader.join();
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(bad_reads.load(), 0);
  audit = rt().audit("docs");
  ASSERT_TRUE(audit);
  EXPECT_TRUE(audit->ok) << audit->error;
  EXPECT_TRUE(rt().audit("tags")->ok);
  append("doc.put", "d3", {{"tag", "x"}});  // the copy follows the log
  EXPECT_EQ(get_at_head("tags", "tag:x"), json(3));

  ASSERT_TRUE(start({gated_docs(gate_), tags_view()}));  // the copy serves after a restart
  EXPECT_EQ(get("docs", "d1"), json({{"tag", "x"}}));
  EXPECT_EQ(copy(1)->role, version_role::serving);
  rt_.reset();
  auto env = environment::open((std::filesystem::path(dir_.path()) / "views").string());
  ASSERT_TRUE(env);
  auto docs = stored_versions(**env, "docs");
  ASSERT_TRUE(docs);
  ASSERT_EQ(docs->size(), 1u);  // the old copy's tables are gone
  EXPECT_EQ((*docs)[0].label, "docs/1.g1");
  auto tags = stored_versions(**env, "tags");
  ASSERT_TRUE(tags);
  ASSERT_EQ(tags->size(), 1u);
  EXPECT_EQ((*tags)[0].upstream, "docs/1.g1");
}

}  // namespace
}  // namespace derive::testing
