#!/usr/bin/env bash
# Builds Stratus' test guest from Debian packages only (nothing but the Debian archive is contacted):
#   OUTDIR/vmlinuz      Debian's cloud kernel (linux-image-*-cloud-amd64)
#   OUTDIR/initrd.img   busybox-static initramfs (cpio newc, gzip) with the virtio, IDE cdrom and iso9660 modules,
#                       Debian's dropbear (SSH server) with its libraries, and Stratus' /init, which acts as a small
#                       cloud-init: it reads the NoCloud seed (cidata cdrom), sets the hostname, installs the
#                       authorized keys, starts dropbear and runs a #! user-data script
#   OUTDIR/rootfs.qcow2 small ext4 root filesystem (mkfs.ext4 -d, no mounting) holding /stratus-init.sh
#   OUTDIR/SHA256SUMS   checksums of the three (also printed)
# Usage: tests/guest/build-guest.sh [OUTDIR]   (default /var/lib/stratus/guest, what examples/images.yaml uses)
# Env:   STRATUS_GUEST_KERNEL_PKG=linux-image-6.1.0-56-cloud-amd64  pin the kernel package (default: what
#          linux-image-cloud-amd64 depends on)
#        STRATUS_ROOTFS_SIZE=64M   virtual size of the root filesystem image
#        FORCE=1                   rebuild even when the outputs are up to date
# Idempotent: downloads are cached in OUTDIR/.cache; when every output is newer than this script and was built
# from the same kernel package, nothing is rebuilt. Concurrent runs on one OUTDIR serialise on OUTDIR/.lock.
# See tests/guest/README.md for what the guest prints on its serial console.
set -euo pipefail

SCRIPT="$(readlink -f "${BASH_SOURCE[0]}")"
OUTDIR="${1:-/var/lib/stratus/guest}"
ROOTFS_SIZE="${STRATUS_ROOTFS_SIZE:-64M}"
MODULES=(virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover
  virtio_net virtio_blk button evdev ata_piix sr_mod isofs)
# Debian packages whose files the SSH server needs (dropbear and the libraries it links, found by readelf).
SSH_DEBS=(dropbear-bin libtomcrypt1 libtommath1 libgmp10 zlib1g libcrypt1 libc6)
OUTPUTS=(vmlinuz initrd.img rootfs.qcow2)

log() { echo "build-guest: $*" >&2; }
die() { log "error: $*"; exit 1; }
for t in apt-get apt-cache dpkg-deb cpio gzip mkfs.ext4 qemu-img sha256sum flock readelf; do
  command -v "$t" >/dev/null 2>&1 || die "$t not found (run scripts/install-deps.sh)"
done

mkdir -p "$OUTDIR"
OUTDIR="$(readlink -f "$OUTDIR")"
CACHE="$OUTDIR/.cache"
mkdir -p "$CACHE"
exec 9>"$OUTDIR/.lock"
flock -w 600 9 || die "timed out waiting for another build in $OUTDIR"

# --- which kernel package -------------------------------------------------------------------------------
resolve_kernel_pkg() {
  if [ -n "${STRATUS_GUEST_KERNEL_PKG:-}" ]; then echo "$STRATUS_GUEST_KERNEL_PKG"; return; fi
  local p
  p="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9].*-cloud-amd64$/ {print $2; exit}')"
  if [ -z "$p" ]; then
    p="$(apt-cache pkgnames linux-image- 2>/dev/null | grep -E '^linux-image-[0-9][^ ]*-cloud-amd64$' |
      sort -V | tail -n1)"
  fi
  echo "$p"
}
KPKG="$(resolve_kernel_pkg)"
if [ -z "$KPKG" ] && [ "$(id -u)" = 0 ]; then
  log "apt knows no cloud kernel; running apt-get update"
  apt-get update -qq || true
  KPKG="$(resolve_kernel_pkg)"
fi
if [ -z "$KPKG" ] && [ -f "$OUTDIR/.kernel-package" ]; then KPKG="$(cat "$OUTDIR/.kernel-package")"; fi
[ -n "$KPKG" ] || die "cannot find a linux-image-*-cloud-amd64 package (apt-get update?)"

