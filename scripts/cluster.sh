#!/usr/bin/env bash
# Starts a 3-server NATS JetStream cluster and 3 docsearch nodes on one stream
# (replicas 3), all on 127.0.0.1, prints their URLs, and stops everything on
# Ctrl-C. README.md, "Cluster mode".
#
# Usage: scripts/cluster.sh [--dir DIR] [--base-port P]
#   --dir DIR        where the servers' stores and the nodes' data live
#                    (default ./cluster-data; kept between runs)
#   --base-port P    NATS clients on P..P+2, routes on P+10..P+12, docsearch on
#                    P+20..P+22 (default 14220)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/cluster-data"
base=14220
while (( $# )); do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --base-port) base="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "cluster.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

"$root/scripts/setup.sh"
DERIVE_BUILD_DIR="${DERIVE_BUILD_DIR:-$root/build}" "$root/scripts/build.sh" docsearch
build="${DERIVE_BUILD_DIR:-$root/build}"
nats_server=/usr/sbin/nats-server
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "cluster.sh: stopping"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

wait_port() {  # port, what
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "cluster.sh: $2 did not start on port $1; see $dir/*.log" >&2
  exit 1
}

routes=""
for i in 1 2 3; do routes+="${routes:+, }nats-route://127.0.0.1:$((base + 9 + i))"; done
urls=""
for i in 1 2 3; do
  port=$((base + i - 1))
  cat > "$dir/n$i.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:$port
jetstream { store_dir: "$dir/n$i" }
cluster { name: derive, listen: 127.0.0.1:$((base + 9 + i)), routes: [$routes] }
CONF
  "$nats_server" -c "$dir/n$i.conf" >"$dir/n$i.log" 2>&1 &
  pids+=($!)
  urls+="${urls:+,}nats://127.0.0.1:$port"
done
for i in 1 2 3; do wait_port $((base + i - 1)) "nats-server n$i"; done

for i in 1 2 3; do
  port=$((base + 19 + i))
  "$build/samples/docsearch/docsearch" --port "$port" --data "$dir/node$i" \
    --nats "$urls" --stream docsearch --replicas 3 >"$dir/node$i.log" 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do wait_port $((base + 19 + i)) "docsearch node$i"; done

echo "NATS JetStream cluster: $urls"
for i in 1 2 3; do
  echo "docsearch node$i:      http://127.0.0.1:$((base + 19 + i))/   (health: /v1/health, metrics: /metrics)"
done
echo "Logs and data in $dir. Ctrl-C stops everything."
wait -n "${pids[@]}" || true
echo "cluster.sh: a process exited; see $dir/*.log" >&2
