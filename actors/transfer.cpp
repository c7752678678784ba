#include <derive/transfer.hpp>

#include <nlohmann/json.hpp>

namespace derive {
namespace {

constexpr int64_t max_amount = int64_t{1} << 50;

// Private state: every request id decided so far, and the debits awaiting
// their credit step (request -> {"from", "to", "amount"}).
std::string seen_key(const std::string& request) { return "request/" + request; }
std::string pending_key(const std::string& request) { return "pending/" + request; }

bool is_amount(const json& v, int64_t min) {
  return v.is_number_integer() && v.get<int64_t>() >= min && v.get<int64_t>() <= max_amount;
}

bool is_name(const json& data, const char* field) {
  auto it = data.find(field);
  return it != data.end() && it->is_string() && !it->get<std::string>().empty();
}

// A parsed request; `amount` 0 when invalid.
struct request {
  std::string id, from, to;
  int64_t amount = 0;

  json out() const { return {{"request", id}, {"from", from}, {"to", to}, {"amount", amount}}; }
};

request parse_request(const event& e) {
  request r;
  auto d = json::parse(e.data, nullptr, false);
  if (!d.is_object()) return r;
  r.id = d.value("request", "");
  r.from = d.value("from", "");
  r.to = d.value("to", "");
  if (auto a = d.find("amount"); a != d.end() && is_amount(*a, 1)) r.amount = a->get<int64_t>();
  return r;
}

// Opening and closing accounts.
void apply_account(const event& e, bool open, processor_txn& tx) {
  auto account = tx.get(e.key);
  if (open) {
    if (account) return;  // opened before
    auto d = json::parse(e.data, nullptr, false);
    json balance = d.is_object() ? d.value("balance", json(0)) : json(0);
    if (!is_amount(balance, 0)) return;
    tx.put(e.key, {{"balance", balance}, {"open", true}});
  } else if (account && (*account)["open"] == true) {
    (*account)["open"] = false;
    tx.put(e.key, std::move(*account));
  }
}

// The debit step: transfer.requested -> debited or rejected.
void debit(const event& e, const transfer_options& o, processor_txn& tx) {
  auto r = parse_request(e);
  if (r.id.empty()) r.id = "offset:" + std::to_string(e.offset);
  if (tx.get_private(seen_key(r.id))) return;  // decided before
  tx.put_private(seen_key(r.id), e.offset);
  auto source = r.from.empty() ? std::nullopt : tx.get(r.from);
  const char* reason = nullptr;
  if (r.amount == 0 || r.to.empty()) reason = "invalid";
  else if (r.from == r.to) reason = "same_account";
  else if (!source) reason = "unknown_source";
  else if ((*source)["open"] != true) reason = "source_closed";
  else if ((*source)["balance"].get<int64_t>() < r.amount) reason = "insufficient_funds";
  json out = r.out();
  if (reason) {
    out["reason"] = reason;
    tx.emit({o.rejected_type, r.from.empty() ? r.id : r.from, e.subject, out.dump()});
    return;
  }
  (*source)["balance"] = (*source)["balance"].get<int64_t>() - r.amount;
  tx.put(r.from, std::move(*source));
  tx.put_private(pending_key(r.id), out);
  tx.emit({o.debited_type, r.from, e.subject, out.dump()});
}

// The credit step: the processor's own transfer.debited -> credited, or
// refunded to the source (compensation).
void credit(const event& e, const transfer_options& o, processor_txn& tx) {
  auto d = json::parse(e.data, nullptr, false);
  std::string id = d.is_object() ? d.value("request", "") : "";
  auto pending = id.empty() ? std::nullopt : tx.get_private(pending_key(id));
  if (!pending) return;  // not a debit of ours, or credited before
  tx.erase_private(pending_key(id));
  std::string from = (*pending)["from"], to = (*pending)["to"];
  int64_t amount = (*pending)["amount"];
  auto target = tx.get(to);
  json out = *pending;
  if (target && (*target)["open"] == true) {
    (*target)["balance"] = (*target)["balance"].get<int64_t>() + amount;
    tx.put(to, std::move(*target));
    tx.emit({o.credited_type, to, e.subject, out.dump()});
    return;
  }
  auto source = tx.get(from);  // exists: it was debited
  (*source)["balance"] = (*source)["balance"].get<int64_t>() + amount;
  tx.put(from, std::move(*source));
  out["reason"] = target ? "destination_closed" : "unknown_destination";
  tx.emit({o.refunded_type, from, e.subject, out.dump()});
}

}  // namespace

status check_transfer(const event_input& e) {
  auto d = json::parse(e.data, nullptr, false);
  if (!d.is_object())
    return {errc::invalid_event,
            "event.data must be an object with \"request\", \"from\", \"to\" and \"amount\""};
  auto request = d.find("request");
  if (request == d.end() || !request->is_string() || request->get<std::string>().empty() ||
      request->get<std::string>().size() > 128)
    return {errc::invalid_event, "event.data.request must be a request id of 1-128 bytes"};
  if (!is_name(d, "from") || !is_name(d, "to"))
    return {errc::invalid_event, "event.data.from and event.data.to must name accounts"};
  auto amount = d.find("amount");
  if (amount == d.end() || !is_amount(*amount, 1))
    return {errc::invalid_event, "event.data.amount must be an integer from 1 to 2^50"};
  return status::ok();
}

status check_account_opened(const event_input& e) {
  auto d = json::parse(e.data, nullptr, false);
  auto balance = d.is_object() ? d.find("balance") : d.end();
  if (!d.is_object() || balance == d.end() || !is_amount(*balance, 0))
    return {errc::invalid_event, "event.data.balance must be an integer from 0 to 2^50"};
  return status::ok();
}

processor_def transfers_processor(std::string name, transfer_options options, uint32_t version) {
  return processor_def(std::move(name), version)
      .from_log()
      .on_failure(failure_policy::dead_letter)
      .apply([o = std::move(options)](const event& e, processor_txn& tx) {
        if (e.type == o.open_type || e.type == o.close_type)
          apply_account(e, e.type == o.open_type, tx);
        else if (e.type == o.request_type)
          debit(e, o, tx);
        else if (e.type == o.debited_type)
          credit(e, o, tx);
      });
}

view_def transfer_outcomes_view(std::string name, transfer_options options, uint32_t version) {
  return view_def(std::move(name), version)
      .from_log()
      .apply([o = std::move(options)](const event& e, view_txn& tx) {
        const char* result = e.type == o.credited_type    ? "credited"
                             : e.type == o.refunded_type  ? "refunded"
                             : e.type == o.rejected_type  ? "rejected"
                                                          : nullptr;
        if (!result) return;
        auto data = json::parse(e.data, nullptr, false);
        if (!data.is_object()) return;
        auto request = data.value("request", "");
        if (request.empty()) return;
        data["result"] = result;
        data["offset"] = e.offset;
        tx.put(request, std::move(data));
      });
}

}  // namespace derive
