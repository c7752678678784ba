// Specification of the event log: offsets, reads, group commit, idempotency,
// retention of keys, storage_full, the subject index and the record codec.

#include "core/log.hpp"

#include "core/append_check.hpp"
#include "core/hash.hpp"

#include <gtest/gtest.h>
#include <lmdb.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>

namespace derive {
namespace {

namespace fs = std::filesystem;

event_input ev(std::string type, std::string key = "", std::string data = "null",
               std::string subject = "") {
  return {std::move(type), std::move(key), std::move(subject), std::move(data)};
}

// A request as core's checks hand it to the log, with a chosen fingerprint
// (the log trusts it and only compares fingerprints).
checked_append request(std::vector<event_input> events, std::string key = "",
                       std::string fingerprint = "") {
  if (!key.empty() && fingerprint.empty()) fingerprint = "fp-" + std::to_string(events.size());
  return checked_append_access::make(std::move(events), std::move(key), std::move(fingerprint));
}

// Every test runs twice: commits flushed by LMDB, and journaled (the
// runtime's log: docs/storage.md, "The log's journal").
class log_test : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/derive-log-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    options_.clock = [this] { return now_.load(); };
    if (journaled()) env_options_.journal_bytes = uint64_t{1} << 20;
    open();
  }

  void TearDown() override {
    close();
    fs::remove_all(dir_);
  }

  // The parameter of TEST_P tests; the derived fixtures' TEST_F tests: flushed.
  bool journaled() const {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    return info != nullptr && info->value_param() != nullptr && GetParam();
  }

  void open() {
    auto env = environment::open(dir_, env_options_);
    ASSERT_TRUE(env) << env.error().to_string();
    env_ = std::move(*env);
    auto log = event_log::open(*env_, options_);
    ASSERT_TRUE(log) << log.error().to_string();
    log_ = std::move(*log);
  }

  void close() {
    log_.reset();
    env_.reset();
  }

  void reopen() {
    close();
    open();
  }

  // Appends `events` as one request and returns its outcome (must succeed).
  append_outcome append_ok(std::vector<event_input> events, std::string key = "",
                           std::string fingerprint = "") {
    auto r = log_->append(request(std::move(events), std::move(key), std::move(fingerprint)));
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? *r : append_outcome{};
  }

  std::vector<event> read_all() {
    auto r = log_->read(1, 1'000'000);
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? *r : std::vector<event>{};
  }

  bool key_known(const std::string& key) {
    auto r = log_->find_idempotency_key(key);
    EXPECT_TRUE(r);
    return r && r->has_value();
  }

  std::string dir_;
  std::atomic<int64_t> now_{1'000'000};
  environment_options env_options_;
  log_options options_;
  std::unique_ptr<environment> env_;
  std::unique_ptr<event_log> log_;
};

// ---- offsets, reads, restarts ------------------------------------------------

TEST_P(log_test, empty_log_has_head_zero_and_no_events) {
  EXPECT_EQ(log_->head(), 0u);
  EXPECT_TRUE(read_all().empty());
}

// ---- pipelined durability (docs/storage.md, "Durability") ----------------------------

// A deferred commit is invisible to readers until a later commit's flush or a
// sync makes it durable.
TEST_P(log_test, a_deferred_commit_is_invisible_until_durable) {
  if (journaled()) GTEST_SKIP() << "journaled: an append is durable when it returns";
  std::vector<checked_append> group;
  group.push_back(request({ev("a", "k", "1", "s")}, "key-a", "fp-a"));
  auto out = log_->append_deferred(group);
  ASSERT_TRUE(out[0]);
  EXPECT_EQ(log_->written_head(), 1u);
  EXPECT_EQ(log_->head(), 0u);
  EXPECT_TRUE(read_all().empty());
  EXPECT_TRUE(log_->offsets_of_subject("s")->empty());
  EXPECT_FALSE(key_known("key-a"));
  ASSERT_TRUE(log_->sync());
  EXPECT_EQ(log_->head(), 1u);
  EXPECT_EQ(read_all().size(), 1u);
  EXPECT_EQ(*log_->offsets_of_subject("s"), std::vector<uint64_t>{1});
  EXPECT_TRUE(key_known("key-a"));
}

