#!/usr/bin/env bash
# Makes libvirt (qemu:///system) usable on a machine without systemd, as root, and prints the usable virt type.
#   - /dev/kvm: chgrp kvm + chmod 660 (root-only /dev/kvm makes libvirt re-probe QEMU on every call: ~45 s/start)
#   - starts virtlogd and libvirtd only when they are not already running, and records the pids it started in
#     $STRATUS_LIBVIRT_PIDFILE (default /run/stratus-libvirt.pids) so scripts/libvirt-down.sh stops exactly those
#   - waits (bounded) until `virsh -c qemu:///system version` answers
#   - prints the virt type that really runs guests as the LAST line of stdout: "kvm" or "qemu" (TCG);
#     everything else goes to stderr.  Usage: VIRT_TYPE=$(scripts/libvirt-up.sh | tail -n1)
# Env: STRATUS_NETNS=NS           start libvirtd inside network namespace NS (its taps, bridges and dnsmasq
#                                 stay in NS; clients still use the socket file). Created if missing.
#      STRATUS_VIRT_TYPE=kvm|qemu skip detection and print this.
#      STRATUS_LIBVIRT_TIMEOUT=20 seconds to wait for libvirtd to answer.
#      STRATUS_GUEST_DIR=DIR      guest built by tests/guest/build-guest.sh (default /var/lib/stratus/guest); when
#                                 present, KVM detection boots its kernel under KVM as the final check.
# Changes no libvirt configuration file.
set -euo pipefail

PIDFILE="${STRATUS_LIBVIRT_PIDFILE:-/run/stratus-libvirt.pids}"
TIMEOUT="${STRATUS_LIBVIRT_TIMEOUT:-20}"
NETNS="${STRATUS_NETNS:-}"
URI=qemu:///system
SOCK=/var/run/libvirt/libvirt-sock

