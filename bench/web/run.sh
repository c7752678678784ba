#!/usr/bin/env bash
# The web layer's benchmark (docs/benchmarks.md, "web: HTTP appends and fan-out").
# Usage: bench/web/run.sh <build_dir> <work_dir>     (scripts/bench.sh web)
#
#  1. Durable appends over HTTP: 50 keep-alive connections, one ~100-byte event
#     per POST /v1/events (full durability), next to Redis Streams XADD with
#     appendonly yes / appendfsync always from 50 connections (redis-benchmark),
#     alternating, in rounds. Plus wrk against Derive as a second client.
#  2. Reads: GET /v1/views/latest/{key} from 50 connections (web_bench, wrk),
#     next to Redis GET (redis-benchmark).
#  3. Fan-out: N subscribers (1, 100, 1000, 5000), changes at 1000/s and as
#     fast as possible, Derive (full durability) next to a Node.js `ws`
#     broadcast server (ws_server.js); Derive with relaxed durability at
#     1000/s (1 and 1000 subscribers); then 10,000 idle subscribers.
# Needs: redis-server, redis-tools, wrk, nodejs, npm (scripts/setup.sh --bench).
# Environment: WEB_BENCH_SECONDS (fan-out window, default 4),
# WEB_BENCH_HTTP_SECONDS (default 8), WEB_BENCH_ROUNDS (default 2),
# WEB_BENCH_SUBSCRIBERS (default "1 100 1000 5000"), WEB_BENCH_IDLE (10000),
# WEB_BENCH_PARTS (default "http fanout relaxed idle"), WEB_BENCH_IDLE_KINDS (default
# "1 0": idle connections with and without a subscription), WEB_BENCH_SERVER (another
# web_bench_server binary, for comparing a change to web/ or actors/).
set -euo pipefail

build=$(cd "${1:?usage: run.sh <build_dir> <work_dir>}" && pwd)
mkdir -p "${2:?usage: run.sh <build_dir> <work_dir>}"
here=$(cd "$(dirname "$0")" && pwd)
bin="$build/bench/web"
work="$(cd "$2" && pwd)/web"
seconds=${WEB_BENCH_SECONDS:-4}
http_seconds=${WEB_BENCH_HTTP_SECONDS:-8}
rounds=${WEB_BENCH_ROUNDS:-2}
subscriber_counts=${WEB_BENCH_SUBSCRIBERS:-"1 100 1000 5000"}
idle_subscribers=${WEB_BENCH_IDLE:-10000}
parts=" ${WEB_BENCH_PARTS:-http fanout relaxed idle} "
server_bin=${WEB_BENCH_SERVER:-$bin/web_bench_server}

for tool in redis-server redis-benchmark redis-cli wrk node npm; do
  command -v "$tool" >/dev/null || { echo "web bench: $tool is missing (scripts/setup.sh --bench)" >&2; exit 1; }
done
for b in web_bench web_bench_server; do
  [[ -x "$bin/$b" ]] || { echo "web bench: $bin/$b is missing (build the bench targets)" >&2; exit 1; }
