#include "booking/booking_views.hpp"

#include <nlohmann/json.hpp>

#include <derive/claims.hpp>
#include <derive/processor.hpp>
#include <derive/view.hpp>

namespace booking {
namespace {

using json = nlohmann::json;

const derive::claim_options seat_claims{"seat.claim", "seat.release", "seat.outcome"};

derive::status check_seat_request(const derive::event_input& e) {
  if (!is_seat(e.key))
    return {derive::errc::invalid_event,
            "event.key must be a seat from A1 to J20, not '" + e.key + "'"};
  return derive::check_claim(e);
}

// What one outcome changes: +1 taken for a granted claim, -1 for a release.
int taken_delta(const json& outcome) {
  if (outcome.value("result", "") == "granted") return 1;
  if (outcome.value("result", "") == "released") return -1;
  return 0;
}

derive::view_def bookings_view() {
  return derive::view_def("bookings").apply([](const derive::event& e, derive::view_txn& tx) {
    if (e.type != seat_claims.outcome_type) return;
    auto d = json::parse(e.data);
    std::string key = d.value("by", "") + "/" + e.key;
    int delta = taken_delta(d);
    if (delta > 0) tx.put(key, d.value("request", ""));
    if (delta < 0) tx.erase(key);
  });
}

derive::view_def availability_view() {
  return derive::view_def("availability").apply([](const derive::event& e, derive::view_txn& tx) {
    if (e.type != seat_claims.outcome_type) return;
    int delta = taken_delta(json::parse(e.data));
    if (delta == 0 && tx.get("free")) return;
    int64_t taken = tx.get("taken").value_or(0).get<int64_t>() + delta;
    tx.put("taken", taken);
    tx.put("free", seat_count - taken);
  });
}

}  // namespace

bool is_seat(const std::string& key) {
  if (key.size() < 2 || key.size() > 3 || key[0] < 'A' || key[0] >= 'A' + rows) return false;
  if (key[1] < '1' || key[1] > '9') return false;
  if (key.size() == 3 && (key[2] < '0' || key[2] > '9')) return false;
  int n = std::stoi(key.substr(1));
  return n >= 1 && n <= seats_per_row;
}

void install(derive::runtime& rt) {
  rt.add_validator(seat_claims.claim_type, check_seat_request);
  rt.add_validator(seat_claims.release_type, check_seat_request);
  rt.add_processor(derive::claims_processor("seats", seat_claims));
  rt.add_view(derive::claim_outcomes_view("outcomes", seat_claims));
  rt.add_view(bookings_view());
  rt.add_view(availability_view());
}

}  // namespace booking