log() { echo "libvirt-up: $*" >&2; }
die() { log "error: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
command -v libvirtd >/dev/null || die "libvirtd not installed (scripts/install-deps.sh)"

# --- /dev/kvm ---------------------------------------------------------------------------------------------
if [ -c /dev/kvm ] && getent group kvm >/dev/null; then
  if ! { chgrp kvm /dev/kvm && chmod 660 /dev/kvm; }; then log "could not change /dev/kvm permissions"; fi
fi

answers() { [ -S "$SOCK" ] && timeout 5 virsh -c "$URI" version >/dev/null 2>&1; }
alive() { # PID [NAME]: the process exists (and, with NAME, is that program: pidfiles can be stale)
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
  [ -z "${2:-}" ] || [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}
pid_of_file() { [ -f "$1" ] && cat "$1" 2>/dev/null | head -n1 | tr -dc 0-9 || true; }
record() { echo "$1 $2" >>"$PIDFILE"; log "started $1 (pid $2), recorded in $PIDFILE"; }

mkdir -p "$(dirname "$PIDFILE")" /var/run/libvirt /var/log/libvirt /var/lib/libvirt/qemu /var/cache/libvirt

# --- virtlogd (serial/console logs of QEMU go through it) -------------------------------------------------
VL_PID="$(pid_of_file /run/virtlogd.pid)"
if alive "$VL_PID" virtlogd && [ -S /var/run/libvirt/virtlogd-sock ]; then
  log "virtlogd already running (pid $VL_PID)"
else
  virtlogd -d
  for _ in $(seq 50); do VL_PID="$(pid_of_file /run/virtlogd.pid)"; alive "$VL_PID" && break; sleep 0.1; done
  alive "$VL_PID" || die "virtlogd did not start"
  record virtlogd "$VL_PID"
fi

# --- libvirtd ---------------------------------------------------------------------------------------------
LV_PID="$(pid_of_file /run/libvirtd.pid)"
if alive "$LV_PID" libvirtd && answers; then
  log "libvirtd already running (pid $LV_PID)"
  if [ -n "$NETNS" ] && { [ ! -e "/run/netns/$NETNS" ] ||
     [ "$(stat -L -c %i "/proc/$LV_PID/ns/net")" != "$(stat -L -c %i "/run/netns/$NETNS")" ]; }; then
    die "the running libvirtd (pid $LV_PID) is not in network namespace $NETNS; stop it first"
  fi
else
  if alive "$LV_PID" libvirtd; then die "libvirtd pid $LV_PID exists but does not answer on $SOCK"; fi
  if [ -n "$NETNS" ]; then
    if [ ! -e "/run/netns/$NETNS" ]; then
      ip netns add "$NETNS"
      echo "netns $NETNS" >>"$PIDFILE"   # libvirt-down.sh deletes the namespace it created
    fi
    ip netns exec "$NETNS" ip link set lo up
    ip netns exec "$NETNS" libvirtd -d
  else
    libvirtd -d
  fi
  for _ in $(seq 50); do LV_PID="$(pid_of_file /run/libvirtd.pid)"; alive "$LV_PID" && break; sleep 0.1; done
  alive "$LV_PID" || die "libvirtd did not start (see /var/log/libvirt or run libvirtd -v in the foreground)"
  record libvirtd "$LV_PID"
fi

deadline=$((SECONDS + TIMEOUT))
until answers; do
  [ $SECONDS -lt $deadline ] || die "libvirtd did not answer on $URI within ${TIMEOUT}s"
  sleep 0.2
done
log "libvirt answers: $(virsh -c "$URI" version 2>/dev/null | sed -n 's/^Running hypervisor: //p')"

# --- virt type ----------------------------------------------------------------------------------------------
# KVM counts only when it really runs a guest: /dev/kvm must exist, the CPU must expose vmx/svm, and a tiny
# real-mode guest must finish quickly under -accel kvm; when the Stratus guest is built, its kernel must boot
# under KVM too. Otherwise TCG ("qemu").
detect_virt_type() {
  [ -c /dev/kvm ] || { log "no /dev/kvm"; echo qemu; return; }
  grep -qwE 'vmx|svm' /proc/cpuinfo || { log "CPU has no vmx/svm flag: KVM unusable"; echo qemu; return; }
  local qemu=qemu-system-x86_64 tmp rc
  command -v $qemu >/dev/null || { echo qemu; return; }
  tmp="$(mktemp -d)"
  # boot sector: mov al,0x31; out 0xf4,al (isa-debug-exit -> exit status 0x63); hlt
  printf '\xb0\x31\xe6\xf4\xf4\xeb\xfe' >"$tmp/bs.img"
  truncate -s 510 "$tmp/bs.img"; printf '\x55\xaa' >>"$tmp/bs.img"; truncate -s 1474560 "$tmp/bs.img"
  rc=0
  timeout 10 $qemu -accel kvm -machine pc -nodefaults -no-user-config -display none -m 16 \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 -drive "file=$tmp/bs.img,format=raw,if=floppy" -boot a \
    >/dev/null 2>&1 || rc=$?
  if [ "$rc" != 99 ]; then rm -rf "$tmp"; log "KVM test guest failed (rc $rc)"; echo qemu; return; fi
  local g="${STRATUS_GUEST_DIR:-/var/lib/stratus/guest}"
  if [ -f "$g/vmlinuz" ] && [ -f "$g/initrd.img" ]; then
    timeout 30 $qemu -accel kvm -cpu host -m 256 -nodefaults -no-user-config -display none \
      -serial "file:$tmp/serial.log" -kernel "$g/vmlinuz" -initrd "$g/initrd.img" \
      -append 'console=ttyS0 stratus.poweroff=1' >/dev/null 2>&1 || true
    if ! grep -q STRATUS-GUEST-BOOTED "$tmp/serial.log" 2>/dev/null; then
      rm -rf "$tmp"; log "the Stratus guest kernel does not boot under KVM"; echo qemu; return
    fi
  fi
  rm -rf "$tmp"
  echo kvm
}
case "${STRATUS_VIRT_TYPE:-auto}" in
  kvm|qemu) VT="$STRATUS_VIRT_TYPE" ;;
  *) VT="$(detect_virt_type)" ;;
esac
log "usable virt type: $VT"
echo "$VT"