TEST_P(log_test, the_next_commit_makes_the_previous_one_durable) {
  if (journaled()) GTEST_SKIP() << "journaled: an append is durable when it returns";
  std::vector<checked_append> first, second;
  first.push_back(request({ev("a")}));
  second.push_back(request({ev("b"), ev("c")}));
  ASSERT_TRUE(log_->append_deferred(first)[0]);
  ASSERT_TRUE(log_->append_deferred(second)[0]);
  EXPECT_EQ(log_->head(), 1u);  // the second commit's flush covered the first's meta page
  EXPECT_EQ(log_->written_head(), 3u);
  EXPECT_EQ(read_all().size(), 1u);
  ASSERT_TRUE(log_->sync());
  EXPECT_EQ(log_->head(), 3u);
}

// LMDB 0.9.24 takes MDB_NOMETASYNC from the environment's flags, not from
// mdb_txn_begin (core/lmdb_util.hpp): a deferred append's commit must run with
// the environment's flag set (its meta page is not synced: one flush per group),
// and a write that is durable when it returns (an erasure request) without it.
TEST_P(log_test, only_a_deferred_append_leaves_its_meta_page_unsynced) {
  if (journaled()) GTEST_SKIP() << "journaled: an append is durable when it returns";
  auto env_flags = [&] {
    unsigned flags = 0;
    EXPECT_EQ(mdb_env_get_flags(env_->handle(), &flags), MDB_SUCCESS);
    return flags & MDB_NOMETASYNC;
  };
  std::vector<checked_append> group;
  group.push_back(request({ev("a")}));
  ASSERT_TRUE(log_->append_deferred(group)[0]);
  EXPECT_NE(env_flags(), 0u);
  ASSERT_TRUE(log_->record_erasures({"s"}, 1));
  EXPECT_EQ(env_flags(), 0u);
  group.clear();
  group.push_back(request({ev("b")}));
  ASSERT_TRUE(log_->append_deferred(group)[0]);
  EXPECT_NE(env_flags(), 0u);
  ASSERT_TRUE(log_->sync());
  EXPECT_EQ(log_->head(), 2u);
}

TEST_P(log_test, relaxed_commits_count_as_durable_at_once) {
  close();
  env_options_.mode = durability::relaxed;
  open();
  std::vector<checked_append> group;
  group.push_back(request({ev("a")}));
  ASSERT_TRUE(log_->append_deferred(group)[0]);
  EXPECT_EQ(log_->head(), 1u);
}

TEST_P(log_test, offsets_start_at_one_and_are_consecutive) {
  auto a = append_ok({ev("a")});
  auto b = append_ok({ev("b"), ev("c"), ev("d")});
  EXPECT_EQ(a.first_offset, 1u);
  EXPECT_EQ(a.count, 1u);
  EXPECT_EQ(b.first_offset, 2u);
  EXPECT_EQ(b.count, 3u);
  EXPECT_EQ(log_->head(), 4u);
}

TEST_P(log_test, read_returns_stored_events_in_order) {
  append_ok({ev("doc.put", "doc-1", R"({"title":"x"})", "user-4"), ev("doc.del", "doc-2")});
  auto events = read_all();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].to_json(), R"({"offset":1,"ts":1000000,"type":"doc.put","key":"doc-1",)"
                                 R"("data":{"title":"x"},"subject":"user-4"})");
  EXPECT_EQ(events[1].offset, 2u);
  EXPECT_EQ(events[1].type, "doc.del");
  EXPECT_EQ(events[1].data, "null");
}

TEST_P(log_test, read_honours_from_and_limit) {
  for (int i = 0; i < 10; ++i) append_ok({ev("t")});
  auto page = log_->read(4, 3);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->size(), 3u);
  EXPECT_EQ(page->front().offset, 4u);
  EXPECT_EQ(page->back().offset, 6u);
  EXPECT_EQ(log_->read(0, 1)->front().offset, 1u);
  EXPECT_TRUE(log_->read(11, 5)->empty());
  EXPECT_TRUE(log_->read(1, 0)->empty());
}

