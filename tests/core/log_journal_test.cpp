// The log's journal across crashes (docs/storage.md, "The log's journal"): a
// child process appends through a journaled environment, reports what was
// acknowledged and dies without closing anything; the parent simulates what a
// power loss may leave and reopens. Every acknowledged append must be there,
// whole, at its offsets, with its idempotency key; offsets stay gap-free.

#include "core/append_check.hpp"
#include "core/environment.hpp"
#include "core/journal.hpp"
#include "core/log.hpp"
#include "tests/common/child_process.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace derive {
namespace {

namespace fs = std::filesystem;
using testing::child_process;

environment_options journaled_options() {
  environment_options o;
  o.map_size = uint64_t{1} << 30;
  o.journal_bytes = uint64_t{4} << 20;
  return o;
}

checked_append request(uint64_t n) {
  std::vector<event_input> events;
  for (uint64_t i = 0, k = 1 + n % 5; i < k; ++i) {
    event_input e;
    e.type = "t";
    e.key = "k" + std::to_string(n % 13);
    e.subject = "r" + std::to_string(n) + "." + std::to_string(i);
    e.data = "{\"n\":" + std::to_string(n) + ",\"pad\":\"" + std::string(n % 300, 'p') + "\"}";
    events.push_back(std::move(e));
  }
  return checked_append_access::make(std::move(events), "key-" + std::to_string(n),
                                     "fp-" + std::to_string(n));
}

struct ack {
  uint64_t request = 0;
  uint64_t first = 0;
  uint64_t count = 0;
};

class log_journal_test : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/derive-log-journal-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A child appends `groups` groups of 1-3 requests (requests numbered from
  // `first_request`), reporting each acknowledged request, then dies
  // without closing the log or the environment.
  void run_child(uint64_t first_request, uint64_t groups) {
    auto child = child_process::fork([&](int fd) {
      auto env = environment::open(dir_, journaled_options());
      if (!env) ::_exit(3);
      auto log = event_log::open(**env);
      if (!log) ::_exit(4);
      uint64_t n = first_request;
      for (uint64_t g = 0; g < groups; ++g) {
        std::vector<checked_append> group;
        for (uint64_t r = 0, k = 1 + g % 3; r < k; ++r) group.push_back(request(n++));
        auto out = (*log)->append_deferred(group);
        if ((*log)->head() != (*log)->written_head()) ::_exit(5);  // durable when it returns
        for (size_t r = 0; r < out.size(); ++r) {
          if (!out[r]) ::_exit(6);
          ack a{n - group.size() + r, out[r]->first_offset, out[r]->count};
          if (::write(fd, &a, sizeof a) != sizeof a) ::_exit(7);
        }
      }
      ::_exit(0);  // no destructor: nothing is closed, no checkpoint at close
    });
    ASSERT_TRUE(child.started());
    ack a;
    while (child.read_record(a)) acks_.push_back(a);
    int wstatus = child.wait();
    ASSERT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << wstatus;
  }

  // Reopens and checks every acknowledged request.
  void verify() {
    auto env = environment::open(dir_, journaled_options());
    ASSERT_TRUE(env) << env.error().to_string();
    auto log = event_log::open(**env);
    ASSERT_TRUE(log) << log.error().to_string();
    const uint64_t head = (*log)->head();
    auto events = (*log)->read(1, 1'000'000);
    ASSERT_TRUE(events);
    ASSERT_EQ(events->size(), head);
    for (uint64_t i = 0; i < head; ++i) ASSERT_EQ((*events)[i].offset, i + 1) << "a gap";
    for (const auto& a : acks_) {
      ASSERT_LE(a.first + a.count - 1, head) << "acknowledged request " << a.request << " lost";
      for (uint64_t i = 0; i < a.count; ++i)
        ASSERT_EQ((*events)[a.first - 1 + i].subject,
                  "r" + std::to_string(a.request) + "." + std::to_string(i));
      auto known = (*log)->find_idempotency_key("key-" + std::to_string(a.request));
      ASSERT_TRUE(known && *known) << "request " << a.request << "'s key forgotten";
      EXPECT_EQ((*known)->first_offset, a.first);
    }
    head_ = head;
  }

  // What a power loss may leave of data.mdb: every page past the last page
  // of the journal's checkpoint zeroed (written after it, never flushed), the
  // newest meta page left as the last commit wrote it (pointing at them).
  void lose_pages_after_the_checkpoint() {
    auto j = journal::open(dir_ + "/journal", 0);
    ASSERT_TRUE(j);
    auto c = (*j)->read();
    ASSERT_TRUE(c && c->checkpoint);
    // The checkpoint: inode (8), page size (4), two meta pages' first 512
    // bytes; in each, after the 16-byte page header, MDB_meta's last_pg is
    // at 120 and txnid at 128.
    const std::string& cp = *c->checkpoint;
    ASSERT_EQ(cp.size(), 12u + 1024u);
    uint32_t page = 0;
    std::memcpy(&page, cp.data() + 8, 4);
    uint64_t last_pg[2], txnid[2];
    for (int i = 0; i < 2; ++i) {
      std::memcpy(&last_pg[i], cp.data() + 12 + i * 512 + 16 + 120, 8);
      std::memcpy(&txnid[i], cp.data() + 12 + i * 512 + 16 + 128, 8);
    }
    const uint64_t last = txnid[0] > txnid[1] ? last_pg[0] : last_pg[1];
    const std::string file = dir_ + "/data.mdb";
    const uint64_t size = fs::file_size(file);
    ASSERT_GT(size, (last + 1) * page) << "nothing was written after the checkpoint";
    int fd = ::open(file.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    std::string zeros(page, '\0');
    for (uint64_t at = (last + 1) * page; at < size; at += page)
      ASSERT_EQ(::pwrite(fd, zeros.data(), page, static_cast<off_t>(at)), ssize_t(page));
    ::close(fd);
  }

  std::string dir_;
  std::vector<ack> acks_;
  uint64_t head_ = 0;
};

TEST_F(log_journal_test, AProcessCrashLosesNoAcknowledgedAppend) {
  ASSERT_NO_FATAL_FAILURE(run_child(1, 200));
  ASSERT_NO_FATAL_FAILURE(verify());
  EXPECT_EQ(acks_.size(), 399u);
}

// The pages the last commits wrote never reached the disk, but the newest
// meta page did: LMDB alone would open a tree of zeroed pages. The journal
// writes the checkpoint's meta pages back and replays the appends after it.
TEST_F(log_journal_test, APowerLossAfterTheCheckpointLosesNoAcknowledgedAppend) {
  ASSERT_NO_FATAL_FAILURE(run_child(1, 200));
  ASSERT_NO_FATAL_FAILURE(lose_pages_after_the_checkpoint());
  ASSERT_NO_FATAL_FAILURE(verify());
  // And again on top: the replay's checkpoint is the new starting point.
  ASSERT_NO_FATAL_FAILURE(run_child(1000, 150));
  ASSERT_NO_FATAL_FAILURE(lose_pages_after_the_checkpoint());
  ASSERT_NO_FATAL_FAILURE(verify());
}

// A record torn by the crash (its flush never returned, so it was never
// acknowledged) ends the replay: the log ends before it, gap-free.
TEST_F(log_journal_test, ATornLastRecordIsNotReplayed) {
  ASSERT_NO_FATAL_FAILURE(run_child(1, 20));
  {
    auto j = journal::open(dir_ + "/journal", 0);
    ASSERT_TRUE(j);
    auto c = (*j)->read();
    ASSERT_TRUE(c);
    ASSERT_EQ(c->records.size(), 20u);
    uint64_t at = journal::records_begin;
    for (size_t i = 0; i + 1 < c->records.size(); ++i)
      at += journal::record_header_bytes + c->records[i].size();
    int fd = ::open((dir_ + "/journal").c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, "\xff", 1, static_cast<off_t>(at + journal::record_header_bytes)), 1);
    ::close(fd);
  }
  ASSERT_NO_FATAL_FAILURE(lose_pages_after_the_checkpoint());
  // The last group (20th: 2 requests) was "never acknowledged".
  acks_.resize(acks_.size() - 2);
  ASSERT_NO_FATAL_FAILURE(verify());
  uint64_t expected = 0;
  for (const auto& a : acks_) expected = std::max(expected, a.first + a.count - 1);
  EXPECT_EQ(head_, expected);
}

// A compaction of the restored checkpoint (environment::compact, as after an
// erasure) replaces data.mdb before the records are replayed: they are
// replayed on the new file.
TEST_F(log_journal_test, RecordsAreReplayedOnACompactedFile) {
  ASSERT_NO_FATAL_FAILURE(run_child(1, 100));
  ASSERT_TRUE(environment::compact(dir_, journaled_options()));
  ASSERT_NO_FATAL_FAILURE(verify());
  ASSERT_NO_FATAL_FAILURE(run_child(500, 50));
  ASSERT_NO_FATAL_FAILURE(verify());
}

// After a compaction replaced data.mdb (a new file), an open that still has
// records to redo first records a checkpoint of the new file: a power loss
// during the replay must find the copy's meta pages, not the old file's.
TEST_F(log_journal_test, AnOpenOntoACompactedFileWithRecordsLeftNamesTheNewFile) {
  ASSERT_NO_FATAL_FAILURE(run_child(1, 30));
  ASSERT_TRUE(environment::compact(dir_, journaled_options()));
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/data.mdb").c_str(), &st), 0);
  {
    auto env = environment::open(dir_, journaled_options());
    ASSERT_TRUE(env);
    EXPECT_FALSE((*env)->journal_records().empty());  // not redone yet
  }
  {
    auto j = journal::open(dir_ + "/journal", 0);
    ASSERT_TRUE(j);
    auto c = (*j)->read();
    ASSERT_TRUE(c && c->checkpoint);
    uint64_t inode = 0;
    std::memcpy(&inode, c->checkpoint->data(), 8);
    EXPECT_EQ(inode, static_cast<uint64_t>(st.st_ino));
    EXPECT_EQ(c->records.size(), 30u);  // kept for the replay
  }
  ASSERT_NO_FATAL_FAILURE(verify());
}

// Relaxed durability on a directory with a journal: appends are journaled
// (durable when they return), not checkpointed one by one.
TEST_F(log_journal_test, RelaxedDurabilityOnAJournaledDirectoryJournalsItsAppends) {
  ASSERT_NO_FATAL_FAILURE(run_child(1, 5));
  environment_options relaxed = journaled_options();
  relaxed.mode = durability::relaxed;
  relaxed.journal_bytes = 0;
  auto env = environment::open(dir_, relaxed);
  ASSERT_TRUE(env);
  ASSERT_TRUE((*env)->journaled());
  auto log = event_log::open(**env);
  ASSERT_TRUE(log);
  for (uint64_t n = 100; n < 110; ++n) {
    auto out = (*log)->append_deferred({request(n)});
    ASSERT_TRUE(out[0]);
    EXPECT_EQ((*log)->head(), (*log)->written_head());
  }
  EXPECT_EQ((*env)->journal_commits(), 10u);
}

}  // namespace
}  // namespace derive