print_sums() { (cd "$OUTDIR" && cat SHA256SUMS); }

up_to_date() {
  [ "${FORCE:-0}" = 1 ] && return 1
  [ -f "$OUTDIR/.kernel-package" ] && [ "$(cat "$OUTDIR/.kernel-package")" = "$KPKG" ] || return 1
  local f
  for f in "${OUTPUTS[@]}" SHA256SUMS; do [ "$OUTDIR/$f" -nt "$SCRIPT" ] || return 1; done
}
if up_to_date; then
  log "up to date in $OUTDIR (kernel package $KPKG)"
  print_sums
  exit 0
fi

# --- downloads (cached) -----------------------------------------------------------------------------------
fetch_deb() { # PKG -> path of the cached .deb
  local pkg="$1" deb
  deb="$(ls -1 "$CACHE/${pkg}"_*.deb 2>/dev/null | sort -V | tail -n1 || true)"
  if [ -z "$deb" ]; then
    log "downloading $pkg"
    if ! (cd "$CACHE" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2); then
      [ "$(id -u)" = 0 ] || return 1
      log "download of $pkg failed; apt-get update and retry"   # stale package lists
      apt-get update -qq >&2 || true
      (cd "$CACHE" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2) || return 1
    fi
    deb="$(ls -1 "$CACHE/${pkg}"_*.deb 2>/dev/null | sort -V | tail -n1)"
  fi
  echo "$deb"
}
KDEB="$(fetch_deb "$KPKG")" || die "cannot download $KPKG"
BDEB="$(fetch_deb busybox-static)" || BDEB=""

SSH_DEB_FILES=()
for p in "${SSH_DEBS[@]}"; do SSH_DEB_FILES+=("$(fetch_deb "$p")") || die "cannot download $p"; done

WORK="$(mktemp -d "$OUTDIR/.build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

log "unpacking $(basename "$KDEB")"
dpkg-deb -x "$KDEB" "$WORK/kernel"
VMLINUZ="$(ls -1 "$WORK"/kernel/boot/vmlinuz-* | head -n1)"
KVER="${VMLINUZ##*/vmlinuz-}"
[ -d "$WORK/kernel/lib/modules/$KVER" ] || die "no modules for $KVER in $KDEB"

if [ -n "$BDEB" ]; then
  dpkg-deb -x "$BDEB" "$WORK/bb"
  BUSYBOX="$WORK/bb/bin/busybox"
else
  log "busybox-static download failed; using the installed /bin/busybox"
  BUSYBOX=/bin/busybox
fi
[ -x "$BUSYBOX" ] || die "no busybox binary"
if ldd "$BUSYBOX" >/dev/null 2>&1; then die "$BUSYBOX is not static (install busybox-static)"; fi

# populate_busybox DIR: /bin/busybox plus a symlink per applet
populate_busybox() {
  local root="$1" a
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin}
  install -m 0755 "$BUSYBOX" "$root/bin/busybox"
  "$BUSYBOX" --list-full | while read -r a; do
    [ -e "$root/$a" ] || ln -s /bin/busybox "$root/$a"
  done
}

# --- initramfs --------------------------------------------------------------------------------------------
IR="$WORK/initramfs"
populate_busybox "$IR"
mkdir -p "$IR"/{dev,proc,sys,run,tmp,mnt/root,etc,root,lib/modules/"$KVER",usr/share/udhcpc}
mknod -m 600 "$IR/dev/console" c 5 1 2>/dev/null || true
mknod -m 666 "$IR/dev/null" c 1 3 2>/dev/null || true

