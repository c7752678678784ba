#include "actors/sequencer.hpp"

#include <vector>

#include <caf/all.hpp>

#include <derive/actor_handles.hpp>
#include <derive/logging.hpp>
#include "actors/messages.hpp"

namespace derive {

void sequencer_counters::record_latency(std::chrono::steady_clock::duration d) {
  auto us = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
  latency_count.fetch_add(1, std::memory_order_relaxed);
  latency_sum_us.fetch_add(us, std::memory_order_relaxed);
  size_t bucket = 0;
  while (bucket < std::size(latency_bounds_us) && us > latency_bounds_us[bucket]) ++bucket;
  latency_histogram[bucket].fetch_add(1, std::memory_order_relaxed);
}

namespace {

constexpr std::string_view component = "sequencer";

struct sequencer_state {
  static inline const char* name = "derive.sequencer";
  sequencer_context ctx;
  std::vector<append_job> pending;
  bool flush_queued = false;
};
using sequencer_actor_impl = caf::stateful_actor<sequencer_state>;

void enqueue(sequencer_actor_impl* self, append_job job) {
  auto& st = self->state;
  st.pending.push_back(std::move(job));
  if (!st.flush_queued) {
    st.flush_queued = true;
    self->send(self, flush_atom::value);
  }
}

void deliver(sequencer_state& st, append_job& job, result<append_outcome> outcome) {
  if (auto* c = st.ctx.counters) {
    c->requests.fetch_add(1, std::memory_order_relaxed);
    if (!outcome) c->failures.fetch_add(1, std::memory_order_relaxed);
    c->record_latency(std::chrono::steady_clock::now() - job.started);
  }
  try {
    if (job.done) job.done(std::move(outcome));
  } catch (const std::exception& e) {
    log_error(component, "an append callback threw: ", e.what());
  } catch (...) {
    log_error(component, "an append callback threw");
  }
}

// Commits up to max_group pending requests in one transaction, then answers
// each requester and announces the new head.
void commit_group(sequencer_actor_impl* self) {
  auto& st = self->state;
  if (st.pending.empty()) return;
  size_t n = std::min(st.pending.size(), st.ctx.max_group);
  std::vector<append_job> jobs(std::make_move_iterator(st.pending.begin()),
                               std::make_move_iterator(st.pending.begin() + n));
  st.pending.erase(st.pending.begin(), st.pending.begin() + n);
  std::vector<checked_append> group;
  group.reserve(n);
  for (auto& job : jobs) group.push_back(std::move(job.request));
  auto outcomes = st.ctx.log->append(group);
  uint64_t appended = 0;
  uint64_t head = 0;
  for (size_t i = 0; i < n; ++i) {
    if (outcomes[i] && !outcomes[i]->replayed && outcomes[i]->count > 0) {
      appended += outcomes[i]->count;
      head = std::max(head, outcomes[i]->first_offset + outcomes[i]->count - 1);
    }
  }
  if (auto* c = st.ctx.counters) {
    c->commits.fetch_add(1, std::memory_order_relaxed);
    c->events.fetch_add(appended, std::memory_order_relaxed);
  }
  DERIVE_LOG_TRACE(component, "group of ", n, " requests, ", appended, " events");
  for (size_t i = 0; i < n; ++i) deliver(st, jobs[i], std::move(outcomes[i]));
  if (appended > 0 && st.ctx.committed) st.ctx.committed(head);
}

caf::behavior sequencer(sequencer_actor_impl* self, sequencer_context ctx) {
  self->state.ctx = std::move(ctx);
  return {
      [=](append_job& job) { enqueue(self, std::move(job)); },
      [=](append_atom, append_request& request) -> caf::result<append_outcome> {
        auto checked = check_append(std::move(request));
        if (!checked) return to_error(checked.error());
        if (self->state.ctx.validate) {
          if (auto s = self->state.ctx.validate(*checked); !s) return to_error(s);
        }
        auto rp = self->make_response_promise<append_outcome>();
        enqueue(self, append_job{std::move(*checked), [rp](result<append_outcome> r) mutable {
                                   if (r) rp.deliver(std::move(*r));
                                   else rp.deliver(to_error(r.error()));
                                 }});
        return rp;
      },
      [=](flush_atom) {
        auto& st = self->state;
        st.flush_queued = false;
        commit_group(self);
        if (!st.pending.empty()) {  // more than max_group were waiting
          st.flush_queued = true;
          self->send(self, flush_atom::value);
        }
      },
      [=](stop_atom, const done_callback& done) {
        auto& st = self->state;
        while (!st.pending.empty()) commit_group(self);
        if (done.fn) done.fn();
        self->quit();
      },
  };
}

}  // namespace

caf::actor spawn_sequencer(caf::actor_system& sys, sequencer_context ctx, bool detached) {
  if (detached) return sys.spawn<caf::detached>(sequencer, std::move(ctx));
  return sys.spawn(sequencer, std::move(ctx));
}

}  // namespace derive
