// Retention (docs/storage.md, "Retention"): the eraser's sweeps redact the
// events of a rule's types once older than its keep, through the erasure's
// steps (actors/eraser.hpp).

#include <algorithm>
#include <map>

#include <derive/logging.hpp>

#include "actors/eraser.hpp"
#include "actors/runtime_state.hpp"
#include "core/crash_point.hpp"
#include "core/json_text.hpp"
#include "core/log.hpp"

namespace derive {
namespace {

constexpr std::string_view component = "retention";
constexpr std::string_view reserved_prefix = "derive.";
constexpr size_t read_page = 1024;

bool is_type_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}

// The literal part of a pattern: the type, or "prefix." of "prefix.*".
std::string_view literal(std::string_view pattern) {
  return pattern.size() >= 2 && pattern.substr(pattern.size() - 2) == ".*"
             ? pattern.substr(0, pattern.size() - 1)
             : pattern;
}
bool is_prefix_rule(std::string_view pattern) { return literal(pattern).size() < pattern.size(); }

status bad_rule(const retention_rule& r, const std::string& why) {
  return {errc::invalid_parameter, "retention rule '" + r.pattern + "': " + why};
}

status check_rule(const retention_rule& r) {
  const std::string_view lit = literal(r.pattern);
  const bool prefix = is_prefix_rule(r.pattern);
  if (lit.empty() || (prefix && lit.size() < 2) || lit.size() > 128 ||
      !std::all_of(lit.begin(), lit.end(), is_type_char))
    return bad_rule(r, "a pattern is an event type (A-Z a-z 0-9 . _ : -, 1-128 characters) or "
                       "'prefix.*' for every type starting with 'prefix.'");
  if (lit.substr(0, reserved_prefix.size()) == reserved_prefix ||
      (prefix && reserved_prefix.substr(0, lit.size()) == lit))
    return bad_rule(r, "types starting with 'derive.' are reserved (receipts) and never expire");
  if (r.keep.count() <= 0) return bad_rule(r, "keep must be positive (it is how long events stay)");
  return status::ok();
}

// Two rules match a common type.
bool overlap(std::string_view a, std::string_view b) {
  const std::string_view la = literal(a), lb = literal(b);
  if (is_prefix_rule(a) && lb.substr(0, la.size()) == la) return true;
  if (is_prefix_rule(b) && la.substr(0, lb.size()) == lb) return true;
  return a == b;
}

std::string hex_hash(const std::string& s) { return erasure_subject_hash(s); }

// The receipt's event data: deterministic for a mark's request, so that a
// resumed sweep replays its receipt.
std::string receipt_data(const retention_receipt& r) {
  std::string out = "{\"rule\":";
  append_json_string(out, r.rule);
  out += ",\"through\":" + std::to_string(r.through) + ",\"before\":" + std::to_string(r.before) +
         ",\"redacted\":" + std::to_string(r.offsets.size()) + ",\"offsets\":";
  append_offset_ranges(out, r.offsets);
  out += ",\"views\":[";
  for (size_t i = 0; i < r.views.size(); ++i) {
    if (i > 0) out += ',';
    append_json_string(out, r.views[i]);
  }
  out += "]}";
  return out;
}

// Appends to `out` the offsets in [from, to] whose type `pattern` matches
// (redacted ones too: a redacted record keeps its type).
status matching_offsets(const event_log& log, std::string_view pattern, uint64_t from,
                        uint64_t to, std::vector<uint64_t>& out) {
  std::vector<event> page;
  while (from <= to) {
    if (auto st = log.read(from, std::min<uint64_t>(read_page, to - from + 1), page); !st)
      return st;
    if (page.empty()) break;
    for (const auto& e : page)
      if (e.offset <= to && retention_matches(pattern, e.type)) out.push_back(e.offset);
    from = page.back().offset + 1;
  }
  return status::ok();
}

}  // namespace

bool retention_matches(std::string_view pattern, std::string_view type) {
  if (!is_prefix_rule(pattern)) return type == pattern;
  const std::string_view lit = literal(pattern);
  return type.size() > lit.size() && type.substr(0, lit.size()) == lit;
}

status check_retention(const runtime_options& options) {
  if (options.retention.empty()) return status::ok();
  if (options.cluster.enabled())
    return {errc::invalid_parameter,
            "retention is not supported in cluster mode: the log's JetStream stream is "
            "immutable (use the stream's own max_age)"};
  if (options.retention_interval.count() <= 0)
    return {errc::invalid_parameter, "retention_interval must be positive"};
  for (size_t i = 0; i < options.retention.size(); ++i) {
    const auto& r = options.retention[i];
    if (auto st = check_rule(r); !st) return st;
    for (size_t j = 0; j < i; ++j)
      if (overlap(options.retention[j].pattern, r.pattern))
        return bad_rule(r, "it matches types of rule '" + options.retention[j].pattern +
                               "' too; rules must not overlap");
  }
  return status::ok();
}

std::string retention_receipt::to_json() const {
  std::string data = receipt_data(*this);
  return "{\"offset\":" + std::to_string(offset) + ",\"ts\":" + std::to_string(ts) +
         ",\"type\":\"" + retention_event_type + "\"," + data.substr(1);
}

retention_metrics eraser::retention() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  return stats_;
}

