#pragma once
// Constraints through the log: a transfer between two accounts in steps, with
// compensation, and no distributed transaction (docs/processors.md).
//
// A transfer is a request in the log; one processor decides each step in log
// order and writes the step's outcome back to the log, where it is the input
// of the next step. Every step is exactly once (processor.hpp), so the whole
// transfer is, across crashes:
//
//   transfer.requested --debit step--> transfer.debited  (source debited)
//                                  or  transfer.rejected (final: nothing moved)
//   transfer.debited   --credit step-> transfer.credited (final: destination credited)
//                                  or  transfer.refunded (final: the source got the
//                                                         amount back; compensation)
//
//   events in:  {type: "account.opened", key: <account>, data: {"balance": 100}}
//               {type: "account.closed", key: <account>}
//               {type: "transfer.requested", key: <source account>,
//                data: {"request": "r1", "from": "a", "to": "b", "amount": 30}}
//   events out: {type: "transfer.debited" | "transfer.rejected" | "transfer.credited" |
//                      "transfer.refunded",
//                key: the account the step touched (the source, or the destination
//                     for "credited"),
//                data: {"request", "from", "to", "amount", "reason" (rejected, refunded)}}
//
//   derive::transfer_options t;                       // the types above
//   rt.add_validator(t.open_type, derive::check_account_opened);
//   rt.add_validator(t.request_type, derive::check_transfer);
//   rt.add_processor(derive::transfers_processor("accounts", t));
//   rt.add_view(derive::transfer_outcomes_view("transfer_outcomes", t));
//
// The processor's state (a view named like it) is the accounts:
// account -> {"balance": int, "open": bool}. Invariants, in log order:
// no balance is ever below zero, and the sum of the balances plus the amounts
// debited but not yet credited or refunded equals the sum of the opening
// balances (so, once the processor has caught up, the sum of the balances).
//
// Rules:
// - The first "account.opened" of an account opens it with its balance; a
//   later one is ignored. "account.closed" closes it; its balance stays (and
//   counts), it is neither debited nor credited again.
// - A request is rejected (reason "invalid", "same_account",
//   "unknown_source", "source_closed" or "insufficient_funds") or debited.
// - A debited request is credited, or refunded to its source (reason
//   "unknown_destination" or "destination_closed") when the destination cannot
//   be credited when the credit step runs, even if the source was closed since.
// - A request id seen before gets no second outcome and no second effect;
//   append requests with the request id as idempotency key so that a retry
//   does not even reach the log twice.
// - Only the processor's own debits are credited: a "transfer.debited" that
//   the processor did not emit (appended by someone else) is ignored.

#include <cstdint>
#include <string>

#include <derive/event.hpp>
#include <derive/processor.hpp>
#include <derive/status.hpp>
#include <derive/view.hpp>

namespace derive {

struct transfer_options {
  std::string open_type = "account.opened";
  std::string close_type = "account.closed";
  std::string request_type = "transfer.requested";
  std::string debited_type = "transfer.debited";
  std::string rejected_type = "transfer.rejected";
  std::string credited_type = "transfer.credited";
  std::string refunded_type = "transfer.refunded";
};

// The deciding processor (state: account -> {"balance", "open"}).
processor_def transfers_processor(std::string name, transfer_options options = {},
                                  uint32_t version = 1);

// A view of the final outcomes by request id: request -> the final event's
// data plus "result" ("credited", "refunded" or "rejected") and "offset" (its
// log offset). What a client awaits; a request in flight has no entry yet.
view_def transfer_outcomes_view(std::string name, transfer_options options = {},
                                uint32_t version = 1);

// A validator for transfer requests: data must be an object with a request
// id of 1-128 bytes, non-empty strings "from" and "to", and an integer
// "amount" from 1 to 2^50.
status check_transfer(const event_input& e);

// A validator for account openings: data must be an object with an integer
// "balance" from 0 to 2^50.
status check_account_opened(const event_input& e);

}  // namespace derive
