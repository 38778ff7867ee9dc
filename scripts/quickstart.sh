#!/usr/bin/env bash
# Installs dependencies, builds, prepares libvirt and the demo guest, starts `stratusd server` (API server on the
# embedded SQLite store, cluster reconcilers and an embedded node agent on qemu:///system), applies the system
# and example manifests, waits for the example instance to boot and lease its address, and prints its serial console.
# libvirtd runs in a network namespace of its own (STRATUS_NETNS, default stratus-quickstart) and the agent makes
# the default Network's bridge, dnsmasq and nftables there (--networking=true --netns), so the instances' private
# addresses never touch the host's network; the API stays on the host's loopback.
# The API is served over https with the CA and certificate stratusd makes in DATA/tls at first start; stratusctl
# (STRATUS_CA_FILE) and curl (--cacert) verify the server against that CA.
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
export STRATUS_NETNS="${STRATUS_NETNS:-stratus-quickstart}"
mkdir -p "$DATA"
"$ROOT/scripts/libvirt-up.sh" >/dev/null
"$ROOT/tests/guest/build-guest.sh" /var/lib/stratus/guest >/dev/null   # what examples/images.yaml points at
# The admin's client config, written by stratusd at its first start (server URL, CA and bearer token).
export STRATUS_CONFIG="$DATA/admin.kubeconfig"
export STRATUS_SERVER="https://$LISTEN"
export STRATUS_CA_FILE="$DATA/tls/ca.crt"
CTL="$BUILD/cli/stratusctl"
healthy() { curl -sf --cacert "$STRATUS_CA_FILE" "$STRATUS_SERVER/healthz" >/dev/null 2>&1; }
if ! healthy; then
  nohup "$BUILD/apiserver/stratusd" server --listen "$LISTEN" --data-dir "$DATA" \
    --networking=true --netns "$STRATUS_NETNS" >"$DATA/stratusd.log" 2>&1 &
  echo $! >"$DATA/stratusd.pid"
  for _ in $(seq 100); do healthy && break; sleep 0.1; done
  echo "stratusd started (pid $(cat "$DATA/stratusd.pid"), data in $DATA, log $DATA/stratusd.log)"
fi
"$CTL" apply -f "$ROOT/manifests"
"$CTL" apply -f "$ROOT/examples"
echo
"$CTL" wait image/demo-kernel image/demo-initrd image/debian-demo --for=condition=Ready --timeout=120s
"$CTL" wait instance/web-1 --for=condition=Ready --timeout=120s
# The guest leases its address from the network's dnsmasq (STRATUS-NET), mounts its root volume
# (STRATUS-ROOTFS-BOOTED) and marks its data volume (STRATUS-VOLUME-...).
for _ in $(seq 60); do
  out="$("$CTL" logs instance/web-1 2>/dev/null || true)"
  grep -q STRATUS-VOLUME- <<<"$out" && grep -q 'STRATUS-NET eth0 ip=' <<<"$out" && break
  sleep 1
done
echo
"$CTL" get nodes
"$CTL" get instances -o wide
"$CTL" get volumes -o wide
"$CTL" get networks -o wide
echo
# The same cloud through the EC2 API (awscli): an AccessKey's secret is answered once, by its create.
EC2_LISTEN="${STRATUS_EC2_LISTEN:-127.0.0.1:8773}"
if creds="$("$CTL" create accesskey "quickstart-$(date +%s)" --user admin -n default)"; then
  echo "--- aws ec2 describe-instances (endpoint https://$EC2_LISTEN, ${creds%%$'\n'*}) ---"
  # shellcheck disable=SC2086  # two KEY=VALUE lines of [A-Za-z0-9+/=]
  env $creds AWS_PAGER="" AWS_CA_BUNDLE="$STRATUS_CA_FILE" aws ec2 describe-instances \
    --endpoint-url "https://$EC2_LISTEN" --region us-east-1 \
    --output table --query 'Reservations[].Instances[].[InstanceId,State.Name,PrivateIpAddress,Tags[0].Value]' ||
    echo "(the EC2 API did not answer; see $DATA/stratusd.log)"
fi
echo
echo "--- serial console of instance/web-1 ---"
"$CTL" logs instance/web-1 | tail -n 15
echo
echo "Server: $STRATUS_SERVER (CA: $STRATUS_CA_FILE). As the admin: export STRATUS_CONFIG=$STRATUS_CONFIG"
echo "  (stratusctl get instances; KUBECONFIG=$STRATUS_CONFIG kubectl get instances.stratus.io; users, tokens and"
echo "  roles: README, Users, tokens and roles)"
echo "Guests' network namespace: $STRATUS_NETNS (try: ip netns exec $STRATUS_NETNS ip addr)"
echo "Stop it with: scripts/quickstart-stop.sh   (the objects and data in $DATA stay; quickstart.sh starts it again)"
