#include "core/state_compare.hpp"

#include "core/state_keys.hpp"
#include "core/view_meta.hpp"
#include "core/view_snapshot_impl.hpp"

namespace derive {

result<std::optional<view_digest>> stored_digest(const view_snapshot& snapshot) {
  const auto& s = snapshot_access::of(snapshot);
  std::optional<std::string> raw;
  if (int rc = get_view_digest(s.txn.get(), s.meta_dbi, raw); rc != MDB_SUCCESS)
    return decode_status(rc, "reading a view's digest");
  if (!raw) return std::optional<view_digest>{};
  view_digest digest;
  digest.assign_raw(*raw);
  return std::optional<view_digest>{digest};
}

result<state_comparison> compare_states(const view_snapshot& actual,
                                        const view_snapshot& expected,
                                        size_t max_differences) {
  const auto& a = snapshot_access::of(actual);
  const auto& e = snapshot_access::of(expected);
  state_cursor ca, ce;
  int rc = ca.open(a.txn.get(), a.state_dbi);
  if (rc == MDB_SUCCESS) rc = ce.open(e.txn.get(), e.state_dbi);
  if (rc == MDB_SUCCESS) rc = ca.seek("");
  if (rc == MDB_SUCCESS) rc = ce.seek("");
  state_comparison out;
  auto differ = [&](std::string key, std::optional<std::string> av,
                    std::optional<std::string> ev) {
    if (out.differences.size() < max_differences)
      out.differences.push_back({std::move(key), std::move(av), std::move(ev)});
    else
      out.more = true;
  };
  while (rc == MDB_SUCCESS && (ca.valid() || ce.valid())) {
    const bool take_a = ca.valid() && (!ce.valid() || ca.key() <= ce.key());
    const bool take_e = ce.valid() && (!ca.valid() || ce.key() <= ca.key());
    if (take_a) out.actual_walked.add(ca.key(), ca.value());
    if (take_a && take_e) {
      if (ca.value() != ce.value())
        differ(ca.key(), std::string(ca.value()), std::string(ce.value()));
    } else if (take_a) {
      differ(ca.key(), std::string(ca.value()), std::nullopt);
    } else {
      differ(ce.key(), std::nullopt, std::string(ce.value()));
    }
    if (take_a) rc = ca.next();
    if (rc == MDB_SUCCESS && take_e) rc = ce.next();
  }
  if (rc != MDB_SUCCESS) return decode_status(rc, "comparing two copies of a view");
  return out;
}

}  // namespace derive
