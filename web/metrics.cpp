#include "web/metrics.hpp"

#include <cstdio>

#include <derive/runtime.hpp>
#include "core/json_text.hpp"
#include "web/limits.hpp"

namespace derive::web {
namespace {

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, const char* name, uint64_t v) {
  out += name;
  out += ' ';
  append_uint(out, v);
  out += '\n';
}

void sample(std::string& out, const char* name, int64_t v) {
  out += name;
  out += ' ';
  out += std::to_string(v);
  out += '\n';
}

// A label value: backslash, double quote and newline escaped.
std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out.push_back(c);
  }
  return out;
}

std::string format_double(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// Cluster mode: the stream's position, this node's, and the cluster's reachability.
void cluster_families(std::string& out, const cluster_metrics& c) {
  header(out, "derive_cluster_reachable", "gauge",
         "1 when this node is connected to a NATS server of the cluster.");
  sample(out, "derive_cluster_reachable", uint64_t{c.reachable});
  header(out, "derive_cluster_following", "gauge",
         "1 while this node can follow the stream; 0 when it stopped (see /v1/health).");
  sample(out, "derive_cluster_following", uint64_t{c.error.empty()});
  header(out, "derive_cluster_stream_last_sequence", "gauge",
         "The stream's last sequence, as last seen.");
  sample(out, "derive_cluster_stream_last_sequence", c.stream_last_seq);
  header(out, "derive_cluster_stream_first_sequence", "gauge",
         "The stream's first sequence, as last seen.");
  sample(out, "derive_cluster_stream_first_sequence", c.stream_first_seq);
  header(out, "derive_cluster_ingested_sequence", "gauge",
         "The last stream sequence ingested into the local log.");
  sample(out, "derive_cluster_ingested_sequence", c.ingested_seq);
  header(out, "derive_cluster_lag_messages", "gauge",
         "Stream messages not yet ingested by this node.");
  sample(out, "derive_cluster_lag_messages", c.lag);
  header(out, "derive_cluster_published_messages_total", "counter",
         "Stream messages this node published (one per group of appends).");
  sample(out, "derive_cluster_published_messages_total", c.messages_published);
  header(out, "derive_cluster_publish_retries_total", "counter",
         "Publishes tried again (no stream leader, reconnecting).");
  sample(out, "derive_cluster_publish_retries_total", c.publish_retries);
  header(out, "derive_cluster_ingested_messages_total", "counter",
         "Stream messages this node ingested since start.");
  sample(out, "derive_cluster_ingested_messages_total", c.messages_ingested);
  header(out, "derive_cluster_duplicate_messages_total", "counter",
         "Ingested stream messages that were copies of an earlier one (a publish stored twice): "
         "nothing appended.");
  sample(out, "derive_cluster_duplicate_messages_total", c.duplicates_dropped);
}

// One family with a sample per view: `field` picks the view's value.
void per_view(std::string& out, const std::vector<view_metrics>& views, const char* name,
              const char* type, const char* help, uint64_t view_metrics::*field) {
  header(out, name, type, help);
  for (const auto& v : views) {
    out += name;
    out += "{view=\"" + label(v.name) + "\"} ";
    append_uint(out, v.*field);
    out += '\n';
  }
}

// Retention (docs/operating.md, "Retention"): the sweeps and each rule.
void retention_families(std::string& out, const retention_metrics& r) {
  header(out, "derive_retention_sweeps_total", "counter", "Retention sweeps since start.");
  sample(out, "derive_retention_sweeps_total", r.sweeps);
  header(out, "derive_retention_expired_events_total", "counter",
         "Events redacted by retention since start.");
  sample(out, "derive_retention_expired_events_total", r.expired);
  header(out, "derive_retention_last_sweep_seconds", "gauge",
         "When the last retention sweep ran (log clock), in seconds since the Unix epoch.");
  sample(out, "derive_retention_last_sweep_seconds", r.last_sweep_ms / 1000);
  header(out, "derive_retention_last_sweep_head", "gauge",
         "The log head when the last retention sweep finished.");
  sample(out, "derive_retention_last_sweep_head", r.last_sweep_head);
  auto per_rule = [&](const char* name, const char* type, const char* help, auto value) {
    header(out, name, type, help);
    for (const auto& rule : r.rules) {
      out += name;
      out += "{rule=\"" + label(rule.pattern) + "\"} ";
      append_uint(out, value(rule));
      out += '\n';
    }
  };
  per_rule("derive_retention_rule_expired_events_total", "counter",
           "Events of the rule's types redacted since start.",
           [](const retention_rule_metrics& m) { return m.expired; });
  per_rule("derive_retention_rule_through_offset", "gauge",
           "Every event of the rule's types up to this offset is redacted.",
           [](const retention_rule_metrics& m) { return m.through; });
  per_rule("derive_retention_rule_keep_seconds", "gauge", "How long the rule keeps events.",
           [](const retention_rule_metrics& m) { return m.keep_ms / 1000; });
}

// Each LMDB environment's file and the room compactions gave back
// (docs/operating.md, "Space reclamation").
void storage_families(std::string& out, const std::vector<storage_metrics>& envs) {
  auto family = [&](const char* name, const char* type, const char* help, auto value) {
    header(out, name, type, help);
    for (const auto& e : envs) {
      out += name;
      out += "{environment=\"" + label(e.environment) + "\"} ";
      append_uint(out, value(e));
      out += '\n';
    }
  };
  family("derive_storage_file_bytes", "gauge", "The size of the environment's data.mdb.",
         [](const storage_metrics& e) { return e.file_bytes; });
  family("derive_storage_free_bytes", "gauge",
         "Free pages and the unused tail of data.mdb: what a compaction would give back.",
         [](const storage_metrics& e) { return e.free_bytes; });
  family("derive_storage_compactions_total", "counter",
         "Online compactions since start (at rest, and at the end of a forget).",
         [](const storage_metrics& e) { return e.compactions; });
  family("derive_storage_reclaimed_bytes_total", "counter",
         "Bytes the online compactions gave back since start.",
         [](const storage_metrics& e) { return e.bytes_reclaimed; });
}

}  // namespace

