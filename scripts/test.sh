#!/usr/bin/env bash
# Sets up what is missing, builds everything and runs every test (ctest),
# browser tests included; then the sanitizer passes (scripts/sanitize.sh): the
# unit and integration tests under AddressSanitizer + UndefinedBehaviorSanitizer
# (build-asan/), core's unit and integration tests and the unit tests of
# actors/ and web/ under ThreadSanitizer (build-tsan/).
# Usage: scripts/test.sh [--no-asan] [--no-tsan]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
asan=1
tsan=1
fuzz=1
for a in "$@"; do
  case "$a" in
    --no-asan) asan=0 ;;
    --no-tsan) tsan=0 ;;
    --no-fuzz) fuzz=0 ;;
    *) echo "usage: scripts/test.sh [--no-asan] [--no-tsan] [--no-fuzz]" >&2; exit 2 ;;
  esac
done
"$root/scripts/setup.sh" --tests
if [[ -f "$root/tests/browser/package.json" && ! -d "$root/tests/browser/node_modules" ]]; then
  echo "==> installing the browser test driver (playwright-core, no browser download)" >&2
  (cd "$root/tests/browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
# Free space where the build trees live, printed before each phase: the four
# trees (build, build-asan, build-tsan, build-fuzz) take a few GB together.
disk() { echo "==> $1: $(df -h --output=avail "$root" | tail -1 | tr -d ' ') free on $(df --output=target "$root" | tail -1)" >&2; }
disk "before the build"
start=$SECONDS
"$root/scripts/build.sh"
build="${DERIVE_BUILD_DIR:-$root/build}"
echo "==> running tests" >&2
(cd "$build" && ctest --output-on-failure -j"$(nproc)" --timeout 900)
times="build and tests: $((SECONDS - start)) s"
if (( asan )); then
  disk "before the ASan build"
  start=$SECONDS
  DERIVE_BUILD_DIR="$root/build-asan" "$root/scripts/sanitize.sh" address
  times+=", asan: $((SECONDS - start)) s"
fi
if (( tsan )); then
  disk "before the TSan build"
  start=$SECONDS
  DERIVE_BUILD_DIR="$root/build-tsan" "$root/scripts/sanitize.sh" thread
  times+=", tsan: $((SECONDS - start)) s"
fi
if (( fuzz )); then
  disk "before the fuzz build"
  start=$SECONDS
  "$root/scripts/fuzz.sh"
  times+=", fuzz: $((SECONDS - start)) s"
fi
echo "==> all tests passed ($times)" >&2
