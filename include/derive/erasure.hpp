#pragma once
// Forgetting a subject (docs/storage.md, "Erasure"; protocol.md, "Admin").
// runtime::forget answers with the receipt it appended to the log as an
// event of the reserved type `derive.erasure`.

#include <cstdint>
#include <string>
#include <vector>

namespace derive {

// The reserved event type of erasure receipts: applications cannot append it.
inline constexpr const char* erasure_event_type = "derive.erasure";

struct erasure_receipt {
  uint64_t offset = 0;           // the receipt event's offset
  int64_t ts = 0;                // when it was appended (ms since the Unix epoch)
  std::string subject_hash;      // erasure_subject_hash(subject)
  int64_t requested_at = 0;      // when forget was first asked (ms)
  std::vector<uint64_t> offsets;    // the events redacted, ascending
  std::vector<std::string> views;   // the views rebuilt
  // {"offset":..,"ts":..,"type":"derive.erasure","subject_hash":..,
  //  "requested_at":..,"redacted":N,"offsets":[[first,last],..],"views":[..]}
  std::string to_json() const;
};

// The reserved event type of retention receipts (docs/storage.md, "Retention").
inline constexpr const char* retention_event_type = "derive.retention";

// One retention rule's part of a sweep: the events of its types up to
// `through`, all stamped before `before`, are redacted.
struct retention_receipt {
  uint64_t offset = 0;           // the receipt event's offset
  int64_t ts = 0;
  std::string rule;              // the rule's pattern
  uint64_t through = 0;          // the sweep's last offset for this rule
  int64_t before = 0;            // the sweep's cut-off ts (now - keep), ms
  std::vector<uint64_t> offsets;    // the events of the rule's types redacted, ascending
  std::vector<std::string> views;   // the views rebuilt
  // {"offset":..,"ts":..,"type":"derive.retention","rule":..,"through":..,
  //  "before":..,"redacted":N,"offsets":[[first,last],..],"views":[..]}
  std::string to_json() const;
};

// What a retention sweep did (runtime::sweep_retention).
struct retention_sweep {
  int64_t at = 0;                           // log clock, ms
  uint64_t expired = 0;                     // events redacted
  std::vector<retention_receipt> receipts;  // one per rule that redacted something
};

// 32 lowercase hex characters identifying `subject` without holding it (two
// independent 64-bit hashes; it identifies, it does not hide a subject that
// can be guessed).
std::string erasure_subject_hash(const std::string& subject);

}  // namespace derive
