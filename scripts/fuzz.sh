#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with Debian's clang (in
# build-fuzz/, ASan + UBSan) and runs each one for FUZZ_SECONDS (default 60)
# from its seed corpus (tests/fuzz/corpus/<target>/); fails on any crash,
# sanitizer finding or broken invariant. New inputs found go to a scratch
# corpus, not into the tree; a crashing input is kept in build-fuzz/crashes/.
# Usage: scripts/fuzz.sh [target...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="${DERIVE_FUZZ_BUILD_DIR:-$root/build-fuzz}"
seconds="${FUZZ_SECONDS:-60}"
targets=("$@")
(( ${#targets[@]} )) || targets=(fuzz_http_request fuzz_ws_message fuzz_ws_frame)
command -v clang++ >/dev/null || { echo "clang++ is missing: run scripts/setup.sh --tests" >&2; exit 1; }

echo "==> configuring $build (clang, libFuzzer, ASan + UBSan)" >&2
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DDERIVE_FUZZ=ON -DDERIVE_BUILD_TESTS=OFF \
  -DDERIVE_BUILD_SAMPLES=OFF -DDERIVE_SANITIZE=address,undefined \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link" >/dev/null
nice ninja -C "$build" -j"${DERIVE_JOBS:-2}" "${targets[@]}"

mkdir -p "$build/crashes"
for t in "${targets[@]}"; do
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  echo "==> fuzzing $t for ${seconds} s" >&2
  # -rss_limit_mb: the runtime's LMDB map is mapped, not resident.
  "$build/tests/fuzz/$t" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$build/crashes/$t-" \
    "$scratch" "$root/tests/fuzz/corpus/$t"
  rm -rf "$scratch"
done
echo "==> fuzzing passed" >&2