# Copy the modules (decompressed: busybox insmod takes plain .ko) and order them so that every module follows the
# modules it depends on (its modinfo "depends="; in 6.1 virtio needs virtio_ring, so the order is virtio_ring,
# virtio, virtio_pci_modern_dev, virtio_pci_legacy_dev, virtio_pci, failover, net_failover, virtio_net, ...).
ORDER=()
add_module() {
  local m="$1" src dst dep
  case " ${ORDER[*]} " in *" $m "*) return ;; esac
  dst="$IR/lib/modules/$KVER/$m.ko"
  if [ ! -f "$dst" ]; then
    src="$(find "$WORK/kernel/lib/modules/$KVER" \( -name "$m.ko" -o -name "$m.ko.*" -o -name "${m//_/-}.ko" -o -name "${m//_/-}.ko.*" \) | head -n1)"
    [ -n "$src" ] || die "module $m not in $KPKG"
    case "$src" in
      *.ko) cp "$src" "$dst" ;;
      *.ko.xz) xz -dc "$src" >"$dst" ;;
      *.ko.zst) zstd -qdc "$src" >"$dst" ;;
      *.ko.gz) gzip -dc "$src" >"$dst" ;;
      *) die "unknown module format: $src" ;;
    esac
  fi
  for dep in $(tr '\0' '\n' <"$dst" | sed -n 's/^depends=//p' | head -n1 | tr ',' ' '); do
    add_module "$dep"
  done
  ORDER+=("$m")
}
for m in "${MODULES[@]}"; do add_module "$m"; done
printf '%s\n' "${ORDER[@]}" >"$IR/etc/modules"
log "modules: ${ORDER[*]}"

echo stratus-guest >"$IR/etc/hostname"
echo 'root:x:0:0:root:/root:/bin/sh' >"$IR/etc/passwd"
echo 'root:x:0:' >"$IR/etc/group"
echo /bin/sh >"$IR/etc/shells"

# The SSH server: dropbear from its Debian package, with every shared library it needs (NEEDED entries, followed
# recursively) from the packages' files, and the dynamic loader where the binary expects it.
SR="$WORK/ssh"
for d in "${SSH_DEB_FILES[@]}"; do dpkg-deb -x "$d" "$SR"; done
install -D -m 0755 "$SR/usr/sbin/dropbear" "$IR/usr/sbin/dropbear"
LIBDIR=lib/x86_64-linux-gnu
mkdir -p "$IR/$LIBDIR" "$IR/lib64"
copy_libs() { # ELF: copy the libraries it needs that are not copied yet
  local lib path
  for lib in $(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    [ -e "$IR/$LIBDIR/$lib" ] && continue
    path="$(find "$SR/lib" "$SR/usr/lib" -name "$lib" 2>/dev/null | head -n1)"
    [ -n "$path" ] || die "library $lib (needed by ${1##*/}) is not in ${SSH_DEBS[*]}"
    cp -L "$path" "$IR/$LIBDIR/$lib"
    copy_libs "$IR/$LIBDIR/$lib"
  done
}
copy_libs "$IR/usr/sbin/dropbear"
LOADER="$(find "$SR/lib" "$SR/usr/lib" -name 'ld-linux-x86-64.so.2' | head -n1)"
[ -n "$LOADER" ] || die "no ld-linux-x86-64.so.2 in libc6"
cp -L "$LOADER" "$IR/$LIBDIR/ld-linux-x86-64.so.2"
ln -sf "/$LIBDIR/ld-linux-x86-64.so.2" "$IR/lib64/ld-linux-x86-64.so.2"
mkdir -p "$IR/etc/dropbear" "$IR/var/run"
log "ssh: dropbear with $(ls "$IR/$LIBDIR" | tr '\n' ' ')"

cat >"$IR/usr/share/udhcpc/default.script" <<'EOF'
#!/bin/sh
# udhcpc hook: configure the interface and report the lease on the console.
case "$1" in
  deconfig) ip -4 addr flush dev "$interface" 2>/dev/null; ip link set "$interface" up ;;
  bound|renew)
    ip -4 addr flush dev "$interface" 2>/dev/null
    ip addr add "$ip/${mask:-24}" dev "$interface"
    # option 26: a network that spans hosts carries 50 bytes less than its underlay (VXLAN)
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
    : >/etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
    # udhcpc's own output goes to /dev/null in /init, so report on the console directly
    echo "STRATUS-NET $interface ip=$ip/${mask:-24} router=${router:-none} dns=${dns:-none} mac=$(cat /sys/class/net/$interface/address) mtu=$(cat /sys/class/net/$interface/mtu)" >/dev/console
    ;;
