#!/usr/bin/env bash
# Runs the API benchmark: starts `stratusd server` and Debian's etcd (3.4) on free loopback ports, each with a fresh
# data dir on a real disk (fsync on), drives both with api_bench, prints the markdown table, stops both.
#
#   bench/run.sh [BUILD_DIR] [api_bench options...]     BUILD_DIR defaults to build (relative to the repo root)
#
# Builds nothing: build first with
#   cmake -S . -B build -DSTRATUS_BUILD_BENCH=ON && cmake --build build --target stratusd api_bench
# Environment: BENCH_JSON=FILE (default BUILD_DIR/bench-results.json), BENCH_KEEP_DATA=1 keeps the data dirs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
if [[ $# -gt 0 ]]; then shift; fi
[[ $BUILD = /* ]] || BUILD="$ROOT/$BUILD"
STRATUSD="$BUILD/apiserver/stratusd"
API_BENCH="$BUILD/bench/api_bench"
for bin in "$STRATUSD" "$API_BENCH"; do
  if [[ ! -x $bin ]]; then
    echo "run.sh: $bin not found; build it first:" >&2
    echo "  cmake -S . -B ${BUILD#"$ROOT"/} -DSTRATUS_BUILD_BENCH=ON && cmake --build ${BUILD#"$ROOT"/} --target stratusd api_bench" >&2
    exit 1
  fi
done
ETCD=$(command -v etcd || true)
if [[ -z $ETCD ]]; then
  echo "run.sh: etcd not found; install Debian's etcd-server (apt-get install etcd-server)" >&2
  exit 1
fi

# Data on a real disk: if /tmp is tmpfs, fsync would cost nothing there and the comparison would be meaningless.
TMP_BASE=${TMPDIR:-/tmp}
if [[ $(stat -f -c %T "$TMP_BASE") == tmpfs ]]; then
  TMP_BASE="$BUILD"
fi
DATA=$(mktemp -d "$TMP_BASE/stratus-bench.XXXXXX")

STRATUS_PID=""
ETCD_PID=""
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local rc=$?
  for pid in $STRATUS_PID $ETCD_PID; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for pid in $STRATUS_PID $ETCD_PID; do
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ ${BENCH_KEEP_DATA:-0} = 1 ]]; then
    echo "run.sh: data and logs kept in $DATA" >&2
  else
    rm -rf "$DATA"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free loopback port: ask the kernel for one (python3), else probe random ports.
free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
    return
  fi
  local p
  while true; do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
}

wait_http() {  # URL PID NAME LOG
  for _ in $(seq 200); do
    if curl -sf -o /dev/null "$1"; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then
      echo "run.sh: $3 exited during start-up; its log:" >&2
      tail -20 "$4" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "run.sh: $3 did not answer $1 within 20 s" >&2
  tail -20 "$4" >&2
  exit 1
}

SP=$(free_port)
EP=$(free_port)
while [[ $EP = "$SP" ]]; do EP=$(free_port); done
PP=$(free_port)
while [[ $PP = "$SP" || $PP = "$EP" ]]; do PP=$(free_port); done

mkdir -p "$DATA/stratus" "$DATA/etcd"
# etcd with its production defaults (fsync of the WAL on every commit); only addresses and logging are set.
"$ETCD" --name bench --data-dir "$DATA/etcd/data" \
  --listen-client-urls "http://127.0.0.1:$EP" --advertise-client-urls "http://127.0.0.1:$EP" \
  --listen-peer-urls "http://127.0.0.1:$PP" --initial-advertise-peer-urls "http://127.0.0.1:$PP" \
  --initial-cluster "bench=http://127.0.0.1:$PP" --logger zap --log-level error \
  >"$DATA/etcd.log" 2>&1 &
ETCD_PID=$!

wait_http "http://127.0.0.1:$EP/health" "$ETCD_PID" etcd "$DATA/etcd.log"
# BENCH_STRATUSD_ARGS: extra server flags to compare settings (e.g. "--http-threads 8"). BENCH_STORE=etcd runs
# stratusd on the same etcd (its own key prefix) instead of its embedded SQLite store: stratusd-on-etcd next to raw etcd.
STORE_ARGS=""
if [[ ${BENCH_STORE:-sqlite} = etcd ]]; then
  STORE_ARGS="--store etcd --etcd-endpoints http://127.0.0.1:$EP --etcd-prefix /stratus-bench/"
fi
# shellcheck disable=SC2086
"$STRATUSD" server --listen "127.0.0.1:$SP" --data-dir "$DATA/stratus" --agent=false --ec2-listen=off --insecure-http $STORE_ARGS ${BENCH_STRATUSD_ARGS:-} \
  >"$DATA/stratusd.log" 2>&1 &
STRATUS_PID=$!
wait_http "http://127.0.0.1:$SP/healthz" "$STRATUS_PID" stratusd "$DATA/stratusd.log"
# The first administrator's token, made at the server's first start.
STRATUS_TOKEN=$(cat "$DATA/stratus/admin.token")
export STRATUS_TOKEN

JSON_OUT=${BENCH_JSON:-$BUILD/bench-results.json}
{
  echo "# Stratus API benchmark"
  echo
  # shellcheck disable=SC1091
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); host: $(nproc) cores, $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
  echo "- stratusd: $STRATUSD (127.0.0.1:$SP, store ${BENCH_STORE:-sqlite}); etcd: $("$ETCD" --version | head -1) (127.0.0.1:$EP)"
  echo "- data dirs: $DATA ($(findmnt -no FSTYPE -T "$DATA" 2>/dev/null || stat -f -c %T "$DATA"))"
  echo "- load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
}
# Bounded even if a server hangs: api_bench gives up on a request after 30 s, and the whole run after 15 minutes.
rc=0
timeout 900 "$API_BENCH" --stratus "http://127.0.0.1:$SP" --etcd "http://127.0.0.1:$EP" \
  --stratus-pid "$STRATUS_PID" --etcd-pid "$ETCD_PID" --json "$JSON_OUT" "$@" || rc=$?
echo
echo "- load after: $(cut -d' ' -f1-3 /proc/loadavg); JSON: $JSON_OUT"
if [[ $rc -ne 0 ]]; then
  echo "run.sh: api_bench exited with status $rc (3: a server stopped answering; 124: the run timed out)" >&2
fi
exit $rc