done
if [[ ! -f "$here/node_modules/ws/package.json" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# 10,000 subscribers: a descriptor each in the driver and in the server.
hard=$(ulimit -Hn)
want=$((idle_subscribers + 1000))
if [[ "$hard" != unlimited && "$hard" -lt "$want" ]]; then want=$hard; fi
ulimit -n "$want"

rm -rf "$work"
mkdir -p "$work"
results="$work/results.txt"
: > "$results"
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do
    [[ -n "$p" ]] && kill "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT

load() { cut -d' ' -f1-3 /proc/loadavg; }
note() { echo "== $* (load average $(load))"; }

# Waits for a "port N" line in file $1 from process $2; prints N.
wait_port() {
  for _ in $(seq 100); do
    if grep -q '^port ' "$1" 2>/dev/null; then awk '/^port /{print $2; exit}' "$1"; return; fi
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "web bench: server did not start; see $1" >&2
  exit 1
}

free_port() {
  for p in $(seq 16379 16479); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "web bench: no free port" >&2
  exit 1
}

server_pid=""
server_port=""
start_derive() {  # $1: data directory name (unique per start); more: server options
  local name=$1
  shift
  rm -f "$work/$name.out"
  "$server_bin" --data "$work/$name" "$@" > "$work/$name.out" 2> "$work/$name.err" &
  server_pid=$!
  pids+=("$server_pid")
  server_port=$(wait_port "$work/$name.out" "$server_pid")
}
ws_runs=0
start_ws() {  # a fresh output file each time: wait_port must not read an old port
  ws_runs=$((ws_runs + 1))
  local out="$work/ws-$ws_runs.out"
  node "$here/ws_server.js" 0 > "$out" 2> "$work/ws-$ws_runs.err" &
  server_pid=$!
  pids+=("$server_pid")
  server_port=$(wait_port "$out" "$server_pid")
}
stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}

redis_pid=""
redis_port=""
start_redis() {
  redis_port=$(free_port)
  mkdir -p "$work/redis"
  redis-server --port "$redis_port" --bind 127.0.0.1 --appendonly yes --appendfsync always \
    --save '' --dir "$work/redis" --daemonize no --maxclients 20000 > "$work/redis.log" 2>&1 &
  redis_pid=$!
  pids+=("$redis_pid")
  for _ in $(seq 100); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "web bench: redis-server did not start; see $work/redis.log" >&2
  exit 1
}

record() { echo "$*" | tee -a "$results"; }

# User + system CPU of process $1 in clock ticks.
cpu_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
# Microseconds of CPU per request: $1, $2 ticks before and after, $3 requests.
us_per_req() { awk -v a="$1" -v b="$2" -v n="$3" -v hz="$(getconf CLK_TCK)" \
  'BEGIN{printf "%.1f", (b - a) * 1e6 / hz / n}'; }

# redis-benchmark --csv: "name","rps","avg","min","p50","p95","p99","max"
redis_row() {  # $1: label, $2: requests (-n); rest: redis-benchmark arguments
  local label=$1 n=$2
  shift 2
  local line c0 c1
  c0=$(cpu_ticks "$redis_pid")
  line=$(redis-benchmark -p "$redis_port" -c 50 -n "$n" --csv "$@" 2>/dev/null | tr -d '\r' | tail -1)
  c1=$(cpu_ticks "$redis_pid")
  IFS=, read -r _ rps _ _ p50 _ p99 _ <<< "$(echo "$line" | tr -d '"')"
  record "RESULT test=redis op=$label connections=50 per_s=$rps p50_ms=$p50 p99_ms=$p99" \
    "server_us_per_req=$(us_per_req "$c0" "$c1" "$n")"
}

wrk_row() {  # $1: label, $2: script, $3: path, $4: seconds
  local out
  out=$(wrk -t1 -c50 -d"$4"s --latency -s "$here/$2" "http://127.0.0.1:$server_port$3")
  local rps p50 p99 bad
  rps=$(echo "$out" | awk '/^Requests\/sec:/{print $2}')
  p50=$(echo "$out" | awk '$1=="50%"{print $2}')
  p99=$(echo "$out" | awk '$1=="99%"{print $2}')
  bad=$(echo "$out" | awk '/Non-2xx/{print $NF}')
  record "RESULT test=wrk op=$1 connections=50 per_s=$rps p50=$p50 p99=$p99 non_2xx=${bad:-0}"
}

value=$(printf 'v%.0s' $(seq 100))  # 100 bytes, as the Derive event (~100 bytes)

# ---------------------------------------------------------------- 1. appends
if [[ "$parts" == *" http "* ]]; then
note "durable appends: Derive (POST /v1/events) vs Redis XADD, appendfsync always"
start_derive derive-http
start_redis
for r in $(seq "$rounds"); do
  "$bin/web_bench" http --port "$server_port" --mode append --connections 50 \
    --seconds "$http_seconds" --warmup 1 --server-pid "$server_pid" | tee -a "$results" || true
  # About as many requests as Derive's run took (at least 20,000).
  n=$(awk '/test=http mode=append/{for(i=1;i<=NF;i++) if($i~/^per_s=/){split($i,a,"=");v=a[2]}} END{print v+0}' "$results")
  n=$(( n * http_seconds > 20000 ? n * http_seconds : 20000 ))
  redis_row XADD "$n" XADD bench '*' f "$value"
done
wrk_row append wrk_append.lua /v1/events "$http_seconds"

# ---------------------------------------------------------------- 2. reads
note "reads: GET /v1/views/latest/{key} vs Redis GET"
"$bin/web_bench" http --port "$server_port" --mode read --connections 50 --seconds 5 --warmup 1 \
  --server-pid "$server_pid" | tee -a "$results" || true
wrk_row read wrk_read.lua /v1/views/latest/key-000001 5
for i in $(seq 0 999); do printf 'SET key:%012d %s\n' "$i" "$value"; done \
  | redis-cli -p "$redis_port" --pipe >/dev/null
redis_row GET 300000 -r 1000 GET 'key:__rand_int__'
stop_server
kill "$redis_pid" 2>/dev/null || true
wait "$redis_pid" 2>/dev/null || true
fi

# ---------------------------------------------------------------- 3. fan-out
[[ "$parts" == *" fanout "* ]] || subscriber_counts=""
for n in $subscriber_counts; do
  note "fan-out: $n subscribers"
  start_derive "derive-fanout-$n"
  for rate in 1000 0; do
    "$bin/web_bench" fanout --port "$server_port" --kind derive --subscribers "$n" --rate "$rate" \
      --seconds "$seconds" --warmup 1 --drain 3 --server-pid "$server_pid" \
      --prefix "d$n-$rate-" | tee -a "$results" || true
  done
  stop_server
  start_ws
  for rate in 1000 0; do
    "$bin/web_bench" fanout --port "$server_port" --kind ws --subscribers "$n" --rate "$rate" \
      --seconds "$seconds" --warmup 1 --drain 3 --server-pid "$server_pid" \
      --prefix "w$n-$rate-" | tee -a "$results" || true
  done
  stop_server
done

if [[ "$parts" == *" relaxed "* ]]; then
  # What the path costs without fsync: the same runs with durability relaxed.
  for n in 1 1000; do
    note "fan-out, relaxed durability: $n subscribers"
    start_derive "derive-relaxed-$n" --relaxed
    "$bin/web_bench" fanout --port "$server_port" --kind derive --subscribers "$n" --rate 1000 \
      --seconds "$seconds" --warmup 1 --drain 3 --server-pid "$server_pid" \
      --prefix "r$n-" | sed 's/kind=derive/kind=derive-relaxed/' | tee -a "$results" || true
    stop_server
  done
fi

if [[ "$parts" == *" idle "* ]]; then
note "idle subscribers: $idle_subscribers"
for subscribe in ${WEB_BENCH_IDLE_KINDS:-1 0}; do  # 0: WebSocket connections without a subscription
  start_derive "derive-idle-$subscribe"
  "$bin/web_bench" idle --port "$server_port" --kind derive --subscribers "$idle_subscribers" \
    --subscribe "$subscribe" --server-pid "$server_pid" --prefix idle- | tee -a "$results" || true
  stop_server
done
start_ws
"$bin/web_bench" idle --port "$server_port" --kind ws --subscribers "$idle_subscribers" \
  --server-pid "$server_pid" --prefix idle- | tee -a "$results" || true
stop_server
fi

# ---------------------------------------------------------------- summary
note "summary"
echo "server: $server_bin"
set +e +o pipefail  # a part that was skipped or failed leaves gaps, not an abort
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
echo
echo "Durable appends, 50 connections, one ~100-byte event per request:"
printf '| round | Derive appends/s | Redis XADD/s | Derive / Redis | Derive p50 / p99 ms | Redis p50 / p99 ms |\n|---|---:|---:|---:|---|---|\n'
paste <(grep 'test=http mode=append' "$results") <(grep 'test=redis op=XADD' "$results") |
  awk '{d=""; r=""; dp50=""; dp99=""; rp50=""; rp99="";
        for(i=1;i<=NF;i++){split($i,a,"=");
          if(a[1]=="per_s"){ if(d=="") d=a[2]; else r=a[2] }
          if(a[1]=="p50_ms"){ if(dp50=="") dp50=a[2]; else rp50=a[2] }
          if(a[1]=="p99_ms"){ if(dp99=="") dp99=a[2]; else rp99=a[2] } }
        printf "| %d | %.0f | %.0f | %.2f | %s / %s | %s / %s |\n", NR, d, r, (r>0? d/r : 0), dp50, dp99, rp50, rp99}'
