#!/usr/bin/env bash
# Installs dependencies, builds, prepares libvirt and the demo guest, starts `stratusd server` (API server on the
# embedded SQLite store, cluster reconcilers and an embedded node agent on qemu:///system), applies the system
# and example manifests, waits for the example instance to boot, and prints its serial console.
# The server keeps running in the background; stop it with the command printed at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build}"
DATA="${STRATUS_DATA_DIR:-/var/lib/stratus}"
LISTEN="${STRATUS_LISTEN:-127.0.0.1:8774}"
"$ROOT/scripts/install-deps.sh"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target stratusd stratusctl
export STRATUS_LIBVIRT_PIDFILE="${STRATUS_LIBVIRT_PIDFILE:-$DATA/libvirt.pids}"
mkdir -p "$DATA"
"$ROOT/scripts/libvirt-up.sh" >/dev/null
"$ROOT/tests/guest/build-guest.sh" /var/lib/stratus/guest >/dev/null   # what examples/images.yaml points at
export STRATUS_SERVER="http://$LISTEN"
CTL="$BUILD/cli/stratusctl"
if ! curl -sf "$STRATUS_SERVER/healthz" >/dev/null 2>&1; then
  nohup "$BUILD/apiserver/stratusd" server --listen "$LISTEN" --data-dir "$DATA" >"$DATA/stratusd.log" 2>&1 &
  echo $! >"$DATA/stratusd.pid"
  for _ in $(seq 100); do curl -sf "$STRATUS_SERVER/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  echo "stratusd started (pid $(cat "$DATA/stratusd.pid"), data in $DATA, log $DATA/stratusd.log)"
fi
"$CTL" apply -f "$ROOT/manifests"
"$CTL" apply -f "$ROOT/examples"
echo
"$CTL" wait image/demo-kernel image/demo-initrd image/debian-demo --for=condition=Ready --timeout=120s
"$CTL" wait instance/web-1 --for=condition=Ready --timeout=120s
# The guest mounts its root volume (STRATUS-ROOTFS-BOOTED) and marks its data volume (STRATUS-VOLUME-...).
for _ in $(seq 60); do "$CTL" logs instance/web-1 2>/dev/null | grep -q STRATUS-VOLUME- && break; sleep 1; done
echo
"$CTL" get nodes
"$CTL" get instances -o wide
"$CTL" get volumes -o wide
echo
echo "--- serial console of instance/web-1 ---"
"$CTL" logs instance/web-1 | tail -n 15
echo
echo "Server: $STRATUS_SERVER   stop it with: kill \$(cat $DATA/stratusd.pid); scripts/libvirt-down.sh"
