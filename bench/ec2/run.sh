#!/usr/bin/env bash
# EC2 API benchmark (issue 12): Stratus' EC2 endpoint and moto_server side by side, same client load (ec2_bench).
#   1. RunInstances of 200 instances until all are running (Stratus: libvirt's test:///default driver).
#   2. 1,000 instances preloaded; DescribeInstances of all of them at 1, 8 and 32 keep-alive connections.
# Starts `stratusd server` (embedded agent on test:///default, EC2 listener, plain http) and `moto_server` on free
# loopback ports with fresh data dirs, and stops both by pid on exit (also on failure or Ctrl-C).
#
#   bench/ec2/run.sh [BUILD_DIR] [ec2_bench options...]     BUILD_DIR defaults to build (relative to the repo root)
#
# Builds nothing: cmake -S . -B build -DSTRATUS_BUILD_BENCH=ON && cmake --build build --target stratusd stratusctl ec2_bench
# Environment: MOTO_SERVER (default: moto_server on PATH, else /root/.pyenv/shims/moto_server), BENCH_OUT=DIR
# (default BUILD_DIR/bench-ec2: results.md, results.json, the server logs), BENCH_KEEP_DATA=1 keeps the data dir,
# BENCH_TIMEOUT (seconds, default 1200) bounds the whole measurement.
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
command -v qemu-img >/dev/null || { echo "run.sh: qemu-img not found (the disk image is a qcow2)" >&2; exit 1; }
OUT=${BENCH_OUT:-$BUILD/bench-ec2}
mkdir -p "$OUT"

# Data on a real disk (fsync is on in stratusd by default; on tmpfs it would cost nothing).
TMP_BASE=${TMPDIR:-/var/tmp}
if [[ $(stat -f -c %T "$TMP_BASE") == tmpfs ]]; then TMP_BASE="$BUILD"; fi
WORK=$(mktemp -d "$TMP_BASE/stratus-bench-ec2.XXXXXX")
TAG="be$$"

