#!/usr/bin/env bash
# root-job.sh JOB EXE [MESON_SETUP_ARG...] -- [pytest args...]
# Inside the Debian root (scripts/debian-root.sh run): build manygil for the
# interpreter EXE into .venv-JOB and run the suite (scripts/run-suite.sh).
# A JOB ending in -asan runs it all with ASan+UBSan: the runtime preloaded
# (the interpreter itself is not instrumented), every allocation through
# malloc so ASan sees it, a report fatal to the process that made it, and
# the whole log scanned for reports afterwards (a child process's report
# fails the job even where its test did not look at its stderr).
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/scripts/find-pythons.sh"
JOB=$1 EXE=$2; shift 2
setup=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do setup+=("$1"); shift; done
[ $# -gt 0 ] && shift
vpy=$(make_venv "$(command -v "$EXE")" "$REPO/.venv-$JOB" "${setup[@]}") || { echo "=== build failed for $JOB"; exit 1; }
case $JOB in
  *-asan)
    libasan=$(gcc -print-file-name=libasan.so)
    # libstdc++ as well: ASan's __cxa_throw interceptor looks the real one up at start-up,
    # and the interpreter does not link it, so the first C++ exception of a C++ extension
    # (duckdb) would abort on ASan's CHECK (real___cxa_throw != 0).
    export LD_PRELOAD=$libasan:$(gcc -print-file-name=libstdc++.so.6)
    export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:detect_stack_use_after_return=0"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
    export MANYGIL_TIMEOUT_SCALE=${MANYGIL_TIMEOUT_SCALE:-2}
    export MANYGIL_STRESS=${MANYGIL_STRESS:-0.5}      # the fault suite, half as many repetitions
    export PYTHONMALLOC=malloc MANYGIL_SANITIZER=address,undefined MANYGIL_CTEST_SANITIZE=address,undefined
    log=$REPO/.test-logs/$JOB.log
    mkdir -p "$REPO/.test-logs"
    "$REPO/scripts/run-suite.sh" "$JOB" "$vpy" "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    reports=$(grep -nE 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer' "$log" | head -n 20)
    if [ -n "$reports" ]; then
      printf '%s\n' "$reports"; echo "=== $JOB: sanitizer reports above"; rc=1
    fi
    exit "$rc" ;;
  *-dbg)
    export MANYGIL_TIMEOUT_SCALE=${MANYGIL_TIMEOUT_SCALE:-3}
    export MANYGIL_STRESS=${MANYGIL_STRESS:-0.5}
    exec "$REPO/scripts/run-suite.sh" "$JOB" "$vpy" "$@" ;;
  *)
    exec "$REPO/scripts/run-suite.sh" "$JOB" "$vpy" "$@" ;;
esac
