// Specification of core/environment.hpp's locking: one LMDB environment
// shared by threads that write and threads that open databases.

#include "core/environment.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <string>
#include <thread>

#include "core/lmdb_util.hpp"

namespace derive {
namespace {

class environment_test : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string path = "/tmp/derive-environment-test-XXXXXX";
    ASSERT_NE(mkdtemp(path.data()), nullptr);
    dir_ = path;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_;
};

// A writer that looks a database handle up inside its write transaction (a
// served-version record, a view's checkpoint) while another thread opens a
// new database (a view version declared meanwhile): both take LMDB's writer
// lock and the environment's own mutex, always in the same order, so
// neither waits for the other forever.
TEST_F(environment_test, opening_databases_beside_a_writer_never_deadlocks) {
  // Each round a fresh environment: a lock-order inversion deadlocked about
  // every other round here, so eight rounds all but always catch one.
  for (int round = 0; round < 8; ++round) {
    environment_options options;
    options.mode = durability::relaxed;
    options.max_databases = 1100;
    auto env = environment::open(dir_ + "/" + std::to_string(round), options);
    ASSERT_TRUE(env) << env.error().to_string();
    ASSERT_TRUE((*env)->database("fixed"));
    constexpr int opened = 1000;
    std::atomic<bool> done{false};
    auto opener = std::async(std::launch::async, [&] {
      for (int i = 0; i < opened; ++i)
        if (!(*env)->database("db-" + std::to_string(i))) return false;
      return true;
    });
    auto writer = std::async(std::launch::async, [&] {
      while (!done.load()) {
        txn_guard txn;
        if (!(*env)->begin_write(txn, "a test write")) return false;
        if (!(*env)->database("fixed")) return false;  // a lookup under the writer lock
      }
      return true;
    });
    const auto deadline = std::chrono::seconds(60);
    const bool opened_all = opener.wait_for(deadline) == std::future_status::ready;
    done = true;
    if (!opened_all || writer.wait_for(deadline) != std::future_status::ready) {
      // Deadlocked: the threads cannot be joined; report and leave.
      std::fprintf(stderr, "FAILED: database opens and a writer deadlocked (round %d)\n", round);
      std::_Exit(1);
    }
    EXPECT_TRUE(opener.get());
    EXPECT_TRUE(writer.get());
  }
}

}  // namespace
}  // namespace derive
