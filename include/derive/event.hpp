#pragma once
// Events as applications append them and as the log returns them
// (protocol.md, "Events").

#include <cstddef>
#include <cstdint>
#include <string>

namespace derive {

// Limits from protocol.md.
inline constexpr size_t max_type_length = 128;
inline constexpr size_t max_key_bytes = 1024;
inline constexpr size_t max_subject_bytes = 256;
inline constexpr size_t max_events_per_append = 1000;

// An event before it has an offset. `data` holds the JSON text of the event's
// data member, compact ("null" when absent).
struct event_input {
  std::string type;
  std::string key;
  std::string subject;
  std::string data = "null";
};

// An event as stored in the log.
struct event {
  uint64_t offset = 0;
  int64_t ts = 0;  // milliseconds since the Unix epoch, assigned at append
  std::string type;
  std::string key;
  std::string subject;
  std::string data = "null";  // compact JSON text
  // Erased (forget, retention): key and subject empty, data null; the offset,
  // ts and type are kept (docs/protocol.md, "Redacted events").
  bool redacted = false;
  // {"offset":..,"ts":..,"type":..,"key":..,"data":..[,"subject":..][,"redacted":true]}
  // as JSON text.
  std::string to_json() const;
};

}  // namespace derive
