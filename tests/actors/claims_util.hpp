#pragma once
// Shared by claims_test and claims_kill_test: the seat claims of the tests
// and a check of a whole log against a replay of the rule "the first claim in
// log order wins".

#include <map>
#include <set>
#include <string>

#include <derive/claims.hpp>

#include "tests/actors/processor_util.hpp"

namespace derive::testing {

inline const claim_options seat_claims{"seat.claim", "seat.release", "seat.outcome"};

inline void add_seat_claims(runtime& rt) {
  rt.add_validator(seat_claims.claim_type, check_claim);
  rt.add_validator(seat_claims.release_type, check_claim);
  rt.add_processor(claims_processor("seats", seat_claims));
  rt.add_view(claim_outcomes_view("outcomes", seat_claims));
}

inline append_request seat_request(bool claim, const std::string& seat, const std::string& request,
                                   const std::string& by) {
  return make_request({make_event(claim ? seat_claims.claim_type : seat_claims.release_type, seat,
                                  {{"request", request}, {"by", by}})},
                      request);
}

struct claims_audit {
  std::string problem;                       // "" when the log is consistent
  std::set<std::string> requests;            // request ids in the log
  std::map<std::string, std::string> holders;  // seat -> by, by the replay
  uint64_t outcomes = 0;
};

// Replays the log: every request has exactly one outcome, after it, whose
// result is the one the rule gives; the processor's state equals the replay.
inline claims_audit audit_claims(runtime& rt) {
  claims_audit a;
  std::map<std::string, std::string> expected;  // request -> result
  std::map<std::string, int> outcomes;
  auto fail = [&](std::string what) {
    if (a.problem.empty()) a.problem = std::move(what);
  };
  for (uint64_t from = 1;;) {
    auto page = rt.read_log(from, 10'000);
    if (!page) return fail("read_log: " + page.error().to_string()), a;
    if (page->empty()) break;
    for (auto& e : *page) {
      auto d = json::parse(e.data);
      if (e.type == seat_claims.claim_type || e.type == seat_claims.release_type) {
        std::string request = d["request"], by = d["by"];
        if (!a.requests.insert(request).second) continue;  // a replayed request
        auto h = a.holders.find(e.key);
        if (e.type == seat_claims.claim_type) {
          expected[request] = h == a.holders.end() ? "granted" : "taken";
          if (h == a.holders.end()) a.holders[e.key] = by;
        } else if (h != a.holders.end() && h->second == by) {
          expected[request] = "released";
          a.holders.erase(h);
        } else {
          expected[request] = "not_holder";
        }
      } else if (e.type == seat_claims.outcome_type) {
        std::string request = d["request"];
        ++a.outcomes;
        if (++outcomes[request] > 1) fail("request " + request + " has two outcomes");
        auto want = expected.find(request);
        if (want == expected.end()) fail("outcome before request " + request);
        else if (d["result"] != want->second)
          fail("request " + request + ": " + d["result"].dump() + ", expected " + want->second);
      }
    }
    from = page->back().offset + 1;
  }
  for (auto& r : a.requests)
    if (outcomes[r] != 1) fail("request " + r + " has " + std::to_string(outcomes[r]) + " outcomes");
  auto state = read_view(rt, "seats").state;
  std::map<std::string, std::string> held;
  for (auto& [seat, v] : state) held[seat] = v["by"];
  if (held != a.holders) fail("the seats view differs from the replay of the log");
  return a;
}

}  // namespace derive::testing
