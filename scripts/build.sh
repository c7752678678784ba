#!/usr/bin/env bash
# Configures and builds Derive into build/ (or $DERIVE_BUILD_DIR) with Ninja,
# showing progress.
# Usage: scripts/build.sh [-DOPTION=value ...] [target ...]
#   -D options go to cmake (at the first configure, and again whenever given);
#   targets default to everything.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="${DERIVE_BUILD_DIR:-$root/build}"
options=()
targets=()
for a in "$@"; do
  case "$a" in
    -D*) options+=("$a") ;;
    *) targets+=("$a") ;;
  esac
done
if [[ ! -f "$build/build.ninja" ]]; then
  echo "==> configuring $build" >&2
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${options[@]}" >/dev/null
elif (( ${#options[@]} )); then
  cmake "$build" "${options[@]}" >/dev/null
fi
echo "==> building${targets[*]:+ ${targets[*]}} (the first build takes a few minutes on 2 cores)" >&2
cmake --build "$build" ${targets[@]:+--target "${targets[@]}"} -- -j"$(nproc)"
