#!/usr/bin/env bash
# Stops what scripts/quickstart.sh started, by pid or by name: the instances' domains (their definitions stay, and
# the next quickstart starts them again), stratusd, the dnsmasq processes its agent started (pid files in
# DATA/agent/networks, checked against their command line), then the libvirtd, virtlogd and network namespace that
# scripts/libvirt-up.sh recorded. Objects and data in DATA are kept.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build}"
DATA="${STRATUS_DATA_DIR:-/var/lib/stratus}"
LISTEN="${STRATUS_LISTEN:-127.0.0.1:8774}"
export STRATUS_LIBVIRT_PIDFILE="${STRATUS_LIBVIRT_PIDFILE:-$DATA/libvirt.pids}"
log() { echo "quickstart-stop: $*" >&2; }

domains=()
CA="$DATA/tls/ca.crt"
if curl -sf --cacert "$CA" "https://$LISTEN/healthz" >/dev/null 2>&1; then
  mapfile -t domains < <(STRATUS_CONFIG="$DATA/admin.kubeconfig" "$BUILD/cli/stratusctl" --server "https://$LISTEN" \
    --certificate-authority "$CA" get instances -A -o json |
    python3 -c 'import json, sys
for i in json.load(sys.stdin).get("items", []):
    print("stratus_%s_%s" % (i["metadata"]["namespace"], i["metadata"]["name"]))')
fi

pid="$(cat "$DATA/stratusd.pid" 2>/dev/null || true)"
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = stratusd ]; then
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  rm -f "$DATA/stratusd.pid"
  log "stopped stratusd (pid $pid)"
fi

for d in "${domains[@]}"; do
  if virsh -c qemu:///system destroy "$d" >/dev/null 2>&1; then log "powered off domain $d"; fi
done

for pf in "$DATA"/agent/networks/*/dnsmasq.pid; do
  [ -f "$pf" ] || continue
  pid="$(tr -dc 0-9 <"$pf")"
  conf="$(dirname "$pf")/dnsmasq.conf"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || continue
  if tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF -- "--conf-file=$conf"; then
    kill -TERM "$pid" && log "stopped dnsmasq (pid $pid) for $(basename "$(dirname "$pf")")"
  fi
done

"$ROOT/scripts/libvirt-down.sh"
