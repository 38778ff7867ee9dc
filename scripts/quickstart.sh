#!/usr/bin/env bash
# Installs dependencies, builds, starts `stratusd server` on the embedded SQLite store and applies the
# example manifests, then shows what the cloud holds. The server keeps running in the background.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build}"
DATA="${STRATUS_DATA_DIR:-$ROOT/.stratus-data}"
LISTEN="${STRATUS_LISTEN:-127.0.0.1:8774}"
"$ROOT/scripts/install-deps.sh"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target stratusd stratusctl
export STRATUS_SERVER="http://$LISTEN"
CTL="$BUILD/cli/stratusctl"
if ! "$CTL" version >/dev/null 2>&1 || ! curl -sf "$STRATUS_SERVER/healthz" >/dev/null; then
  mkdir -p "$DATA"
  nohup "$BUILD/apiserver/stratusd" server --listen "$LISTEN" --data-dir "$DATA" >"$DATA/stratusd.log" 2>&1 &
  echo $! >"$DATA/stratusd.pid"
  for _ in $(seq 100); do curl -sf "$STRATUS_SERVER/healthz" >/dev/null && break; sleep 0.1; done
  echo "stratusd started (pid $(cat "$DATA/stratusd.pid"), data in $DATA, log $DATA/stratusd.log)"
fi
"$CTL" apply -f "$ROOT/manifests"
"$CTL" apply -f "$ROOT/examples"
echo
"$CTL" get instancetypes
echo
"$CTL" get all -A 2>/dev/null || "$CTL" get instances -A
echo
echo "Server: $STRATUS_SERVER   stop it with: kill \$(cat $DATA/stratusd.pid)"
