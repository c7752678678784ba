#include <derive/claims.hpp>

#include <nlohmann/json.hpp>

namespace derive {
namespace {

// Private state: every request id decided so far (a replayed request gets
// no second outcome).
std::string seen_key(const std::string& request) { return "request/" + request; }

json outcome(const std::string& op, const std::string& request, const std::string& by,
             const char* result) {
  return {{"op", op}, {"request", request}, {"by", by}, {"result", result}};
}

}  // namespace

status check_claim(const event_input& e) {
  auto data = json::parse(e.data, nullptr, false);
  if (!data.is_object())
    return {errc::invalid_event, "event.data must be an object with \"request\" and \"by\""};
  auto request = data.find("request");
  if (request == data.end() || !request->is_string() || request->get<std::string>().empty() ||
      request->get<std::string>().size() > 128)
    return {errc::invalid_event, "event.data.request must be a request id of 1-128 bytes"};
  auto by = data.find("by");
  if (by == data.end() || !by->is_string())
    return {errc::invalid_event, "event.data.by must be a string (who claims)"};
  return status::ok();
}

processor_def claims_processor(std::string name, claim_options options, uint32_t version) {
  return processor_def(std::move(name), version)
      .from_log()
      .on_failure(failure_policy::dead_letter)
      .apply([options](const event& e, processor_txn& tx) {
        bool claim = e.type == options.claim_type;
        if (!claim && e.type != options.release_type) return;
        auto data = json::parse(e.data, nullptr, false);
        std::string request = data.is_object() ? data.value("request", "") : "";
        std::string by = data.is_object() ? data.value("by", "") : "";
        if (request.empty()) request = "offset:" + std::to_string(e.offset);
        if (tx.get_private(seen_key(request))) return;  // decided before
        tx.put_private(seen_key(request), e.offset);
        auto holder = tx.get(e.key);
        json out;
        if (claim && !holder) {
          tx.put(e.key, {{"by", by}, {"request", request}});
          out = outcome("claim", request, by, "granted");
        } else if (claim) {
          out = outcome("claim", request, by, "taken");
          out["holder"] = (*holder)["by"];
        } else if (holder && (*holder)["by"] == by) {
          tx.erase(e.key);
          out = outcome("release", request, by, "released");
        } else {
          out = outcome("release", request, by, "not_holder");
        }
        tx.emit({options.outcome_type, e.key, e.subject, out.dump()});
      });
}

view_def claim_outcomes_view(std::string name, claim_options options, uint32_t version) {
  return view_def(std::move(name), version)
      .from_log()
      .apply([options](const event& e, view_txn& tx) {
        if (e.type != options.outcome_type) return;
        auto data = json::parse(e.data);
        auto request = data.value("request", "");
        if (request.empty()) return;
        data["resource"] = e.key;
        data["offset"] = e.offset;
        tx.put(request, std::move(data));
      });
}

}  // namespace derive
