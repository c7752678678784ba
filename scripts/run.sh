#!/usr/bin/env bash
# Sets up what is missing, builds, and starts the docsearch sample on
# http://127.0.0.1:8080 with its data in ./data (see --help for flags and the
# DERIVE_PORT / DERIVE_DATA environment variables).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
DERIVE_BUILD_DIR="${DERIVE_BUILD_DIR:-$root/build}" "$root/scripts/build.sh"
build="${DERIVE_BUILD_DIR:-$root/build}"
export DERIVE_DATA="${DERIVE_DATA:-$root/data}"
exec "$build/samples/docsearch/docsearch" "$@"
