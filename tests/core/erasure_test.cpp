// Specification of erasure in the log: redacted records keep offset, ts and
// type and lose key, subject and data; idempotency keys of erased events go;
// erasure requests are durable until finished.

#include "core/log.hpp"

#include "core/append_check.hpp"
#include "core/lmdb_util.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

namespace derive {
namespace {

namespace fs = std::filesystem;

event_input ev(std::string type, std::string key, std::string data, std::string subject) {
  return {std::move(type), std::move(key), std::move(subject), std::move(data)};
}

checked_append request(std::vector<event_input> events, std::string key = "") {
  std::string fp = key.empty() ? "" : "fp-" + key;
  return checked_append_access::make(std::move(events), std::move(key), std::move(fp));
}

class erasure_test : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/derive-erasure-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    options_.clock = [] { return int64_t{1'000'000}; };
    open();
  }
  void TearDown() override {
    log_.reset();
    env_.reset();
    fs::remove_all(dir_);
  }
  void open() {
    auto env = environment::open(dir_);
    ASSERT_TRUE(env) << env.error().to_string();
    env_ = std::move(*env);
    auto log = event_log::open(*env_, options_);
    ASSERT_TRUE(log) << log.error().to_string();
    log_ = std::move(*log);
  }
  void reopen() {
    log_.reset();
    env_.reset();
    open();
  }
  std::vector<event> read_all() {
    auto r = log_->read(1, 1'000'000);
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? *r : std::vector<event>{};
  }
  // Appends alice's and bob's events interleaved: alice at odd offsets.
  void append_people(int n) {
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(log_->append(request({ev("note.added", "alice-key-" + std::to_string(i),
                                            "{\"text\":\"alice secret " + std::to_string(i) + "\"}",
                                            "alice")},
                                       "idem-alice-" + std::to_string(i))));
      ASSERT_TRUE(log_->append(request({ev("note.added", "bob-key-" + std::to_string(i),
                                            "{\"text\":\"bob " + std::to_string(i) + "\"}", "bob")},
                                       "idem-bob-" + std::to_string(i))));
    }
  }

  std::string dir_;
  log_options options_;
  std::unique_ptr<environment> env_;
  std::unique_ptr<event_log> log_;
};

TEST(redacted_record, RoundTripsAndKeepsItsChecksum) {
  std::string record;
  encode_redacted_record("session.started", -42, record);
  auto e = decode_event_record(7, record);
  ASSERT_TRUE(e) << e.error().to_string();
  EXPECT_TRUE(e->redacted);
  EXPECT_EQ(e->offset, 7u);
  EXPECT_EQ(e->ts, -42);
  EXPECT_EQ(e->type, "session.started");
  EXPECT_EQ(e->key, "");
  EXPECT_EQ(e->subject, "");
  EXPECT_EQ(e->data, "null");
  EXPECT_EQ(e->to_json(),
            "{\"offset\":7,\"ts\":-42,\"type\":\"session.started\",\"key\":\"\",\"data\":null,"
            "\"redacted\":true}");
  record[3] ^= 1;
  EXPECT_EQ(decode_event_record(7, record).error().code(), errc::corruption);
}

TEST(redacted_record, DecodingIntoAReusedEventClearsTheFlag) {
  std::string redacted, plain;
  encode_redacted_record("t", 1, redacted);
  encode_event_record({"t", "k", "s", "1"}, 2, plain);
  event e;
  ASSERT_TRUE(decode_event_record(1, redacted, e));
  ASSERT_TRUE(decode_event_record(2, plain, e));
  EXPECT_FALSE(e.redacted);
  EXPECT_EQ(e.key, "k");
  EXPECT_EQ(e.subject, "s");
}

TEST_F(erasure_test, RedactingASubjectKeepsOffsetsTypesAndTimesAndDropsTheRest) {
  append_people(3);
  const auto before = read_all();
  auto redacted = log_->redact_subjects({"alice"});
  ASSERT_TRUE(redacted) << redacted.error().to_string();
  ASSERT_EQ(redacted->size(), 1u);
  EXPECT_EQ((*redacted)[0], (std::vector<uint64_t>{1, 3, 5}));
  for (int round = 0; round < 2; ++round) {
    const auto after = read_all();
    ASSERT_EQ(after.size(), before.size());
    for (size_t i = 0; i < after.size(); ++i) {
      EXPECT_EQ(after[i].offset, before[i].offset);
      EXPECT_EQ(after[i].ts, before[i].ts);
      EXPECT_EQ(after[i].type, before[i].type);
      if (before[i].subject == "alice") {
        EXPECT_TRUE(after[i].redacted);
        EXPECT_EQ(after[i].key, "");
        EXPECT_EQ(after[i].subject, "");
        EXPECT_EQ(after[i].data, "null");
      } else {
        EXPECT_FALSE(after[i].redacted);
        EXPECT_EQ(after[i].key, before[i].key);
        EXPECT_EQ(after[i].data, before[i].data);
        EXPECT_EQ(after[i].subject, "bob");
      }
    }
    reopen();
  }
  EXPECT_EQ(log_->head(), 6u);
}

TEST_F(erasure_test, RedactionIsIdempotentAndAnUnknownSubjectRedactsNothing) {
  append_people(2);
  ASSERT_TRUE(log_->redact_subjects({"alice"}));
  auto again = log_->redact_subjects({"alice", "nobody"});
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ((*again)[0], (std::vector<uint64_t>{1, 3}));
  EXPECT_TRUE((*again)[1].empty());
  EXPECT_EQ(read_all().size(), 4u);
}