// (1) each rule's newly expired events, from where its mark ends, recorded
// durably as its mark; (2) every pending mark's offsets redacted; (3) the
// views rebuilt; (4) one receipt per rule; (5) the marks finished.
result<retention_sweep> eraser::sweep_now() {
  retention_sweep out;
  out.at = clock_ms();
  auto marks = rt_.log->retention_marks();
  if (!marks) return marks.error();
  auto mark_of = [&](const std::string& pattern) {
    for (auto& m : *marks)
      if (m.pattern == pattern) return m;
    return event_log::retention_mark{pattern};
  };
  // (1) One read from the mark's end to the first event not yet expired
  // (the log's ts never decrease).
  std::map<std::string, std::vector<uint64_t>> found;  // by pattern
  std::map<std::string, uint64_t> scanned_from;
  std::vector<event_log::retention_mark> extended;
  std::vector<event> page;
  for (const auto& rule : rt_.options.retention) {
    auto m = mark_of(rule.pattern);
    const int64_t before = out.at - rule.keep.count();
    uint64_t from = std::max(m.through, m.target) + 1, last = from - 1;
    scanned_from[rule.pattern] = from;
    auto& offsets = found[rule.pattern];
    // Pages grow from 16 events: a sweep that finds nothing reads little.
    for (size_t limit = 16; limit > 0 && !stopping(); limit = std::min(limit * 2, read_page)) {
      if (auto st = rt_.log->read(from, limit, page); !st) return st;
      bool more = !page.empty();
      for (const auto& e : page) {
        if (e.ts >= before) {
          more = false;
          break;
        }
        last = e.offset;
        if (retention_matches(rule.pattern, e.type)) offsets.push_back(e.offset);
      }
      from = last + 1;
      if (!more) break;
    }
    if (last >= std::max(m.through, m.target) + 1) {
      m.target = last;
      m.before = std::max(m.before, before);
      extended.push_back(m);
    }
  }
  if (stopping())
    return status{errc::unavailable, "the runtime stopped before the sweep finished; "
                                     "it resumes when the runtime starts again"};
  if (!extended.empty()) {
    if (auto st = on_writer([&](event_log& log) { return log.record_retention(extended); }); !st)
      return st;
    crash_point("retention_recorded");
  }
  // (2) Every pending mark (also of a rule no longer declared, or left by a crash).
  marks = rt_.log->retention_marks();
  if (!marks) return marks.error();
  std::vector<retention_receipt> receipts;
  std::vector<uint64_t> all;
  std::vector<std::string> pending;
  for (const auto& m : *marks) {
    if (m.target <= m.through) continue;
    pending.push_back(m.pattern);
    retention_receipt r;
    r.rule = m.pattern;
    r.through = m.target;
    r.before = m.before;
    const uint64_t fresh = scanned_from.count(m.pattern) ? scanned_from[m.pattern] : m.target + 1;
    if (auto st = matching_offsets(*rt_.log, m.pattern, m.through + 1, fresh - 1, r.offsets); !st)
      return st;
    for (uint64_t o : found[m.pattern])
      if (o >= fresh && o <= m.target) r.offsets.push_back(o);
    all.insert(all.end(), r.offsets.begin(), r.offsets.end());
    receipts.push_back(std::move(r));
  }
  if (pending.empty()) return record_sweep(out, 0);
  std::sort(all.begin(), all.end());
  log_info(component, "expiring ", all.size(), " event(s) of ", pending.size(), " rule(s)");
  size_t newly = 0;
  auto redact = on_writer([&](event_log& log) {
    auto n = log.redact_offsets(all);
    if (!n) return n.error();
    newly = *n;
    return status::ok();
  });
  if (!redact) return redact;
  crash_point("retention_redacted");
  // (3) The views, as for forget.
  std::vector<std::string> views;
  if (!all.empty() || rebuild_owed_) {
    if (auto st = rebuild_views(views, all.empty() ? 0 : all.front() - 1); !st) return st;
    rebuild_owed_ = false;
    if (auto pages = rt_.views_env->scrub_free_pages(); !pages) return pages.error();
  }
  crash_point("retention_views_rebuilt");
  // (4) The receipts.
  for (auto& r : receipts) {
    if (r.offsets.empty()) continue;
    r.views = views;
    auto outcome = append_receipt({retention_event_type, "retention/" + r.rule, "", receipt_data(r)},
                                  std::string(retention_event_type) + "." + hex_hash(r.rule) +
                                      "." + std::to_string(r.through));
    if (!outcome) return outcome.error();
    r.offset = outcome->first_offset;
    auto e = rt_.log->read(r.offset, 1);
    if (e && !e->empty()) r.ts = e->front().ts;
    out.receipts.push_back(r);
  }
  crash_point("retention_receipts_appended");
  // (5) Done; the log's freed pages are overwritten and the data directories
  // compacted, as after forget.
  if (auto st = on_writer([&](event_log& log) { return log.finish_retention(pending, !all.empty()); });
      !st)
    return st;
  crash_point("retention_finished");
  if (!all.empty()) {
    if (auto st = on_writer([](event_log& log) { return log.scrub(); }); !st) return st;
    if (auto st = compact(); !st) return st;
  }
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    for (const auto& r : out.receipts) {
      for (auto& rm : stats_.rules)
        if (rm.pattern == r.rule) rm.expired += r.offsets.size();
    }
  }
  log_info(component, "expired ", newly, " event(s)");
  return record_sweep(out, newly);
}

// Counts a finished sweep and refreshes each rule's durable mark.
result<retention_sweep> eraser::record_sweep(retention_sweep& out, uint64_t expired) {
  out.expired = expired;
  auto marks = rt_.log->retention_marks();
  std::lock_guard<std::mutex> lock(stats_mu_);
  ++stats_.sweeps;
  stats_.expired += expired;
  stats_.last_sweep_ms = out.at;
  stats_.last_sweep_head = rt_.log->head();
  if (marks)
    for (auto& rm : stats_.rules)
      for (const auto& m : *marks)
        if (m.pattern == rm.pattern) rm.through = m.through;
  return std::move(out);
}

}  // namespace derive
