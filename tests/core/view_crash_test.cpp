// Crash specification of core/view_store.hpp: a writer process is killed with
// SIGKILL at random moments; after every kill, state, changelog and offset
// agree with each other and with a recomputation from scratch, and no
// acknowledged commit is lost.

#include "core/view_store.hpp"
#include "tests/common/child_process.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace derive {
namespace {

using state_map = std::map<std::string, std::string>;
using testing::child_process;

constexpr int kill_cycles = 24;

// ---------------------------------------------------------------------------
// The view the writer builds: a pure function of the offset.

std::string numbered(uint64_t n) { return "k/" + std::to_string(1'000'000 + n); }
std::string long_key(uint64_t n) { return std::string(600, 'L') + std::to_string(n % 4); }

// Every tenth offset is skipped (a dead letter); the others change keys.
bool is_dead_letter(uint64_t o) { return o % 10 == 0; }

std::vector<key_change> changes_at(uint64_t o) {
  if (is_dead_letter(o)) return {};
  std::vector<key_change> c;
  c.push_back({"counter", std::to_string(o)});
  c.push_back({numbered(o), "\"v" + std::to_string(o) + "\""});
  if (o % 3 == 0 && o > 5) c.push_back({numbered(o - 5), std::nullopt});
  if (o % 7 == 0) c.push_back({"blob", "\"" + std::string((o % 5) * 1500, 'b') + "\""});
  if (o % 11 == 0) c.push_back({long_key(o), std::to_string(o)});
  if (o % 13 == 0) c.push_back({long_key(o), std::nullopt});
  return c;
}

void apply_changes(state_map& state, const std::vector<key_change>& changes) {
  for (const auto& c : changes) {
    if (c.value)
      state[c.key] = *c.value;
    else
      state.erase(c.key);
  }
}

state_map expected_state(uint64_t offset) {
  state_map state;
  for (uint64_t o = 1; o <= offset; ++o) apply_changes(state, changes_at(o));
  return state;
}

std::string shorten(const std::string& s) {
  return s.size() <= 40 ? s : s.substr(0, 20) + "..(" + std::to_string(s.size()) + " bytes)";
}

// "" when equal, else the first difference (states hold long keys and values:
// printing them whole buries the failure).
std::string first_difference(const state_map& actual, const state_map& expected) {
  auto a = actual.begin();
  auto e = expected.begin();
  for (; a != actual.end() && e != expected.end(); ++a, ++e) {
    if (a->first != e->first)
      return "key " + shorten(a->first) + " where " + shorten(e->first) + " was expected";
    if (a->second != e->second)
      return "key " + shorten(a->first) + " = " + shorten(a->second) + ", expected " +
             shorten(e->second);
  }
  if (a != actual.end()) return "unexpected key " + shorten(a->first);
  if (e != expected.end()) return "missing key " + shorten(e->first);
  return "";
}

// ---------------------------------------------------------------------------
// The writer (child process).

environment_options writer_env_options(int cycle) {
  environment_options options;
  options.map_size = uint64_t{1} << 30;
  // A process crash must lose nothing in either mode: alternate them.
  options.mode = cycle % 2 == 0 ? durability::full : durability::relaxed;
  return options;
}

view_store_options store_options() {
  view_store_options options;
  // Keep everything (no count, byte or age limit), so the changelog can be replayed.
  options.changelog_retention = 0;
  options.changelog_max_bytes = 0;
  options.changelog_max_age = std::chrono::milliseconds(0);
  return options;
}

bool write_all(int fd, const void* data, size_t size) {
  auto* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = write(fd, p, size);
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// Commits batches of 1-4 offsets forever; writes each committed offset to
// `ack_fd` after commit() returned ok. Never returns.
[[noreturn]] void run_writer(const std::string& dir, int cycle, int ack_fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  auto env = environment::open(dir, writer_env_options(cycle));
  if (!env) _exit(3);
  auto store = view_store::open(**env, "crash", 1, store_options());
  if (!store) _exit(4);
  for (uint64_t offset = (*store)->offset();;) {
    uint64_t new_offset = offset + 1 + offset % 4;
    std::vector<offset_changes> batch;
    std::vector<dead_letter> dead;
    for (uint64_t o = offset + 1; o <= new_offset; ++o) {
      batch.push_back({o, changes_at(o)});
      if (is_dead_letter(o)) dead.push_back({o, "skipped " + std::to_string(o)});
    }
    if (!(*store)->commit(batch, new_offset, dead)) _exit(5);
    if (!write_all(ack_fd, &new_offset, sizeof new_offset)) _exit(6);
    offset = new_offset;
  }
}

// ---------------------------------------------------------------------------
// The checker (parent process).

class view_crash_test : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string path = "/tmp/derive-view-crash-test-XXXXXX";
    ASSERT_NE(mkdtemp(path.data()), nullptr);
    dir_ = path;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs a writer for `delay`, kills it, and returns the last offset it
  // acknowledged (0 when none).
  uint64_t run_and_kill(int cycle, std::chrono::milliseconds delay) {
    auto child = child_process::fork([&](int fd) { run_writer(dir_, cycle, fd); });
    if (!child.started()) {
      ADD_FAILURE() << "pipe or fork failed";
      return 0;
    }
    std::this_thread::sleep_for(delay);
    int wstatus = child.kill();
    EXPECT_TRUE(child_process::killed(wstatus))
        << "the writer stopped by itself with exit code " << WEXITSTATUS(wstatus);
    uint64_t last = 0, value = 0;
    while (child.read_record(value)) last = value;
    return last;
  }

  // Opens the data directory and checks that state, changelog, dead letters
  // and offset agree; returns the recovered offset.
  uint64_t check_recovered(uint64_t acknowledged) {
    auto env = environment::open(dir_);
    if (!env) {
      ADD_FAILURE() << env.error().to_string();
      return 0;
    }
    auto store = view_store::open(**env, "crash", 1, store_options());
    if (!store) {
      ADD_FAILURE() << store.error().to_string();
      return 0;
    }
    view_store& s = **store;
    const uint64_t offset = s.offset();
    EXPECT_GE(offset, acknowledged) << "an acknowledged commit was lost";
    check_state(s, offset);
    check_changelog(s, offset);
    check_dead_letters(s, offset);
    return offset;
  }

  static void check_state(const view_store& store, uint64_t offset) {
    auto snap = store.snapshot();
    ASSERT_TRUE(snap) << snap.error().to_string();
    EXPECT_EQ(snap->offset(), offset);
    auto page = snap->range("", "", 10'000'000);
    ASSERT_TRUE(page) << page.error().to_string();
    state_map state;
    for (auto& item : page->items) state.emplace(item.key, item.value);
    EXPECT_EQ(first_difference(state, expected_state(offset)), "")
        << "the state differs from a rebuild at offset " << offset;
  }

  // Every non-empty offset up to `offset` has its entry, no entry lies beyond,
  // and replaying the changelog from 0 yields the state.
  static void check_changelog(const view_store& store, uint64_t offset) {
    auto page = store.changes_since(0, 10'000'000);
    ASSERT_TRUE(page) << page.error().to_string();
    EXPECT_TRUE(page->served);
    EXPECT_EQ(page->view_offset, offset);
    std::vector<uint64_t> expected_offsets, offsets;
    for (uint64_t o = 1; o <= offset; ++o)
      if (!changes_at(o).empty()) expected_offsets.push_back(o);
    state_map replayed;
    for (const auto& entry : page->entries) {
      offsets.push_back(entry.offset);
      apply_changes(replayed, entry.changes);
    }
    EXPECT_EQ(offsets, expected_offsets)
        << offsets.size() << " changelog entries, " << expected_offsets.size() << " expected";
    EXPECT_EQ(first_difference(replayed, expected_state(offset)), "")
        << "replaying the changelog differs from a rebuild at offset " << offset;
  }

  static void check_dead_letters(const view_store& store, uint64_t offset) {
    auto letters = store.dead_letters();
    ASSERT_TRUE(letters) << letters.error().to_string();
    std::vector<uint64_t> expected, actual;
    for (uint64_t o = 10; o <= offset; o += 10) expected.push_back(o);
    for (const auto& letter : *letters) actual.push_back(letter.offset);
    EXPECT_EQ(actual, expected);
  }

  std::string dir_;
};

TEST_F(view_crash_test, state_changelog_and_offset_agree_after_every_kill) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 random(seed);
  std::uniform_int_distribution<int> delay_ms(5, 80);
  uint64_t acknowledged = 0, recovered = 0;
  for (int cycle = 0; cycle < kill_cycles && !HasFailure(); ++cycle) {
    SCOPED_TRACE("cycle " + std::to_string(cycle));
    auto delay = std::chrono::milliseconds(delay_ms(random));
    acknowledged = std::max(acknowledged, run_and_kill(cycle, delay));
    recovered = check_recovered(acknowledged);
  }
  EXPECT_GT(acknowledged, 0u) << "the writer never committed: the test checked nothing";
  RecordProperty("recovered_offset", std::to_string(recovered));
}

}  // namespace
}  // namespace derive
