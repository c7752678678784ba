#pragma once
// A fixture for deterministic actor tests: CAF's test coordinator runs every
// (non-detached) actor on the test thread, one message at a time, only when
// the test says so. Storage is real (core/), in a temporary directory.

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "core/environment.hpp"
#include "core/log.hpp"
#include "tests/actors/test_util.hpp"

namespace derive::testing {

struct test_coordinator_config : caf::actor_system_config {
  test_coordinator_config() { set("scheduler.policy", caf::atom("testing")); }
};

class deterministic_fixture : public ::testing::Test {
 protected:
  deterministic_fixture() {
    environment_options o;
    o.mode = durability::relaxed;
    o.map_size = uint64_t{1} << 30;
    env_ = environment::open(dir_.path(), o).value();
    log_ = event_log::open(*env_).value();
  }
  ~deterministic_fixture() override { sched().run(); }

  caf::scheduler::test_coordinator& sched() {
    return dynamic_cast<caf::scheduler::test_coordinator&>(sys_.scheduler());
  }
  // Appends directly to the log (no sequencer); returns the new head.
  uint64_t append_to_log(int n, const std::string& type = "a") {
    std::vector<event_input> events;
    for (int i = 0; i < n; ++i) events.push_back(make_event(type, "k" + std::to_string(i % 7)));
    for (size_t at = 0; at < events.size(); at += max_events_per_append) {
      auto end = std::min(events.size(), at + max_events_per_append);
      auto r = check_append({{events.begin() + at, events.begin() + end}, ""});
      EXPECT_TRUE(r && log_->append(std::move(*r)));
    }
    return log_->head();
  }

  temp_dir dir_;
  std::unique_ptr<environment> env_;
  std::unique_ptr<event_log> log_;
  test_coordinator_config config_;
  caf::actor_system sys_{config_};
};

}  // namespace derive::testing
