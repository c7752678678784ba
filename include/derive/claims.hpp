#pragma once
// Constraints through the log: uniqueness claims (docs/processors.md).
//
// A claim is a request in the log; a processor decides, in log order, and
// writes the outcome back to the log. The first claim of a resource (a seat,
// a name, a slot) in log order wins; every claim and release gets exactly
// one outcome event naming its request id, across crashes (processor.hpp).
//
//   events in:   {type: "seat.claim",   key: "A7", data: {"request": "r1", "by": "ann"}}
//                {type: "seat.release", key: "A7", data: {"request": "r2", "by": "ann"}}
//   events out:  {type: "seat.outcome", key: "A7",
//                 data: {"request": "r1", "by": "ann", "op": "claim",
//                        "result": "granted" | "taken" | "released" | "not_holder",
//                        "holder": <the holder's "by" when taken>}}
//
//   derive::claim_options seats{"seat.claim", "seat.release", "seat.outcome"};
//   rt.add_validator("seat.claim", derive::check_claim);
//   rt.add_validator("seat.release", derive::check_claim);
//   rt.add_processor(derive::claims_processor("seats", seats));
//   rt.add_view(derive::claim_outcomes_view("outcomes", seats));
//
// The processor's state (a view named like it) is the holders:
// resource -> {"by", "request"}. A request id seen before (a retried click
// that reached the log twice) gets no second outcome and no second effect;
// append claims with the request id as idempotency key so that a retry does
// not even reach the log twice.

#include <cstdint>
#include <string>

#include <derive/event.hpp>
#include <derive/processor.hpp>
#include <derive/status.hpp>
#include <derive/view.hpp>

namespace derive {

struct claim_options {
  std::string claim_type = "claim";
  std::string release_type = "release";
  std::string outcome_type = "claim.outcome";
};

// The deciding processor (state: resource -> holder).
processor_def claims_processor(std::string name, claim_options options, uint32_t version = 1);

// A view of the outcomes by request id: request -> the outcome's data plus
// "resource" and "offset" (the outcome's log offset). What a client awaits.
view_def claim_outcomes_view(std::string name, claim_options options, uint32_t version = 1);

// A validator for claim and release events: data must be an object with a
// non-empty string "request" (at most 128 bytes) and a string "by".
status check_claim(const event_input& e);

}  // namespace derive