esac
exit 0
EOF
chmod 0755 "$IR/usr/share/udhcpc/default.script"

cat >"$IR/init" <<'EOF'
#!/bin/sh
# Stratus test guest init (PID 1 in the initramfs). Prints STRATUS-* marker lines on the console (ttyS0).
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts 2>/dev/null
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
exec </dev/console >/dev/console 2>&1

CMDLINE=" $(cat /proc/cmdline)"
# param NAME: value of NAME=VALUE or NAME="VALUE WITH SPACES" on the kernel command line
param() {
  local v
  v="$(echo "$CMDLINE" | sed -n "s/.* $1=\"\([^\"]*\)\".*/\1/p")"
  [ -n "$v" ] || v="$(echo "$CMDLINE" | sed -n "s/.* $1=\([^ \"]*\).*/\1/p")"
  echo "$v"
}
[ "$(param stratus.debug)" = 1 ] || echo "4 4 1 7" >/proc/sys/kernel/printk   # keep marker lines clean
hostname "$(param stratus.hostname)" 2>/dev/null || hostname stratus-guest

KVER="$(uname -r)"
for m in $(cat /etc/modules); do
  err="$(insmod "/lib/modules/$KVER/$m.ko" 2>&1)" || echo "STRATUS-WARN insmod $m: $err"
done
# virtio probing is synchronous, but give block devices a moment to show up
i=0; while [ $i -lt 10 ] && ! grep -q ' vd[a-z]*$' /proc/partitions && [ -n "$(ls /sys/bus/virtio/devices 2>/dev/null)" ]; do
  sleep 0.1; i=$((i + 1))
done

disks() { awk 'NR > 2 && $4 !~ /^(ram|loop|sr)/ {printf " %s:%sKiB", $4, $3}' /proc/partitions; }
nics() { for n in /sys/class/net/*; do n="${n##*/}"; printf ' %s:%s' "$n" "$(cat /sys/class/net/$n/address)"; done; }
UP="$(cut -d' ' -f1 /proc/uptime)"
echo "STRATUS-GUEST-BOOTED kernel=$KVER uptime=${UP}s"
echo "STRATUS-DISKS$(disks)"
echo "STRATUS-NICS$(nics)"

MARKER="$(param stratus.marker)"
[ -z "$MARKER" ] || echo "STRATUS-MARKER $MARKER"

# NoCloud seed (cloud-init's "cidata" data source, an ISO 9660 cdrom): what a cloud image does at boot. The IDE
# probe is asynchronous: wait up to 3 s for the cdrom to appear.
SEED=""
i=0; while [ $i -lt 30 ] && [ ! -b /dev/sr0 ]; do sleep 0.1; i=$((i + 1)); done
if [ -b /dev/sr0 ]; then
  mkdir -p /seed
  if mount -t iso9660 -o ro /dev/sr0 /seed 2>/dev/null && [ -f /seed/meta-data ]; then SEED=/seed; fi
