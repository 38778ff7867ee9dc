#!/usr/bin/env bash
# Volume benchmark (issue 4): time to create N (default 100) Volumes of 1 GiB from a disk Image in a node's `dir`
# pool on real libvirt (qemu:///system), for both ways Stratus makes them:
#   format: qcow2 -> a qcow2 overlay with the node's cached image as backing file
#   format: raw   -> a full copy (libvirt virStorageVolCreateXMLFrom, i.e. qemu-img convert), grown to 1 GiB
# next to the same N operations done with qemu-img directly (the baseline), for two source images:
#   rootfs: the guest root filesystem of tests/guest/build-guest.sh (qcow2, 64 MiB virtual, a few MiB of data)
#   big:    a qcow2 of 1 GiB virtual holding BENCH_DATA_MIB (200) MiB of random data in 4 MiB extents spread over
#           the whole disk, made here with truncate + dd from /dev/urandom + qemu-img convert
# One `stratusd server` (embedded agent, --libvirt-uri qemu:///system, fresh data dir, unique node name, free
# loopback ports); python3 bench/volumes/volbench.py does the measuring (standard library only).
#
#   bench/volumes/run.sh [BUILD_DIR]          BUILD_DIR defaults to build (relative to the repo root); as root
#
# Environment:
#   BENCH_COUNT=100          volumes per method (lowered, with a note, when the disk cannot hold the full copies)
#   BENCH_IMAGES="rootfs big" which source images      BENCH_METHODS=qcow2,raw   which methods
#   BENCH_BASE_JOBS=1,2      baseline runs: one job at a time, then 2 at a time (the agent has 2 workers)
#   BENCH_DATA_MIB=200       random data in the big image          BENCH_BUDGET=600  overall limit (s) of the runs
#   BENCH_OUT=DIR            results (default BUILD_DIR/bench-volumes): results.md, volumes.json, stratusd.log
#   BENCH_KEEP_DATA=1        keep the work dir            STRATUS_GUEST_DIR   guest (default /var/lib/stratus/guest)
#   BENCH_LOG_LEVEL=warn     stratusd --log-level
#   BENCH_WARMUP=1           untimed full copies (written, removed) right before Stratus' raw phase; 0: none
# Builds nothing (cmake --build build --target stratusd stratusctl). Copies the two binaries into its work dir first,
# so a rebuild of BUILD_DIR during the run does not swap them underneath it. libvirtd is started with
# scripts/libvirt-up.sh only when it is not answering, and then stopped at the end with scripts/libvirt-down.sh
# (only what libvirt-up recorded in this run's pid file); a libvirtd that was already running is left alone.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${1:-build}
[[ $BUILD = /* ]] || BUILD="$ROOT/$BUILD"
for bin in "$BUILD/apiserver/stratusd" "$BUILD/cli/stratusctl"; do
  [[ -x $bin ]] || { echo "run.sh: $bin not found; build it: cmake --build ${BUILD#"$ROOT"/} --target stratusd stratusctl" >&2; exit 1; }
done
[[ $(id -u) = 0 ]] || { echo "run.sh: run as root (qemu:///system)" >&2; exit 1; }
for t in qemu-img virsh python3 dd truncate df sync timeout; do
  command -v "$t" >/dev/null || { echo "run.sh: $t not found (scripts/install-deps.sh)" >&2; exit 1; }
done
COUNT=${BENCH_COUNT:-100}
IMAGES=${BENCH_IMAGES:-rootfs big}
METHODS=${BENCH_METHODS:-qcow2,raw}
BASE_JOBS=${BENCH_BASE_JOBS:-1,2}
DATA_MIB=${BENCH_DATA_MIB:-200}
BUDGET=${BENCH_BUDGET:-600}
GUEST_DIR=${STRATUS_GUEST_DIR:-/var/lib/stratus/guest}
OUT=${BENCH_OUT:-$BUILD/bench-volumes}
mkdir -p "$OUT"
: >"$OUT/results.md"

# QEMU/libvirt (libvirt-qemu) must traverse the data dir: under /var/tmp (1777, on disk), 755 dirs of our own.
TMP_BASE=${TMPDIR:-/var/tmp}
WORK=$(mktemp -d "$TMP_BASE/stratus-bench-volumes.XXXXXX")
chmod 755 "$WORK"
mkdir -p "$WORK/bin" "$WORK/images" "$WORK/data" "$WORK/run"
chmod 755 "$WORK/images" "$WORK/data"
NODE="bench-v$$"           # unique per run
VIRSH=(virsh -c qemu:///system)
SERVER_PID=""
SERVER_URL=""
LIBVIRT_PIDFILE=""
LIBVIRT_BEFORE=""          # `scripts/libvirt-objects.sh list` before the run: the same after it
SIGNALLED=0
log() { echo "run.sh: $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

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
  if [[ -n $SERVER_PID ]]; then
    # Volumes through the API first (their storage goes with them), unless a signal is taking stratusd down too.
    if [[ $SIGNALLED = 0 ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
      timeout 120 "$CTL" --server "$SERVER_URL" delete volumes --all --wait --timeout 100s >/dev/null 2>&1
      timeout 60 "$CTL" --server "$SERVER_URL" delete images --all --wait --timeout 50s >/dev/null 2>&1
    fi
    cp "$WORK/run/stratusd.log" "$OUT/stratusd.log" 2>/dev/null
    stop_server
  fi
  # The pools our agent made (their target paths lie in $WORK), then proof that libvirt is as we found it.
  "$ROOT/scripts/libvirt-objects.sh" remove-pools "$WORK" >/dev/null
  if [[ -n $LIBVIRT_BEFORE ]] && [[ $("$ROOT/scripts/libvirt-objects.sh" list) != "$LIBVIRT_BEFORE" ]]; then
    log "libvirt objects differ from before the run:"
    diff <(echo "$LIBVIRT_BEFORE") <("$ROOT/scripts/libvirt-objects.sh" list) >&2
    [[ $rc != 0 ]] || rc=1
  fi
  if [[ -n $LIBVIRT_PIDFILE ]]; then
    STRATUS_LIBVIRT_PIDFILE=$LIBVIRT_PIDFILE "$ROOT/scripts/libvirt-down.sh"
  fi
  if [[ ${BENCH_KEEP_DATA:-0} = 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'SIGNALLED=1; exit 130' INT TERM

# --- binaries: a private copy (another build may relink build/ meanwhile) --------------------------------------
cp "$BUILD/apiserver/stratusd" "$BUILD/cli/stratusctl" "$WORK/bin/"
STRATUSD="$WORK/bin/stratusd"
CTL="$WORK/bin/stratusctl"

# --- libvirt -----------------------------------------------------------------------------------------------------
if "${VIRSH[@]}" version >/dev/null 2>&1; then
  log "libvirtd answers on qemu:///system: left as it is"
else
  LIBVIRT_PIDFILE="$WORK/run/libvirt.pids"
  log "libvirtd not answering: starting it (scripts/libvirt-up.sh; stopped again at the end)"
  STRATUS_LIBVIRT_PIDFILE=$LIBVIRT_PIDFILE STRATUS_VIRT_TYPE=qemu "$ROOT/scripts/libvirt-up.sh" >/dev/null
fi
LIBVIRT_BEFORE=$("$ROOT/scripts/libvirt-objects.sh" list)

# --- source images -----------------------------------------------------------------------------------------------
IMAGE_ARGS=()
for img in $IMAGES; do
  case $img in
  rootfs)
    if [[ ! -r $GUEST_DIR/rootfs.qcow2 ]]; then
      log "building the guest (tests/guest/build-guest.sh $GUEST_DIR)"
      "$ROOT/tests/guest/build-guest.sh" "$GUEST_DIR" >/dev/null
    fi
    cp "$GUEST_DIR/rootfs.qcow2" "$WORK/images/rootfs.qcow2"
    ;;
  big)
    # 1 GiB virtual; DATA_MIB of random data as 4 MiB extents spread evenly over the disk, like a filled filesystem.
    log "making big.qcow2: 1 GiB virtual, $DATA_MIB MiB of random data"
    truncate -s 1G "$WORK/images/big.raw"
    extents=$(( (DATA_MIB + 3) / 4 ))
    stride=$(( 256 / extents )); (( stride >= 1 )) || stride=1     # in 4 MiB units: 256 of them in 1 GiB
    for ((k = 0; k < extents; k++)); do
      dd if=/dev/urandom of="$WORK/images/big.raw" bs=4M count=1 seek=$((k * stride)) conv=notrunc status=none
    done
    qemu-img convert -q -f raw -O qcow2 "$WORK/images/big.raw" "$WORK/images/big.qcow2"
    rm -f "$WORK/images/big.raw"
    ;;
  *) log "unknown image '$img' (rootfs, big)"; exit 2 ;;
  esac
  chmod 644 "$WORK/images/$img.qcow2"
  IMAGE_ARGS+=(--image "$img=$WORK/images/$img.qcow2")
done

# --- disk space: the full copies are sparse, but each holds the image's data --------------------------------------
NOTE=""
max_data=0
for img in $IMAGES; do
  b=$(( $(stat -c %b "$WORK/images/$img.qcow2") * 512 ))
  (( b > max_data )) && max_data=$b
done
avail=$(( $(df -P -k "$WORK" | awk 'NR==2 {print $4}') * 1024 ))
# live at once, at most: the source, its cached copy, COUNT full copies (Stratus' or the baseline's), 2 GiB slack
need=$(( COUNT * max_data + 2 * max_data + (2 << 30) ))
if (( need > avail )); then
  fit=$(( (avail - 2 * max_data - (2 << 30)) / max_data ))
  (( fit >= 1 )) || { log "not enough space on $(df -P "$WORK" | awk 'NR==2 {print $6}'): $((avail >> 20)) MiB free"; exit 1; }
  NOTE="BENCH_COUNT lowered from $COUNT to $fit: $((avail >> 20)) MiB free, each full copy holds $((max_data >> 20)) MiB"
  log "$NOTE"
  COUNT=$fit
fi
log "disk: $((avail >> 30)) GiB free on $(df -P "$WORK" | awk 'NR==2 {print $1" "$6}'); at most $((need >> 20)) MiB used"

# --- stratusd ----------------------------------------------------------------------------------------------------
PORT=$(free_port); APORT=$(free_port)
"$STRATUSD" --log-level "${BENCH_LOG_LEVEL:-warn}" server --listen "127.0.0.1:$PORT" --insecure-http --data-dir "$WORK/data" \
  --node "$NODE" --libvirt-uri qemu:///system --agent-listen "127.0.0.1:$APORT" >"$WORK/run/stratusd.log" 2>&1 &
SERVER_PID=$!
SERVER_URL="http://127.0.0.1:$PORT"
up=0
for _ in $(seq 300); do  # ready when the embedded agent has registered its Node (30 s at most)
  if [[ -s $WORK/data/admin.token ]]; then STRATUS_TOKEN=$(cat "$WORK/data/admin.token"); export STRATUS_TOKEN; fi
  if "$CTL" --server "$SERVER_URL" get nodes -o name 2>/dev/null | grep -q .; then up=1; break; fi
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
if [[ $up = 0 ]]; then log "stratusd did not come up; log:"; tail -n 30 "$WORK/run/stratusd.log" >&2; exit 1; fi

{
  echo "## Volume benchmark — $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release), $(df -P -T "$WORK" | awk 'NR==2 {print $2" on "$1}'), load $(cut -d' ' -f1-3 /proc/loadavg) before the run; $(qemu-img --version | head -n1), libvirt $(virsh --version); stratus $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') (stratusd built $(date -u -r "$BUILD/apiserver/stratusd" +%Y-%m-%dT%H:%MZ))"
  echo
  [[ -z $NOTE ]] || { echo "Note: $NOTE"; echo; }
} >>"$OUT/results.md"

START=$SECONDS
timeout --foreground --signal=TERM "$((BUDGET + 30))" python3 "$HERE/volbench.py" --server "$SERVER_URL" --ctl "$CTL" \
  --data-dir "$WORK/data" --workdir "$WORK/run" "${IMAGE_ARGS[@]}" --count "$COUNT" --methods "$METHODS" \
  --base-jobs "$BASE_JOBS" --warmup "${BENCH_WARMUP:-1}" --budget "$BUDGET" --json "$OUT/volumes.json" | tee -a "$OUT/results.md"
if grep -qiE '\b(error|critical)\b' "$WORK/run/stratusd.log"; then
  log "stratusd logged errors:"; grep -iE '\b(error|critical)\b' "$WORK/run/stratusd.log" | head -n 20 >&2
fi
log "done in $((SECONDS - START)) s; results in $OUT/results.md"
