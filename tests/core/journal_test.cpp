// The journal (core/journal.hpp): records after a checkpoint, read back after
// a reopen up to the first torn or stale one.

#include "core/journal.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace derive {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t capacity = journal::records_begin + 4096;

class journal_test : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/derive-journal-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/journal";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<journal> open() {
    auto j = journal::open(path_, capacity);
    EXPECT_TRUE(j) << (j ? "" : j.error().to_string());
    return j ? std::move(*j) : nullptr;
  }
  journal::contents contents() {
    auto j = open();
    auto c = j->read();
    EXPECT_TRUE(c);
    return c ? *c : journal::contents{};
  }
  // Overwrites `n` bytes at `at` of the file with `byte`.
  void damage(uint64_t at, size_t n, char byte = '\x5a') {
    int fd = ::open(path_.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    std::string bytes(n, byte);
    ASSERT_EQ(::pwrite(fd, bytes.data(), n, static_cast<off_t>(at)), static_cast<ssize_t>(n));
    ::close(fd);
  }

  std::string dir_, path_;
};

using records = std::vector<std::string>;

TEST_F(journal_test, ANewJournalHasNoCheckpointAndNoRecords) {
  auto c = contents();
  EXPECT_FALSE(c.checkpoint);
  EXPECT_EQ(c.generation, 0u);
  EXPECT_TRUE(c.records.empty());
  EXPECT_EQ(fs::file_size(path_), capacity);
}

TEST_F(journal_test, RecordsAreReadBackInOrderAfterAReopen) {
  {
    auto j = open();
    ASSERT_TRUE(j->append("one"));
    ASSERT_TRUE(j->append(""));
    ASSERT_TRUE(j->append(std::string(100, 'x')));
    ASSERT_TRUE(j->sync());
  }
  EXPECT_EQ(contents().records, (records{"one", "", std::string(100, 'x')}));
}

TEST_F(journal_test, AppendsAfterAReopenGoAfterTheLastRecord) {
  {
    auto j = open();
    ASSERT_TRUE(j->append("one"));
    ASSERT_TRUE(j->sync());
  }
  {
    auto j = open();
    ASSERT_TRUE(j->append("two"));
    ASSERT_TRUE(j->sync());
  }
  EXPECT_EQ(contents().records, (records{"one", "two"}));
}

// A crash during a write leaves a torn record at the end: it and anything
// after it are not read (it was never acknowledged: its flush did not return).
TEST_F(journal_test, ATornRecordEndsTheRecords) {
  {
    auto j = open();
    ASSERT_TRUE(j->append("first"));
    ASSERT_TRUE(j->append("second"));
    ASSERT_TRUE(j->append("third"));
    ASSERT_TRUE(j->sync());
  }
  const uint64_t second = journal::records_begin + journal::record_header_bytes + 5;
  damage(second + journal::record_header_bytes + 2, 1);  // in "second"'s payload
  EXPECT_EQ(contents().records, (records{"first"}));
  auto j = open();  // the next record goes over the torn one
  ASSERT_TRUE(j->append("again"));
  ASSERT_TRUE(j->sync());
  j.reset();
  EXPECT_EQ(contents().records, (records{"first", "again"}));
}

TEST_F(journal_test, ATornLengthEndsTheRecords) {
  {
    auto j = open();
    ASSERT_TRUE(j->append("first"));
    ASSERT_TRUE(j->append("second"));
    ASSERT_TRUE(j->sync());
  }
  const uint64_t second = journal::records_begin + journal::record_header_bytes + 5;
  damage(second + 4, 4, '\xff');  // its length: beyond the file
  EXPECT_EQ(contents().records, (records{"first"}));
}

TEST_F(journal_test, ACheckpointEndsTheRecordsBeforeIt) {
  {
    auto j = open();
    ASSERT_TRUE(j->append("old one"));
    ASSERT_TRUE(j->append("old two"));
    ASSERT_TRUE(j->checkpoint("state at two"));
    EXPECT_EQ(j->used(), 0u);
    ASSERT_TRUE(j->append("new"));
    ASSERT_TRUE(j->sync());
  }
  auto c = contents();
  ASSERT_TRUE(c.checkpoint);
  EXPECT_EQ(*c.checkpoint, "state at two");
  EXPECT_EQ(c.generation, 1u);
  // "old two" is still in the file after "new", but it is older.
  EXPECT_EQ(c.records, (records{"new"}));
}

TEST_F(journal_test, RecordsLeftFromBeforeACheckpointAreNotRead) {
  {
    auto j = open();
    ASSERT_TRUE(j->append("old"));
    ASSERT_TRUE(j->checkpoint("c1"));
  }
  EXPECT_TRUE(contents().records.empty());  // "old" is at the start, with an older number
}

