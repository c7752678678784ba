#pragma once
// booking: a live seat map on Derive (README.md). A seat is booked by the
// first claim in log order (derive/claims.hpp); every claim and release gets
// one outcome event naming its request id.
//
// Events in:  seat.claim / seat.release, key = seat ("A1".."J20"),
//             data {"request": id, "by": user}
// Events out: seat.outcome (the "seats" processor), key = seat,
//             data {"request", "by", "op", "result"[, "holder"]}
// Views:      seats        seat -> {"by", "request"} (the processor's state)
//             outcomes     request id -> its outcome (what a browser awaits)
//             bookings     "<user>/<seat>" -> request id
//             availability "free", "taken" -> counts

#include <string>

#include <derive/runtime.hpp>

namespace booking {

inline constexpr int rows = 10;       // A..J
inline constexpr int seats_per_row = 20;
inline constexpr int seat_count = rows * seats_per_row;

// "A1".."J20"
bool is_seat(const std::string& key);

// Adds the validators, the seats processor and the views to `rt`.
void install(derive::runtime& rt);

}  // namespace booking
