#include <derive/runtime.hpp>

#include <algorithm>
#include <filesystem>
#include <future>
#include <map>
#include <set>

#include <caf/all.hpp>

#include <derive/logging.hpp>
#include <derive/processor.hpp>
#include <derive/view.hpp>

#include "actors/eraser.hpp"
#include "actors/reclaimer.hpp"
#include "actors/audit.hpp"
#include "actors/messages.hpp"
#include "actors/runtime_state.hpp"
#include "actors/view_runner.hpp"
#include "core/crash_point.hpp"
#include "core/event.hpp"
#include "core/view_names.hpp"

// The runtime's lifecycle: declarations, start() and stop().
// Reads, writes and metrics are in runtime_reads.cpp, runtime_writes.cpp and
// runtime_metrics.cpp.

namespace derive {
namespace {

constexpr std::string_view component = "runtime";

}  // namespace

void stop_and_wait(const caf::actor& actor) {
  if (!actor) return;
  auto stopped = std::make_shared<std::promise<void>>();
  auto future = stopped->get_future();
  {
    std::shared_ptr<void> guard(nullptr, [stopped](void*) { stopped->set_value(); });
    caf::anon_send(actor, stop_atom::value, done_callback{[guard] {}});
  }
  future.wait();
}

namespace {

status check_views(runtime::impl& rt) {
  std::unordered_map<std::string, const view_slot*> names;
  for (auto& slot : rt.slots) {
    const auto& def = slot->def();
    if (def.name().empty()) return {errc::invalid_parameter, "a view has an empty name"};
    // Several versions of one view may be declared (docs/storage.md, "View
    // versions"); a processor has one.
    if (auto [first, fresh] = names.emplace(def.name(), slot.get()); !fresh) {
      const auto& other = first->second->def();
      bool processor = rt.outboxes.count(slot->index()) || rt.outboxes.count(first->second->index());
      bool same_version = false;
      for (auto& s2 : rt.slots)
        if (s2.get() != slot.get() && s2->name() == def.name() &&
            s2->def().version() == def.version())
          same_version = true;
      if (processor || same_version)
        return {errc::invalid_parameter, "two views are named '" + def.name() + "'"};
      if (other.source() != def.source())
        return {errc::invalid_parameter, "the versions of view '" + def.name() +
                                             "' must read the same source"};
    }
    if (def.from_log_source() && !def.event_fn())
      return {errc::invalid_parameter, "view '" + def.name() + "' reads the log but has no apply()"};
    if (!def.from_log_source() && !def.change_fn())
      return {errc::invalid_parameter,
              "view '" + def.name() + "' reads a view but has no apply_change()"};
    const auto& keep = def.retention_options();
    if (!(keep.state_fraction >= 0 && keep.state_fraction <= 1e6))  // also NaN
      return {errc::invalid_parameter,
              "view '" + def.name() + "': changelog_retention state_fraction must be a number "
                                      ">= 0, not " + std::to_string(keep.state_fraction)};
    if (keep.max_age.count() < 0)
      return {errc::invalid_parameter,
              "view '" + def.name() + "': changelog_retention max_age must not be negative"};
  }
  for (auto& [index, box] : rt.outboxes) {
    const auto& def = box->def();
    if (def.source().empty() ? !def.event_fn() : !def.change_fn())
      return {errc::invalid_parameter, "processor '" + def.name() + "' has no apply function"};
    if (auto s = validate_idempotency_key(box->def().output_key(UINT64_MAX)); !s)
      return {errc::invalid_parameter, "processor '" + box->def().name() +
                                           "': its name makes invalid idempotency keys: " +
                                           s.message()};
  }
  for (auto& slot : rt.slots) {
    // Follow the sources: an unknown name or coming back to `slot` is an error.
    std::set<std::string> seen{slot->name()};
    const auto* at = slot.get();
    while (!at->def().from_log_source()) {
      auto up = names.find(at->def().source());
      if (up == names.end())
        return {errc::invalid_parameter, "view '" + at->name() + "' reads unknown view '" +
                                             at->def().source() + "'"};
      if (!seen.insert(up->first).second)
        return {errc::invalid_parameter,
                "views read each other in a cycle through '" + up->first + "'"};
      at = up->second;
    }
  }
  return status::ok();
}

// Consumers before their sources, so that a runner's downstream handles exist
// before it can publish.
std::vector<view_slot*> spawn_order(runtime::impl& rt) {
  std::vector<std::pair<size_t, view_slot*>> by_depth;
  for (auto& slot : rt.slots) {
    size_t depth = 0;
    for (auto* at = slot.get(); at->upstream; at = at->upstream) ++depth;
    by_depth.emplace_back(depth, slot.get());
  }
  std::stable_sort(by_depth.begin(), by_depth.end(),
                   [](auto& a, auto& b) { return a.first > b.first; });
  std::vector<view_slot*> out;
  for (auto& [depth, slot] : by_depth) out.push_back(slot);
  return out;
}

// The views' environment: its own map size and limits, the log's durability.
environment_options views_storage(const runtime_options& options) {
  environment_options o = options.views_storage;
  o.mode = options.storage.mode;
  return o;
}

// Opens the log's environment and the views' (docs/storage.md, "Two
// environments"). A data directory of the old layout kept the view stores in
// the log's environment: they are dropped there, and the views rebuild from
// the log in their own environment (views are recomputable).
status open_environments(runtime::impl& rt) {
  auto env = environment::open(rt.options.data_dir, rt.options.storage);
  if (!env) return env.error();
  rt.env = std::move(*env);
  auto dropped = rt.env->drop_databases("view/");
  if (!dropped) return dropped.error();
  if (*dropped > 0)
    log_info(component, "moved the views of ", rt.options.data_dir,
             " out of the log's environment: dropped ", *dropped,
             " tables there; the views rebuild from the log");
  // The views' commits do not flush (a process crash keeps them; after a
  // machine crash the environment is discarded and the views rebuild), but a
  // processor's must: a rebuild from 0 would emit outputs whose keys the log
  // may have pruned.
  bool flush_commits = !rt.outboxes.empty() && rt.options.storage.mode == durability::full;
  bool discarded = false;
  auto views = environment::open_recomputable(
      (std::filesystem::path(rt.options.data_dir) / "views").string(), views_storage(rt.options),
      rt.options.boot_id_path, flush_commits, &discarded);
  if (!views) return views.error();
  rt.views_env = std::move(*views);
  if (discarded)
    log_warn(component, "the views of ", rt.options.data_dir,
             " were left unflushed by a machine crash (another boot): discarded; "
             "every view rebuilds from the log");
  return status::ok();
}

// After an erasure both data directories are compacted before use, so that no
// freed page and no stale byte of a page's gap keeps the subject's data
// (docs/storage.md, "Erasure").
status compact_after_erasure(runtime::impl& rt) {
  auto pending = rt.log->compact_pending();
  if (!pending) return pending.error();
  if (!*pending) return status::ok();
  rt.log.reset();
  rt.views_env.reset();
  rt.env.reset();
  const std::string views = (std::filesystem::path(rt.options.data_dir) / "views").string();
  if (auto s = environment::compact(rt.options.data_dir, rt.options.storage); !s) return s;
  if (auto s = environment::compact(views, views_storage(rt.options)); !s) return s;
  crash_point("erasure_compacted");
  if (auto s = open_environments(rt); !s) return s;
  auto log = event_log::open(*rt.env, rt.options.log);
  if (!log) return log.error();
  rt.log = std::move(*log);
  log_info(component, "compacted ", rt.options.data_dir, " after an erasure");
  return rt.log->compacted();
}

// Opens the store `label` for `slot`; a view that others consume keeps its
// whole changelog: a consumer must never find the offsets after its
// position pruned.
status open_slot(runtime::impl& rt, view_slot& slot, const std::string& label, bool consumed) {
  view_store_options opts;
  const auto& keep = slot.def().retention_options();
  if (!consumed) {
    opts.changelog_retention = keep.offsets;
    opts.changelog_max_bytes = keep.max_bytes;
    opts.changelog_state_fraction = keep.state_fraction;
    opts.changelog_max_age = keep.max_age;
  } else {
    opts.changelog_retention = 0;
    opts.changelog_max_bytes = 0;
    opts.changelog_max_age = std::chrono::milliseconds(0);
  }
  if (!slot.processor && !slot.stale) {
    opts.checkpoint_every = rt.options.view_checkpoint_every;
    opts.checkpoints_kept = rt.options.view_checkpoints_kept;
  }
  auto store = view_store::open(*rt.views_env, slot.name(), slot.def().version(), opts, label);
  if (!store) return store.error();
  slot.attach(std::move(*store));
  return status::ok();
}

view_slot& add_slot(runtime::impl& rt, view_def def, size_t group, view_slot* upstream) {
  rt.slots.push_back(std::make_unique<view_slot>(std::move(def), rt.slots.size()));
  auto* slot = rt.slots.back().get();
  slot->group = group;
  slot->upstream = upstream;
  rt.groups[group].slots.push_back(slot);
  return *slot;
}

// The upstream label a stored derived version reads ("" in a plain label
// means version 1 of its upstream, as before versions).
std::string upstream_label(const stored_view& v, const std::string& upstream_name) {
  return v.upstream.empty() ? upstream_name + "/1" : v.upstream;
}

// Whether the stored `v` reads `up` (nullptr: the log).
bool reads(const stored_view& v, const view_slot* up, const std::string& upstream_name) {
  if (!up) return v.upstream.empty();
  return upstream_label(v, upstream_name) == up->label();
}

// The generations on disk of `version` of the group's view reading `up`.
std::vector<uint32_t> generations(const std::vector<stored_view>& on_disk, uint32_t version,
                                  const view_slot* up, const std::string& upstream_name) {
  std::vector<uint32_t> out;
  for (const auto& v : on_disk)
    if (v.version == version && reads(v, up, upstream_name)) out.push_back(v.generation);
  std::sort(out.begin(), out.end());
  return out;
}

// Opens every version of group `g` (its upstream's are open, `chosen` holds
// the upstream's served slot), keeps the served version found on disk as a
// stale one when it is no longer declared, drops the other undeclared ones
// (retirement) and chooses the served slot. A declared version opens the
// generation recorded as served, else its newest; a newer generation of the
// served one (a rebuild beside it that a stop or crash interrupted) is opened
// too and goes on building.
status open_group(runtime::impl& rt, size_t g, const std::map<std::string, served_version>& records,
                  std::vector<view_slot*>& chosen) {
  auto& grp = rt.groups[g];
  const bool consumed = !grp.downstream.empty();
  std::vector<view_slot*> declared = grp.slots;
  view_slot* up = grp.upstream ? chosen[*grp.upstream] : nullptr;
  const std::string up_name = grp.upstream ? rt.groups[*grp.upstream].name : std::string();
  auto on_disk = stored_versions(*rt.views_env, grp.name);
  if (!on_disk) return on_disk.error();
  auto record = records.find(grp.name);
  std::optional<stored_view> served_label;
  if (record != records.end()) served_label = parse_view_label(grp.name, record->second.label);
  for (auto* d : declared) {
    d->upstream = up;
    const std::string up_label = up ? up->label() : std::string();
    auto gens = generations(*on_disk, d->def().version(), up, up_name);
    uint32_t gen = gens.empty() ? 0 : gens.back();
    const bool served = served_label && served_label->version == d->def().version() &&
                        reads(*served_label, up, up_name);
    if (served) gen = served_label->generation;
    if (auto s = open_slot(rt, *d, view_label(d->name(), d->def().version(), up_label, gen),
                           consumed);
        !s)
      return s;
    if (served && !gens.empty() && gens.back() > gen && !d->processor) {  // resumes the rebuild
      auto& next = add_slot(rt, d->def(), g, up);
      if (auto s = open_slot(rt, next,
                             view_label(d->name(), d->def().version(), up_label, gens.back()),
                             consumed);
          !s)
        return s;
      log_info(component, "view ", next.label(), ": resumes its rebuild beside ", d->label());
    }
  }
  if (grp.upstream) {  // the versions that read the other upstream versions
    auto upstreams = rt.groups[*grp.upstream].slots;
    for (auto* u : upstreams) {
      if (u == up) continue;
      for (auto* d : declared) {
        if (d->processor) continue;
        auto& extra = add_slot(rt, d->def(), g, u);
        if (auto s = open_slot(rt, extra, view_label(d->name(), d->def().version(), u->label()),
                               consumed);
            !s)
          return s;
      }
    }
  }
  auto is_open = [&](const std::string& label) {
    for (auto* s : grp.slots)
      if (s->label() == label) return true;
    return false;
  };
  auto newest_declared = *std::max_element(declared.begin(), declared.end(), [](auto* a, auto* b) {
    return a->def().version() < b->def().version();
  });
  // The served version kept from disk: the recorded one, or (a directory of
  // before versions) the newest version with state when no declared one has.
  std::optional<stored_view> keep;
  auto is_declared = [&](uint32_t version) {
    for (auto* d : declared)
      if (d->def().version() == version) return true;
    return false;
  };
  for (const auto& v : *on_disk) {
    if (is_open(v.label) || is_declared(v.version)) continue;  // another generation goes
    if (grp.upstream && upstream_label(v, rt.groups[*grp.upstream].name) != up->label()) continue;
    if (record != records.end() ? record->second.label == v.label
                                : (!keep || v.version > keep->version))
      keep = v;
  }
  view_slot* stale = nullptr;
  if (keep && !newest_declared->processor) {
    auto& s = add_slot(rt, stale_def(newest_declared->def(), keep->version), g, up);
    s.stale = true;
    if (auto st = open_slot(rt, s, keep->label, consumed); !st) return st;
    bool served_before = record != records.end() || s.offset() > 0;
    if (record == records.end())
      for (auto* d : grp.slots)
        if (!d->stale && d->offset() > 0) served_before = false;
    if (served_before) {
      stale = &s;
    } else {  // nothing to serve from it
      rt.slots.pop_back();
      grp.slots.pop_back();
    }
  }
  for (const auto& v : *on_disk) {
    if (is_open(v.label)) continue;
    if (auto st = drop_view_store(*rt.views_env, v.label); !st) return st;
    grp.retired.push_back(v.version);
    log_info(component, "view ", grp.name, ": retired ", v.label, " (no longer declared)");
  }
  // The served slot: the recorded one, the stale one, else the newest
  // version (reading the served upstream) with state, else the newest.
  view_slot* serve = stale;
  for (auto* s : grp.slots)
    if (!serve && record != records.end() && record->second.label == s->label() &&
        s->upstream == up)
      serve = s;
  for (int with_state = 1; !serve && with_state >= 0; --with_state)
    for (auto* s : grp.slots)
      if (s->upstream == up && !s->stale && (s->offset() > 0 || !with_state) &&
          (!serve || s->def().version() > serve->def().version()))
        serve = s;
  // The operator's pin holds while its version is declared.
  if (record != records.end() && record->second.pinned)
    for (auto* s : grp.slots)
      if (!s->stale && s->def().version() == *record->second.pinned) grp.pinned = s->def().version();
  chosen[g] = serve;
  serve->serving_since = record != records.end() && record->second.label == serve->label()
                             ? record->second.since
                             : serve->offset();
  return status::ok();
}

// A slot with a newer generation of its version (reading the same upstream)
// beside it is superseded, and so is every slot that reads a superseded one:
// retired once no longer served.
void mark_superseded(runtime::impl& rt) {
  for (auto& grp : rt.groups)
    for (auto* s : grp.slots)
      for (auto* t : grp.slots)
        if (t != s && !t->stale && t->def().version() == s->def().version() &&
            t->upstream == s->upstream && t->generation() > s->generation())
          s->superseded = true;
  for (bool more = true; more;) {
    more = false;
    for (auto& slot : rt.slots)
      if (!slot->superseded && slot->upstream && slot->upstream->superseded)
        slot->superseded = more = true;
  }
}

// Groups of the declared views (by name), their sources, in an order where
// every group comes after its upstream.
std::vector<size_t> make_groups(runtime::impl& rt) {
  rt.groups.clear();
  rt.group_of.clear();
  for (size_t i = 0; i < rt.declared; ++i) {
    auto* slot = rt.slots[i].get();
    auto [it, fresh] = rt.group_of.emplace(slot->name(), rt.groups.size());
    if (fresh) rt.groups.push_back(view_group{slot->name(), {}, {}, {}, {}, nullptr, {}});
    slot->group = it->second;
    slot->stale = false;
    slot->retired = false;
    slot->superseded = false;
    slot->processor = rt.outboxes.count(i) > 0;
    slot->upstream = nullptr;
    slot->downstream.clear();
    rt.groups[it->second].slots.push_back(slot);
  }
  for (size_t g = 0; g < rt.groups.size(); ++g) {
    const auto& def = rt.groups[g].slots.front()->def();
    if (def.from_log_source()) continue;
    size_t u = rt.group_of.at(def.source());
    rt.groups[g].upstream = u;
    rt.groups[u].downstream.push_back(g);
  }
  std::vector<std::pair<size_t, size_t>> by_depth;
  for (size_t g = 0; g < rt.groups.size(); ++g) {
    size_t depth = 0;
    for (auto at = rt.groups[g].upstream; at; at = rt.groups[*at].upstream) ++depth;
    by_depth.emplace_back(depth, g);
  }
  std::stable_sort(by_depth.begin(), by_depth.end());
  std::vector<size_t> order;
  for (auto [depth, g] : by_depth) order.push_back(g);
  return order;
}

void report_cluster(stream_log::note_level level, const std::string& what) {
  constexpr std::string_view cluster = "cluster";
  if (level == stream_log::error) log_error(cluster, what);
  else if (level == stream_log::warning) log_warn(cluster, what);
  else log_info(cluster, what);
}

status open_storage(runtime::impl& rt) {
  if (auto s = open_environments(rt); !s) return s;
  auto log = event_log::open(*rt.env, rt.options.log);
  if (!log) return log.error();
  rt.log = std::move(*log);
  if (auto s = compact_after_erasure(rt); !s) return s;
  if (rt.options.cluster.enabled()) {
    auto stream = stream_log::open(*rt.log, rt.options.cluster, report_cluster);
    if (!stream) return stream.error();
    rt.stream = std::move(*stream);
  }
  rt.by_name.clear();
  for (size_t i = 0; i < rt.declared; ++i) rt.by_name[rt.slots[i]->name()] = rt.slots[i].get();
  auto records = read_serving(*rt.views_env);
  if (!records) return records.error();
  auto order = make_groups(rt);
  std::vector<view_slot*> chosen(rt.groups.size(), nullptr);
  for (size_t g : order)
    if (auto s = open_group(rt, g, *records, chosen); !s) return s;
  for (auto& slot : rt.slots)
    if (slot->upstream) slot->upstream->downstream.push_back(slot.get());
  mark_superseded(rt);
  for (size_t g = 0; g < rt.groups.size(); ++g) {
    chosen[g]->serving = true;
    if (auto s = write_serving(*rt.views_env, rt.groups[g].name,
                               {chosen[g]->label(), chosen[g]->serving_since.load(),
                                rt.groups[g].pinned});
        !s)
      return s;
  }
  std::atomic_store(&rt.serving, std::shared_ptr<const serving_table>(
                                     std::make_shared<serving_table>(std::move(chosen))));
  uint64_t head = rt.log->head();
  for (auto& slot : rt.slots) {
    slot->applied = 0;
    slot->commits = 0;
    slot->bytes_written = 0;
    slot->largest_value = 0;
    slot->stopping = false;
    slot->erasing = false;
    if (auto failure = slot->store()->failure()) {
      slot->set_failed(failure->offset, failure->error);
      log_warn(component, "view ", slot->label(), " is failed: ", failure->error);
    } else {
      slot->set_active(!slot->serving && head > 0);
    }
    log_info(component, "view ", slot->label(), slot->serving ? " (serving)" : "",
             slot->stale ? " (stale)" : "", " at offset ", slot->offset(), " of ", head);
  }
  return status::ok();
}

// Spawns the runner of `slot` into slot->runner.
void spawn_runner(runtime::impl& rt, view_slot* slot) {
  runner_context ctx;
  ctx.slot = slot;
  ctx.log = rt.log.get();
  ctx.catch_up_batch = std::max<uint64_t>(1, rt.options.catch_up_batch);
  ctx.live_batch = std::max<uint64_t>(1, rt.options.live_batch);
  if (rt.options.catch_up_bytes > 0) ctx.batch_bytes = rt.options.catch_up_bytes;
  if (rt.options.catch_up_time.count() > 0) ctx.batch_time = rt.options.catch_up_time;
  ctx.commit_beside = true;
  ctx.commit_mu = &rt.cutover_mu;
  ctx.live_pending = [&rt] { return rt.live_work_pending(); };
  ctx.published = [&pub = *rt.pub](view_slot& s, uint64_t offset,
                                   std::vector<offset_changes>& changes) {
    pub.published(s, offset, changes);
  };
  // A version built beside the served one may now be ready.
  ctx.committed = [&rt](view_slot& s) {
    if (s.serving.load()) return;
    std::lock_guard<std::mutex> lock(rt.cutover_mu);
    rt.try_cutover();
  };
  ctx.rebuilt = [&rt](view_slot& s) {
    for (auto* consumer : s.downstream)
      if (consumer->runner) consumer->request_rebuild();
  };
  if (auto box = rt.outboxes.find(slot->index()); box != rt.outboxes.end()) {
    ctx.before_commit = [&rt, outbox = box->second](view_slot& s, uint64_t offset) {
      return outbox->flush(offset, [&rt, &s](checked_append r, auto done) {
        rt.submit_when_open(std::move(r), std::move(done), s.stopping);
      });
    };
  }
  slot->runner = spawn_view_runner(*rt.system, std::move(ctx));
}

void spawn_actors(runtime::impl& rt) {
  rt.subs = std::make_unique<subscription_registry>(rt.slots.size(), rt.options.hub_buffer);
  rt.waiters = std::make_unique<waiter_registry>(
      [&rt](size_t group) { return (*rt.serving_now())[group]->offset(); });
  rt.hub = spawn_hub(*rt.system, *rt.subs);
  rt.pub = std::make_unique<publisher>(*rt.subs, *rt.waiters, rt.hub);
  for (auto* slot : spawn_order(rt))
    if (!slot->stale) spawn_runner(rt, slot);  // a stale slot is frozen: no runner
  std::vector<caf::actor> log_runners;
  for (auto& slot : rt.slots)
    if (!slot->upstream && slot->runner) log_runners.push_back(slot->runner);
  sequencer_context ctx;
  ctx.log = rt.log.get();
  ctx.counters = &rt.counters;
  ctx.validate = [&rt](const checked_append& r) { return rt.run_validators(r); };
  std::atomic_store(&rt.log_runners, std::shared_ptr<const std::vector<caf::actor>>(
                                         std::make_shared<std::vector<caf::actor>>(log_runners)));
  auto committed = [&rt](uint64_t head) {
    auto runners = std::atomic_load(&rt.log_runners);
    for (auto& runner : *runners) caf::anon_send(runner, head_atom::value, head);
  };
  if (rt.stream) {
    // Cluster mode: the follower writes the log and announces its head.
    ctx.publish = [stream = rt.stream.get()](const std::vector<checked_append>& group,
                                             stream_log::outcomes_fn done) {
      stream->publish(group, std::move(done));
    };
    constexpr size_t headers_room = 4096;
    ctx.max_message_bytes = std::max(rt.stream->max_message_bytes(), 2 * headers_room) - headers_room;
    ctx.stop_timeout = rt.options.cluster.publish_timeout;
    rt.stream->start(committed);
  } else {
    ctx.committed = committed;
  }
  rt.sequencer = spawn_sequencer(*rt.system, std::move(ctx));
}

void close_storage(runtime::impl& rt) {
  std::atomic_store(&rt.serving, std::shared_ptr<const serving_table>());
  rt.slots.resize(rt.declared);  // the versions found on disk and extra bindings go
  rt.groups.clear();
  rt.group_of.clear();
  for (auto& slot : rt.slots) {
    slot->set_stopped();
    slot->detach_store();
    slot->serving = false;
    slot->upstream = nullptr;
    slot->downstream.clear();
  }
  rt.stream.reset();
  rt.log.reset();
  rt.views_env.reset();
  rt.env.reset();
}

// Starts the eraser and resumes the erasures and the retention sweep a crash
// or a stop interrupted (the views serve their old copies meanwhile).
void resume_erasures(runtime::impl& rt) {
  if (rt.stream) return;  // cluster mode: runtime::forget refuses
  auto pending = rt.log->erasure_requests();
  auto marks = rt.log->retention_marks();  // a retention sweep's (the eraser's first finishes it)
  if (!pending || !marks) {
    rt.erasure = std::make_unique<eraser>(rt);
    log_error(component, "cannot read the erasure requests: ",
              (!pending ? pending.error() : marks.error()).to_string());
    return;
  }
  const bool sweep_pending = std::any_of(marks->begin(), marks->end(),
                                         [](const auto& m) { return m.target > m.through; });
  const bool owed = !pending->empty() || sweep_pending;
  if (owed)
    log_info(component, "resuming ", pending->size(), " erasure request(s)",
             sweep_pending ? " and a retention sweep" : "");
  std::vector<std::string> subjects;
  for (auto& r : *pending) subjects.push_back(std::move(r.subject));
  rt.erasure = std::make_unique<eraser>(rt, std::move(subjects), owed);
}

}  // namespace

status not_running() { return {errc::unavailable, "the runtime is not running"}; }

status no_such_view(const std::string& name) {
  return {errc::unknown_view, "there is no view named '" + name + "'"};
}

runtime::impl::impl(runtime_options opts) : options(std::move(opts)) {
  if (options.worker_threads > 0)
    config.set("scheduler.max-threads", static_cast<size_t>(options.worker_threads));
  // Idle workers otherwise sleep 50 us between polls, adding latency to every
  // message sent from outside CAF (caf-0.17.md, section 5).
  config.set("work-stealing.moderate-poll-attempts", static_cast<size_t>(0));
  config.add_error_category(caf::atom("derive"),
                             [](uint8_t code, caf::atom_value, const caf::message& ctx) {
                               std::string out(to_string(static_cast<errc>(code)));
                               if (ctx.match_elements<std::string>())
                                 out += ": " + ctx.get_as<std::string>(0);
                               return out;
                             });
  system = std::make_unique<caf::actor_system>(config);
}

// The actor system goes first: it waits for every actor, which may still use
// the members below.
runtime::impl::~impl() { system.reset(); }

runtime::runtime(runtime_options options) : impl_(std::make_unique<impl>(std::move(options))) {}

runtime::~runtime() { stop(); }

void runtime::add_view(view_def def) {
  std::unique_lock<std::shared_mutex> lock(impl_->storage_mu);
  if (impl_->running) {
    log_warn(component, "add_view(", def.name(), ") after start is ignored");
    return;
  }
  impl_->slots.push_back(std::make_unique<view_slot>(std::move(def), impl_->slots.size()));
}

void runtime::add_processor(processor_def def) {
  std::unique_lock<std::shared_mutex> lock(impl_->storage_mu);
  if (impl_->running) {
    log_warn(component, "add_processor(", def.name(), ") after start is ignored");
    return;
  }
  auto outbox = std::make_shared<processor_outbox>(std::move(def));
  size_t index = impl_->slots.size();
  impl_->slots.push_back(std::make_unique<view_slot>(outbox->as_view(), index));
  impl_->outboxes[index] = std::move(outbox);
}

void runtime::add_validator(std::string type,
                            std::function<status(const event_input&)> check) {
  std::unique_lock<std::shared_mutex> lock(impl_->storage_mu);
  impl_->validators[std::move(type)] = std::move(check);
}



status runtime::start() {
  std::lock_guard<std::mutex> lifecycle(impl_->lifecycle_mu);
  std::unique_lock<std::shared_mutex> lock(impl_->storage_mu);
  if (impl_->running) return {errc::invalid_parameter, "the runtime is already running"};
  if (auto s = check_views(*impl_); !s) return s;
  if (auto s = check_retention(impl_->options); !s) return s;
  impl_->declared = impl_->slots.size();
  if (auto s = open_storage(*impl_); !s) {
    close_storage(*impl_);
    return s;
  }
  impl_->audits_cancel = false;
  impl_->audits = std::make_unique<auditor>(*impl_);  // before the runners: their cutovers retire
  spawn_actors(*impl_);
  {
    std::lock_guard<std::mutex> cutover(impl_->cutover_mu);
    impl_->try_cutover();  // a version may have become ready while stopped
  }
  {
    std::unique_lock<std::shared_mutex> appends(impl_->append_mu);
    impl_->accepting = true;
    impl_->append_open.notify_all();
  }
  impl_->running = true;
  log_info(component, "started in ", impl_->options.data_dir, " with ", impl_->slots.size(),
           " views, head ", impl_->log->head());
  resume_erasures(*impl_);
  if (impl_->options.reclaim.enabled) impl_->reclaim = std::make_unique<reclaimer>(*impl_);
  return status::ok();
}


void runtime::stop() {
  std::lock_guard<std::mutex> lifecycle(impl_->lifecycle_mu);
  if (!impl_->running) return;
  impl_->audits_cancel = true;  // audits and scrubs end soon (actors/audit.hpp)
  impl_->reclaim.reset();  // joins its thread (after a compaction under way)
  {
    std::unique_lock<std::shared_mutex> appends(impl_->append_mu);
    impl_->accepting = false;
  }
  // Runners mid-batch commit after their current input (view_runner.hpp),
  // so that stopping never waits for a whole catch-up transaction.
  for (auto& slot : impl_->slots) slot->stopping.store(true, std::memory_order_relaxed);
  {
    std::unique_lock<std::shared_mutex> appends(impl_->append_mu);
    impl_->append_open.notify_all();  // processors waiting to append
  }
  // No lock is held while the actors finish: their callbacks may call back
  // into the runtime (reads stay served until storage closes below).
  // In-flight appends are committed and answered before the sequencer quits.
  stop_and_wait(impl_->sequencer);
  if (impl_->stream) impl_->stream->stop();  // no more ingests, no more heads
  for (auto& slot : impl_->slots) stop_and_wait(slot->runner);
  stop_and_wait(impl_->hub);
  if (impl_->erasure) impl_->erasure->stop();  // its waits ended with the actors
  impl_->waiters->shutdown();
  impl_->audits.reset();  // joins the audit thread (it holds storage_mu while it works)
  {
    std::unique_lock<std::shared_mutex> lock(impl_->storage_mu);
    impl_->running = false;
    impl_->sequencer = caf::actor{};
    impl_->hub = caf::actor{};
    for (auto& slot : impl_->slots) slot->runner = caf::actor{};
    std::atomic_store(&impl_->log_runners, std::shared_ptr<const std::vector<caf::actor>>());
    impl_->erasure.reset();
    impl_->pub.reset();
    impl_->subs->clear();
    close_storage(*impl_);
  }
  log_info(component, "stopped");
}


// --- supervision ---

status runtime::restart_view(const std::string& name) {
  std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
  auto* slot = impl_->find(name);
  if (!slot) return no_such_view(name);
  if (!impl_->running) return not_running();
  // Every failed version of the view (the served one and those built beside).
  for (auto* s : impl_->groups[slot->group].slots) {
    if (!s->failed() || !s->runner) continue;
    s->set_active(false);
    caf::anon_send(s->runner, restart_atom::value);
  }
  log_info(component, "restarting view ", name);
  return status::ok();
}


void runtime::forget(std::string subject, std::function<void(result<erasure_receipt>)> done) {
  if (subject.empty() || subject.size() > max_subject_bytes)
    return done(status{errc::invalid_parameter, "a subject is 1 to " +
                                                    std::to_string(max_subject_bytes) +
                                                    " bytes"});
  std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
  if (impl_->running && impl_->stream) {
    lock.unlock();
    return done(status{errc::not_supported,
                       "forget is not supported in cluster mode: the log's JetStream stream "
                       "is immutable (deletes are denied), so erasing this node's copy would "
                       "not erase the subject; that needs per-subject encryption keys, which "
                       "are not built (docs/storage.md, \"Erasure\")"});
  }
  if (!impl_->running || !impl_->erasure) {
    lock.unlock();
    return done(not_running());
  }
  impl_->erasure->request(std::move(subject), std::move(done));
}

void runtime::sweep_retention(std::function<void(result<retention_sweep>)> done) {
  std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
  if (impl_->running && impl_->stream) {
    lock.unlock();
    return done(status{errc::not_supported, "retention is not supported in cluster mode"});
  }
  if (!impl_->running || !impl_->erasure) {
    lock.unlock();
    return done(not_running());
  }
  impl_->erasure->sweep(std::move(done));
}

std::optional<retention_metrics> runtime::retention() const {
  std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
  if (!impl_->running || !impl_->erasure || impl_->options.retention.empty()) return std::nullopt;
  return impl_->erasure->retention();
}

bool runtime::running() const { return impl_->running.load(); }

caf::actor_system& runtime::system() { return *impl_->system; }

}  // namespace derive

