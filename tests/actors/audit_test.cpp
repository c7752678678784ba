// Specification of audits and scrubs (actors/audit.hpp): a sound view passes
// its audit; a view whose stored state was changed underneath, or whose code
// is not deterministic, fails it with the right keys; the served view is
// never changed; a scrub finds a flipped byte of a log record at its offset.

#include <lmdb.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "test_util.hpp"
#include "core/environment.hpp"
#include "core/lmdb_util.hpp"

namespace derive {
namespace {

using namespace std::chrono_literals;
using testing::append_one;
using testing::temp_dir;
using testing::wait_sync;

// counts: per key, how many events; totals (from counts): per first letter,
// the sum; noisy: what the clock says (not a function of the log).
view_def counts_view() {
  return view_def("counts").from_log().apply([](const event& e, view_txn& txn) {
    auto n = txn.get(e.key);
    txn.put(e.key, n ? n->get<int>() + 1 : 1);
  });
}

view_def totals_view() {
  return view_def("totals").from_view("counts").apply_change(
      [](const upstream_change& c, view_txn& txn) {
        std::string letter = c.key.substr(0, 1);
        auto n = txn.get(letter);
        txn.put(letter, (n ? n->get<int>() : 0) + 1);
      });
}

view_def noisy_view() {
  return view_def("noisy").from_log().apply([](const event& e, view_txn& txn) {
    txn.put(e.key, std::chrono::steady_clock::now().time_since_epoch().count());
  });
}

class audit_test : public ::testing::Test {
 protected:
  void SetUp() override { start(); }

  void start() {
    runtime_options options;
    options.data_dir = dir_.path();
    options.storage.mode = durability::relaxed;
    options.storage.map_size = uint64_t{1} << 30;
    options.views_storage.map_size = uint64_t{1} << 30;
    options.audit_interval = interval_;
    rt_ = std::make_unique<runtime>(options);
    rt_->add_view(counts_view());
    rt_->add_view(totals_view());
    rt_->add_view(noisy_view());
    ASSERT_TRUE(rt_->start());
  }

  void stop() { rt_.reset(); }

  // 30 events over 10 keys ("a0".."c2", ...); waits for every view.
  void fill() {
    for (int i = 0; i < 30; ++i) {
      std::string key = std::string(1, "abc"[i % 3]) + std::to_string(i % 4);
      ASSERT_TRUE(append_one(*rt_, "hit", key));
    }
    for (auto* v : {"counts", "totals", "noisy"}) ASSERT_TRUE(wait_sync(*rt_, v, 30));
  }

  audit_result audit(const std::string& view) {
    auto r = rt_->audit(view);
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? *r : audit_result{};
  }

  // Runs `edit` on a database of the stopped runtime's data directory
  // (`sub`: "" for the log's environment, "views" for the views').
  template <class F>
  void edit_underneath(const std::string& sub, const std::string& db, unsigned flags, F edit) {
    stop();
    environment_options options;
    options.map_size = uint64_t{1} << 30;
    auto env = environment::open(sub.empty() ? dir_.path() : dir_.sub(sub), options);
    ASSERT_TRUE(env) << env.error().to_string();
    auto dbi = (*env)->database(db, flags);
    ASSERT_TRUE(dbi);
    txn_guard txn;
    ASSERT_TRUE((*env)->begin_write(txn, "a test write"));
    edit(txn.get(), *dbi);
    ASSERT_TRUE((*env)->commit(txn));
    env->reset();
    start();
  }

  bool audit_dir_is_empty() {
    auto path = std::filesystem::path(dir_.path()) / "audit";
    return !std::filesystem::exists(path) || std::filesystem::is_empty(path);
  }

  temp_dir dir_;
  std::chrono::milliseconds interval_{0};
  std::unique_ptr<runtime> rt_;
};

TEST_F(audit_test, a_sound_view_passes_and_its_result_is_kept) {
  fill();
  auto r = audit("counts");
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.offset, 30u);
  EXPECT_EQ(r.digest, r.expected_digest);
  EXPECT_EQ(r.digest.size(), 64u);
  EXPECT_TRUE(r.differences.empty());
  EXPECT_EQ(r.events, 30u);
  auto info = rt_->view("counts");
  ASSERT_TRUE(info && info->audit);
  EXPECT_TRUE(info->audit->ok);
  EXPECT_EQ(info->audit->digest, r.digest);
  EXPECT_TRUE(audit_dir_is_empty());
}

TEST_F(audit_test, a_derived_view_is_audited_with_its_upstream_rebuilt_too) {
  fill();
  auto r = audit("totals");
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.offset, 30u);
  EXPECT_EQ(r.events, 60u);  // counts' 30 events, then totals' 30 upstream offsets
}

