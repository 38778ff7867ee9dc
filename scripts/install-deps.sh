#!/usr/bin/env bash
# Installs the Debian packages Stratus builds and tests with. Idempotent; needs root.
set -euo pipefail
PKGS=(build-essential cmake pkg-config git ca-certificates openssl curl ccache
  libcpprest-dev libyaml-cpp-dev libsqlite3-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  libcli11-dev libpugixml-dev libssl-dev libgit2-dev libcurl4-openssl-dev libgtest-dev libgmock-dev libbenchmark-dev
  libvirt-dev libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils busybox-static cpio
  etcd-server etcd-client sqlite3 python3 python3-boto3 awscli openssh-client xorriso
  libnl-route-3-dev libnftables-dev nftables dnsmasq-base iproute2)
# kubectl, for the test that uses a generated kubeconfig with it: Debian ships it as kubernetes-client; a kubectl
# installed another way (its own `kubectl` package) would conflict with it over /usr/bin/kubectl, so keep that one.
command -v kubectl >/dev/null 2>&1 || PKGS+=(kubernetes-client)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