namespace derive {

namespace {

// The slot of group `g` at `version` reading `up` that a copy replaces
// (nullptr: none).
view_slot* copied(const runtime::impl& rt, size_t g, uint32_t version, const view_slot* up) {
  for (auto* s : rt.groups[g].slots)
    if (s->upstream == up && s->def().version() == version && !s->stale && !s->retired)
      return s;
  return nullptr;
}

// For an erasure: `slot`'s store starts from the newest checkpoint of `like`
// at or before keep_through, when its upstream's (copied) changelog goes on
// from there; else from 0.
status start_from_checkpoint(view_slot& slot, view_slot* like, uint64_t keep_through,
                             bool consumed) {
  if (!like || !like->store() || keep_through == 0) return status::ok();
  if (slot.upstream) {
    const uint64_t at = like->store()->checkpoint_at_or_before(keep_through);
    auto page = slot.upstream->store()->changes_since(at, 0);
    if (at == 0 || !page || !page->served) return status::ok();
  }
  auto from = slot.store()->restore_from(*like->store(), keep_through, consumed);
  if (!from) return from.error();
  if (*from > 0) {
    slot.publish_offset(*from);
    log_info(component, "view ", slot.label(), " starts from the checkpoint of ", like->label(),
             " at offset ", *from);
  }
  return status::ok();
}

// A slot of `def` in group `g` reading `up`, at `generation`, with its store
// open, and the slots of the declared versions of the groups derived from it
// reading it (recursively), into `added` (sources before consumers), not yet
// in rt.slots nor in any group. `like`: the slot it copies; with
// keep_through, each starts from its copied slot's checkpoint (erasures).
// No lock but storage_mu: opening a store waits for the views' writer,
// which a runner holds while it takes cutover_mu.
status open_copy(runtime::impl& rt, const view_def& def, size_t g, view_slot* up,
                 uint32_t generation, view_slot* like, std::optional<uint64_t> keep_through,
                 std::vector<std::unique_ptr<view_slot>>& added) {
  added.push_back(std::make_unique<view_slot>(def, rt.slots.size() + added.size()));
  auto* slot = added.back().get();
  slot->group = g;
  slot->upstream = up;
  const std::string label =
      view_label(def.name(), def.version(), up ? up->label() : std::string(), generation);
  const bool consumed = !rt.groups[g].downstream.empty();
  if (auto s = open_slot(rt, *slot, label, consumed); !s) return s;
  if (keep_through) {
    slot->held = true;
    slot->for_erasure = true;
    if (auto s = start_from_checkpoint(*slot, like, *keep_through, consumed); !s) return s;
  }
  for (size_t child : rt.groups[g].downstream)
    for (auto* d : rt.groups[child].slots)
      if (d->index() < rt.declared && !d->processor) {
        view_slot* child_like = like ? copied(rt, child, d->def().version(), like) : nullptr;
        if (auto s = open_copy(rt, d->def(), child, slot, 0, child_like, keep_through, added); !s)
          return s;
      }
  return status::ok();
}

}  // namespace

status runtime::impl::rebuild_served(size_t g, std::optional<uint64_t> keep_through,
                                     std::vector<view_slot*>* copies) {
  view_slot* served = (*serving_now())[g];
  const std::string& name = groups[g].name;
  if (served->processor)
    return {errc::invalid_parameter, "'" + name + "' is a processor; it is not rebuilt"};
  if (served->stale)
    return {errc::invalid_parameter,
            "version " + std::to_string(served->def().version()) + " of view '" + name +
                "' is no longer declared: it cannot be rebuilt (no code); it is served until "
                "a declared version is ready"};
  {
    // A copy already building starts over (under the cutover lock, so that
    // it is not served meanwhile: ready() waits for its rebuild to start).
    std::lock_guard<std::mutex> cutover(cutover_mu);
    served = (*serving_now())[g];
    for (auto* s : groups[g].slots)
      if (s != served && !s->stale && !s->retired && s->runner &&
          s->def().version() == served->def().version() && s->upstream == served->upstream &&
          s->generation() > served->generation()) {
        s->request_rebuild();
        return status::ok();
      }
  }
  // Nothing runs yet on an error: the new slots go (their empty stores at
  // the next start).
  std::vector<std::unique_ptr<view_slot>> opened;
  if (auto s = open_copy(*this, served->def(), g, served->upstream, served->generation() + 1,
                         served, keep_through, opened);
      !s)
    return s;
  const size_t before = slots.size();
  std::vector<view_slot*> added;
  for (auto& a : opened) {
    added.push_back(a.get());
    if (a->upstream && a->upstream->index() >= before) a->upstream->downstream.push_back(a.get());
  }
  subs->grow(before + added.size());
  {
    // try_cutover reads the groups and the runners; a runner's first commit
    // waits for this lock.
    std::lock_guard<std::mutex> cutover(cutover_mu);
    for (auto it = added.rbegin(); it != added.rend(); ++it) {  // consumers first
      (*it)->set_active(true);
      spawn_runner(*this, *it);
    }
    for (auto& a : opened) {
      groups[a->group].slots.push_back(a.get());
      slots.push_back(std::move(a));
    }
    // The served slot and everything that reads it go once the copy is served.
    std::vector<view_slot*> old{served};
    for (size_t i = 0; i < old.size(); ++i) {
      old[i]->superseded = true;
      for (auto* d : old[i]->downstream) old.push_back(d);
    }
  }
  if (copies) copies->insert(copies->end(), added.begin(), added.end());
  view_slot* copy = added.front();
  if (view_slot* up = copy->upstream) {  // it joins its upstream's consumers on its thread
    if (up->runner)
      caf::anon_send(up->runner, run_atom::value,
                     done_callback{[up, copy] { up->downstream.push_back(copy); }});
    else
      up->downstream.push_back(copy);  // a stale upstream: no runner, no commits
  } else {
    auto runners = std::make_shared<std::vector<caf::actor>>(*std::atomic_load(&log_runners));
    runners->push_back(copy->runner);
    std::atomic_store(&log_runners, std::shared_ptr<const std::vector<caf::actor>>(runners));
  }
  log_info(component, "view ", name, ": rebuilds ", served->label(), " beside itself as ",
           copy->label(), " (", added.size(), " store(s))");
  return status::ok();
}

}  // namespace derive
