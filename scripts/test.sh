#!/usr/bin/env bash
# Installs dependencies, builds, prepares libvirt and the test guest, and runs the whole test suite with CTest:
# unit, integration (libvirt test:///default) and end-to-end (qemu:///system, TCG) tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build}"
"$ROOT/scripts/install-deps.sh"
# STRATUS_SANITIZE=address (ASan+UBSan) or thread (TSan): a separate build that runs the unit and integration
# tests (the end-to-end tests boot real guests and are run by the plain build).
SANITIZE="${STRATUS_SANITIZE:-}"
if [ -n "$SANITIZE" ]; then
  BUILD="${BUILD_DIR:-$ROOT/build-$SANITIZE}"
  EXTRA=()
  if [ "$SANITIZE" = thread ]; then
    # TSan needs the HTTP library instrumented too: Debian's cpprestsdk source, built with TSan (once).
    "$ROOT/scripts/build-cpprest-tsan.sh" "$BUILD/deps/cpprest"
    EXTRA=(-Dcpprestsdk_DIR="$BUILD/deps/cpprest/lib/cmake/cpprestsdk")
  fi
  # -O1 -g1: sanitizer builds compile several times slower than plain ones; this keeps them affordable on 2 cores.
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Sanitize -DCMAKE_CXX_FLAGS_SANITIZE="-O1 -g1" \
    -DSTRATUS_SANITIZE="$SANITIZE" -DSTRATUS_BUILD_BENCH=OFF "${EXTRA[@]}" >/dev/null
  if [ "$SANITIZE" = thread ] && ! grep -q "^cpprestsdk_DIR:[A-Z]*=$BUILD/deps/cpprest/lib/cmake/cpprestsdk\$" "$BUILD/CMakeCache.txt"; then
    echo "test.sh: the TSan build would link Debian's uninstrumented libcpprest (see $BUILD/CMakeCache.txt)" >&2
    exit 1
  fi
  cmake --build "$BUILD" -j"$(nproc)"
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0}"
  export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$ROOT/tests/sanitizers/lsan.supp}"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=$ROOT/tests/sanitizers/ubsan.supp}"
  export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$ROOT/tests/sanitizers/tsan.supp}"
  # Time bounds in tests (a SIGTERM answered within 5 s, ...) are scaled: sanitized code runs several times slower.
  export STRATUS_TEST_TIME_SCALE="${STRATUS_TEST_TIME_SCALE:-3}"
  cd "$BUILD"
  exec ctest --output-on-failure -j"$(nproc)" --timeout 900 -L 'unit|integration'
fi
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
# libvirtd/virtlogd for the end-to-end tests, inside a network namespace of their own (the e2e binary joins it:
# bridges, dnsmasq, taps and the guests' private addresses stay there); stop exactly what we started.
export STRATUS_LIBVIRT_PIDFILE="${STRATUS_LIBVIRT_PIDFILE:-$BUILD/libvirt.pids}"
export STRATUS_NETNS="${STRATUS_NETNS:-stratus-e2e}"
trap '"$ROOT/scripts/libvirt-down.sh" || true' EXIT
"$ROOT/scripts/libvirt-up.sh" >/dev/null
export STRATUS_GUEST_DIR="${STRATUS_GUEST_DIR:-$BUILD/guest}"
"$ROOT/tests/guest/build-guest.sh" "$STRATUS_GUEST_DIR" >/dev/null
# Every test removes what it defined in libvirt: the pools and domains are the same before and after the suite.
LIBVIRT_BEFORE="$("$ROOT/scripts/libvirt-objects.sh" list)"
cd "$BUILD"
rc=0
ctest --output-on-failure -j"$(nproc)" --timeout 900 || rc=$?
LIBVIRT_AFTER="$("$ROOT/scripts/libvirt-objects.sh" list)"
if [ "$LIBVIRT_BEFORE" != "$LIBVIRT_AFTER" ]; then
  echo "test.sh: the tests left libvirt objects behind (or removed some): before < > after" >&2
  diff <(echo "$LIBVIRT_BEFORE") <(echo "$LIBVIRT_AFTER") >&2 || true
  [ "$rc" != 0 ] || rc=1
fi
exit "$rc"
