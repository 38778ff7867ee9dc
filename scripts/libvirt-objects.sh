#!/usr/bin/env bash
# What Stratus' tests and benchmarks leave in libvirt, and removing what they made.
#   libvirt-objects.sh list              every pool and domain (defined or running) of qemu:///system, sorted
#   libvirt-objects.sh remove-pools DIR  stops and undefines the pools whose target path lies under DIR (what
#                                        agents with a data dir under DIR made); their files are left to the caller
# LIBVIRT_URI overrides the connection.
set -euo pipefail
URI="${LIBVIRT_URI:-qemu:///system}"
virsh_() { virsh -q -c "$URI" "$@"; }
names() { virsh_ "$@" | sed -e 's/[[:space:]]*$//' -e '/^$/d'; }  # virsh pads names with spaces

case "${1:-}" in
  list)
    { names pool-list --all --name | sed 's/^/pool /'
      names list --all --name | sed 's/^/domain /'; } | sort
    ;;
  remove-pools)
    dir="${2:?usage: $0 remove-pools DIR}"
    dir="${dir%/}"
    [[ $dir == /* && $dir != / ]] || { echo "$0: DIR must be an absolute path below /" >&2; exit 2; }
    names pool-list --all --name | while IFS= read -r pool; do
      path=$( (virsh_ pool-dumpxml "$pool" 2>/dev/null || true) | sed -n 's:.*<path>\(.*\)</path>.*:\1:p' | head -n 1)
      if [[ $path == "$dir" || $path == "$dir"/* ]]; then
        virsh_ pool-destroy "$pool" >/dev/null 2>&1 || true
        virsh_ pool-undefine "$pool" >/dev/null 2>&1 || true
        echo "removed pool $pool ($path)"
      fi
    done
    ;;
  *)
    echo "usage: $0 list | remove-pools DIR" >&2
    exit 2
    ;;
esac