fi
SEED_SCRIPT=""
if [ -n "$SEED" ]; then
  # meta-data: local-hostname
  h="$(sed -n 's/^local-hostname: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$SEED/meta-data" | head -n1)"
  [ -z "$h" ] || hostname "$h"
  # user-data: a #! script, a #cloud-config, or a MIME multipart of those (cloud-init's merge)
  UD="$SEED/user-data"
  first="$(head -n1 "$UD" 2>/dev/null)"
  case "$first" in
    Content-Type:\ multipart/*)
      b="$(echo "$first" | sed -n 's/.*boundary="\([^"]*\)".*/\1/p')"
      awk -v b="--$b" -v out=/run/user-data. '
        $0 == b || $0 == b "--" { n++; hdr = 1; type = ""; next }
        hdr && /^Content-Type:/ { type = ($0 ~ /x-shellscript/) ? "sh" : ($0 ~ /cloud-config/) ? "cfg" : "other"; next }
        hdr && /^$/ { hdr = 0; next }
        !hdr && n > 0 && type != "" { print > (out type) }
      ' "$UD"
      ;;
    \#!*) cp "$UD" /run/user-data.sh ;;
    *) cp "$UD" /run/user-data.cfg ;;
  esac
  # ssh_authorized_keys from the cloud-config: one "- KEY" line each (the YAML emitter may quote a key)
  mkdir -p /root/.ssh && chmod 0700 /root /root/.ssh
  sed -n 's/^ *- *"\{0,1\}\(\(ssh-\|ecdsa-\)[^"]*\)"\{0,1\} *$/\1/p' /run/user-data.cfg 2>/dev/null \
    >/root/.ssh/authorized_keys
  chmod 0600 /root/.ssh/authorized_keys
  [ -f /run/user-data.sh ] && SEED_SCRIPT=/run/user-data.sh
  echo "STRATUS-SEED hostname=$(hostname) keys=$(wc -l </root/.ssh/authorized_keys) script=$([ -n "$SEED_SCRIPT" ] && echo yes || echo no)"
  # The SSH server, when there is a key to log in with (host keys made on first use).
  if [ -s /root/.ssh/authorized_keys ] && [ -x /usr/sbin/dropbear ]; then
    if /usr/sbin/dropbear -R -s -p 22 -P /var/run/dropbear.pid; then echo "STRATUS-SSH port=22"
    else echo "STRATUS-WARN dropbear failed to start"; fi
  fi
fi

# Power button (virsh shutdown / ACPI) -> clean poweroff
for ev in /sys/class/input/event*; do
  [ -e "$ev/device/name" ] || continue
  if [ "$(cat "$ev/device/name")" = "Power Button" ] && [ -c "/dev/input/${ev##*/}" ]; then
    (dd if="/dev/input/${ev##*/}" of=/dev/null bs=24 count=1 2>/dev/null &&
     { echo "STRATUS-GUEST-SHUTDOWN power button"; sync; poweroff -f; }) &
  fi
done

# Network: DHCP on every ethernet interface. A first short try; when it gets no lease (the node's dnsmasq may
# learn this MAC a moment later) say so and keep asking in the background until a lease comes.
ip link set lo up
for n in /sys/class/net/*; do
  n="${n##*/}"; [ "$n" = lo ] && continue
  ip link set "$n" up
  if ! udhcpc -O mtu -i "$n" -n -q -t 3 -T 1 -s /usr/share/udhcpc/default.script >/dev/null 2>&1; then
    echo "STRATUS-NET $n no-lease mac=$(cat /sys/class/net/$n/address)"
    udhcpc -O mtu -i "$n" -q -t 5 -T 1 -A 1 -s /usr/share/udhcpc/default.script >/dev/null 2>&1 &
  fi
done

# Network test services, from the kernel command line:
#   stratus.listen=PORT              serve "STRATUS-PEER <hostname>" over HTTP on PORT (busybox httpd)
#   stratus.probe=IP:PORT[,IP:PORT]  every second, GET http://IP:PORT/ with nc (2 s timeout) and print
#                                    "STRATUS-PROBE IP:PORT open <reply>" or "STRATUS-PROBE IP:PORT closed"
#                                    whenever the answer changes (the last such line is the current state)
LISTEN="$(param stratus.listen)"
if [ -n "$LISTEN" ]; then
  mkdir -p /www && echo "STRATUS-PEER $(hostname)" >/www/index.html
  if httpd -p "$LISTEN" -h /www; then echo "STRATUS-LISTEN $LISTEN"; else echo "STRATUS-WARN httpd on $LISTEN failed"; fi
