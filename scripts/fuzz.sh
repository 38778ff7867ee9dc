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
  local args=(-max_len="$MAX_LEN" -timeout=10 -rss_limit_mb=2048
    -detect_leaks=1 -print_final_stats=1 -artifact_prefix="$art")
  [ -f "$SRC/tests/fuzz/$t.dict" ] && args+=(-dict="$SRC/tests/fuzz/$t.dict")
  local seeds=()
  [ -d "$SRC/tests/fuzz/corpus/$t" ] && seeds+=("$SRC/tests/fuzz/corpus/$t")
  local start rc=0 execs=0 cov="" result=ok spurious=0 part=$OUT/logs/$t.part.log
  start=$(date +%s)
  : >"$log"
  # libFuzzer's -timeout is wall-clock time: on a machine shared with builds, a niced fuzzer can be starved long
  # enough for a millisecond input to "time out". So a timeout is run again alone with a generous bound; when it
  # passes there, it is recorded as spurious and fuzzing resumes for the rest of the time. Real hangs still fail.
  while :; do
    local left=$(( SECONDS_PER_TARGET - ($(date +%s) - start) ))
    ((left > 0)) || break
    rc=0
    # New inputs go to the first (working) corpus directory, never into the source tree.
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      nice -n 19 "$bin" "${args[@]}" -max_total_time="$left" "$corpus" "${seeds[@]}" >"$part" 2>&1 || rc=$?
    cat "$part" >>"$log"
    local n
    n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$part" | tail -1)
    execs=$((execs + ${n:-0}))
    n=$(grep -o 'cov: [0-9]*' "$part" | tail -1 | cut -d' ' -f2)
    [ -n "$n" ] && cov=$n
    [ "$rc" = 0 ] && break
    local hang
    hang=$(sed -n "s|.*Test unit written to \(${art}timeout-[0-9a-f]*\).*|\1|p" "$part" | tail -1)
    if [ -n "$hang" ] && nice -n 19 "$bin" -timeout=60 -rss_limit_mb=2048 "$hang" >"$part.repro" 2>&1; then
      mkdir -p "${art}spurious"
      mv "$hang" "${art}spurious/"
      spurious=$((spurious + 1))
      echo "== spurious timeout (passes alone within 60 s): ${art}spurious/$(basename "$hang")" >>"$log"
      continue
    fi
    break
  done
  local secs=$(( $(date +%s) - start ))
  if [ "$rc" != 0 ]; then
    result="FAIL(rc=$rc)"
    grep -q 'ERROR: libFuzzer: timeout' "$part" && result=HANG
    grep -q 'ERROR: LeakSanitizer' "$part" && result=LEAK
    grep -q 'ERROR: libFuzzer: out-of-memory' "$part" && result=OOM
    grep -qE 'ERROR: AddressSanitizer|runtime error:|ERROR: libFuzzer: deadly signal' "$part" && result=CRASH
    result="$result artifacts=$art log=$log"
  fi
  ((spurious == 0)) || result="$result (spurious timeouts from CPU starvation: $spurious)"
  printf '%-10s seconds=%-5s execs=%-10s cov=%-6s result=%s\n' "$t" "$secs" "$execs" "${cov:-?}" "$result" \
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
