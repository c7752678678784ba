#pragma once
// Shared by transfer_test and transfer_kill_test: the transfers of the tests
// and a check of a whole log against a replay of the rules of
// <derive/transfer.hpp> (a model written apart from the processor).

#include <map>
#include <set>
#include <string>

#include <derive/transfer.hpp>

#include "tests/actors/processor_util.hpp"

namespace derive::testing {

inline const transfer_options transfers{};

inline void add_transfers(runtime& rt) {
  rt.add_validator(transfers.open_type, check_account_opened);
  rt.add_validator(transfers.request_type, check_transfer);
  rt.add_processor(transfers_processor("accounts", transfers));
  rt.add_view(transfer_outcomes_view("transfer_outcomes", transfers));
}

inline append_request transfer_request(const std::string& request, const std::string& from,
                                       const std::string& to, int64_t amount) {
  return make_request({make_event(transfers.request_type, from,
                                  {{"request", request}, {"from", from}, {"to", to},
                                   {"amount", amount}})},
                      request);
}

inline append_request open_account(const std::string& account, int64_t balance) {
  return make_request({make_event(transfers.open_type, account, {{"balance", balance}})},
                      "open/" + account);
}

inline append_request close_account(const std::string& account) {
  return make_request({make_event(transfers.close_type, account)}, "close/" + account);
}

struct transfers_audit {
  std::string problem;                      // "" when the log is consistent
  std::set<std::string> requests;           // request ids in the log
  std::map<std::string, int> finals;        // result -> final outcomes
  std::map<std::string, int64_t> balances;  // by the replay
  int64_t opened = 0;                       // the sum of the opening balances
};

// Replays the log, once the processor has caught up (wait_quiet): every
// request has exactly one first step (debited or rejected) and every debit
// exactly one final step (credited or refunded), after it, with the result
// and reason the rules give; no balance goes below zero; the accounts view
// equals the replay and its balances add up to the opening balances; the
// outcomes view holds every final outcome.
inline transfers_audit audit_transfers(runtime& rt) {
  transfers_audit a;
  std::map<std::string, bool> open;
  std::map<std::string, std::string> expected;  // request -> "<type> <reason>"
  std::map<std::string, json> debits;           // request -> the debit, until its final step
  std::map<std::string, json> final_outcomes;   // request -> data
  auto fail = [&](std::string what) {
    if (a.problem.empty()) a.problem = std::move(what);
  };
  auto step = [&](const std::string& request, const std::string& got) {
    auto want = expected.find(request);
    if (want == expected.end()) return fail("an outcome of " + request + " nobody awaited: " + got);
    if (want->second != got) fail("request " + request + ": " + got + ", expected " + want->second);
    expected.erase(want);
  };
  for (uint64_t from = 1;;) {
    auto page = rt.read_log(from, 10'000);
    if (!page) return fail("read_log: " + page.error().to_string()), a;
    if (page->empty()) break;
    for (auto& e : *page) {
      auto d = json::parse(e.data);
      if (e.type == transfers.open_type && !a.balances.count(e.key)) {
        a.balances[e.key] = d["balance"];
        a.opened += d["balance"].get<int64_t>();
        open[e.key] = true;
      } else if (e.type == transfers.close_type) {
        open[e.key] = false;
      } else if (e.type == transfers.request_type) {
        std::string request = d["request"], src = d["from"], dst = d["to"];
        int64_t amount = d["amount"];
        if (!a.requests.insert(request).second) continue;  // a replayed request
        std::string reason = src == dst                      ? "same_account"
                             : !a.balances.count(src)        ? "unknown_source"
                             : !open[src]                    ? "source_closed"
                             : a.balances[src] < amount      ? "insufficient_funds"
                                                             : "";
        expected[request] = reason.empty() ? transfers.debited_type
                                           : transfers.rejected_type + " " + reason;
        if (reason.empty()) {
          a.balances[src] -= amount;
          debits[request] = d;
        }
      } else if (e.type == transfers.debited_type) {
        std::string request = d["request"];
        step(request, e.type);
        auto debit = debits.find(request);
        if (debit == debits.end()) continue;
        std::string dst = debit->second["to"];
        bool ok = a.balances.count(dst) && open[dst];
        expected[request] = ok ? transfers.credited_type
                               : transfers.refunded_type + " " +
                                     (a.balances.count(dst) ? "destination_closed"
                                                            : "unknown_destination");
        a.balances[ok ? dst : std::string(debit->second["from"])] +=
            debit->second["amount"].get<int64_t>();
        debits.erase(debit);
      } else if (e.type == transfers.rejected_type || e.type == transfers.credited_type ||
                 e.type == transfers.refunded_type) {
        std::string request = d["request"];
        step(request, e.type + (d.contains("reason") ? " " + d["reason"].get<std::string>() : ""));
        if (!final_outcomes.emplace(request, d).second) fail("request " + request + ": two outcomes");
        ++a.finals[e.type.substr(e.type.find('.') + 1)];
      }
      for (auto& [account, balance] : a.balances)
        if (balance < 0) fail("account " + account + " below zero at " + std::to_string(e.offset));
    }
    from = page->back().offset + 1;
  }
  for (auto& [request, want] : expected)
    fail("request " + request + " has no final outcome (awaits " + want + ")");
  int64_t sum = 0;
  for (auto& [account, balance] : a.balances) sum += balance;
  if (sum != a.opened) fail("the replay lost or made money");
  auto state = read_view(rt, "accounts").state;
  std::map<std::string, int64_t> held;
  int64_t view_sum = 0;
  for (auto& [account, v] : state) {
    held[account] = v["balance"];
    view_sum += held[account];
    if (v["open"] != json(open[account])) fail("account " + account + ": open differs");
  }
  if (held != a.balances) fail("the accounts view differs from the replay of the log");
  if (view_sum != a.opened) fail("the balances do not add up");
  auto outcomes = read_view(rt, "transfer_outcomes").state;
  for (auto& [request, d] : final_outcomes) {
    auto it = outcomes.find(request);
    if (it == outcomes.end() || it->second["amount"] != d["amount"])
      fail("the outcomes view lacks " + request);
  }
  if (outcomes.size() != final_outcomes.size()) fail("the outcomes view has extra requests");
  return a;
}

}  // namespace derive::testing
