#!/usr/bin/env bash
# Sets up what is missing, builds, and starts the booking sample on
# http://127.0.0.1:8081 with its data in ./data-booking (see --help for flags
# and the BOOKING_PORT / BOOKING_DATA environment variables).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
DERIVE_BUILD_DIR="${DERIVE_BUILD_DIR:-$root/build}" "$root/scripts/build.sh"
build="${DERIVE_BUILD_DIR:-$root/build}"
export BOOKING_DATA="${BOOKING_DATA:-$root/data-booking}"
exec "$build/samples/booking/booking" "$@"
