#include "core/view_names.hpp"

#include <lmdb.h>

#include <cctype>

#include "core/coding.hpp"
#include "core/lmdb_util.hpp"

namespace derive {
namespace {

constexpr std::string_view versions_db = "versions";
constexpr std::string_view pins_db = "version_pins";

// A decimal number of 1 to 9 digits at the front of `rest`, consumed.
bool take_number(std::string_view& rest, uint32_t& out) {
  size_t digits = 0;
  while (digits < rest.size() && std::isdigit(static_cast<unsigned char>(rest[digits]))) ++digits;
  if (digits == 0 || digits > 9) return false;
  out = static_cast<uint32_t>(std::stoul(std::string(rest.substr(0, digits))));
  rest.remove_prefix(digits);
  return true;
}

// "<version>[.g<generation>][@<upstream>]" after "<name>/"; false otherwise.
bool parse_rest(std::string_view rest, stored_view& out) {
  if (!take_number(rest, out.version)) return false;
  if (rest.substr(0, 2) == ".g") {
    rest.remove_prefix(2);
    if (!take_number(rest, out.generation) || out.generation == 0) return false;
  }
  if (rest.empty()) return true;
  if (rest[0] != '@' || rest.size() == 1) return false;
  out.upstream = std::string(rest.substr(1));
  return true;
}

}  // namespace

std::string view_label(const std::string& name, uint32_t version,
                       const std::string& upstream_label, uint32_t generation) {
  std::string label = name + "/" + std::to_string(version);
  if (generation > 0) label += ".g" + std::to_string(generation);
  // The stores of before versions: a derived view read version 1 of a view
  // of the log under its plain label.
  bool plain_upstream = upstream_label.empty() ||
                        (upstream_label.find('@') == std::string::npos &&
                         upstream_label.size() > 2 &&
                         upstream_label.compare(upstream_label.size() - 2, 2, "/1") == 0);
  if (!plain_upstream) label += "@" + upstream_label;
  return label;
}

std::string view_db_prefix(const std::string& label) { return "view/" + label + "/"; }

std::optional<stored_view> parse_view_label(const std::string& name, const std::string& label) {
  if (label.size() <= name.size() + 1 || label.compare(0, name.size(), name) != 0 ||
      label[name.size()] != '/')
    return std::nullopt;
  stored_view v;
  v.label = label;
  if (!parse_rest(std::string_view(label).substr(name.size() + 1), v)) return std::nullopt;
  return v;
}

std::string view_checkpoint_prefix(const std::string& label) {
  return view_db_prefix(label) + "checkpoint";
}

std::string view_checkpoint_db(const std::string& label, unsigned slot, std::string_view part) {
  return view_checkpoint_prefix(label) + std::to_string(slot) + "." + std::string(part);
}

result<std::vector<stored_view>> stored_versions(const environment& env,
                                                 const std::string& name) {
  const std::string prefix = "view/" + name + "/";
  auto names = env.database_names(prefix);
  if (!names) return names.error();
  std::vector<stored_view> out;
  constexpr std::string_view meta = "/meta";
  for (const auto& db : *names) {
    if (db.size() < prefix.size() + meta.size() ||
        db.compare(db.size() - meta.size(), meta.size(), meta) != 0)
      continue;
    stored_view v;
    v.label = db.substr(5, db.size() - 5 - meta.size());
    if (parse_rest(std::string_view(v.label).substr(name.size() + 1), v)) out.push_back(v);
  }
  return out;
}

status drop_view_store(environment& env, const std::string& label) {
  auto dropped = env.drop_databases(view_db_prefix(label));
  if (!dropped) return dropped.error();
  return status::ok();
}

status clear_view_store(environment& env, const std::string& label) {
  auto names = env.database_names(view_db_prefix(label));
  if (!names) return names.error();
  for (const auto& name : *names)  // opened before the transaction ...
    if (auto dbi = env.database(name); !dbi) return dbi.error();
  txn_guard txn;
  if (auto st = env.begin_write(txn, "retiring a view version"); !st) return st;
  for (const auto& name : *names) {
    auto dbi = env.database(name);  // ... their handles read in it (a compaction
                                    // may have renumbered them before)
    if (!dbi) return dbi.error();
    if (int rc = mdb_drop(txn.get(), *dbi, 0); rc != MDB_SUCCESS)
      return env.check(rc, "emptying the store " + label);
  }
  return env.commit(txn);
}

namespace {

// The handles of the versions and pins databases: opened (created) before
// `txn` begins, and read again once it has: an online compaction may have
// renumbered them in between (a transaction's pass of the gate excludes it).
status version_handles(environment& env, result<unsigned>& versions, result<unsigned>& pins) {
  versions = env.database(std::string(versions_db));
  if (!versions) return versions.error();
  pins = env.database(std::string(pins_db));
  return pins ? status::ok() : pins.error();
}

}  // namespace

result<std::map<std::string, served_version>> read_serving(environment& env) {
  result<unsigned> dbi = 0u, pins = 0u;
  if (auto st = version_handles(env, dbi, pins); !st) return st;
  txn_guard txn;
  cursor_guard c;
  int rc = env.begin_txn(txn, MDB_RDONLY);
  if (rc == MDB_SUCCESS) {
    if (auto st = version_handles(env, dbi, pins); !st) return st;
    rc = c.open(txn.get(), *dbi);
  }
  std::map<std::string, served_version> out;
  MDB_val k, v;
  if (rc == MDB_SUCCESS) rc = mdb_cursor_get(c.get(), &k, &v, MDB_FIRST);
  for (; rc == MDB_SUCCESS; rc = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT)) {
    std::string_view value = to_view(v);
    if (value.size() < 8) return status{errc::corruption, "a served-version record is too short"};
    served_version served;
    served.since = decode_fixed64(value.data());
    served.label = std::string(value.substr(8));
    MDB_val pin;
    int prc = mdb_get(txn.get(), *pins, &k, &pin);
    if (prc == MDB_SUCCESS) {
      if (pin.mv_size != 4) return status{errc::corruption, "a version pin is not 4 bytes"};
      served.pinned = decode_fixed32(static_cast<const char*>(pin.mv_data));
    } else if (prc != MDB_NOTFOUND) {
      return lmdb_status(prc, "reading the version pins");
    }
    out.emplace(std::string(to_view(k)), std::move(served));
  }
  if (rc != MDB_NOTFOUND) return lmdb_status(rc, "reading the served versions");
  return out;
}

status write_serving(environment& env, const std::string& name, const served_version& served) {
  result<unsigned> dbi = 0u, pins = 0u;
  if (auto st = version_handles(env, dbi, pins); !st) return st;
  txn_guard txn;
  if (auto st = env.begin_write(txn, "recording the served version"); !st) return st;
  if (auto st = version_handles(env, dbi, pins); !st) return st;
  std::string value;
  put_fixed64(value, served.since);
  value += served.label;
  MDB_val k = to_val(name), v = to_val(value);
  int rc = mdb_put(txn.get(), *dbi, &k, &v, 0);
  if (rc != MDB_SUCCESS) return env.check(rc, "recording the served version of " + name);
  if (served.pinned) {
    char pin[4];
    encode_fixed32(pin, *served.pinned);
    MDB_val pv{sizeof pin, pin};
    rc = mdb_put(txn.get(), *pins, &k, &pv, 0);
  } else {
    rc = mdb_del(txn.get(), *pins, &k, nullptr);
    if (rc == MDB_NOTFOUND) rc = MDB_SUCCESS;
  }
  if (rc != MDB_SUCCESS) return env.check(rc, "recording the version pin of " + name);
  return env.commit(txn);
}

}  // namespace derive