TEST_P(log_test, read_stops_at_its_byte_bound_after_at_least_one_event) {
  for (int i = 0; i < 10; ++i) append_ok({ev("t", "k", "\"" + std::string(100, 'x') + "\"")});
  std::vector<event> page;
  ASSERT_TRUE(log_->read(1, 10, page, 1));
  ASSERT_EQ(page.size(), 1u);  // one event even when it alone passes the bound
  EXPECT_EQ(page.front().offset, 1u);
  ASSERT_TRUE(log_->read(3, 10, page, 150));
  ASSERT_EQ(page.size(), 2u);  // a record of 100-odd bytes stays under 150, the second passes it
  EXPECT_EQ(page.back().offset, 4u);
  ASSERT_TRUE(log_->read(1, 10, page, SIZE_MAX));
  EXPECT_EQ(page.size(), 10u);
}

TEST_P(log_test, events_and_head_survive_restart) {
  append_ok({ev("a", "k", "[1,2]")});
  append_ok({ev("b"), ev("c")});
  reopen();
  EXPECT_EQ(log_->head(), 3u);
  auto events = read_all();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].data, "[1,2]");
}

TEST_P(log_test, offsets_continue_after_restart) {
  append_ok({ev("a"), ev("b")});
  reopen();
  EXPECT_EQ(append_ok({ev("c")}).first_offset, 3u);
}

TEST_P(log_test, timestamps_come_from_the_clock_and_never_decrease) {
  append_ok({ev("a")});
  now_ = 5;  // the clock went backwards
  append_ok({ev("b")});
  now_ = 2'000'000;
  append_ok({ev("c")});
  auto events = read_all();
  EXPECT_EQ(events[0].ts, 1'000'000);
  EXPECT_EQ(events[1].ts, 1'000'000);
  EXPECT_EQ(events[2].ts, 2'000'000);
}

TEST_P(log_test, timestamps_never_decrease_across_restart) {
  append_ok({ev("a")});
  reopen();
  now_ = 5;
  append_ok({ev("b")});
  EXPECT_EQ(read_all()[1].ts, 1'000'000);
}

// ---- group commit --------------------------------------------------------------

TEST_P(log_test, group_gets_one_outcome_per_request_at_consecutive_offsets) {
  auto out = log_->append({request({ev("a"), ev("b")}), request({ev("c")})});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0]->first_offset, 1u);
  EXPECT_EQ(out[1]->first_offset, 3u);
  EXPECT_EQ(log_->head(), 3u);
}

TEST_P(log_test, failed_request_in_a_group_does_not_affect_the_others) {
  append_ok({ev("a")}, "k", "fp-a");
  auto out = log_->append({request({ev("b")}), request({ev("c")}, "k", "fp-c"),
                           request({ev("d")})});
  EXPECT_TRUE(out[0]);
  EXPECT_EQ(out[1].error().code(), errc::idempotency_key_reused);
  EXPECT_EQ(out[2]->first_offset, 3u);
  EXPECT_EQ(read_all().size(), 3u);
}

