#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang + ASan/UBSan into build-fuzz and runs each for SECONDS.
#   scripts/fuzz.sh [SECONDS] [TARGET...]      (default 600 s; targets: tests/fuzz/<name>_fuzz.cpp, all by default)
# Environment: FUZZ_OUT (default /tmp/stratus-fuzz: working corpora, logs, crash artifacts — outside the source
# tree), FUZZ_JOBS (targets run at once, default 1), FUZZ_MAX_LEN (default 4096), FUZZ_NO_BUILD=1 (reuse build).
# Prints one line per target (name, seconds, executions, coverage, result); exits 1 if any target found a crash,
# a hang (-timeout=10), a leak or an out-of-memory (-rss_limit_mb=2048).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_PER_TARGET=${1:-600}
shift || true
OUT=${FUZZ_OUT:-/tmp/stratus-fuzz}
JOBS=${FUZZ_JOBS:-1}
MAX_LEN=${FUZZ_MAX_LEN:-4096}
BUILD=$SRC/build-fuzz

if [ "$#" -gt 0 ]; then
  TARGETS=("$@")
else
  TARGETS=()
  for f in "$SRC"/tests/fuzz/*_fuzz.cpp; do b=$(basename "$f"); TARGETS+=("${b%_fuzz.cpp}"); done
fi

# clang and its runtime libraries (libFuzzer, ASan, UBSan).
need=()
command -v clang++ >/dev/null || need+=(clang)
ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 || need+=(libclang-rt-14-dev)
command -v ccache >/dev/null || need+=(ccache)
if ((${#need[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

if [ "${FUZZ_NO_BUILD:-0}" != 1 ]; then
  CC=clang CXX=clang++ cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATUS_FUZZ=ON \
    -DSTRATUS_BUILD_TESTS=OFF -DSTRATUS_BUILD_BENCH=OFF >/dev/null
  nice -n 19 cmake --build "$BUILD" -j2 --target $(printf 'fuzz_%s ' "${TARGETS[@]}") 2>&1 | tail -3
fi

run_one() {
  local t=$1 bin=$BUILD/tests/fuzz/fuzz_$1
  local corpus=$OUT/corpus/$t art=$OUT/artifacts/$t/ log=$OUT/logs/$t.log
  mkdir -p "$corpus" "$art" "$OUT/logs"
  local args=(-max_total_time="$SECONDS_PER_TARGET" -max_len="$MAX_LEN" -timeout=10 -rss_limit_mb=2048
    -detect_leaks=1 -print_final_stats=1 -artifact_prefix="$art")
  [ -f "$SRC/tests/fuzz/$t.dict" ] && args+=(-dict="$SRC/tests/fuzz/$t.dict")
  local seeds=()
  [ -d "$SRC/tests/fuzz/corpus/$t" ] && seeds+=("$SRC/tests/fuzz/corpus/$t")
  local start rc=0
  start=$(date +%s)
  # New inputs go to the first (working) corpus directory, never into the source tree.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    nice -n 19 "$bin" "${args[@]}" "$corpus" "${seeds[@]}" >"$log" 2>&1 || rc=$?
  local secs=$(( $(date +%s) - start ))
  local execs cov result=ok
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  if [ "$rc" != 0 ]; then
    result="FAIL(rc=$rc)"
    grep -q 'ERROR: libFuzzer: timeout' "$log" && result=HANG
    grep -q 'ERROR: LeakSanitizer' "$log" && result=LEAK
    grep -q 'ERROR: libFuzzer: out-of-memory' "$log" && result=OOM
    grep -qE 'ERROR: AddressSanitizer|runtime error:|ERROR: libFuzzer: deadly signal' "$log" && result=CRASH
    result="$result artifacts=$art log=$log"
  fi
  printf '%-10s seconds=%-5s execs=%-10s cov=%-6s result=%s\n' "$t" "$secs" "${execs:-?}" "${cov:-?}" "$result" \
    | tee "$OUT/logs/$t.summary"
  [ "$rc" = 0 ]
}

fail=0
pids=()
for t in "${TARGETS[@]}"; do
  [ -x "$BUILD/tests/fuzz/fuzz_$t" ] || { echo "$t: no such fuzz target ($BUILD/tests/fuzz/fuzz_$t)"; fail=1; continue; }
  run_one "$t" &
  pids+=($!)
  if ((${#pids[@]} >= JOBS)); then
    wait "${pids[0]}" || fail=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || fail=1; done
exit $fail
