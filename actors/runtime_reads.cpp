#include <derive/runtime.hpp>

#include <algorithm>

#include <nlohmann/json.hpp>

#include <derive/view.hpp>

#include "actors/runtime_state.hpp"

// The runtime's reads: on the caller's thread, each with its own short LMDB
// read transaction, never through an actor. wait_for registers with the
// waiter registry, which the runners' publishers notify.

namespace derive {

namespace {

// A stale version still served, emptied by an erasure, serves nothing until
// a declared version is ready (actors/eraser.hpp; every other view serves
// its old copy while a new generation is built beside it).
status rebuilding_after_erasure(const view_slot& slot) {
  return {errc::unavailable, "view '" + slot.name() + "' serves version " +
                                 std::to_string(slot.def().version()) +
                                 ", no longer declared, which an erasure emptied; it is served "
                                 "again once a declared version has caught up"};
}

bool erasing(const view_slot& slot) { return slot.erasing.load(std::memory_order_acquire); }

}  // namespace

view_slot* runtime::impl::find(const std::string& name) const {
  if (running) {
    auto it = group_of.find(name);
    if (it == group_of.end()) return nullptr;
    if (auto table = serving_now()) return (*table)[it->second];
    return nullptr;
  }
  view_slot* newest = nullptr;
  for (auto& slot : slots)
    if (slot->name() == name && (!newest || slot->def().version() > newest->def().version()))
      newest = slot.get();
  return newest;
}

namespace {

// The served version's info, with every version's role and progress.
view_info group_info(const runtime::impl& rt, const view_slot& served, uint64_t head) {
  auto out = served.info(head, rt.options.live_batch);
  if (!rt.running || served.group >= rt.groups.size()) return out;
  const auto& grp = rt.groups[served.group];
  out.pinned = grp.pinned;
  auto retired = [&](uint32_t v, uint32_t generation) {
    view_version_info r;
    r.version = v;
    r.generation = generation;
    r.role = version_role::retired;
    out.versions.push_back(r);
  };
  for (auto* s : grp.slots) {
    if (s->retired) {
      retired(s->def().version(), s->generation());
      continue;
    }
    out.versions.push_back(s->version_info(rt.source_head(*s), rt.options.live_batch));
    auto& v = out.versions.back();
    v.pinned = !s->stale && grp.pinned == s->def().version();
    // The role as of the serving table `served` came from, not the slots'
    // flags: a cutover flips the flags just before it stores the new table,
    // and a caller told "serving" must then read from that version.
    if (s == &served) v.role = version_role::serving;
    else if (v.role == version_role::serving) v.role = s->stale ? version_role::stale
                                                                : version_role::building;
  }
  for (uint32_t v : grp.retired) retired(v, 0);
  std::stable_sort(out.versions.begin(), out.versions.end(),
                   [](auto& a, auto& b) { return a.version > b.version; });
  return out;
}

}  // namespace

uint64_t runtime::head() const {
  std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
  return impl_->log ? impl_->log->head() : 0;
}

durability runtime::durability_mode() const { return impl_->options.storage.mode; }

std::vector<view_info> runtime::views() const {
  std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
  uint64_t head = impl_->log ? impl_->log->head() : 0;
  std::vector<view_info> out;
  if (impl_->running) {
    for (auto& grp : impl_->groups) out.push_back(group_info(*impl_, *impl_->find(grp.name), head));
    return out;
  }
  for (size_t i = 0; i < impl_->slots.size(); ++i) {
    auto* slot = impl_->slots[i].get();
    if (impl_->find(slot->name()) == slot) out.push_back(group_info(*impl_, *slot, head));
  }
  return out;
}

result<view_info> runtime::view(const std::string& name) const {
  std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
  auto* slot = impl_->find(name);
  if (!slot) return no_such_view(name);
  return group_info(*impl_, *slot, impl_->log ? impl_->log->head() : 0);
}

result<std::vector<event>> runtime::read_log(uint64_t from, size_t limit) const {
  std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
  if (!impl_->log) return not_running();
  return impl_->log->read(from, limit);
}

result<view_snapshot> runtime::snapshot(const std::string& view) const {
  std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
  auto* slot = impl_->find(view);
  if (!slot) return no_such_view(view);
  if (!slot->store()) return not_running();
  if (erasing(*slot)) return rebuilding_after_erasure(*slot);
  return slot->store()->snapshot();
}

result<json> runtime::query(const std::string& view, const std::string& name,
                            const query_params& params) const {
  std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
  auto* slot = impl_->find(view);
  if (!slot) return no_such_view(view);
  auto q = slot->def().queries().find(name);
  if (q == slot->def().queries().end())
    return status{errc::unknown_query, "view '" + view + "' has no query named '" + name + "'"};
  if (!slot->store()) return not_running();
  if (erasing(*slot)) return rebuilding_after_erasure(*slot);
  auto snap = slot->store()->snapshot();
  if (!snap) return snap.error();
  try {
    auto out = q->second(*snap, params);
    if (!out) return out;
    if (!out->is_object()) {
      json wrapped = json::object();
      wrapped["result"] = std::move(*out);
      *out = std::move(wrapped);
    }
    (*out)["offset"] = snap->offset();
    return out;
  } catch (const std::exception& e) {
    return status{errc::invalid_parameter, "query " + view + "/" + name + " failed: " + e.what()};
  }
}

result<changelog_page> runtime::changes_since(const std::string& view, uint64_t from,
                                                    size_t limit) const {
  std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
  auto* slot = impl_->find(view);
  if (!slot) return no_such_view(view);
  if (!slot->store()) return not_running();
  if (erasing(*slot)) return rebuilding_after_erasure(*slot);
  // A reader as of an offset before the last erasure's rebuild holds what
  // the rebuilt changelog cannot take back; one before the cutover holds
  // another version's changes: either starts over.
  auto floor = slot->store()->resume_floor();
  if (!floor) return floor.error();
  if (from < *floor || from < slot->serving_since.load()) {
    changelog_page page;
    page.served = false;
    page.view_offset = slot->offset();
    return page;
  }
  return slot->store()->changes_since(from, limit);
}

result<std::vector<dead_letter>> runtime::dead_letters(const std::string& view) const {
  std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
  auto* slot = impl_->find(view);
  if (!slot) return no_such_view(view);
  if (!slot->store()) return not_running();
  return slot->store()->dead_letters();
}

void runtime::wait_for(const std::string& view, uint64_t offset,
                             std::chrono::milliseconds timeout, std::function<void(status)> done) {
  std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
  auto* slot = impl_->find(view);
  if (!slot) {
    lock.unlock();
    done(no_such_view(view));
    return;
  }
  if (!impl_->running) {
    lock.unlock();
    done(status{errc::unavailable, "the runtime is shutting down"});
    return;
  }
  // The served version's offsets: a version built beside it never answers.
  impl_->waiters->wait(slot->group, offset, waiter_registry::clock::now() + timeout, std::move(done));
}

}  // namespace derive
