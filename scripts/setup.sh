#!/usr/bin/env bash
# Installs what Derive needs from Debian's packages, quietly and only when missing.
# Usage: scripts/setup.sh [--tests|--bench]   (--tests adds Node.js, npm, Chromium, and clang
# with its libFuzzer runtime for scripts/fuzz.sh; --bench adds
# Node.js, npm, redis, wrk, and the corpus, SQLite and mdb_stat of bench/docsearch)
set -euo pipefail

packages=(g++ cmake ninja-build pkg-config libcaf-dev liblmdb-dev libboost1.81-dev
          nlohmann-json3-dev libssl-dev libgtest-dev libgmock-dev libbenchmark-dev ca-certificates
          nats-server libnats-dev)
case "${1:-}" in
  --tests) packages+=(nodejs npm chromium openssl clang libclang-rt-14-dev) ;;
  --bench) packages+=(nodejs npm redis-server redis-tools wrk
                   # bench/docsearch: the corpus, FTS5, LMDB's mdb_stat
                   python3 sqlite3 groff-base lmdb-utils manpages manpages-dev
                   fortune-mod fortunes fortunes-min fortunes-de) ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm may come from another source (nodesource bundles npm into nodejs).
if [[ " ${missing[*]} " == *" npm "* ]] && command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/npm}")
fi
if [[ " ${missing[*]} " == *" nodejs "* ]] && command -v node >/dev/null 2>&1; then
  missing=("${missing[@]/nodejs}")
fi
read -r -a missing <<< "${missing[*]:-}"

if (( ${#missing[@]} )); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
