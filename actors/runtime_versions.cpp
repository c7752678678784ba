#include <derive/runtime.hpp>

#include <algorithm>

#include <caf/all.hpp>

#include <derive/logging.hpp>

#include "actors/audit.hpp"
#include "actors/messages.hpp"
#include "actors/runtime_state.hpp"
#include "core/view_names.hpp"

// View versions (docs/storage.md, "View versions"): which version of each
// view is served, the cutover that switches it (with the views derived from
// it) in one step, and the admin calls that rebuild, pin and roll back.

namespace derive {
namespace {

constexpr std::string_view component = "versions";

// `cand` may replace `current`: it runs, has not failed, is caught up with
// its source and is not behind what `current` served (and, unless
// `ignore_hold`, no erasure holds it back).
bool ready(const runtime::impl& rt, const view_slot& cand, const view_slot* current,
           bool ignore_hold = false) {
  // A copy an erasure built that failed as the served copy failed (the view's
  // code fails on an event both read) replaces it all the same.
  const bool failed_alike =
      cand.failed() && cand.for_erasure.load() && current && current->failed();
  if (cand.stale || cand.retired || (cand.failed() && !failed_alike) || !cand.runner)
    return false;
  if (cand.held.load() && !ignore_hold) return false;
  if (cand.rebuilds_pending.load() > 0) return false;  // about to start over
  if (failed_alike) return cand.offset() >= current->offset();
  uint64_t offset = cand.offset();
  if (current && offset < current->offset()) return false;
  return offset + rt.options.live_batch >= rt.source_head(cand);
}

// Chooses the slot group `g` serves while its upstream serves `up` (nullptr:
// a view of the log), and those of the groups derived from it, into `out`.
// Preferred: the pinned version, else the newest declared; a candidate other
// than the served one must be ready, and so must its derived versions. False
// when no version reading `up` can be served.
bool choose(const runtime::impl& rt, size_t g, view_slot* up, const serving_table& now,
            serving_table& out) {
  const auto& grp = rt.groups[g];
  view_slot* current = now[g];
  std::vector<view_slot*> candidates;
  for (auto* s : grp.slots)
    if (s->upstream == up && !s->stale && !s->retired && (!s->superseded || s == current) &&
        (!grp.pinned || s->def().version() == *grp.pinned))
      candidates.push_back(s);
  // Newest version first, and of one version the newest generation (a copy
  // rebuilt beside the served one).
  std::sort(candidates.begin(), candidates.end(), [](auto* a, auto* b) {
    if (a->def().version() != b->def().version()) return a->def().version() > b->def().version();
    return a->generation() > b->generation();
  });
  auto with_children = [&](view_slot* s) {
    out[g] = s;
    for (size_t child : grp.downstream)
      if (!choose(rt, child, s, now, out)) return false;
    return true;
  };
  for (auto* c : candidates) {
    if (c == current) break;
    if (ready(rt, *c, current) && with_children(c)) return true;
  }
  if (current && current->upstream == up) return with_children(current);
  return false;
}

}  // namespace

bool runtime::impl::caught_up(const view_slot& copy) const {
  auto now = serving_now();
  return now && ready(*this, copy, (*now)[copy.group], true);
}

uint64_t runtime::impl::source_head(const view_slot& slot) const {
  if (slot.upstream) return slot.upstream->offset();
  return log ? log->head() : 0;
}

bool runtime::impl::live_work_pending() const {
  auto table = serving_now();
  if (!table) return false;
  for (const view_slot* s : *table)
    if (s && !s->stale && s->offset() < source_head(*s) && !s->failed()) return true;
  return false;
}

bool runtime::impl::try_cutover() {
  auto now = serving_now();
  if (!now) return false;
  serving_table next(*now);
  for (size_t g = 0; g < groups.size(); ++g)
    if (!groups[g].upstream) choose(*this, g, nullptr, *now, next);
  std::vector<size_t> changed;
  for (size_t g = 0; g < groups.size(); ++g)
    if (next[g] != (*now)[g]) changed.push_back(g);
  if (changed.empty()) return false;
  // A copy built by an erasure is served from one past its offset: a client
  // resuming at the old copy's offset held the erased data (it starts over).
  std::vector<uint64_t> since(groups.size(), 0);
  for (size_t g : changed)
    since[g] = next[g]->offset() + (next[g]->for_erasure.load() ? 1 : 0);
  // Durable first: after a crash the new choice is served (it was ready).
  for (size_t g : changed) {
    if (auto s = write_serving(*views_env, groups[g].name,
                               {next[g]->label(), since[g], groups[g].pinned});
        !s) {
      log_error(component, "cannot record the cutover of view ", groups[g].name, ": ",
                s.to_string());
      return false;
    }
  }
  {
    std::lock_guard<std::mutex> lock(serving_mu);
    for (size_t g : changed) {
      (*now)[g]->serving = false;
      next[g]->serving_since = since[g];
      next[g]->for_erasure = false;
      next[g]->serving = true;
      next[g]->set_caught_up();
      // A copy of the same version (a new generation) is not a version to roll back to.
      if ((*now)[g]->def().version() != next[g]->def().version()) groups[g].previous = (*now)[g];
    }
    std::atomic_store(&serving, std::shared_ptr<const serving_table>(
                                    std::make_shared<serving_table>(next)));
    for (size_t g : changed) pub->reset_subscribers(*(*now)[g]);
  }
  // A stale version no longer served is retired now, not at the next start;
  // so is a superseded one (a newer generation serves) with the slots that
  // read it.
  std::vector<view_slot*> gone;
  for (size_t g : changed) {
    view_slot* old = (*now)[g];
    if (old->stale) gone.push_back(old);
    if (!old->superseded) continue;
    std::vector<view_slot*> chain{old};
    for (size_t i = 0; i < chain.size(); ++i) {
      if (!chain[i]->serving && chain[i]->superseded &&
          std::find(gone.begin(), gone.end(), chain[i]) == gone.end())
        gone.push_back(chain[i]);
      for (auto* d : chain[i]->downstream) chain.push_back(d);
    }
  }
  if (audits)
    for (view_slot* old : gone) audits->enqueue([this, old] { retire(*old); });
  for (size_t g : changed) {
    waiters->notify(g, next[g]->offset());
    log_info(component, "view ", groups[g].name, ": serving ", next[g]->label(), " at offset ",
             next[g]->offset(), " (was ", (*now)[g]->label(), " at ", (*now)[g]->offset(), ")");
  }
  return true;
}

void runtime::impl::retire(view_slot& slot) {
  if (slot.serving) return;
  if (slot.runner) {
    stop_and_wait(slot.runner);  // no commit after the store is emptied
  }
  { std::unique_lock<std::shared_mutex> barrier(storage_mu); }  // reads that found it served
  std::shared_lock<std::shared_mutex> storage(storage_mu);       // have opened their snapshots
  if (!running || audits_cancel || slot.serving || slot.retired) return;
  if (auto s = clear_view_store(*views_env, slot.label()); !s) {
    log_error(component, "cannot retire ", slot.label(), ": ", s.to_string());
    return;
  }
  slot.retired = true;
  log_info(component, "view ", slot.name(), ": retired ", slot.label(),
           slot.stale ? " (no longer declared)" : " (a rebuilt copy serves)");
}

status runtime::impl::rebuild_beside(
    const std::vector<std::pair<std::string, uint32_t>>& versions) {
  auto now = serving_now();
  if (!now) return not_running();
  std::vector<view_slot*> chosen;
  for (const auto& [name, version] : versions) {
    auto g = group_of.find(name);
    if (g == group_of.end()) return no_such_view(name);
    view_slot* up = groups[g->second].upstream ? (*now)[*groups[g->second].upstream] : nullptr;
    view_slot* found = nullptr;
    for (auto* s : groups[g->second].slots)
      if (!s->stale && !s->retired && !s->superseded && s->def().version() == version &&
          s->upstream == up)
        found = s;
    if (!found)
      return {errc::not_found, "view '" + name + "' has no declared version " +
                                   std::to_string(version) + " to rebuild"};
    if (found->serving.load())
      return {errc::invalid_parameter,
              "version " + std::to_string(version) + " of view '" + name +
                  "' is the one served: runtime::rebuild builds a copy beside it"};
    if (found->processor)
      return {errc::invalid_parameter, "'" + name + "' is a processor; it is not rebuilt"};
    chosen.push_back(found);
  }
  // Under the cutover lock: a version asked to start over is not served
  // from here on (ready() waits for its rebuild to start), and none of the
  // chosen became served since it was found.
  std::lock_guard<std::mutex> cutover(cutover_mu);
  for (auto* s : chosen)
    if (s->serving.load())
      return {errc::invalid_parameter, "version " + std::to_string(s->def().version()) +
                                           " of view '" + s->name() +
                                           "' became the one served: ask again to build a "
                                           "copy beside it"};
  for (auto* s : chosen) s->request_rebuild();
  return status::ok();
}

// --- the runtime's API ---

namespace {

// The group of `view` when `version` is its served slot's (not already
// being rebuilt beside), else nullopt. REQUIRES: storage_mu held, running.
std::optional<size_t> served_group(const runtime::impl& rt, const std::string& view,
                                   uint32_t version) {
  auto g = rt.group_of.find(view);
  if (g == rt.group_of.end()) return std::nullopt;
  const view_slot* served = (*rt.serving_now())[g->second];
  if (served->def().version() != version || served->superseded) return std::nullopt;
  return g->second;
}

}  // namespace

status runtime::rebuild(const std::string& view, uint32_t version) {
  {
    std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
    if (!impl_->running) return not_running();
    if (!served_group(*impl_, view, version)) return impl_->rebuild_beside({{view, version}});
  }
  // The served version: a new generation of it is built beside it, which
  // adds slots (storage_mu exclusive; lifecycle_mu keeps stop() out).
  std::lock_guard<std::mutex> lifecycle(impl_->lifecycle_mu);
  std::unique_lock<std::shared_mutex> lock(impl_->storage_mu);
  if (!impl_->running) return not_running();
  auto g = served_group(*impl_, view, version);
  if (!g) return impl_->rebuild_beside({{view, version}});
  return impl_->rebuild_served(*g);
}

namespace {

// Pins `version` of `view` and switches to it at once when it is ready.
result<version_switch> pin(runtime::impl& rt, const std::string& view,
                           std::optional<uint32_t> version) {
  auto g = rt.group_of.find(view);
  if (g == rt.group_of.end()) return no_such_view(view);
  auto& grp = rt.groups[g->second];
  std::lock_guard<std::mutex> cutover(rt.cutover_mu);
  if (!version) {  // the version served before, else the newest older one declared
    const view_slot* served = (*rt.serving_now())[g->second];
    if (grp.previous && !grp.previous->stale) version = grp.previous->def().version();
    for (auto* s : grp.slots)
      if (!version && !s->stale && s->def().version() < served->def().version())
        version = s->def().version();
    for (auto* s : grp.slots)
      if (!grp.previous && !s->stale && s->def().version() < served->def().version())
        version = std::max(*version, s->def().version());
    if (!version)
      return status{errc::invalid_parameter,
                    "view '" + view + "' has no earlier version still declared to roll back to"};
  }
  bool declared = false;
  for (auto* s : grp.slots) declared = declared || (!s->stale && s->def().version() == *version);
  if (!declared)
    return status{errc::not_found,
                  "view '" + view + "' has no declared version " + std::to_string(*version)};
  // Durable before it takes effect: a restart keeps serving what was chosen.
  const view_slot* served = (*rt.serving_now())[g->second];
  if (auto s = write_serving(*rt.views_env, view,
                             {served->label(), served->serving_since.load(), version});
      !s)
    return s;
  grp.pinned = version;
  version_switch out;
  out.switched = rt.try_cutover();
  out.pinned = *version;
  out.serving = (*rt.serving_now())[g->second]->def().version();
  return out;
}

}  // namespace

result<version_switch> runtime::cutover(const std::string& view, uint32_t version) {
  std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
  if (!impl_->running) return not_running();
  return pin(*impl_, view, version);
}

result<version_switch> runtime::rollback(const std::string& view) {
  std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
  if (!impl_->running) return not_running();
  return pin(*impl_, view, std::nullopt);
}

}  // namespace derive
