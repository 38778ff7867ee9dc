#!/usr/bin/env bash
# Stops exactly the daemons scripts/libvirt-up.sh started (pids recorded in $STRATUS_LIBVIRT_PIDFILE, default
# /run/stratus-libvirt.pids): SIGTERM, up to 10 s, then SIGKILL. Daemons it did not start are left alone. A network
# namespace it created for STRATUS_NETNS is deleted afterwards.
# Domains still running keep running (QEMU processes are not children of libvirtd's lifetime).
set -euo pipefail
PIDFILE="${STRATUS_LIBVIRT_PIDFILE:-/run/stratus-libvirt.pids}"
log() { echo "libvirt-down: $*" >&2; }
[ -f "$PIDFILE" ] || { log "nothing to stop ($PIDFILE absent)"; exit 0; }

# libvirtd first (it talks to virtlogd), so reverse the recorded order
tac "$PIDFILE" | while read -r name pid; do
  [ -n "${pid:-}" ] || continue
  if [ "$name" = netns ]; then   # a namespace libvirt-up.sh created (recorded first, so handled last)
    ip netns delete "$pid" 2>/dev/null && log "deleted network namespace $pid" || true
    continue
  fi
  if ! kill -0 "$pid" 2>/dev/null; then log "$name (pid $pid) already gone"; continue; fi
  comm="$(cat "/proc/$pid/comm" 2>/dev/null || true)"
  if [ "$comm" != "$name" ]; then log "pid $pid is now '$comm', not $name: left alone"; continue; fi
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then log "$name (pid $pid) ignored SIGTERM; SIGKILL"; kill -KILL "$pid" || true; fi
  log "stopped $name (pid $pid)"
done
rm -f "$PIDFILE"
