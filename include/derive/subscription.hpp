#pragma once
// Subscribing to a view's committed changes.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace derive {

// A committed change as subscribers receive it; serialized once, shared by
// every subscriber that gets it.
struct published_change {
  uint64_t offset = 0;
  std::string key;
  std::optional<std::string> value;  // compact JSON; nullopt: deleted
  // {"offset":O,"key":"...","value":...} — the wire form of one item.
  std::shared_ptr<const std::string> wire;
};
using change_ptr = std::shared_ptr<const published_change>;

// What a subscription matches: one key, or every key with a prefix.
struct subscription_filter {
  std::string view;
  std::optional<std::string> key;  // set: exactly this key
  std::string prefix;              // otherwise: keys starting with this
  bool matches(std::string_view k) const;
};

// Receives the committed changes of one subscription. The hub calls it in
// commit order, never concurrently for one subscription, from a runtime
// thread. It must not block. A batch never splits the changes of one offset.
class change_sink {
 public:
  virtual ~change_sink() = default;
  virtual void on_changes(uint64_t subscription, std::vector<change_ptr> items) = 0;
  // Changes were dropped because the subscriber fell behind by more than the
  // hub's buffer: it must start over from a snapshot.
  virtual void on_lost(uint64_t subscription) = 0;
};

}  // namespace derive