fi
for target in $(param stratus.probe | tr ',' ' '); do
  (last=""
   while :; do
     # busybox nc, not wget: the static busybox's wget crashes without NSS files in this initramfs
     body="$(printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 "${target%:*}" "${target##*:}" 2>/dev/null |
       tr -d '\r' | grep '^STRATUS-PEER ' | tail -n 1)"
     if [ -n "$body" ]; then now="open $body"; else now=closed; fi
     [ "$now" = "$last" ] || echo "STRATUS-PROBE $target $now"
     last="$now"
     sleep 1
   done) &
done

# The user-data script runs once the network is being configured (cloud-init's final stage), in the background;
# its output goes to the console.
if [ -n "$SEED_SCRIPT" ]; then
  (echo "STRATUS-USERDATA start"; sh "$SEED_SCRIPT"; echo "STRATUS-USERDATA exit=$?") &
fi

# Root disk: /dev/vda with ext4 holding /stratus-init.sh
ROOTDEV=""
if [ -b /dev/vda ]; then
  if mount -t ext4 /dev/vda /mnt/root 2>/dev/null; then
    ROOTDEV=vda
    if [ -f /mnt/root/stratus-init.sh ]; then
      for d in proc sys dev run tmp; do mkdir -p /mnt/root/$d; mount --bind /$d /mnt/root/$d; done
      if [ -x /mnt/root/bin/sh ]; then
        STRATUS_ROOT=/ chroot /mnt/root /bin/sh /stratus-init.sh
      else
        STRATUS_ROOT=/mnt/root sh /mnt/root/stratus-init.sh
      fi
      sync
    else
      echo "STRATUS-ROOTFS vda mounted, no /stratus-init.sh"
    fi
  else
    echo "STRATUS-ROOTFS vda is not ext4"
  fi
fi

if [ "$(param stratus.poweroff)" = 1 ]; then
  echo "STRATUS-GUEST-POWEROFF"
  sync; umount /mnt/root 2>/dev/null; poweroff -f
fi

# Data disks: every disk but the root one carries a marker in its first sector. A blank (all-zero) disk gets
# "STRATUS-VOL <token>" written (token: stratus.volmarker=TEXT, else a random uuid; stratus.volmarker=off
# disables writing). Disks that appear, grow or disappear later (hot-plug, live resize) are reported too.
VOLMARKER="$(param stratus.volmarker)"
volume_seen() {
  local d="$1" first tok
  [ "$d" = "$ROOTDEV" ] && return
  first="$(dd if=/dev/$d bs=512 count=1 2>/dev/null | tr -d '\000' | head -n1)"
  case "$first" in
    "STRATUS-VOL "*) echo "STRATUS-VOLUME-FOUND $d ${first#STRATUS-VOL }" ;;
    "")
      if [ "$VOLMARKER" = off ]; then echo "STRATUS-VOLUME-BLANK $d"; return; fi
      tok="${VOLMARKER:-$(cat /proc/sys/kernel/random/uuid)}"
      if printf 'STRATUS-VOL %s\n' "$tok" | dd of=/dev/$d bs=512 count=1 conv=sync,notrunc,fsync 2>/dev/null; then
        sync; echo "STRATUS-VOLUME-WROTE $d $tok"
      else
        echo "STRATUS-VOLUME-WRITE-FAILED $d"
      fi
      ;;
    *) echo "STRATUS-VOLUME-OTHER $d" ;;
  esac
}
# A shell on the serial console, as a cloud image's console login would give (stratusctl console types into it).
setsid sh -c 'exec sh -i </dev/ttyS0 >/dev/ttyS0 2>&1' &
echo "STRATUS-CONSOLE-SHELL"
SEEN=""
NICS_SEEN=" $(ls /sys/class/net | tr '\n' ' ')"
while :; do
  # NICs hot-plugged later get DHCP (in the background) and are reported; unplugged ones are reported too.
  NICS_NOW=" $(ls /sys/class/net | tr '\n' ' ')"
  for n in $NICS_NOW; do
    case "$NICS_SEEN" in *" $n "*) continue ;; esac
    echo "STRATUS-NIC-ADDED $n mac=$(cat /sys/class/net/$n/address)"
    ip link set "$n" up
    udhcpc -O mtu -i "$n" -q -t 5 -T 1 -A 1 -s /usr/share/udhcpc/default.script >/dev/null 2>&1 &
  done
  for n in $NICS_SEEN; do
    case "$NICS_NOW" in *" $n "*) ;; *) echo "STRATUS-NIC-REMOVED $n" ;; esac
  done
  NICS_SEEN="$NICS_NOW"
  # vCPUs hot-added by a live resize come up offline: bring them online (what udev does on a cloud image).
  for c in /sys/devices/system/cpu/cpu[0-9]*/online; do
    if [ -f "$c" ] && [ "$(cat "$c")" = 0 ]; then echo 1 >"$c" && echo "STRATUS-CPU-ONLINE ${c%/online}"; fi
  done
  NOW=""
  for b in /sys/block/vd*; do
    [ -e "$b/size" ] || continue
    d="${b##*/}"; s="$(cat "$b/size")"; NOW="$NOW $d=$s"
    old="$(echo "$SEEN" | tr ' ' '\n' | sed -n "s/^$d=//p")"
    if [ -z "$old" ]; then
      echo "STRATUS-DISK-ADDED $d bytes=$((s * 512))"; volume_seen "$d"
    elif [ "$old" != "$s" ]; then
      echo "STRATUS-DISK-RESIZED $d bytes=$((s * 512))"
    fi
  done
  for e in $SEEN; do
    case " $NOW " in *" ${e%%=*}="*) ;; *) echo "STRATUS-DISK-REMOVED ${e%%=*}" ;; esac
  done
  SEEN="$NOW"
  sleep 1
