#!/usr/bin/env bash
# Instance benchmarks (issue 3):
#   1. N (default 200) Instances applied at once on libvirt's test:///default driver until all are Ready:
#      total time and per-instance p50/p99 (from a watch on instances).
#   2. On qemu:///system (TCG): apply -> guest boot marker (STRATUS-GUEST-BOOTED in `stratusctl logs`), next to
#      `virsh create` of an equivalent domain -> the same marker in its serial log; the ratio is Stratus' overhead.
# Each part starts its own `stratusd server` (embedded agent, fresh data dir, free loopback ports, unique node
# name) and removes everything it created: instances, its virsh domains, its image pool, its processes, its dirs.
#
#   bench/instances/run.sh [BUILD_DIR]          BUILD_DIR defaults to build (relative to the repo root)
#
# Environment:
#   BENCH_COUNT=200        instances in part 1 (1-1000) BENCH_RUNS=3        runs per side in part 2
#   BENCH_PARTS="many tcg" which parts to run          STRATUS_GUEST_DIR   guest (default /var/lib/stratus/guest)
#   BENCH_OUT=DIR          where results go (default BUILD_DIR/bench-instances): results.md, many.json, tcg.json
#   BENCH_KEEP_DATA=1      keep the data dirs (and server logs) under ${TMPDIR:-/var/tmp}
# Builds nothing: cmake --build build --target stratusd stratusctl. Part 2 needs root, libvirtd
# (scripts/libvirt-up.sh; started here if it is not answering) and the guest (tests/guest/build-guest.sh).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${1:-build}
[[ $BUILD = /* ]] || BUILD="$ROOT/$BUILD"
STRATUSD="$BUILD/apiserver/stratusd"
CTL="$BUILD/cli/stratusctl"
for bin in "$STRATUSD" "$CTL"; do
  [[ -x $bin ]] || { echo "run.sh: $bin not found; build it: cmake --build ${BUILD#"$ROOT"/} --target stratusd stratusctl" >&2; exit 1; }
done
COUNT=${BENCH_COUNT:-200}
RUNS=${BENCH_RUNS:-3}
# Bounded: at part 1's overcommit (x100) the test driver's node (16 vCPUs, 3 GiB) holds ~1,200 m1.small.
if ! [[ $COUNT =~ ^[0-9]+$ ]] || ((COUNT < 1 || COUNT > 1000)); then
  echo "run.sh: BENCH_COUNT must be a whole number from 1 to 1000 (got '$COUNT')" >&2; exit 2
fi
PARTS=${BENCH_PARTS:-many tcg}
GUEST_DIR=${STRATUS_GUEST_DIR:-/var/lib/stratus/guest}
OUT=${BENCH_OUT:-$BUILD/bench-instances}
mkdir -p "$OUT"
: >"$OUT/results.md"

# QEMU runs as libvirt-qemu and must traverse the data dir: /var/tmp (1777) with 755 dirs of our own.
TMP_BASE=${TMPDIR:-/var/tmp}
WORK=$(mktemp -d "$TMP_BASE/stratus-bench-instances.XXXXXX")
chmod 755 "$WORK"
TAG="bi$$"                 # unique per run: node names, instance names, virsh domain names
VIRSH=(virsh -c qemu:///system)

SERVER_PID=""
SERVER_URL=""
TCG_NODE=""
LIBVIRT_BEFORE=""  # `scripts/libvirt-objects.sh list` before the TCG part: the same after it
SIGNALLED=0
log() { echo "run.sh: $*" >&2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_server() {  # start_server NAME extra-flags...   sets SERVER_PID, SERVER_URL
  local name=$1; shift
  local port aport
  port=$(free_port); aport=$(free_port)
  mkdir -p "$WORK/$name"; chmod 755 "$WORK/$name"
  "$STRATUSD" server --listen "127.0.0.1:$port" --ec2-listen=off --insecure-http --data-dir "$WORK/$name/data" --agent-listen "127.0.0.1:$aport" \
    --reserved-memory-mib 0 "$@" >"$WORK/$name/stratusd.log" 2>&1 &
  SERVER_PID=$!
  SERVER_URL="http://127.0.0.1:$port"
  for _ in $(seq 100); do
    # ready when the embedded agent has registered its Node (as the admin, whose token the server writes first)
    if [[ -s $WORK/$name/data/admin.token ]]; then STRATUS_TOKEN=$(cat "$WORK/$name/data/admin.token"); export STRATUS_TOKEN; fi
    if "$CTL" --server "$SERVER_URL" get nodes -o name 2>/dev/null | grep -q .; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  log "stratusd ($name) did not come up; log:"; tail -n 30 "$WORK/$name/stratusd.log" >&2
  return 1
}

stop_server() {
  [[ -n $SERVER_PID ]] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local rc=$?
  set +e
  if [[ -n $TCG_NODE ]]; then
    # Instances first (while the server still runs), then anything of ours libvirt still has, by exact prefix.
    # (Not after a signal: Ctrl-C or a group kill has hit stratusd too, which is then going away.)
    if [[ $SIGNALLED = 0 && -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
      timeout 40 "$CTL" --server "$SERVER_URL" delete instances --all --wait --timeout 30s >/dev/null 2>&1
    fi
    stop_server
    local d
    for d in $("${VIRSH[@]}" list --all --name 2>/dev/null | grep -E "^(stratus_default_)?$TAG-"); do
      log "removing leftover domain $d"
      "${VIRSH[@]}" destroy "$d" >/dev/null 2>&1
      "${VIRSH[@]}" undefine "$d" >/dev/null 2>&1
    done
    # The pools our agent made (their target paths lie in $WORK), then proof that libvirt is as we found it.
    "$ROOT/scripts/libvirt-objects.sh" remove-pools "$WORK" >/dev/null
    if [[ -n $LIBVIRT_BEFORE ]] && [[ $("$ROOT/scripts/libvirt-objects.sh" list) != "$LIBVIRT_BEFORE" ]]; then
      log "libvirt objects differ from before the run:"
      diff <(echo "$LIBVIRT_BEFORE") <("$ROOT/scripts/libvirt-objects.sh" list) >&2
      [[ $rc != 0 ]] || rc=1
    fi
  fi
  stop_server
  if [[ ${BENCH_KEEP_DATA:-0} = 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'SIGNALLED=1; exit 130' INT TERM

{
  echo "## Instance benchmarks — $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release), stratus $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo
} >>"$OUT/results.md"

START=$SECONDS
for part in $PARTS; do
  case $part in
  many)
    log "part 1: $COUNT instances on test:///default"
    start_server many --libvirt-uri test:///default --node "$TAG-test" --cpu-overcommit 100 --memory-overcommit 100
    python3 "$HERE/instbench.py" many --server "$SERVER_URL" --ctl "$CTL" --workdir "$WORK/many" \
      --count "$COUNT" --json "$OUT/many.json" | tee -a "$OUT/results.md"
    stop_server
    ;;
  tcg)
    log "part 2: boot marker on qemu:///system (TCG), $RUNS runs per side"
    for f in vmlinuz initrd.img; do
      [[ -r $GUEST_DIR/$f ]] || { log "missing $GUEST_DIR/$f: run tests/guest/build-guest.sh"; exit 1; }
    done
    if ! "${VIRSH[@]}" version >/dev/null 2>&1; then
      log "libvirtd not answering: starting it (scripts/libvirt-up.sh, pids in /tmp/bench-libvirt.pids; left running)"
      STRATUS_LIBVIRT_PIDFILE=/tmp/bench-libvirt.pids "$ROOT/scripts/libvirt-up.sh" >/dev/null
    fi
    LIBVIRT_BEFORE=$("$ROOT/scripts/libvirt-objects.sh" list)
    TCG_NODE="$TAG-tcg"
    start_server tcg --libvirt-uri qemu:///system --virt-type qemu --node "$TCG_NODE"
    python3 "$HERE/instbench.py" tcg --server "$SERVER_URL" --ctl "$CTL" --workdir "$WORK/tcg" \
      --guest-dir "$GUEST_DIR" --prefix "$TAG" --runs "$RUNS" --json "$OUT/tcg.json" | tee -a "$OUT/results.md"
    ;;
  *) log "unknown part '$part' (many, tcg)"; exit 2 ;;
  esac
done
log "done in $((SECONDS - START)) s; results in $OUT/results.md"
