#!/usr/bin/env bash
# Starts N compute hosts on this machine, for tests and demos of a multi-host cloud: each host is a real libvirtd
# and virtlogd in a network namespace of its own (its taps, bridges and guests stay there) and a private mount
# namespace (its own /run/libvirt, /var/lib/libvirt, /etc/libvirt, /var/log/libvirt, /var/cache/libvirt, with a
# host_uuid of its own), reached as qemu+unix:///system?socket=DIR/sock/libvirt-sock. The hosts' namespaces are
# joined by an "underlay": a veth pair each to one bridge in a namespace of its own, with 10.250.0.(10+i)/24 on the
# host side and 10.250.0.1 on the bridge, the hosts' default route ("the outside"; private addresses only inside
# these namespaces).
#   Usage: scripts/hosts-up.sh N [PREFIX]       (PREFIX default "sh"; hosts are PREFIX1..PREFIXN)
#   Env:   STRATUS_HOSTS_DIR (default /run/stratus-hosts): DIR/PREFIXi holds each host's state and pid files.
# Prints one line per host: "NAME URI NETNS UNDERLAY_ADDRESS". Run again, it restarts a host whose libvirtd died. Stop them with scripts/hosts-down.sh PREFIX, which
# stops exactly the daemons recorded here (by pid) and deletes the namespaces made here.
set -euo pipefail
N="${1:?usage: hosts-up.sh N [PREFIX]}"
PREFIX="${2:-sh}"
BASE="${STRATUS_HOSTS_DIR:-/run/stratus-hosts}"
TIMEOUT="${STRATUS_LIBVIRT_TIMEOUT:-30}"
log() { echo "hosts-up: $*" >&2; }
die() { log "error: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
case "$N" in ''|*[!0-9]*) die "N must be a number" ;; esac
case "$PREFIX" in ''|*[!a-z0-9]*) die "PREFIX: lower-case letters and digits only" ;; esac
[ "${#PREFIX}" -le 8 ] || die "PREFIX: at most 8 characters (interface names are short)"
command -v libvirtd >/dev/null || die "libvirtd not installed (scripts/install-deps.sh)"
mkdir -p "$BASE"

# The underlay switch: a bridge in a namespace of its own.
UL="${PREFIX}-ul"
if [ ! -e "/run/netns/$UL" ]; then
  ip netns add "$UL"
  echo "$UL" >>"$BASE/${PREFIX}.netns"
fi
ip -n "$UL" link add ul0 type bridge 2>/dev/null || true
ip -n "$UL" link set ul0 up
ip -n "$UL" link set lo up
# The switch's own address stands for "the outside": each host routes there by default (nat networks leave
# through their host's masquerade to reach it).
ip -n "$UL" addr replace 10.250.0.1/24 dev ul0

for i in $(seq 1 "$N"); do
  name="${PREFIX}${i}"
  dir="$BASE/$name"
  ns="$name"
  mkdir -p "$dir"/{run,lib,etc,log,cache,sock}
  if [ ! -e "/run/netns/$ns" ]; then
    ip netns add "$ns"
    echo "$ns" >>"$BASE/${PREFIX}.netns"
  fi
  ip -n "$ns" link set lo up
  # Underlay: host side "ul" in the host's namespace, switch side "PREFIXi-u" on the bridge.
  if ! ip -n "$ns" link show ul >/dev/null 2>&1; then
    ip link add "${name}-u" type veth peer name "${name}-h"
    ip link set "${name}-u" netns "$UL"
    ip link set "${name}-h" netns "$ns"
    ip -n "$ns" link set "${name}-h" name ul
    ip -n "$UL" link set "${name}-u" master ul0 up
    ip -n "$ns" addr add "10.250.0.$((10 + i))/24" dev ul
    ip -n "$ns" link set ul up
  fi
  ip -n "$ns" route replace default via 10.250.0.1 dev ul
  # Private libvirt configuration: the sockets outside the bind-mounted directories, a host uuid of its own.
  if [ ! -f "$dir/etc/libvirtd.conf" ]; then
    cp -a /etc/libvirt/. "$dir/etc/"
    {
      echo "unix_sock_dir = \"$dir/sock\""
      echo "host_uuid = \"$(cat /proc/sys/kernel/random/uuid)\""
    } >>"$dir/etc/libvirtd.conf"
  fi
  uri="qemu+unix:///system?socket=$dir/sock/libvirt-sock"
  if [ -f "$dir/libvirtd.pid" ] && kill -0 "$(cat "$dir/libvirtd.pid")" 2>/dev/null; then
    log "$name: libvirtd already running"
  else
    # In the host's network namespace and a private mount namespace: the daemons see only their own state.
    ip netns exec "$ns" unshare -m --propagation private bash -c '
      set -e
      d="$1"
      mount --bind "$d/run" /run/libvirt
      mount --bind "$d/lib" /var/lib/libvirt
      mount --bind "$d/etc" /etc/libvirt
      mount --bind "$d/log" /var/log/libvirt
      mount --bind "$d/cache" /var/cache/libvirt
      mkdir -p /var/lib/libvirt/qemu /run/libvirt/qemu
      # A host restarted after its libvirtd died may still have its virtlogd (which keeps its guests logs).
      if ! { [ -f "$d/virtlogd.pid" ] && kill -0 "$(cat "$d/virtlogd.pid")" 2>/dev/null; }; then
        virtlogd -d -p "$d/virtlogd.pid"
      fi
      libvirtd -d --pid-file "$d/libvirtd.pid"
    ' hosts-up "$dir"
    ok=""
    for _ in $(seq $((TIMEOUT * 10))); do
      if timeout 5 virsh -c "$uri" version >/dev/null 2>&1; then ok=1; break; fi
      sleep 0.1
    done
    [ -n "$ok" ] || die "$name: libvirtd did not answer on $uri within ${TIMEOUT}s"
    log "$name: libvirtd pid $(cat "$dir/libvirtd.pid"), virtlogd pid $(cat "$dir/virtlogd.pid")"
  fi
  echo "$name $uri $ns 10.250.0.$((10 + i))"
done
