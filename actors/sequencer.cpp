#include "actors/sequencer.hpp"

#include <deque>
#include <unordered_map>
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

// A group committed but not yet acknowledged: its outcomes go out once the
// log's durable head reaches `durable_at` (the written head after its commit;
// for a group of replays, that makes sure the replayed events are durable).
struct written_group {
  std::vector<append_job> jobs;
  std::vector<result<append_outcome>> outcomes;
  uint64_t durable_at = 0;
};

struct sequencer_state {
  static inline const char* name = "derive.sequencer";
  sequencer_context ctx;
  std::vector<append_job> pending;
  std::deque<written_group> written;  // in commit order
  uint64_t announced = 0;             // the durable head last announced
  bool flush_queued = false;
  // Cluster mode: groups published, not yet ingested, by id.
  std::unordered_map<uint64_t, std::vector<append_job>> published;
  uint64_t last_group = 0;
  std::function<void()> stopped;  // set by stop_atom while published groups drain
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

// Commits up to max_group pending requests in one transaction, deferring its
// durability (event_log::append_deferred): it is acknowledged by acknowledge()
// once a later commit or a sync made it durable.
void commit_group(sequencer_actor_impl* self) {
  auto& st = self->state;
  if (st.pending.empty()) return;
  size_t n = std::min(st.pending.size(), st.ctx.max_group);
  written_group g;
  g.jobs.assign(std::make_move_iterator(st.pending.begin()),
                std::make_move_iterator(st.pending.begin() + n));
  st.pending.erase(st.pending.begin(), st.pending.begin() + n);
  std::vector<checked_append> group;
  group.reserve(n);
  for (auto& job : g.jobs) group.push_back(std::move(job.request));
  g.outcomes = st.ctx.log->append_deferred(group);
  g.durable_at = st.ctx.log->written_head();
  uint64_t appended = 0;
  for (auto& outcome : g.outcomes)
    if (outcome && !outcome->replayed) appended += outcome->count;
  if (auto* c = st.ctx.counters) {
    c->commits.fetch_add(1, std::memory_order_relaxed);
    c->events.fetch_add(appended, std::memory_order_relaxed);
  }
  DERIVE_LOG_TRACE(component, "group of ", n, " requests, ", appended, " events");
  st.written.push_back(std::move(g));
}

// The bytes a request adds to a stream message, about.
size_t message_bytes(const checked_append& r) {
  size_t n = 16 + r.idempotency_key().size() + r.fingerprint().size();
  for (const auto& e : r.events())
    n += 16 + e.type.size() + e.key.size() + e.subject.size() + e.data.size();
  return n;
}

// Cluster mode: publishes the pending requests that fit one message and
// keeps their jobs until the group's outcomes come back (ingested_group).
void publish_group(sequencer_actor_impl* self) {
  auto& st = self->state;
  if (st.pending.empty()) return;
  size_t n = 0, bytes = 0;
  while (n < st.pending.size() && n < st.ctx.max_group) {
    const size_t b = message_bytes(st.pending[n].request);
    if (n > 0 && bytes + b > st.ctx.max_message_bytes) break;
    bytes += b;
    ++n;
  }
  std::vector<append_job> jobs(std::make_move_iterator(st.pending.begin()),
                               std::make_move_iterator(st.pending.begin() + n));
  st.pending.erase(st.pending.begin(), st.pending.begin() + n);
  std::vector<checked_append> group;
  group.reserve(n);
  for (auto& job : jobs) group.push_back(std::move(job.request));
  const uint64_t id = ++st.last_group;
  st.published.emplace(id, std::move(jobs));
  DERIVE_LOG_TRACE(component, "publishing group ", id, " of ", n, " requests");
  st.ctx.publish(group, [me = caf::actor_cast<caf::actor>(self), id](
                            std::vector<result<append_outcome>> outcomes) {
    caf::anon_send(me, ingested_group{id, std::move(outcomes)});
  });
}

// Cluster mode: answers the requests of an ingested group.
void answer_group(sequencer_actor_impl* self, ingested_group& g) {
  auto& st = self->state;
  auto it = st.published.find(g.id);
  if (it == st.published.end()) return;
  auto jobs = std::move(it->second);
  st.published.erase(it);
  // Counted before anyone is answered: a client that reads /metrics after
  // its answer sees its events counted (as on the single-node path).
  uint64_t appended = 0;
  for (size_t i = 0; i < jobs.size() && i < g.outcomes.size(); ++i)
    if (g.outcomes[i] && !g.outcomes[i]->replayed) appended += g.outcomes[i]->count;
  if (auto* c = st.ctx.counters) {
    c->commits.fetch_add(1, std::memory_order_relaxed);
    c->events.fetch_add(appended, std::memory_order_relaxed);
  }
  for (size_t i = 0; i < jobs.size(); ++i) {
    auto outcome = i < g.outcomes.size()
                       ? std::move(g.outcomes[i])
                       : result<append_outcome>(errc::io_error, "no outcome for the request");
    deliver(st, jobs[i], std::move(outcome));
  }
  if (st.stopped && st.published.empty()) {
    st.stopped();
    self->quit();
  }
}

// Answers, in commit order, every group the log's durable head covers, and
// announces a new durable head.
void acknowledge(sequencer_state& st) {
  const uint64_t head = st.ctx.log->head();
  while (!st.written.empty() && st.written.front().durable_at <= head) {
    written_group g = std::move(st.written.front());
    st.written.pop_front();
    for (size_t i = 0; i < g.jobs.size(); ++i) deliver(st, g.jobs[i], std::move(g.outcomes[i]));
  }
  if (head > st.announced) {
    st.announced = head;
    if (st.ctx.committed) st.ctx.committed(head);
  }
}

// Makes every written group durable with one flush and answers them; if the
// flush fails, their fate is unknown: each requester is told so.
void sync_written(sequencer_state& st) {
  if (st.written.empty()) return;
  if (auto s = st.ctx.log->sync(); !s) {
    status unknown{errc::io_error, s.message() +
                                       "; the append may or may not be durable: retry it "
                                       "with the same Idempotency-Key after a restart"};
    for (auto& g : st.written)
      for (size_t i = 0; i < g.jobs.size(); ++i)
        deliver(st, g.jobs[i], g.outcomes[i] ? result<append_outcome>(unknown)
                                             : std::move(g.outcomes[i]));
    st.written.clear();
  }
  acknowledge(st);
}

// One step of the write pipeline: commits the waiting requests as one group
// (whose flush makes the previous group durable), or, when none waits,
// flushes once. Under load every group thus costs one flush.
void flush(sequencer_actor_impl* self) {
  auto& st = self->state;
  st.flush_queued = false;
  if (st.ctx.publish) {
    publish_group(self);
    if (!st.pending.empty()) {
      st.flush_queued = true;
      self->send(self, flush_atom::value);
    }
    return;
  }
  if (!st.pending.empty()) commit_group(self);
  else sync_written(st);
  acknowledge(st);
  if (!st.pending.empty() || !st.written.empty()) {
    // Behind every request already in the mailbox: they join the next group.
    st.flush_queued = true;
    self->send(self, flush_atom::value);
  }
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
      [=](flush_atom) { flush(self); },
      [=](writer_job& job) {
        auto& st = self->state;
        while (!st.pending.empty()) commit_group(self);
        if (job.run) job.run(*st.ctx.log);
        acknowledge(st);
      },
      [=](ingested_group& g) { answer_group(self, g); },
      [=](stop_atom) {  // cluster mode: stop_timeout passed
        auto& st = self->state;
        for (auto& [id, jobs] : st.published)
          for (auto& job : jobs)
            deliver(st, job,
                    status{errc::unavailable,
                           "this node stopped before it ingested the append; it may or may not "
                           "have been appended: retry it with the same Idempotency-Key"});
        st.published.clear();
        if (st.stopped) st.stopped();
        self->quit();
      },
      [=](stop_atom, const done_callback& done) {
        auto& st = self->state;
        if (st.ctx.publish) {
          while (!st.pending.empty()) publish_group(self);
          st.stopped = done.fn ? done.fn : [] {};
          if (st.published.empty()) {
            st.stopped();
            self->quit();
            return;
          }
          // The rest is answered by answer_group, or failed at the timeout.
          self->delayed_send(self, st.ctx.stop_timeout, stop_atom::value);
          return;
        }
        while (!st.pending.empty()) commit_group(self);
        sync_written(st);
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
