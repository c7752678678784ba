// The runtime's storage: the log and the views in two environments (an old
// data directory with the views inside the log's environment still opens and
// rebuilds them), and a full disk or map: appends answer storage_full, views
// pause instead of failing, and everything resumes by itself when space
// returns, losing nothing acknowledged.

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/environment.hpp"
#include "core/log.hpp"
#include "core/view_store.hpp"
#include "core/append_check.hpp"
#include "tests/actors/views_fixture.hpp"
#include "tests/common/child_process.hpp"

namespace derive::testing {
namespace {

namespace fs = std::filesystem;

runtime_options options_for(const std::string& dir) {
  runtime_options o;
  o.data_dir = dir;
  o.storage.map_size = uint64_t{1} << 30;
  o.views_storage.map_size = uint64_t{1} << 30;
  return o;
}

// An event whose data is `pad` bytes long, so that storage fills quickly.
event_input padded_event(uint64_t n, size_t pad) {
  return make_event("doc.put", "d" + std::to_string(n),
                    json{{"n", n}, {"pad", std::string(pad, 'x')}});
}

// Every acknowledged (first, count) is in the log, with the keys it was
// appended with; the log is gap-free. "" or what is wrong.
std::string check_acknowledged(runtime& rt, const std::vector<append_outcome>& acks) {
  auto events = rt.read_log(1, rt.head() + 1);
  if (!events) return "read_log: " + events.error().to_string();
  if (events->size() != rt.head()) return "the log has gaps";
  for (size_t i = 0; i < events->size(); ++i)
    if ((*events)[i].offset != i + 1) return "offset " + std::to_string(i + 1) + " missing";
  for (const auto& a : acks)
    for (uint64_t o = a.first_offset; o < a.first_offset + a.count; ++o)
      if (o > events->size()) return "acknowledged offset " + std::to_string(o) + " lost";
  return "";
}

// ---- two environments ----------------------------------------------------------

TEST(storage_test, TheViewsLiveInTheirOwnEnvironment) {
  temp_dir dir;
  {
    runtime rt(options_for(dir.path()));
    rt.add_view(docs_view());
    ASSERT_TRUE(rt.start());
    ASSERT_TRUE(append_one(rt, "doc.put", "a", json{{"x", 1}}));
    ASSERT_TRUE(wait_sync(rt, "docs", 1));
  }
  EXPECT_TRUE(fs::exists(dir.sub("views/data.mdb")));
  auto env = environment::open(dir.path());
  ASSERT_TRUE(env);
  auto dropped = (*env)->drop_databases("view/");
  ASSERT_TRUE(dropped);
  EXPECT_EQ(*dropped, 0u) << "view tables in the log's environment";
}

// A data directory written by the old layout (the views' tables inside the
// log's environment, as the core API still allows) opens: the old tables are
// dropped and the views rebuilt from the log in their own environment.
TEST(storage_test, AnOldLayoutDirectoryOpensAndItsViewsAreRebuilt) {
  temp_dir dir;
  {
    auto env = environment::open(dir.path()).value();
    auto log = event_log::open(*env).value();
    for (int i = 1; i <= 20; ++i) {
      std::vector<event_input> events{make_event("doc.put", "d" + std::to_string(i % 7),
                                                 json{{"i", i}})};
      ASSERT_TRUE(log->append(checked_append_access::make(std::move(events), "", "fp")));
    }
    // The old store holds something the log does not say: a rebuild drops it.
    auto store = view_store::open(*env, "docs", 1).value();
    ASSERT_TRUE(store->commit({{20, {{"stale", std::string("true")}}}}, 20));
  }
  runtime rt(options_for(dir.path()));
  rt.add_view(docs_view());
  ASSERT_TRUE(rt.start());
  ASSERT_EQ(rt.head(), 20u);
  ASSERT_TRUE(wait_sync(rt, "docs", 20));
  auto view = read_view(rt, "docs");
  EXPECT_EQ(view.offset, 20u);
  state_map expected;
  for (int i = 1; i <= 20; ++i) expected["d" + std::to_string(i % 7)] = json{{"i", i}};
  EXPECT_EQ(view.state, expected);
  rt.stop();
  auto env = environment::open(dir.path()).value();
  EXPECT_EQ(env->drop_databases("view/").value(), 0u);
}

// ---- a full map ------------------------------------------------------------------

// The views' map fills: the view pauses (never failed) while appends go on;
// with a larger map after a restart it catches up and equals the log.
TEST(storage_test, AViewWhoseMapIsFullPausesWhileAppendsGoOn) {
  temp_dir dir;
  std::vector<append_outcome> acks;
  {
    auto o = options_for(dir.path());
    o.views_storage.map_size = uint64_t{1} << 20;  // 1 MiB
    runtime rt(o);
    rt.add_view(docs_view());
    ASSERT_TRUE(rt.start());
    for (uint64_t n = 1; n <= 300; ++n) {
      auto r = append_sync(rt, make_request({padded_event(n, 8000)}));
      ASSERT_TRUE(r) << r.error().to_string();
      acks.push_back(*r);
    }
    // Past the map's end the view stays behind: paused, not failed.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto info = rt.view("docs");
    ASSERT_TRUE(info);
    EXPECT_NE(info->status, view_status::failed) << info->error;
    EXPECT_LT(info->offset, rt.head());
    EXPECT_GT(info->lag, 0u);
    EXPECT_EQ(check_acknowledged(rt, acks), "");
  }
  runtime rt(options_for(dir.path()));
  rt.add_view(docs_view());
  ASSERT_TRUE(rt.start());
  ASSERT_TRUE(wait_sync(rt, "docs", 300));
  EXPECT_EQ(read_view(rt, "docs").state.size(), 300u);
  EXPECT_EQ(check_acknowledged(rt, acks), "");
}

// Every document under its key, and how many events were applied.
view_def counted_docs_view() {
  return view_def("counted").from_log().apply([](const event& e, view_txn& tx) {
    tx.put(e.key, json::parse(e.data));
    tx.put("_total", tx.get("_total").value_or(0).get<int64_t>() + 1);
  });
}

// A view catching up onto a full map, through the runtime: its catch-up
// batches commit beside the runner (runner_test's beside_test shows that
// mechanism), a failing commit pauses the view with a state that matches its
// offset, as an inline commit's failure does, and after a restart with room
// the view equals the log: no event applied twice, none skipped.
TEST(storage_test, AViewCatchingUpOntoAFullMapPausesAndLaterEqualsTheLog) {
  temp_dir dir;
  constexpr uint64_t events = 300;
  {
    runtime rt(options_for(dir.path()));  // no view yet: the log fills first
    ASSERT_TRUE(rt.start());
    for (uint64_t n = 1; n <= events; n += 10) {
      std::vector<event_input> group;
      for (uint64_t i = n; i < n + 10; ++i) group.push_back(padded_event(i, 8000));
      ASSERT_TRUE(append_sync(rt, make_request(std::move(group))));
    }
  }
  {
    auto o = options_for(dir.path());
    o.views_storage.map_size = uint64_t{1} << 20;  // 1 MiB: full after ~100 documents
    o.catch_up_batch = 20;
    o.live_batch = 4;
    runtime rt(o);
    rt.add_view(counted_docs_view());
    ASSERT_TRUE(rt.start());
    uint64_t offset = 0;
    for (int still = 0; still < 10; std::this_thread::sleep_for(std::chrono::milliseconds(50))) {
      auto info = rt.view("counted");
      ASSERT_TRUE(info);
      ASSERT_NE(info->status, view_status::failed) << info->error;
      still = info->offset == offset ? still + 1 : 0;
      offset = info->offset;
    }
    EXPECT_GT(offset, 20u);  // it paused after a commit, not before the first
    EXPECT_LT(offset, events);
    auto view = read_view(rt, "counted");
    EXPECT_EQ(view.state["_total"], json(view.offset));
    EXPECT_EQ(view.state.size(), view.offset + 1);
  }
  runtime rt(options_for(dir.path()));
  rt.add_view(counted_docs_view());
  ASSERT_TRUE(rt.start());
  ASSERT_TRUE(wait_sync(rt, "counted", events));
  auto view = read_view(rt, "counted");
  EXPECT_EQ(view.state["_total"], json(events));
  EXPECT_EQ(view.state.size(), events + 1);
}

// ---- a full disk (real ENOSPC) -----------------------------------------------------

// Writes `text` to a /proc file; false on failure.
bool write_file(const char* path, const std::string& text) {
  int fd = ::open(path, O_WRONLY);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

// In a new user and mount namespace (no root needed), mounts a tmpfs of
// `bytes` on `dir`. False when the kernel does not allow it.
bool mount_small_tmpfs(const std::string& dir, size_t bytes) {
  const uid_t uid = ::getuid();
  const gid_t gid = ::getgid();
  if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return false;
  if (!write_file("/proc/self/setgroups", "deny") ||
      !write_file("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1") ||
      !write_file("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1"))
    return false;
  std::string opts = "size=" + std::to_string(bytes);
  return ::mount("tmpfs", dir.c_str(), "tmpfs", 0, opts.c_str()) == 0;
}

// The child's scenario on a 12 MiB tmpfs of which a filler file takes 6 MiB:
// append until the disk is full, check the answer and the view, free the
// filler, check that appends and the view resume without a restart and that
// nothing acknowledged is lost. Returns "" or what went wrong.
std::string disk_full_scenario(const std::string& dir) {
  {
    std::ofstream filler(dir + "/filler", std::ios::binary);
    std::string mib(1 << 20, 'f');
    for (int i = 0; i < 6; ++i) filler.write(mib.data(), static_cast<std::streamsize>(mib.size()));
    if (!filler) return "cannot write the filler file";
  }
  runtime_options o = options_for(dir + "/data");
  o.storage.max_readers = 16;
  o.views_storage.max_readers = 16;
  runtime rt(o);
  rt.add_view(counts_view());
  if (auto s = rt.start(); !s) return "start: " + s.to_string();
  std::vector<append_outcome> acks;
  status refused;
  for (uint64_t n = 1; n <= 5000 && refused.is_ok(); ++n) {
    auto r = append_sync(rt, make_request({padded_event(n, 4000)}, "key-" + std::to_string(n)));
    if (r) acks.push_back(*r);
    else refused = r.error();
  }
  if (refused.is_ok()) return "the disk never filled";
  if (refused.code() != errc::storage_full)
    return "a full disk answered " + refused.to_string() + ", not storage_full";
  if (acks.empty()) return "nothing was appended before the disk filled";
  auto info = rt.view("counts");
  if (!info || info->status == view_status::failed)
    return "the view failed on a full disk: " + (info ? info->error : info.error().to_string());
  if (auto s = check_acknowledged(rt, acks); !s.empty()) return s;

  fs::remove(dir + "/filler");  // space returns
  auto r = append_sync(rt, make_request({padded_event(0, 10)}, "after"));
  if (!r) return "after space returned, an append failed: " + r.error().to_string();
  acks.push_back(*r);
  if (auto s = wait_sync(rt, "counts", rt.head(), std::chrono::seconds(30)); !s)
    return "the view did not resume by itself: " + s.to_string();
  if (auto s = check_acknowledged(rt, acks); !s.empty()) return s;
  auto total = read_view(rt, "counts").state["_total"];
  if (total != json(rt.head())) return "the view counts " + total.dump() + " events";
  return "";
}

TEST(storage_test, AFullDiskAnswersStorageFullAndRecoversWhenSpaceReturns) {
  temp_dir dir;
  auto child = child_process::fork([&](int fd) {
    std::string report;
    if (!mount_small_tmpfs(dir.path(), size_t{12} << 20)) report = "skip";
    else report = disk_full_scenario(dir.path());
    if (report.empty()) report = "ok";
    [[maybe_unused]] auto n = ::write(fd, report.data(), report.size());
  });
  ASSERT_TRUE(child.started());
  std::string report = child.read_until_closed(std::chrono::minutes(10));
  int wstatus = child.wait();
  ASSERT_TRUE(WIFEXITED(wstatus)) << "the child crashed";
  if (report == "skip") GTEST_SKIP() << "no unprivileged user namespaces: cannot mount a small tmpfs";
  EXPECT_EQ(report, "ok");
}

}  // namespace
}  // namespace derive::testing