STRATUS_PID=""
MOTO_PID=""
log() { echo "run.sh: $*" >&2; }

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local rc=$?
  set +e
  for pid in $STRATUS_PID $MOTO_PID; do kill -TERM "$pid" 2>/dev/null; done
  for pid in $STRATUS_PID $MOTO_PID; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  cp "$WORK/stratusd.log" "$OUT/stratusd.log" 2>/dev/null
  cp "$WORK/moto.log" "$OUT/moto.log" 2>/dev/null
  if [[ ${BENCH_KEEP_DATA:-0} = 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SP=$(free_port); EP=$(free_port); AP=$(free_port); MP=$(free_port)
if [[ $(printf '%s\n' "$SP" "$EP" "$AP" "$MP" | sort -u | wc -l) != 4 ]]; then log "port clash, run again"; exit 1; fi

# Stratus: API server, reconcilers and the embedded agent on libvirt's in-process test driver (no VMs, nothing on
# the host), overcommitted so 1,000 x m1.small fit on its 16 vCPU / 3 GiB node. Plain http on both listeners, the
# same transport as moto (--insecure-http also makes the EC2 listener plain http).
"$STRATUSD" server --listen "127.0.0.1:$SP" --ec2-listen "127.0.0.1:$EP" --insecure-http --data-dir "$WORK/stratus" \
  --agent-listen "127.0.0.1:$AP" --libvirt-uri test:///default --node "$TAG-test" \
  --cpu-overcommit 100 --memory-overcommit 100 --reserved-memory-mib 0 >"$WORK/stratusd.log" 2>&1 &
STRATUS_PID=$!
# moto with its defaults; TEST_SERVER_MODE-independent, state in memory.
"$MOTO" -H 127.0.0.1 -p "$MP" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!

API="http://127.0.0.1:$SP"
for _ in $(seq 200); do
  if [[ -s $WORK/stratus/admin.token ]]; then STRATUS_TOKEN=$(cat "$WORK/stratus/admin.token"); export STRATUS_TOKEN; fi
  if [[ -n ${STRATUS_TOKEN:-} ]] && "$CTL" --server "$API" get nodes -o name 2>/dev/null | grep -q .; then break; fi
  kill -0 "$STRATUS_PID" 2>/dev/null || { log "stratusd exited; log:"; tail -30 "$WORK/stratusd.log" >&2; exit 1; }
  sleep 0.1
done
"$CTL" --server "$API" get nodes -o name | grep -q . || { log "stratusd's node did not register"; tail -30 "$WORK/stratusd.log" >&2; exit 1; }
for _ in $(seq 200); do
  if curl -s -o /dev/null "http://127.0.0.1:$MP/moto-api/"; then break; fi
  kill -0 "$MOTO_PID" 2>/dev/null || { log "moto_server exited; log:"; tail -30 "$WORK/moto.log" >&2; exit 1; }
  sleep 0.1
done
curl -s -o /dev/null "http://127.0.0.1:$MP/moto-api/" || { log "moto_server did not answer"; exit 1; }

# The operator's part: a flavor, a (tiny, empty) qcow2 disk image (the AMI), the default subnet. The agent runs without
# --networking, so the Network only feeds IPAM (private addresses in DescribeInstances); nothing is made on the host.
mkdir -p "$WORK/images"
qemu-img create -q -f qcow2 "$WORK/images/disk.qcow2" 16M
"$CTL" --server "$API" apply -f - >/dev/null <<EOF
apiVersion: stratus.io/v1
kind: InstanceType
metadata: {name: m1.small}
spec: {vcpus: 1, memoryMiB: 256}
---
apiVersion: stratus.io/v1
kind: Image
metadata: {name: bench-disk}
spec: {type: disk, source: {url: 'file://$WORK/images/disk.qcow2'}}
---
apiVersion: stratus.io/v1
kind: Network
metadata: {name: default}
spec: {cidr: 10.80.0.0/21, mode: nat}
EOF

# The tenant: user `bench`, a member of namespace `default`, with an EC2 access key (the secret is shown once).
post() { curl -sf -H "Authorization: Bearer $STRATUS_TOKEN" -H 'Content-Type: application/json' -X POST "$API$1" -d "$2"; }
post /apis/stratus.io/v1/users '{"metadata":{"name":"bench"}}' >/dev/null
post /apis/stratus.io/v1/namespaces '{"metadata":{"name":"default"}}' >/dev/null || true
post /apis/stratus.io/v1/namespaces/default/rolebindings \
  '{"metadata":{"name":"bench-member"},"spec":{"user":"bench","role":"member"}}' >/dev/null
KEY=$(post /apis/stratus.io/v1/accesskeys \
  '{"apiVersion":"stratus.io/v1","kind":"AccessKey","metadata":{"name":"bench"},"spec":{"user":"bench","namespace":"default"}}')
KEY_ID=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["spec"]["accessKeyId"])' <<<"$KEY")
SECRET=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["secretAccessKey"])' <<<"$KEY")

# Images Ready (imported into the node's pool) before the clock starts.
for _ in $(seq 300); do
  ready=$(curl -sf -H "Authorization: Bearer $STRATUS_TOKEN" "$API/apis/stratus.io/v1/namespaces/default/images" |
    python3 -c 'import json,sys; print(sum(1 for i in json.load(sys.stdin)["items"] if (i.get("status") or {}).get("phase") == "Ready"))')
  [[ $ready = 1 ]] && break
  sleep 0.1
done
[[ $ready = 1 ]] || { log "images not Ready after 30 s"; exit 1; }

{
  echo "## EC2 API benchmark — $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  # shellcheck disable=SC1091
  echo "- machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release && echo "$PRETTY_NAME"); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- stratus $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') ($STRATUSD), EC2 on http://127.0.0.1:$EP, test:///default, fsync on"
  echo "- moto $("$(dirname "$(readlink -f "$MOTO")")/python3" -c 'import moto; print(moto.__version__)' 2>/dev/null || \
        /root/.pyenv/shims/python3 -c 'import moto; print(moto.__version__)' 2>/dev/null || echo '?') ($MOTO) on http://127.0.0.1:$MP"
  echo
} | tee "$OUT/results.md"

rc=0
timeout "${BENCH_TIMEOUT:-1200}" "$BENCH" --stratus "http://127.0.0.1:$EP" --stratus-key-id "$KEY_ID" \
  --stratus-secret "$SECRET" --stratus-pid "$STRATUS_PID" --moto "http://127.0.0.1:$MP" --moto-pid "$MOTO_PID" \
  --json "$OUT/results.json" "$@" | tee -a "$OUT/results.md" || rc=${PIPESTATUS[0]}
echo "- load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/results.md"
if [[ $rc -ne 0 ]]; then log "ec2_bench exited with status $rc (3: a server stopped answering; 124: timed out)"; fi
exit $rc
