#!/usr/bin/env bash
# Stops what scripts/hosts-up.sh started for PREFIX: each host's libvirtd and virtlogd (by the pid files in
# STRATUS_HOSTS_DIR/PREFIXi, checked to still be those programs), then the network namespaces hosts-up made.
# Domains still running on those hosts are destroyed first (their QEMU would outlive libvirtd).
set -euo pipefail
PREFIX="${1:-sh}"
BASE="${STRATUS_HOSTS_DIR:-/run/stratus-hosts}"
log() { echo "hosts-down: $*" >&2; }
case "$PREFIX" in ''|*[!a-z0-9]*) log "PREFIX: lower-case letters and digits only"; exit 1 ;; esac
stop() { # NAME PIDFILE
  local pid
  [ -f "$2" ] || return 0
  pid="$(tr -dc 0-9 <"$2")"
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then return 0; fi
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$1" ]; then log "pid $pid is not $1: left alone"; return 0; fi
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" || true
  log "stopped $1 (pid $pid)"
}
for dir in "$BASE/$PREFIX"[0-9]*; do
  [ -d "$dir" ] || continue
  uri="qemu+unix:///system?socket=$dir/sock/libvirt-sock"
  for dom in $(timeout 10 virsh -c "$uri" list --name 2>/dev/null || true); do
    timeout 10 virsh -c "$uri" destroy "$dom" >/dev/null 2>&1 || true
  done
  stop libvirtd "$dir/libvirtd.pid"
  stop virtlogd "$dir/virtlogd.pid"
  rm -rf "$dir"
done
if [ -f "$BASE/${PREFIX}.netns" ]; then
  tac "$BASE/${PREFIX}.netns" | while read -r ns; do
    ip netns delete "$ns" 2>/dev/null && log "deleted network namespace $ns" || true
  done
  rm -f "$BASE/${PREFIX}.netns"
fi
