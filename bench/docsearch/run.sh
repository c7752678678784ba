#!/usr/bin/env bash
# docsearch on a real corpus next to SQLite FTS5 (docs/benchmarks.md, "docsearch: a real
# corpus next to SQLite FTS5"; issue 9, "Measured").
# Usage: bench/docsearch/run.sh <build_dir> <work_dir> [options]   (scripts/bench.sh docsearch)
#   --docs N        documents (default 20000; 500 or 2000 for a quick run)
#   --timeout S     give up on Derive's load after S seconds (default 3600): the run stops
#                   by itself, reports how far it got and exits 3
#   --queries N     queries per measurement (default 1000)
#   --window N      documents per ingest window (default 1000; N/10 below 5,000 documents)
#   --unpaced       also load a fresh server from 4 connections without waiting for the views
#   --no-record     print only (default: append a dated section to docs/benchmarks.md)
#   --note TEXT     a note for the section's title (for example "old search layout")
#   --server BIN    another docsearch binary (default <build_dir>/samples/docsearch/docsearch)
#
#  1. Corpus: manual pages of manpages + manpages-dev (rendered with groff, .so stubs
#     skipped), fortunes + fortunes-min (English) and fortunes-de (German), split on `%`.
#     Rendered once into <work_dir>/docsearch-corpus/ (kept; a new package version renders
#     again). N documents are a fixed mix of the sources in a fixed pseudo-random order.
#  2. SQLite FTS5 (Debian's python3 + libsqlite3): WAL, synchronous=FULL, one transaction
#     per 50 documents, then 1,000 queries from 1 and from 8 threads.
#  3. docsearch on a fresh data directory (full durability, port picked by the server),
#     50 documents per POST /v1/events from one client, each request sent when the previous
#     is acknowledged; time until a query with after=<last offset> answers; data directory
#     (du, mdb_stat per database); VmHWM; the same 1,000 queries over HTTP, 1 and 8 clients.
#  4. A table with Derive/FTS5 ratios and the goals of issue 9.
# The server is stopped (SIGTERM, SIGKILL after 15 s) and its data directory removed.
# Needs: sqlite3, libsqlite3-0, python3, groff-base, lmdb-utils, manpages, manpages-dev,
# fortunes, fortunes-min, fortunes-de (scripts/setup.sh --bench).
set -euo pipefail

build=$(cd "${1:?usage: run.sh <build_dir> <work_dir> [options]}" && pwd)
mkdir -p "${2:?usage: run.sh <build_dir> <work_dir> [options]}"
work_root=$(cd "$2" && pwd)
shift 2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
docs=20000 timeout=3600 queries=1000 window="" record="$root/docs/benchmarks.md" note=""
server="$build/samples/docsearch/docsearch" unpaced=""
while (( $# )); do
  case "$1" in
    --docs) docs=$2; shift ;;
    --timeout) timeout=$2; shift ;;
    --queries) queries=$2; shift ;;
    --window) window=$2; shift ;;
    --unpaced) unpaced=--unpaced ;;
    --no-record) record="" ;;
    --note) note=$2; shift ;;
    --server) server=$2; shift ;;
    *) echo "docsearch bench: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done
[[ -n "$window" ]] || window=$(( docs >= 5000 ? 1000 : (docs / 10 > 0 ? docs / 10 : 1) ))
py=/usr/bin/python3
[[ -x "$py" ]] || py=$(command -v python3)
for tool in groff mdb_stat du; do
  command -v "$tool" >/dev/null || { echo "docsearch bench: $tool is missing (scripts/setup.sh --bench)" >&2; exit 1; }
done
[[ -x "$server" ]] || { echo "docsearch bench: $server is missing (ninja -C $build docsearch)" >&2; exit 1; }

work="$work_root/docsearch"
cache="$work_root/docsearch-corpus"
rm -rf "$work"
mkdir -p "$work" "$cache"
cleanup() {
  if [[ -f "$work/server.pid" ]]; then
    pid=$(cat "$work/server.pid")
    kill "$pid" 2>/dev/null && sleep 2 && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"/data-* "$work/fts5.db" "$work"/fts5.db-*
}
trap cleanup EXIT

"$py" "$here/corpus.py" "$cache" "$docs" "$work/corpus.jsonl" > "$work/corpus.json"
echo "corpus: $(cat "$work/corpus.json")" >&2
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet 2>/dev/null || rev="$rev (modified)"
rc=0
"$py" "$here/bench.py" --corpus "$work/corpus.jsonl" --summary "$work/corpus.json" \
  --server "$server" --work "$work" --timeout "$timeout" --queries "$queries" \
  --window "$window" ${unpaced:+"$unpaced"} --record "$record" --note "$note" --rev "$rev" || rc=$?
echo "results: $work/results.json; corpus cache: $cache" >&2
exit "$rc"
