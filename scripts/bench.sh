#!/usr/bin/env bash
# Builds (Release) and runs every benchmark; each prints its figures next to a
# baseline measured in the same run. Results go into docs/benchmarks.md by hand.
# Usage: scripts/bench.sh [name ...]   (names: log flush actors web; default: all)
#        scripts/bench.sh docsearch [options]   (bench/docsearch/run.sh: --docs N, --timeout S,
#        --unpaced, --no-record, ...; builds only the docsearch target)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh" --bench
export DERIVE_BUILD_DIR="${DERIVE_BUILD_DIR:-$root/build-release}"
work="${DERIVE_BENCH_DIR:-$DERIVE_BUILD_DIR/bench-data}"   # on disk: fsync figures mean something
if [[ "${1:-}" == docsearch ]]; then
  [[ -f "$DERIVE_BUILD_DIR/build.ninja" ]] ||
    cmake -S "$root" -B "$DERIVE_BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$DERIVE_BUILD_DIR" --target docsearch -- -j"$(nproc)"
  mkdir -p "$work"
  shift
  exec "$root/bench/docsearch/run.sh" "$DERIVE_BUILD_DIR" "$work" "$@"
fi
"$root/scripts/build.sh" -DCMAKE_BUILD_TYPE=Release -DDERIVE_BUILD_BENCH=ON
bin="$DERIVE_BUILD_DIR/bench"
mkdir -p "$work"
names=("$@")
(( ${#names[@]} )) || names=(log flush actors web)
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(df -h "$work" | awk 'NR==2{print $1}')"
for n in "${names[@]}"; do
  case "$n" in
    log)    "$bin/log_bench" "$work" ;;
    flush)  "$bin/flush_bench" "$work" ;;
    actors) "$bin/actors_bench" "$work" ;;
    web)    "$root/bench/web/run.sh" "$DERIVE_BUILD_DIR" "$work" ;;
    *) echo "unknown benchmark '$n'" >&2; exit 2 ;;
  esac
done