TEST_F(audit_test, state_changed_underneath_is_reported_with_its_key_and_not_repaired) {
  fill();
  edit_underneath("views", "view/counts/1/state", 0, [](MDB_txn* txn, unsigned dbi) {
    std::string key = "kb1", value = "99";
    MDB_val k = to_val(key), v = to_val(value);
    ASSERT_EQ(mdb_put(txn, dbi, &k, &v, 0), MDB_SUCCESS);
  });
  auto r = audit("counts");
  EXPECT_FALSE(r.ok);
  ASSERT_EQ(r.differences.size(), 1u);
  EXPECT_EQ(r.differences[0].key, "b1");
  EXPECT_EQ(r.differences[0].live, "99");
  EXPECT_EQ(r.differences[0].expected, "3");
  auto snap = rt_->snapshot("counts");
  ASSERT_TRUE(snap);
  EXPECT_EQ(snap->get("b1")->value_or(""), "99");  // the served view is left alone
  EXPECT_FALSE(rt_->last_audit("counts")->ok);
  EXPECT_TRUE(audit("totals").ok);  // its rebuilt upstream is sound
}

TEST_F(audit_test, a_view_that_reads_the_clock_fails_its_audit) {
  fill();
  auto r = audit("noisy");
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.digest, r.expected_digest);
  EXPECT_EQ(r.differences.size(), 10u);  // 12 keys differ, the first 10 are listed
  EXPECT_TRUE(r.more_differences);
  EXPECT_EQ(r.differences[0].key, "a0");
}

TEST_F(audit_test, audits_run_in_the_background_on_request) {
  fill();
  EXPECT_FALSE(rt_->last_audit("counts"));
  ASSERT_TRUE(rt_->start_audit("counts"));
  for (int i = 0; i < 2000 && !rt_->last_audit("counts"); ++i) std::this_thread::sleep_for(10ms);
  auto r = rt_->last_audit("counts");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->ok) << r->error;
  EXPECT_EQ(rt_->start_audit("nope").code(), errc::unknown_view);
}

TEST_F(audit_test, with_an_interval_every_view_is_audited_continuously) {
  fill();
  EXPECT_FALSE(rt_->last_audit("counts"));
  stop();
  interval_ = 20ms;
  start();
  for (int i = 0; i < 2000 && !(rt_->last_audit("totals") && rt_->last_audit("noisy")); ++i)
    std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(rt_->last_audit("counts"));
  EXPECT_TRUE(rt_->last_audit("counts")->ok);
  ASSERT_TRUE(rt_->last_audit("totals"));
  EXPECT_TRUE(rt_->last_audit("totals")->ok);
  ASSERT_TRUE(rt_->last_audit("noisy"));
  EXPECT_FALSE(rt_->last_audit("noisy")->ok);
}

TEST_F(audit_test, a_scrub_finds_a_flipped_byte_in_a_log_record_by_its_offset) {
  fill();
  auto scrub = [&] {
    EXPECT_TRUE(rt_->start_scrub());
    for (int i = 0; i < 2000 && rt_->last_scrub().running; ++i) std::this_thread::sleep_for(10ms);
    return rt_->last_scrub();
  };
  auto sound = scrub();
  EXPECT_TRUE(sound.ok) << sound.error;
  EXPECT_EQ(sound.checked, 30u);
  EXPECT_EQ(sound.head, 30u);
  edit_underneath("", "log", MDB_INTEGERKEY, [](MDB_txn* txn, unsigned dbi) {
    uint64_t offset = 17;
    MDB_val k = uint64_val(offset), v;
    ASSERT_EQ(mdb_get(txn, dbi, &k, &v), MDB_SUCCESS);
    std::string record(to_view(v));
    record[record.size() / 2] ^= 0x20;
    v = to_val(record);
    ASSERT_EQ(mdb_put(txn, dbi, &k, &v, 0), MDB_SUCCESS);
  });
  auto bad = scrub();
  EXPECT_FALSE(bad.ok);
  ASSERT_EQ(bad.problems.size(), 1u);
  EXPECT_EQ(bad.problems[0].offset, 17u);
  EXPECT_EQ(bad.checked, 30u);
}

}  // namespace
}  // namespace derive
