#!/usr/bin/env bash
# Builds Debian's cpprestsdk (source package `cpprest`, the version the system's libcpprest-dev comes from) with
# ThreadSanitizer into PREFIX, for the TSan lane (STRATUS_SANITIZE=thread scripts/test.sh). TSan cannot see
# synchronisation inside an uninstrumented library: with Debian's binary libcpprest every hand-over between its
# threads (pplx tasks, the listener's asio strands) reads as a race. Idempotent: nothing happens when PREFIX has it.
#   scripts/build-cpprest-tsan.sh PREFIX
set -euo pipefail
PREFIX="${1:?usage: $0 PREFIX}"
[ -f "$PREFIX/lib/cmake/cpprestsdk/cpprestsdk-config.cmake" ] && exit 0
WORK="$(dirname "$PREFIX")/cpprest-src"
mkdir -p "$WORK/lists/partial"
# Debian's source index in a private list dir: the system's apt configuration and lists are left as they are.
echo "deb-src http://deb.debian.org/debian $(. /etc/os-release && echo "$VERSION_CODENAME") main" >"$WORK/src.list"
APT=(-o "Dir::Etc::SourceList=$WORK/src.list" -o "Dir::Etc::SourceParts=/dev/null" -o "Dir::State::Lists=$WORK/lists")
apt-get "${APT[@]}" update >/dev/null
version="$(dpkg-query -W -f '${source:Version}' libcpprest-dev)"
(cd "$WORK" && apt-get "${APT[@]}" source "cpprest=$version" >/dev/null 2>&1)
SRC="$(find "$WORK" -mindepth 1 -maxdepth 1 -type d -name 'cpprest-[0-9]*' | head -n 1)"
# CPPREST_EXPORT_DIR is below the install's lib dir: cmake/cpprestsdk puts the config at PREFIX/lib/cmake/cpprestsdk,
# where scripts/test.sh points cpprestsdk_DIR (lib/cmake/... put it at lib/lib/cmake/..., and CMake then quietly
# found Debian's uninstrumented libcpprest instead).
cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
  -DCMAKE_CXX_FLAGS="-fsanitize=thread" -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" -DBUILD_TESTS=OFF \
  -DBUILD_SAMPLES=OFF -DCPPREST_EXCLUDE_WEBSOCKETS=ON -DCPPREST_EXCLUDE_BROTLI=ON -DWERROR=OFF \
  -DCPPREST_EXPORT_DIR=cmake/cpprestsdk -DCMAKE_INSTALL_PREFIX="$PREFIX" >/dev/null
cmake --build "$WORK/build" -j"$(nproc)"
cmake --install "$WORK/build" >/dev/null
echo "build-cpprest-tsan: cpprestsdk $version with TSan in $PREFIX"