TEST_F(journal_test, TheNewestWholeCheckpointWinsAndATornOneFallsBack) {
  {
    auto j = open();
    ASSERT_TRUE(j->checkpoint("c1"));  // slot 0
    ASSERT_TRUE(j->append("after c1"));
    ASSERT_TRUE(j->checkpoint("c2"));  // slot 1
    ASSERT_TRUE(j->checkpoint("c3"));  // slot 0
  }
  auto c = contents();
  EXPECT_EQ(*c.checkpoint, "c3");
  EXPECT_EQ(c.generation, 3u);
  damage(journal::slot_header_bytes, 1);  // c3's payload, in slot 0
  c = contents();
  EXPECT_EQ(*c.checkpoint, "c2");
  EXPECT_EQ(c.generation, 2u);
  EXPECT_TRUE(c.records.empty());
  // The next checkpoint goes into the slot that does not hold c2.
  {
    auto j = open();
    ASSERT_TRUE(j->checkpoint("c3 again"));
  }
  c = contents();
  EXPECT_EQ(*c.checkpoint, "c3 again");
  EXPECT_EQ(c.generation, 3u);
}

// A checkpoint torn while it was written leaves the previous one and the
// records after it: the state they describe is the one before the attempt.
TEST_F(journal_test, ATornCheckpointLeavesThePreviousOneWithItsRecords) {
  {
    auto j = open();
    ASSERT_TRUE(j->checkpoint("c1"));  // slot 0
    ASSERT_TRUE(j->append("a"));
    ASSERT_TRUE(j->append("b"));
    ASSERT_TRUE(j->checkpoint("c2"));  // slot 1
  }
  damage(journal::slot_bytes + 4, 4);  // c2's magic
  auto c = contents();
  EXPECT_EQ(*c.checkpoint, "c1");
  EXPECT_EQ(c.records, (records{"a", "b"}));
}

// A rebase replaces the checkpoint and keeps the records after it (a store
// file replaced by a whole copy of the same state, before they are redone).
TEST_F(journal_test, ARebaseKeepsTheRecordsAfterTheCheckpoint) {
  {
    auto j = open();
    EXPECT_EQ(j->rebase("nothing to rebase").code(), errc::invalid_parameter);
    ASSERT_TRUE(j->checkpoint("c1"));
    ASSERT_TRUE(j->append("a"));
    ASSERT_TRUE(j->append("b"));
    ASSERT_TRUE(j->sync());
    ASSERT_TRUE(j->rebase("c1 of the copy"));
    ASSERT_TRUE(j->append("c"));
    ASSERT_TRUE(j->sync());
  }
  auto c = contents();
  EXPECT_EQ(*c.checkpoint, "c1 of the copy");
  EXPECT_EQ(c.generation, 2u);
  EXPECT_EQ(c.records, (records{"a", "b", "c"}));
}

TEST_F(journal_test, ARecordWithoutRoomIsRefusedUntilACheckpoint) {
  auto j = open();
  const std::string big(3000, 'b');
  ASSERT_TRUE(j->append(big));
  auto full = j->append(big);
  EXPECT_EQ(full.code(), errc::storage_full);
  ASSERT_TRUE(j->checkpoint("c"));
  EXPECT_TRUE(j->append(big));
  ASSERT_TRUE(j->sync());
  j.reset();
  EXPECT_EQ(contents().records, (records{big}));
}

TEST_F(journal_test, ACheckpointTooLargeForASlotIsRefused) {
  auto j = open();
  EXPECT_EQ(j->checkpoint(std::string(journal::max_checkpoint_bytes + 1, 'c')).code(),
            errc::invalid_parameter);
  EXPECT_TRUE(j->checkpoint(std::string(journal::max_checkpoint_bytes, 'c')));
}

// After a checkpoint and a scrub, no byte of an earlier record is in the file
// (an erasure must not leave a subject's bytes in the journal).
TEST_F(journal_test, AScrubAfterACheckpointLeavesNoEarlierRecordBytes) {
  auto j = open();
  ASSERT_TRUE(j->append("secret-subject-bytes"));
  ASSERT_TRUE(j->checkpoint("c"));
  ASSERT_TRUE(j->scrub());
  j.reset();
  std::string file(fs::file_size(path_), '\0');
  int fd = ::open(path_.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pread(fd, file.data(), file.size(), 0), static_cast<ssize_t>(file.size()));
  ::close(fd);
  EXPECT_EQ(file.find("secret-subject-bytes"), std::string::npos);
  EXPECT_EQ(*contents().checkpoint, "c");
}

// One process per data directory: a second open would write the
// checkpoint's meta pages into the first one's live file.
TEST_F(journal_test, ASecondOpenIsRefusedUntilTheFirstCloses) {
  auto first = open();
  auto second = journal::open(path_, capacity);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), errc::unavailable);
  first.reset();
  EXPECT_TRUE(journal::open(path_, capacity));
}

TEST_F(journal_test, AFileShorterThanTheHeaderIsNotAJournal) {
  int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "x", 1), 1);
  ::close(fd);
  auto j = journal::open(path_, capacity);
  ASSERT_FALSE(j);
  EXPECT_EQ(j.error().code(), errc::corruption);
}

}  // namespace
}  // namespace derive
