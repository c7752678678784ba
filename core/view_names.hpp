#pragma once
// Where each view version lives (docs/storage.md, "View versions"): the one
// place that names a view store's databases and the record of which version
// of each view is served, so that every tool agrees on them.
//
// A *label* names one store: "<name>/<version>" for a view of the log (and
// for a derived view that reads version 1 of a view of the log, as before
// versions), else "<name>/<version>@<upstream label>": a derived view keeps
// one store per upstream version it reads. A copy of a version rebuilt beside
// the served copy of the same version (runtime::rebuild of the served
// version) is a later *generation*: "<name>/<version>.g<generation>" (then
// "@<upstream label>" as before); generation 0 has no suffix, so the labels
// of before generations name generation 0. Its databases are
// "view/<label>/state", ".../changes", ".../meta", ".../dead", ".../private"
// in the views' environment, and its checkpoints' (view_checkpoint_db).
//
// The `versions` database (views' environment) maps a view's name to the
// label it serves and the offset from which it serves it (fixed64, then the
// label), written at every cutover; absent for a directory written before
// versions existed. A changelog read that resumes before that offset must
// start over (the changes before it belong to the version served before).
// The `version_pins` database maps a view's name to the version an operator
// pinned (fixed32; cutover or rollback), written in the same transaction.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <derive/status.hpp>

#include "core/environment.hpp"

namespace derive {

// The label of version `version` of view `name` reading `upstream_label`
// ("" for the log).
std::string view_label(const std::string& name, uint32_t version,
                       const std::string& upstream_label = {}, uint32_t generation = 0);
// "view/<label>/": the prefix of the store's databases.
std::string view_db_prefix(const std::string& label);
// A view checkpoint's copy of the store's `part` ("state" or "private") in
// checkpoint slot `slot` (docs/storage.md, "View checkpoints"):
// "view/<label>/checkpoint<slot>.<part>", under the store's prefix, so that
// retiring or clearing the store takes its checkpoints too. The slot's offset
// and digest are in the store's meta ("checkpoint/<slot>").
std::string view_checkpoint_db(const std::string& label, unsigned slot, std::string_view part);
// "view/<label>/checkpoint": the prefix of every checkpoint database.
std::string view_checkpoint_prefix(const std::string& label);

// A store found on disk.
struct stored_view {
  std::string label;
  uint32_t version = 0;
  uint32_t generation = 0;
  std::string upstream;  // the upstream label; "" for a view of the log
};
// The parts of `label` (a store of view `name`); nullopt if it is not one.
std::optional<stored_view> parse_view_label(const std::string& name, const std::string& label);
// Every store of view `name` in `env` (from the names of its databases).
result<std::vector<stored_view>> stored_versions(const environment& env, const std::string& name);

// Drops every database of the store `label` (its pages return to LMDB's
// free list). REQUIRES: no transaction uses them.
status drop_view_store(environment& env, const std::string& label);
// Empties every database of the store `label` in one transaction (mdb_drop
// without deleting them): their pages return to LMDB's free list, reused
// once no older read transaction sees them, and the handles stay valid for
// snapshots opened before. The empty databases go at the next start.
status clear_view_store(environment& env, const std::string& label);

struct served_version {
  std::string label;
  uint64_t since = 0;  // the offset at which it began to be served
  std::optional<uint32_t> pinned;  // the version pinned by cutover/rollback
};
// The served version of every view that has a record.
result<std::map<std::string, served_version>> read_serving(environment& env);
// Records (durably, in its own transaction) that `name` serves `v`, and its
// pin (removed when `v.pinned` is empty).
status write_serving(environment& env, const std::string& name, const served_version& v);

}  // namespace derive