TEST_P(log_test, sticky_environment_error_refuses_appends_but_not_reads) {
  append_ok({ev("a")});
  env_->fail({errc::io_error, "disk gone"});
  auto r = log_->append(request({ev("b")}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "disk gone");
  EXPECT_EQ(read_all().size(), 1u);
}

// ---- idempotency ---------------------------------------------------------------

TEST_P(log_test, retry_with_same_key_and_body_replays) {
  auto first = append_ok({ev("a"), ev("b")}, "k1", "fp");
  auto again = append_ok({ev("a"), ev("b")}, "k1", "fp");
  EXPECT_TRUE(again.replayed);
  EXPECT_EQ(again.first_offset, first.first_offset);
  EXPECT_EQ(again.count, 2u);
  EXPECT_EQ(log_->head(), 2u);
}

TEST_P(log_test, same_key_with_different_body_is_reused) {
  append_ok({ev("a")}, "k1", "fp-a");
  auto r = log_->append(request({ev("b")}, "k1", "fp-b"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::idempotency_key_reused);
  EXPECT_EQ(log_->head(), 1u);
}

TEST_P(log_test, two_requests_with_one_key_in_a_group_append_once) {
  auto out = log_->append({request({ev("a")}, "k", "fp"), request({ev("a")}, "k", "fp"),
                           request({ev("x")}, "k", "other")});
  EXPECT_FALSE(out[0]->replayed);
  EXPECT_TRUE(out[1]->replayed);
  EXPECT_EQ(out[1]->first_offset, out[0]->first_offset);
  EXPECT_EQ(out[2].error().code(), errc::idempotency_key_reused);
  EXPECT_EQ(log_->head(), 1u);
}

TEST_P(log_test, idempotency_keys_survive_restart) {
  append_ok({ev("a")}, "k1", "fp");
  reopen();
  EXPECT_TRUE(append_ok({ev("a")}, "k1", "fp").replayed);
  EXPECT_EQ(log_->head(), 1u);
}

TEST_P(log_test, find_idempotency_key_returns_the_stored_outcome) {
  append_ok({ev("a")});
  append_ok({ev("b"), ev("c")}, "k1", "fp");
  auto found = log_->find_idempotency_key("k1");
  ASSERT_TRUE(found && found->has_value());
  EXPECT_EQ((*found)->first_offset, 2u);
  EXPECT_EQ((*found)->count, 2u);
  EXPECT_FALSE(key_known("k2"));
}

TEST_P(log_test, failed_request_leaves_no_key) {
  // Invalid requests never reach the log: check_append refuses them.
  EXPECT_EQ(check_append({{}, "k-empty"}).error().code(), errc::invalid_event);
  EXPECT_EQ(check_append({{ev("a")}, "bad key"}).error().code(),
            errc::invalid_idempotency_key);
  append_ok({ev("a")}, "k1", "fp-a");
  EXPECT_FALSE(log_->append(request({ev("b")}, "k1", "fp-b")));
  EXPECT_EQ(log_->find_idempotency_key("k1").value()->first_offset, 1u);
  EXPECT_FALSE(key_known("k-empty"));
  EXPECT_EQ(append_ok({ev("a")}, "k-empty", "fp").first_offset, 2u);
}

// ---- retention of idempotency keys ----------------------------------------------

class log_retention_test : public log_test {
 protected:
  void SetUp() override {
    options_.idempotency_retention = std::chrono::milliseconds(1000);
    options_.idempotency_min_keys = 2;
    log_test::SetUp();
  }

  void reconfigure(uint64_t min_keys, unsigned per_commit) {
    options_.idempotency_min_keys = min_keys;
    options_.idempotency_prune_per_commit = per_commit;
    reopen();
  }

  void append_keys(int from, int to) {
    for (int i = from; i <= to; ++i) append_ok({ev("t")}, "k" + std::to_string(i), "fp");
  }

  int known_keys(int from, int to) {
    int n = 0;
    for (int i = from; i <= to; ++i) n += key_known("k" + std::to_string(i));
    return n;
  }
};

// Pruning rides on a commit that happens anyway: a group of replays only
// commits nothing, so it prunes nothing (a journaled log could not tell its
// record from one the file holds: docs/storage.md, "The log's journal").
TEST_F(log_retention_test, a_group_of_replays_only_prunes_nothing) {
  append_keys(1, 3);
  now_ += 5000;  // every key expired; 3 keys, at least 2 kept
  auto replay = log_->append(request({ev("t")}, "k3", "fp"));
  ASSERT_TRUE(replay);
  EXPECT_TRUE(replay->replayed);
  EXPECT_EQ(known_keys(1, 3), 3) << "pruned by a group that appended nothing";
  append_keys(4, 4);  // this one commits, and prunes down to 2 keys
  EXPECT_EQ(known_keys(1, 4), 2);
}

TEST_F(log_retention_test, keys_younger_than_retention_are_kept) {
  append_keys(1, 5);
  now_ += 999;
  append_keys(6, 6);
  EXPECT_EQ(known_keys(1, 6), 6);
}

TEST_F(log_retention_test, expired_keys_are_pruned_oldest_first_down_to_the_minimum) {
  append_keys(1, 5);
  now_ += 1001;
  append_keys(6, 6);
  EXPECT_EQ(known_keys(1, 4), 0);
  EXPECT_EQ(known_keys(5, 6), 2);
}

TEST_F(log_retention_test, minimum_count_keeps_expired_keys) {
  reconfigure(100, 64);
  append_keys(1, 5);
  now_ += 5000;
  append_keys(6, 6);
  EXPECT_EQ(known_keys(1, 6), 6);
}

TEST_F(log_retention_test, pruning_is_bounded_per_commit) {
  reconfigure(0, 2);
  append_keys(1, 5);
  now_ += 5000;
  append_ok({ev("t")});
  EXPECT_EQ(known_keys(1, 5), 3);
  append_ok({ev("t")});
  EXPECT_EQ(known_keys(1, 5), 1);
}

TEST_F(log_retention_test, a_pruned_key_can_be_used_again) {
  reconfigure(0, 64);
  append_keys(1, 1);
  now_ += 5000;
  append_ok({ev("t")});
  EXPECT_FALSE(append_ok({ev("t")}, "k1", "new").replayed);
  EXPECT_EQ(log_->head(), 3u);
}

// ---- storage_full ------------------------------------------------------------------

class log_full_test : public log_test {
 protected:
  void SetUp() override {
    env_options_.map_size = 1 << 20;  // 1 MiB
    log_test::SetUp();
  }

  static std::vector<event_input> big_events(size_t n) {
    std::string data = "\"" + std::string(10'000, 'x') + "\"";
    return std::vector<event_input>(n, ev("big", "", data));
  }
};

TEST_F(log_full_test, append_beyond_the_map_is_storage_full_and_appends_nothing) {
  append_ok({ev("small")});
  auto out = log_->append({request({ev("a")}, "k1", "fp"), request(big_events(200))});
  for (auto& r : out) EXPECT_EQ(r.error().code(), errc::storage_full);
  EXPECT_EQ(log_->head(), 1u);
  EXPECT_EQ(read_all().size(), 1u);
  EXPECT_FALSE(key_known("k1"));
}

TEST_F(log_full_test, log_stays_usable_after_storage_full) {
  EXPECT_FALSE(log_->append(request(big_events(200))));
  EXPECT_EQ(append_ok({ev("a")}, "k1", "fp").first_offset, 1u);
  reopen();
  EXPECT_EQ(read_all().size(), 1u);
  EXPECT_TRUE(key_known("k1"));
}

TEST_F(log_full_test, filling_up_gradually_fails_cleanly) {
  status last;
  for (int i = 0; i < 200 && last.is_ok(); ++i) {
    auto r = log_->append(request(big_events(5)));
    if (!r) last = r.error();
  }
  EXPECT_EQ(last.code(), errc::storage_full);
  uint64_t head = log_->head();
  EXPECT_EQ(read_all().size(), head);
  reopen();
  EXPECT_EQ(log_->head(), head);
}

// ---- subject index ----------------------------------------------------------------

TEST_P(log_test, offsets_of_subject_lists_its_events_in_order) {
  append_ok({ev("a", "", "null", "u1"), ev("b", "", "null", "u2"), ev("c")});
  append_ok({ev("d", "", "null", "u1")});
  EXPECT_EQ(*log_->offsets_of_subject("u1"), (std::vector<uint64_t>{1, 4}));
  EXPECT_EQ(*log_->offsets_of_subject("u2"), (std::vector<uint64_t>{2}));
  EXPECT_TRUE(log_->offsets_of_subject("u3")->empty());
  EXPECT_TRUE(log_->offsets_of_subject("")->empty());
}

TEST_P(log_test, offsets_of_subject_spans_many_pages) {
  std::vector<event_input> batch(1000, ev("t", "", "null", "u1"));
  for (int i = 0; i < 3; ++i) append_ok(batch);
  auto offsets = *log_->offsets_of_subject("u1");
  ASSERT_EQ(offsets.size(), 3000u);
  for (size_t i = 0; i < offsets.size(); ++i) ASSERT_EQ(offsets[i], i + 1);
}

// ---- durability modes, concurrency ----------------------------------------------------

TEST_P(log_test, relaxed_mode_appends_and_keeps_events_across_a_clean_restart) {
  env_options_.mode = durability::relaxed;
  reopen();
  append_ok({ev("a")});
  append_ok({ev("b")}, "k", "fp");
  reopen();
  EXPECT_EQ(read_all().size(), 2u);
  EXPECT_TRUE(key_known("k"));
}

TEST_P(log_test, reads_run_concurrently_with_appends) {
  env_options_.mode = durability::relaxed;
  reopen();
  std::atomic<bool> done{false};
  std::atomic<int> bad_reads{0};
  std::thread reader([&] {
    uint64_t last_head = 0;
    while (!done) {
      uint64_t head = log_->head();
      auto events = log_->read(1, 100'000);
      if (!events || head < last_head || events->size() < head) ++bad_reads;
      for (size_t i = 0; events && i < events->size(); ++i)
        if ((*events)[i].offset != i + 1) ++bad_reads;
      last_head = head;
    }
  });
  for (int i = 0; i < 200; ++i) append_ok(std::vector<event_input>(10, ev("t")));
  done = true;
  reader.join();
  EXPECT_EQ(bad_reads, 0);
  EXPECT_EQ(log_->head(), 2000u);
}

// ---- record codec -------------------------------------------------------------------

TEST(log_record, round_trips) {
  std::string rec;
  encode_event_record(ev("doc.put", "k", R"({"a":"\u00e9"})", "u"), 1234, rec);
  auto e = decode_event_record(9, rec);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->to_json(), R"({"offset":9,"ts":1234,"type":"doc.put","key":"k",)"
                          R"("data":{"a":"\u00e9"},"subject":"u"})");
}

TEST(log_record, truncated_records_are_corruption) {
  std::string rec;
  encode_event_record(ev("t", "key", "[1,2,3]"), 99, rec);
  for (size_t n = 0; n < rec.size(); ++n)
    EXPECT_EQ(decode_event_record(1, rec.substr(0, n)).error().code(), errc::corruption) << n;
}

TEST(log_record, altered_bytes_are_corruption) {
  std::string rec;
  encode_event_record(ev("t", "key", "[1,2,3]"), 99, rec);
  for (size_t i = 0; i < rec.size(); ++i) {
    std::string bad = rec;
    bad[i] = static_cast<char>(bad[i] ^ 0x10);
    EXPECT_EQ(decode_event_record(1, bad).error().code(), errc::corruption) << i;
  }
}

TEST(log_record, checksum_is_crc32c) {
  EXPECT_EQ(detail::crc32c("123456789"), 0xe3069283u);
  EXPECT_EQ(detail::crc32c(""), 0u);
  std::string long_input(1000, 'a');
  EXPECT_EQ(detail::crc32c(long_input),
            ~detail::crc32c_sw(0xffffffffu, long_input.data(), long_input.size()));
}

TEST(log_record, checksums_of_many_records_match_one_at_a_time) {
  std::string text;
  for (int i = 0; i < 300; ++i) text += static_cast<char>('a' + i * 7 % 26);
  std::vector<std::string_view> inputs;
  for (size_t n = 0; n < 40; ++n) inputs.push_back(std::string_view(text).substr(n, n * 7 % 61));
  std::vector<uint32_t> sums(inputs.size());
  detail::crc32c_many(inputs.data(), sums.data(), inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) EXPECT_EQ(sums[i], detail::crc32c(inputs[i])) << i;
}

TEST_P(log_test, records_of_every_size_read_back) {
  std::vector<event_input> batch;
  for (size_t i = 0; i < 100; ++i)
    batch.push_back(ev(std::string(1 + i % 20, 't'), std::string(i * 3, 'k'),
                       "\"" + std::string(i * 11, 'd') + "\"", std::string(i % 5, 's')));
  append_ok(batch);
  auto events = read_all();
  ASSERT_EQ(events.size(), 100u);
  for (size_t i = 0; i < 100; ++i) {
    EXPECT_EQ(events[i].type, batch[i].type);
    EXPECT_EQ(events[i].key, batch[i].key);
    EXPECT_EQ(events[i].data, batch[i].data);
    EXPECT_EQ(events[i].subject, batch[i].subject);
  }
}

}  // namespace
}  // namespace derive

namespace derive {
namespace {

// A stream message's mark: its sequence, publisher's ts and id (digest 0).
ingest_mark mark(uint64_t seq, int64_t ts, std::string id = "") {
  return ingest_mark{seq, ts, stream_message_id{std::move(id), 0}};
}

// Cluster mode's ingest (docs/architecture.md, "Cluster mode"): the message's
// ts instead of the clock, the stream position in the same transaction.
TEST_P(log_test, ingest_stamps_the_message_ts_and_stores_the_stream_position) {
  EXPECT_EQ(log_->stream_seq(), 0u);
  auto out = log_->ingest_deferred({request({ev("a"), ev("b")}, "k1")}, mark(1, 5'000));
  ASSERT_TRUE(out[0]);
  EXPECT_EQ(out[0]->first_offset, 1u);
  ASSERT_TRUE(log_->sync());
  EXPECT_EQ(log_->stream_seq(), 1u);
  // A replay still moves the position; an older ts is raised to the last one.
  out = log_->ingest_deferred({request({ev("a"), ev("b")}, "k1"), request({ev("c")})},
                              mark(2, 4'000));
  ASSERT_TRUE(out[0] && out[1]);
  EXPECT_TRUE(out[0]->replayed);
  EXPECT_EQ(out[1]->first_offset, 3u);
  ASSERT_TRUE(log_->sync());
  auto events = log_->read(1, 10);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[0].ts, 5'000);
  EXPECT_EQ((*events)[2].ts, 5'000);
  reopen();
  EXPECT_EQ(log_->stream_seq(), 2u);
  EXPECT_EQ(log_->head(), 3u);
}

// The same key in two messages (a retry through another node): the second
// replays the first request's own offset, also when that request was not the
// first of its group, when both are in one batch of ingests (one sync) and
// after a restart between them.
TEST_P(log_test, ingest_replays_a_key_of_an_earlier_message_at_its_requests_offset) {
  auto out = log_->ingest_deferred({request({ev("x")}, "other"), request({ev("a")}, "k")},
                                   mark(1, 1'000, "n1-1"));
  ASSERT_TRUE(out[0] && out[1]);
  EXPECT_EQ(out[1]->first_offset, 2u);
  out = log_->ingest_deferred({request({ev("y")}), request({ev("a")}, "k")},
                              mark(2, 1'001, "n2-1"));
  ASSERT_TRUE(out[0] && out[1]);
  EXPECT_EQ(out[0]->first_offset, 3u);
  EXPECT_TRUE(out[1]->replayed);
  EXPECT_EQ(out[1]->first_offset, 2u);
  ASSERT_TRUE(log_->sync());
  reopen();
  out = log_->ingest_deferred({request({ev("a")}, "k"), request({ev("a")}, "k")},
                              mark(3, 1'002, "n3-1"));
  ASSERT_TRUE(out[0] && out[1]);
  EXPECT_TRUE(out[0]->replayed && out[1]->replayed);
  EXPECT_EQ(out[0]->first_offset, 2u);
  EXPECT_EQ(out[1]->first_offset, 2u);
  ASSERT_TRUE(log_->sync());
  EXPECT_EQ(log_->head(), 3u);
  auto found = log_->find_idempotency_key("k");
  ASSERT_TRUE(found && *found);
  EXPECT_EQ((*found)->first_offset, 2u);
}

// A publish the stream stored twice (a retry whose first try was stored):
// the copy, same id, appends nothing and answers nothing, on a log that was
// reopened in between too, while a message with another id appends.
TEST_P(log_test, ingest_drops_a_message_whose_id_an_earlier_message_carried) {
  auto out = log_->ingest_deferred({request({ev("a"), ev("b")})}, mark(1, 1'000, "p-1"));
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(out[0]);
  out = log_->ingest_deferred({request({ev("a"), ev("b")})}, mark(2, 1'001, "p-1"));
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(log_->stream_seq(), 2u);
  ASSERT_TRUE(log_->sync());
  reopen();
  out = log_->ingest_deferred({request({ev("a"), ev("b")})}, mark(3, 1'002, "p-1"));
  EXPECT_TRUE(out.empty());
  out = log_->ingest_deferred({request({ev("a"), ev("b")})}, mark(4, 1'003, "p-2"));
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(out[0]);
  EXPECT_EQ(out[0]->first_offset, 3u);
  // Messages without an id (earlier versions' without a header) all append.
  out = log_->ingest_deferred({request({ev("c")})}, mark(5, 1'004));
  out = log_->ingest_deferred({request({ev("c")})}, mark(6, 1'004));
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(log_->sync());
  EXPECT_EQ(log_->stream_seq(), 6u);
  EXPECT_EQ(log_->head(), 6u);
}

// Ids are kept for the last stream_id_window messages, and longer while
// their messages are less than stream_id_window_ms older (publisher ts) than
// the message ingested: both measured on the stream, so every node forgets
// the same ids at the same message.
TEST_P(log_test, ingest_forgets_message_ids_outside_both_windows_only) {
  close();
  env_options_.mode = durability::relaxed;  // thousands of commits
  open();
  uint64_t seq = 0;
  auto ingest = [&](const std::string& id, int64_t ts) {
    return log_->ingest_deferred({request({ev("e")})}, mark(++seq, ts, id)).size();
  };
  const int64_t later = 1'000 + stream_id_window_ms;
  ASSERT_EQ(ingest("old", 1'000), 1u);  // seq 1
  ASSERT_EQ(ingest("recent", later), 1u);  // seq 2
  while (seq + 2 < stream_id_window) ASSERT_EQ(ingest("fill-" + std::to_string(seq), later), 1u);
  EXPECT_EQ(ingest("old", later), 0u);  // seq window - 1: within the window of messages
  ASSERT_EQ(ingest("fill-a", later), 1u);  // seq window
  ASSERT_EQ(ingest("fill-b", later), 1u);  // seq window + 1: forgets seq 1
  EXPECT_EQ(ingest("old", later), 1u);
  // "recent" (seq 2) is out of the window of messages now, not of time.
  while (seq < stream_id_window + 10) ASSERT_EQ(ingest("fill-" + std::to_string(seq), later), 1u);
  EXPECT_EQ(ingest("recent", later + 1), 0u);
  reopen();
  EXPECT_EQ(ingest("recent", later + 2), 0u);
  EXPECT_EQ(ingest("fill-x", later + stream_id_window_ms + 1), 1u);  // forgets seq 2
  EXPECT_EQ(ingest("recent", later + stream_id_window_ms + 1), 1u);
}

// The stream position names its message too (the follower's check of the
// stream's history), also after a restart and for a dropped copy.
TEST_P(log_test, ingest_stores_the_message_id_with_the_stream_position) {
  EXPECT_EQ(log_->stream_message().id, "");
  log_->ingest_deferred({request({ev("a")}, "k1")}, ingest_mark{1, 1'000, {"node-1", 11}});
  log_->ingest_deferred({request({ev("a")}, "k1")}, ingest_mark{2, 1'000, {"node-2", 22}});
  EXPECT_EQ(log_->stream_message(), (stream_message_id{"node-2", 22}));
  log_->ingest_deferred({request({ev("a")}, "k1")}, ingest_mark{3, 1'000, {"node-1", 11}});
  EXPECT_EQ(log_->stream_message(), (stream_message_id{"node-1", 11}));
  ASSERT_TRUE(log_->sync());
  reopen();
  EXPECT_EQ(log_->stream_seq(), 3u);
  EXPECT_EQ(log_->stream_message(), (stream_message_id{"node-1", 11}));
}

// Every node stamps the same ts, also one that restarted after a message of
// replays only: such a commit stamps no event, so it does not raise the ts
// of the events after it (a restarted node reads the last ts from the last
// record).
TEST_P(log_test, ingest_stamps_the_same_ts_whether_or_not_the_log_was_reopened) {
  auto run = [&](bool restart) {
    log_->ingest_deferred({request({ev("a")}, "k1")}, mark(1, 5'000));
    log_->ingest_deferred({request({ev("a")}, "k1")}, mark(2, 9'000));  // a replay, later ts
    EXPECT_TRUE(log_->sync());
    if (restart) reopen();
    log_->ingest_deferred({request({ev("b")}, "k2")}, mark(3, 6'000));
    EXPECT_TRUE(log_->sync());
    auto events = read_all();
    return events.size() == 2 ? events[1].ts : -1;
  };
  const int64_t live = run(false);
  close();
  fs::remove_all(dir_);
  fs::create_directories(dir_);
  open();
  const int64_t restarted = run(true);
  EXPECT_EQ(live, restarted);
  EXPECT_EQ(live, 6'000);
}

}  // namespace
INSTANTIATE_TEST_SUITE_P(modes, log_test, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "journaled" : "flushed"; });

}  // namespace derive