void metrics::record_http_response(unsigned status) {
  if (status < http_responses_.size()) {
    http_responses_[status].fetch_add(1, std::memory_order_relaxed);
  }
}

// The last audit of each view and the last scrub (docs/operating.md).
void render_audits(std::string& out, const runtime& rt) {
  auto views = rt.views();
  auto family = [&](const char* name, const char* type, const char* help, auto value) {
    header(out, name, type, help);
    for (const auto& v : views) {
      if (!v.audit) continue;
      out += name;
      out += "{view=\"" + label(v.name) + "\",version=\"" + std::to_string(v.version) + "\"} ";
      append_uint(out, value(*v.audit));
      out += '\n';
    }
  };
  family("derive_view_audit_ok", "gauge", "1 when the view's last audit passed, else 0.",
         [](const audit_result& a) -> uint64_t { return a.ok ? 1 : 0; });
  family("derive_view_audit_offset", "gauge", "The offset at which the last audit compared.",
         [](const audit_result& a) { return a.offset; });
  family("derive_view_audit_differences", "gauge",
         "Keys found differing by the last audit (at most 10 are listed).",
         [](const audit_result& a) -> uint64_t { return a.differences.size(); });
  family("derive_view_audit_duration_ms", "gauge", "How long the last audit took, in ms.",
         [](const audit_result& a) { return a.duration_ms; });
  family("derive_view_audit_finished_seconds", "gauge",
         "When the last audit finished, in seconds since the Unix epoch.",
         [](const audit_result& a) { return static_cast<uint64_t>(a.finished_at_ms / 1000); });
  auto scrub = rt.last_scrub();
  header(out, "derive_log_scrub_checked", "gauge", "Log records the last (or running) scrub read.");
  sample(out, "derive_log_scrub_checked", scrub.checked);
  header(out, "derive_log_scrub_problems", "gauge", "Problems the last scrub found.");
  sample(out, "derive_log_scrub_problems", uint64_t{scrub.problems.size()});
  header(out, "derive_log_scrub_ok", "gauge",
         "1 when the last finished scrub found every record sound, else 0.");
  sample(out, "derive_log_scrub_ok", uint64_t{scrub.ok ? 1u : 0u});
}

