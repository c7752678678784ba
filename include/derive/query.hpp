#pragma once
// Named queries: a view's own read functions, run on one snapshot.

#include <functional>
#include <map>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include <derive/status.hpp>
#include <derive/view_snapshot.hpp>

namespace derive {

using json = nlohmann::json;

// Query parameters, percent-decoded; `after` and `timeout_ms` are removed.
using query_params = std::map<std::string, std::string>;

// A named query: reads one consistent snapshot (state and, with
// snapshot.get_private, private state) and returns a JSON object.
// The runtime adds "offset" (the snapshot's offset). Return a status with
// errc::invalid_parameter for bad parameters.
using query_fn = std::function<result<json>(const view_snapshot& snapshot, const query_params&)>;

}  // namespace derive