TEST_F(erasure_test, TheIdempotencyKeysOfErasedEventsAreGone) {
  append_people(2);
  ASSERT_TRUE(log_->redact_subjects({"alice"}));
  for (int i = 0; i < 2; ++i) {
    auto a = log_->find_idempotency_key("idem-alice-" + std::to_string(i));
    ASSERT_TRUE(a);
    EXPECT_FALSE(a->has_value());
    auto b = log_->find_idempotency_key("idem-bob-" + std::to_string(i));
    ASSERT_TRUE(b);
    EXPECT_TRUE(b->has_value());
  }
}

// environment::compact_online: it waits for open transactions (bounded),
// new ones wait for it, and the log works on through its reopened handles.
TEST_F(erasure_test, AnOnlineCompactionWaitsForTransactionsAndTheLogWorksOnAfterIt) {
  append_people(200);
  ASSERT_TRUE(log_->redact_subjects({"alice"}));
  ASSERT_TRUE(log_->finish_erasures({"alice"}));
  {  // An open read transaction: the compaction gives up, nothing changed.
    txn_guard reader;
    ASSERT_EQ(env_->begin_txn(reader, MDB_RDONLY), MDB_SUCCESS);
    auto st = env_->compact_online(std::chrono::milliseconds(50));
    EXPECT_EQ(st.code(), errc::unavailable) << st.to_string();
  }
  // Appends from another thread meanwhile wait and succeed.
  std::atomic<bool> go{false};
  std::atomic<int> failed{0};
  std::thread writer([&] {
    while (!go.load()) std::this_thread::yield();
    for (int i = 0; i < 50; ++i)
      if (!log_->append(request({ev("note.added", "carol-" + std::to_string(i), "{}", "carol")},
                                "idem-carol-" + std::to_string(i))))
        ++failed;
  });
  go = true;
  std::chrono::microseconds paused{-1};
  auto st = env_->compact_online(std::chrono::seconds(10), &paused);
  writer.join();
  ASSERT_TRUE(st) << st.to_string();
  EXPECT_GE(paused.count(), 0);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_FALSE(fs::exists(fs::path(dir_) / "data.mdb.compact"));
  auto all = read_all();
  ASSERT_EQ(all.size(), 450u);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].offset, i + 1);
  EXPECT_TRUE(log_->find_idempotency_key("idem-bob-7")->has_value());
  EXPECT_TRUE(log_->find_idempotency_key("idem-carol-49")->has_value());
  EXPECT_FALSE(log_->find_idempotency_key("idem-alice-7")->has_value());
  ASSERT_TRUE(log_->append(request({ev("note.added", "dave", "{}", "dave")}, "idem-dave")));
  // No byte of alice's data is left in the file.
  std::ifstream in(fs::path(dir_) / "data.mdb", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(bytes.find("alice secret"), std::string::npos);
  EXPECT_NE(bytes.find("bob 7"), std::string::npos);
  reopen();  // and it opens as any data directory
  EXPECT_EQ(read_all().size(), 451u);
}

TEST_F(erasure_test, RequestsAreDurableUntilFinishedAndFinishingDropsTheSubjectIndex) {
  append_people(2);
  ASSERT_TRUE(log_->record_erasures({"alice", "carol"}, 123));
  ASSERT_TRUE(log_->record_erasures({"alice"}, 456));  // keeps the first time
  reopen();
  auto pending = log_->erasure_requests();
  ASSERT_TRUE(pending) << pending.error().to_string();
  ASSERT_EQ(pending->size(), 2u);
  EXPECT_EQ((*pending)[0].subject, "alice");
  EXPECT_EQ((*pending)[0].requested_at, 123);
  EXPECT_EQ((*pending)[1].subject, "carol");
  ASSERT_TRUE(log_->redact_subjects({"alice", "carol"}));
  EXPECT_EQ(log_->offsets_of_subject("alice")->size(), 2u);  // kept until finished
  ASSERT_TRUE(log_->finish_erasures({"alice", "carol"}));
  reopen();
  EXPECT_TRUE(log_->erasure_requests()->empty());
  EXPECT_TRUE(log_->offsets_of_subject("alice")->empty());
  EXPECT_EQ(log_->offsets_of_subject("bob")->size(), 2u);
}

TEST_F(erasure_test, RedactingOffsetsDropsTheirIndexEntriesAndKeys) {
  append_people(2);
  auto n = log_->redact_offsets({1, 2});
  ASSERT_TRUE(n) << n.error().to_string();
  EXPECT_EQ(*n, 2u);
  EXPECT_EQ(*log_->redact_offsets({1, 2}), 0u);
  auto all = read_all();
  EXPECT_TRUE(all[0].redacted);
  EXPECT_TRUE(all[1].redacted);
  EXPECT_FALSE(all[2].redacted);
  EXPECT_EQ(*log_->offsets_of_subject("alice"), (std::vector<uint64_t>{3}));
  EXPECT_FALSE(log_->find_idempotency_key("idem-bob-0")->has_value());
  EXPECT_TRUE(log_->find_idempotency_key("idem-bob-1")->has_value());
}

}  // namespace
}  // namespace derive