grep 'test=wrk op=append' "$results" | awk '{print "wrk against Derive: " $0}'
echo
echo "Reads, 50 connections:"
grep -E 'test=http mode=read|test=wrk op=read|test=redis op=GET' "$results"
echo
echo "Fan-out (items/s over all subscribers; latency from the append's acknowledgement / from sending it):"
printf '| subscribers | rate | server | appends/s | items/s | items/frame | ack->receipt p50 / p99 ms | send->receipt p50 / p99 ms | missing | resets | RSS subscribed / peak MB | server CPU s | items per server CPU s |\n'
printf '|---:|---|---|---:|---:|---:|---|---|---:|---:|---|---:|---:|\n'
grep 'test=fanout' "$results" | while read -r line; do
  f() { echo "$line" | field "$1"; }
  rate=$(f rate); [[ "$rate" == 0 ]] && rate=max
  printf '| %s | %s | %s | %s | %s | %s | %s / %s | %s / %s | %s | %s | %s / %s | %s | %s |\n' \
    "$(f subscribers)" "$rate" "$(f kind)" "$(f appends_per_s)" "$(f items_per_s)" \
    "$(f items_per_frame)" "$(f ack_p50_ms)" "$(f ack_p99_ms)" "$(f send_p50_ms)" \
    "$(f send_p99_ms)" "$(f missing)" "$(f resets)" "$(f rss_subscribed_mb)" "$(f rss_peak_mb)" \
    "$(f server_cpu_s)" "$(f items_per_server_cpu_s)"
done
echo
echo "Idle subscribers:"
grep 'test=idle' "$results"
echo "all results: $results"