std::string metrics::render(const runtime& rt) const {
  std::string out;
  out.reserve(4096);
  auto m = rt.metrics();
  header(out, "derive_head_offset", "gauge", "The last offset appended to the log.");
  sample(out, "derive_head_offset", m.head);
  header(out, "derive_appended_events_total", "counter",
         "Events appended to the log since start (idempotent replays excluded).");
  sample(out, "derive_appended_events_total", m.appended_events);
  header(out, "derive_append_requests_total", "counter", "Append requests answered.");
  sample(out, "derive_append_requests_total", m.append_requests);
  header(out, "derive_append_failures_total", "counter", "Append requests that failed.");
  sample(out, "derive_append_failures_total", m.append_failures);
  header(out, "derive_append_commits_total", "counter",
         "Group commits (one durable transaction each).");
  sample(out, "derive_append_commits_total", m.append_commits);

  header(out, "derive_append_latency_seconds", "histogram",
         "Time from an append request to its durable outcome.");
  for (const auto& [bound_us, count] : m.append_latency_buckets) {
    out += "derive_append_latency_seconds_bucket{le=\"";
    out += bound_us == UINT64_MAX ? std::string("+Inf")
                                  : format_double(static_cast<double>(bound_us) / 1e6);
    out += "\"} ";
    append_uint(out, count);
    out += '\n';
  }
  if (m.append_latency_buckets.empty() || m.append_latency_buckets.back().first != UINT64_MAX) {
    out += "derive_append_latency_seconds_bucket{le=\"+Inf\"} ";
    append_uint(out, m.append_latency_count);
    out += '\n';
  }
  out += "derive_append_latency_seconds_sum " +
         format_double(static_cast<double>(m.append_latency_sum_us) / 1e6) + "\n";
  sample(out, "derive_append_latency_seconds_count", m.append_latency_count);

  per_view(out, m.views, "derive_view_offset", "gauge",
           "The offset of the last event a view applied.", &view_metrics::offset);
  per_view(out, m.views, "derive_view_lag", "gauge",
           "Events appended but not yet applied by a view.", &view_metrics::lag);
  header(out, "derive_view_status", "gauge", "1 for the view's current status, else 0.");
  static constexpr view_status all[] = {view_status::running, view_status::catching_up,
                                        view_status::rebuilding, view_status::failed,
                                        view_status::stopped, view_status::stale};
  for (const auto& v : m.views) {
    for (auto s : all) {
      out += "derive_view_status{view=\"" + label(v.name) + "\",status=\"" +
             std::string(to_string(s)) + "\"} ";
      out += v.status == s ? "1\n" : "0\n";
    }
  }
  per_view(out, m.views, "derive_view_applied_total", "counter",
           "Inputs a view applied since start.", &view_metrics::applied);
  per_view(out, m.views, "derive_view_commits_total", "counter",
           "Transactions a view committed since start.", &view_metrics::commits);
  per_view(out, m.views, "derive_view_bytes_written_total", "counter",
           "Bytes of keys and values a view committed since start (state and private); "
           "divided by derive_view_applied_total, the cost of one input.",
           &view_metrics::bytes_written);
  per_view(out, m.views, "derive_view_largest_value_bytes", "gauge",
           "The largest value a view committed since start, in bytes.",
           &view_metrics::largest_value);
  // Every version of every view that holds data (docs/storage.md, "View
  // versions"): retired ones are left out (their storage is gone, and several
  // retired copies of one version would share their labels). A derived
  // view's version is named with the upstream copy it reads.
  auto per_version = [&](const char* name, const char* help, auto value) {
    header(out, name, "gauge", help);
    for (const auto& v : m.views)
      for (const auto& ver : v.versions) {
        if (ver.role == version_role::retired) continue;
        out += std::string(name) + "{view=\"" + label(v.name) + "\",version=\"" +
               std::to_string(ver.version) + "\",role=\"" + std::string(to_string(ver.role)) +
               (ver.generation > 0 ? "\",generation=\"" + std::to_string(ver.generation) : "") +
               (ver.upstream.empty() ? "" : "\",upstream=\"" + label(ver.upstream)) + "\"} " +
               format_double(value(ver)) + "\n";
      }
  };
  per_version("derive_view_version_offset", "The offset of each version of a view.",
              [](const view_version_info& v) { return static_cast<double>(v.offset); });
  per_version("derive_view_version_lag", "How far each version of a view is behind its source.",
              [](const view_version_info& v) { return static_cast<double>(v.lag); });
  per_version("derive_view_version_events_per_second",
              "Inputs each version of a view applied per second, recently.",
              [](const view_version_info& v) { return v.events_per_second; });
  per_version("derive_view_version_eta_seconds",
              "Seconds until a version catches up at its recent rate (0: caught up or idle).",
              [](const view_version_info& v) { return v.eta_seconds.value_or(0.0); });
  render_audits(out, rt);
  header(out, "derive_subscriptions", "gauge", "Subscriptions registered with the hub (all kinds).");
  sample(out, "derive_subscriptions", m.subscriptions);
  header(out, "derive_hub_batches_total", "counter", "Committed batches handed on by the hub.");
  sample(out, "derive_hub_batches_total", m.hub_batches);
  header(out, "derive_hub_lost_batches_total", "counter",
         "Batches the hub dropped because it was full (subscribers were told to resync).");
  sample(out, "derive_hub_lost_batches_total", m.hub_lost);

  header(out, "derive_http_connections", "gauge", "Open HTTP connections (not upgraded).");
  sample(out, "derive_http_connections", http_connections.load());
  header(out, "derive_http_requests_total", "counter", "HTTP responses sent, by status code.");
  for (size_t code = 100; code < http_responses_.size(); ++code) {
    uint64_t n = http_responses_[code].load();
    if (n == 0) continue;
    out += "derive_http_requests_total{code=\"" + std::to_string(code) + "\"} ";
    append_uint(out, n);
    out += '\n';
  }

  header(out, "derive_http_unsent_response_bytes", "gauge",
         "Bytes of HTTP responses over 64 KiB being written, not yet taken by their clients "
         "(max_unsent_response_bytes).");
  sample(out, "derive_http_unsent_response_bytes",
         unsent_responses ? unsent_responses->used() : 0);
  header(out, "derive_http_responses_overloaded_total", "counter",
         "Large HTTP responses refused with 503 overloaded (max_unsent_response_bytes).");
  sample(out, "derive_http_responses_overloaded_total", responses_overloaded.load());

  header(out, "derive_ws_connections", "gauge", "Open WebSocket connections.");
  sample(out, "derive_ws_connections", ws_connections.load());
  header(out, "derive_ws_subscriptions", "gauge", "Active WebSocket subscriptions.");
  sample(out, "derive_ws_subscriptions", ws_subscriptions.load());
  header(out, "derive_ws_queued_bytes", "gauge",
         "Bytes queued for WebSocket clients (answers, snapshots, changes), not yet written, "
         "summed over connections (a shared change counts once per connection).");
  sample(out, "derive_ws_queued_bytes", ws_queued_bytes.load());
  header(out, "derive_ws_messages_sent_total", "counter", "WebSocket messages written.");
  sample(out, "derive_ws_messages_sent_total", ws_messages_sent.load());
  header(out, "derive_ws_changes_conflated_total", "counter",
         "Queued changes replaced by a newer change of the same key (slow clients).");
  sample(out, "derive_ws_changes_conflated_total", ws_changes_conflated.load());
  header(out, "derive_ws_changes_dropped_total", "counter",
         "Queued changes dropped for a reset snapshot (slow clients).");
  sample(out, "derive_ws_changes_dropped_total", ws_changes_dropped.load());
  header(out, "derive_ws_resets_total", "counter",
         "Reset snapshots scheduled for subscriptions that fell behind.");
  sample(out, "derive_ws_resets_total", ws_resets.load());
  header(out, "derive_ws_slow_closes_total", "counter",
         "WebSocket connections closed with 1008 because they stopped reading.");
  sample(out, "derive_ws_slow_closes_total", ws_slow_closes.load());
  header(out, "derive_connections_refused_total", "counter",
         "Connections refused with 503 too_many_connections (a connection limit).");
  sample(out, "derive_connections_refused_total", connections_refused.load());
  header(out, "derive_appends_limited_total", "counter",
         "Appends refused with rate_limited or too_many_idempotency_keys (HTTP and WebSocket).");
  sample(out, "derive_appends_limited_total", appends_limited.load());
  if (m.cluster) cluster_families(out, *m.cluster);
  storage_families(out, m.storage);
  if (m.retention) retention_families(out, *m.retention);
  return out;
}

}  // namespace derive::web