done
EOF
chmod 0755 "$IR/init"

log "writing initrd.img (kernel $KVER)"
find "$IR" -exec touch -h -d @0 {} + 2>/dev/null || true
(cd "$IR" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible) |
  gzip -n -9 >"$WORK/initrd.img"

# --- root filesystem --------------------------------------------------------------------------------------
RF="$WORK/rootfs"
populate_busybox "$RF"
mkdir -p "$RF"/{dev,proc,sys,run,tmp,root,etc,data}
cp "$IR/etc/passwd" "$IR/etc/group" "$IR/etc/hostname" "$RF/etc/"
cat >"$RF/stratus-init.sh" <<'EOF'
#!/bin/sh
# Run by the Stratus test guest's init when this filesystem is the instance's root disk (/dev/vda).
n=$(( $(cat /var/boot-count 2>/dev/null || echo 0) + 1 ))
mkdir -p /var && echo "$n" >/var/boot-count
echo "STRATUS-ROOTFS-BOOTED dev=/dev/vda bytes=$(( $(cat /sys/block/vda/size 2>/dev/null || echo 0) * 512 )) boot=$n"
[ -f /stratus-local.sh ] && . /stratus-local.sh
exit 0
EOF
chmod 0755 "$RF/stratus-init.sh"
echo "built by tests/guest/build-guest.sh with $KPKG" >"$RF/etc/stratus-rootfs"

log "writing rootfs.qcow2 ($ROOTFS_SIZE ext4)"
truncate -s "$ROOTFS_SIZE" "$WORK/rootfs.raw"
mkfs.ext4 -q -F -L stratus-root -E root_owner=0:0 -d "$RF" "$WORK/rootfs.raw"
qemu-img convert -q -f raw -O qcow2 "$WORK/rootfs.raw" "$WORK/rootfs.qcow2"
rm -f "$WORK/rootfs.raw"

# --- publish atomically -----------------------------------------------------------------------------------
cp "$VMLINUZ" "$WORK/vmlinuz"
(cd "$WORK" && sha256sum "${OUTPUTS[@]}" >SHA256SUMS)
for f in "${OUTPUTS[@]}" SHA256SUMS; do
  chmod 0644 "$WORK/$f"
  mv -f "$WORK/$f" "$OUTDIR/$f"
done
echo "$KPKG" >"$OUTDIR/.kernel-package"
log "built guest in $OUTDIR (kernel package $KPKG, kernel $KVER)"
print_sums
