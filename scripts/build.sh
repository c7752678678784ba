#!/usr/bin/env bash
# Configures (once) and builds Derive into build/ with Ninja, showing progress.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="${DERIVE_BUILD_DIR:-$root/build}"
if [[ ! -f "$build/build.ninja" ]]; then
  echo "==> configuring $build" >&2
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
fi
echo "==> building (the first build takes a few minutes on 2 cores)" >&2
cmake --build "$build" -- -j"$(nproc)"
