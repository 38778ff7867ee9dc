#!/usr/bin/env bash
# EC2 API benchmark (issue 12): Stratus' EC2 endpoint and moto_server side by side, same client load (ec2_bench).
#   1. RunInstances of 200 instances until all are running (Stratus: libvirt's test:///default driver).
#   2. 1,000 instances; DescribeInstances of all of them at 1, 8 and 32 keep-alive connections.
# Starts `moto_server` and, per part, a fresh `stratusd server` (embedded agent on test:///default, EC2 listener,
# plain http) on free loopback ports with fresh data dirs, and stops them by pid on exit (also on failure or Ctrl-C).
#
#   bench/ec2/run.sh [BUILD_DIR] [ec2_bench options...]     BUILD_DIR defaults to build (relative to the repo root)
#
# Builds nothing: cmake -S . -B build -DSTRATUS_BUILD_BENCH=ON && cmake --build build --target stratusd stratusctl ec2_bench
# Environment: MOTO_SERVER (default: moto_server on PATH, else /root/.pyenv/shims/moto_server), BENCH_OUT=DIR
# (default BUILD_DIR/bench-ec2: results.md, run.json, describe.json, the server logs), BENCH_KEEP_DATA=1 keeps the
# data dirs, BENCH_TIMEOUT (seconds, default 900) bounds each of the two ec2_bench runs.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${1:-build}
if [[ $# -gt 0 ]]; then shift; fi
[[ $BUILD = /* ]] || BUILD="$ROOT/$BUILD"
STRATUSD="$BUILD/apiserver/stratusd"
CTL="$BUILD/cli/stratusctl"
BENCH="$BUILD/bench/ec2_bench"
for bin in "$STRATUSD" "$CTL" "$BENCH"; do
  [[ -x $bin ]] || {
    echo "run.sh: $bin not found; build it: cmake -S . -B ${BUILD#"$ROOT"/} -DSTRATUS_BUILD_BENCH=ON &&" \
      "cmake --build ${BUILD#"$ROOT"/} --target stratusd stratusctl ec2_bench" >&2
    exit 1
  }
done
MOTO=${MOTO_SERVER:-$(command -v moto_server || echo /root/.pyenv/shims/moto_server)}
[[ -x $MOTO ]] || { echo "run.sh: moto_server not found (pip install 'moto[server]'; or set MOTO_SERVER)" >&2; exit 1; }
command -v qemu-img >/dev/null || { echo "run.sh: qemu-img not found (the AMI is a qcow2)" >&2; exit 1; }
RUN=200
INSTANCES=1000
prev=""
for a in "$@"; do
  [[ $prev = --run ]] && RUN=$a
  [[ $prev = --instances ]] && INSTANCES=$a
  prev=$a
done
if ! [[ $INSTANCES =~ ^[0-9]+$ ]] || ((INSTANCES < 1 || INSTANCES > 1000)); then
  echo "run.sh: --instances must be 1-1000 (the test driver's node holds ~1,200 m1.small at x100 overcommit)" >&2; exit 2
fi
OUT=${BENCH_OUT:-$BUILD/bench-ec2}
mkdir -p "$OUT"

# Data on a real disk (stratusd fsyncs every commit by default; on tmpfs that would cost nothing).
TMP_BASE=${TMPDIR:-/var/tmp}
if [[ $(stat -f -c %T "$TMP_BASE") == tmpfs ]]; then TMP_BASE="$BUILD"; fi
WORK=$(mktemp -d "$TMP_BASE/stratus-bench-ec2.XXXXXX")
TAG="be$$"

STRATUS_PID=""
MOTO_PID=""
log() { echo "run.sh: $*" >&2; }

stop_pid() {
  [[ -n $1 ]] || return 0
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
stop_stratus() { stop_pid "$STRATUS_PID"; STRATUS_PID=""; }

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local rc=$?
  set +e
  stop_stratus
  stop_pid "$MOTO_PID"
  cp "$WORK"/*.log "$OUT/" 2>/dev/null
  if [[ ${BENCH_KEEP_DATA:-0} = 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
post() { curl -sf -H "Authorization: Bearer $STRATUS_TOKEN" -H 'Content-Type: application/json' -X POST "$API$1" -d "$2"; }

# start_stratus NAME: a fresh `stratusd server` (data dir WORK/NAME): API server, reconcilers and the embedded agent
# on libvirt's in-process test driver (no VMs; no --networking, so nothing is made on the host), overcommitted so
# 1,000 x m1.small fit on its 16 vCPU / 3 GiB node, fsync on (the default). Plain http on both listeners, the same
# transport as moto (--insecure-http makes the EC2 listener plain http too). Then the tenant: user `bench`, a
# member of namespace `default`, with an EC2 access key (its secret is shown once). No quota applies (none is set).
# Sets STRATUS_PID, API, EC2_URL, KEY_ID, SECRET, STRATUS_TOKEN.
start_stratus() {
  local name=$1 sp ep ap key
  sp=$(free_port); ep=$(free_port); ap=$(free_port)
  if [[ $(printf '%s\n' "$sp" "$ep" "$ap" "$MP" | sort -u | wc -l) != 4 ]]; then log "port clash, run again"; exit 1; fi
  "$STRATUSD" server --listen "127.0.0.1:$sp" --ec2-listen "127.0.0.1:$ep" --insecure-http --data-dir "$WORK/$name" \
    --agent-listen "127.0.0.1:$ap" --libvirt-uri test:///default --node "$TAG-$name" \
    --cpu-overcommit 100 --memory-overcommit 100 --reserved-memory-mib 0 >"$WORK/stratusd-$name.log" 2>&1 &
  STRATUS_PID=$!
  API="http://127.0.0.1:$sp"
  EC2_URL="http://127.0.0.1:$ep"
  STRATUS_TOKEN=""
  for _ in $(seq 200); do
    if [[ -s $WORK/$name/admin.token ]]; then STRATUS_TOKEN=$(cat "$WORK/$name/admin.token"); export STRATUS_TOKEN; fi
    if [[ -n $STRATUS_TOKEN ]] && "$CTL" --server "$API" get nodes -o name 2>/dev/null | grep -q .; then break; fi
    kill -0 "$STRATUS_PID" 2>/dev/null || { log "stratusd exited; log:"; tail -30 "$WORK/stratusd-$name.log" >&2; exit 1; }
    sleep 0.1
  done
  "$CTL" --server "$API" get nodes -o name | grep -q . ||
    { log "stratusd's node did not register"; tail -30 "$WORK/stratusd-$name.log" >&2; exit 1; }
  post /apis/stratus.io/v1/users '{"metadata":{"name":"bench"}}' >/dev/null
  post /apis/stratus.io/v1/namespaces '{"metadata":{"name":"default"}}' >/dev/null || true
  post /apis/stratus.io/v1/namespaces/default/rolebindings \
    '{"metadata":{"name":"bench-member"},"spec":{"user":"bench","role":"member"}}' >/dev/null
  key=$(post /apis/stratus.io/v1/accesskeys \
    '{"apiVersion":"stratus.io/v1","kind":"AccessKey","metadata":{"name":"bench"},"spec":{"user":"bench","namespace":"default"}}')
  KEY_ID=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["spec"]["accessKeyId"])' <<<"$key")
  SECRET=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["secretAccessKey"])' <<<"$key")
}

images_ready() {  # images_ready N: until N Images are Ready (imported into the node's pool), at most 30 s
  local ready=0
  for _ in $(seq 300); do
    ready=$(curl -sf -H "Authorization: Bearer $STRATUS_TOKEN" "$API/apis/stratus.io/v1/namespaces/default/images" |
      python3 -c 'import json,sys; print(sum(1 for i in json.load(sys.stdin)["items"] if (i.get("status") or {}).get("phase") == "Ready"))')
    [[ $ready = "$1" ]] && return 0
    sleep 0.1
  done
  log "images not Ready after 30 s"
  exit 1
}

MP=$(free_port)
# moto with its defaults (state in memory), one server for both parts.
"$MOTO" -H 127.0.0.1 -p "$MP" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
for _ in $(seq 200); do
  if curl -s -o /dev/null "http://127.0.0.1:$MP/moto-api/"; then break; fi
  kill -0 "$MOTO_PID" 2>/dev/null || { log "moto_server exited; log:"; tail -30 "$WORK/moto.log" >&2; exit 1; }
  sleep 0.1
done
curl -s -o /dev/null "http://127.0.0.1:$MP/moto-api/" || { log "moto_server did not answer"; exit 1; }

mkdir -p "$WORK/images"
qemu-img create -q -f qcow2 "$WORK/images/disk.qcow2" 16M
head -c 4096 /dev/urandom >"$WORK/images/vmlinuz"
head -c 4096 /dev/urandom >"$WORK/images/initrd"
FLAVOR='apiVersion: stratus.io/v1
kind: InstanceType
metadata: {name: m1.small}
spec: {vcpus: 1, memoryMiB: 256}'
MOTO_VERSION=$("$(dirname "$(readlink -f "$MOTO")")/python3" -c 'import moto; print(moto.__version__)' 2>/dev/null ||
  /root/.pyenv/shims/python3 -c 'import moto; print(moto.__version__)' 2>/dev/null || echo '?')

{
  echo "## EC2 API benchmark — $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  # shellcheck disable=SC1091
  echo "- machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release && echo "$PRETTY_NAME"); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- stratus $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') ($STRATUSD), EC2 endpoint over plain http, test:///default, fsync on"
  echo "- moto $MOTO_VERSION ($MOTO) on http://127.0.0.1:$MP"
} | tee "$OUT/results.md"

COMMON=(--moto "http://127.0.0.1:$MP" --moto-pid "$MOTO_PID")
rc=0

# Part 1: RunInstances until all are running. Stratus with an AMI (a 16 MiB qcow2 disk Image): every instance gets a
# root Volume made over the node's cached copy of the image, which is what RunInstances of an AMI means here.
log "part 1: RunInstances of $RUN"
start_stratus run
"$CTL" --server "$API" apply -f - >/dev/null <<EOF
$FLAVOR
---
apiVersion: stratus.io/v1
kind: Image
metadata: {name: bench-disk}
spec: {type: disk, source: {url: 'file://$WORK/images/disk.qcow2'}}
EOF
images_ready 1
timeout "${BENCH_TIMEOUT:-900}" "$BENCH" --phases run --stratus "$EC2_URL" --stratus-key-id "$KEY_ID" \
  --stratus-secret "$SECRET" --stratus-pid "$STRATUS_PID" "${COMMON[@]}" --json "$OUT/run.json" "$@" |
  tee -a "$OUT/results.md" || rc=${PIPESTATUS[0]}
stop_stratus
if [[ $rc -ne 0 ]]; then log "ec2_bench (part 1) exited with status $rc"; exit "$rc"; fi

# Part 2: DescribeInstances of 1,000 running instances. Stratus: a fresh server holding 1,000 Instances applied
# through the main API (kernel + ramdisk boot, no root volume: 1,000 root Volumes keep the node's reconcilers busy
# far longer than this benchmark should run; see bench/README.md), all Running before the clock starts. moto: its
# instances from part 1 plus RunInstances up to 1,000.
log "part 2: DescribeInstances of $INSTANCES instances"
start_stratus describe
"$CTL" --server "$API" apply -f - >/dev/null <<EOF
$FLAVOR
---
apiVersion: stratus.io/v1
kind: Image
metadata: {name: bench-kernel}
spec: {type: kernel, source: {url: 'file://$WORK/images/vmlinuz'}}
---
apiVersion: stratus.io/v1
kind: Image
metadata: {name: bench-initrd}
spec: {type: ramdisk, source: {url: 'file://$WORK/images/initrd'}}
EOF
images_ready 2
for i in $(seq "$INSTANCES"); do
  printf 'apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {name: bench-%04d}\n' "$i"
  printf 'spec: {instanceType: m1.small, kernelImage: bench-kernel, ramdiskImage: bench-initrd}\n---\n'
done >"$WORK/instances.yaml"
"$CTL" --server "$API" apply -f "$WORK/instances.yaml" >/dev/null
timeout "${BENCH_TIMEOUT:-900}" "$BENCH" --phases describe --stratus "$EC2_URL" --stratus-key-id "$KEY_ID" \
  --stratus-secret "$SECRET" --stratus-pid "$STRATUS_PID" "${COMMON[@]}" --json "$OUT/describe.json" "$@" |
  tee -a "$OUT/results.md" || rc=${PIPESTATUS[0]}
echo "- load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/results.md"
if [[ $rc -ne 0 ]]; then log "ec2_bench (part 2) exited with status $rc (3: a server stopped answering; 124: timed out)"; fi
exit "$rc"
