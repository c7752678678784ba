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

// 32 lowercase hex characters identifying `subject` without holding it (two
// independent 64-bit hashes; it identifies, it does not hide a subject that
// can be guessed).
std::string erasure_subject_hash(const std::string& subject);

}  // namespace derive
