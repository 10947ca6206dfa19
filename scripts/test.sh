#!/usr/bin/env bash
# Run every test, on every supported CPython, with the debug-build and
# sanitizer gates.  The jobs:
#   3.12, 3.13          CPython from PATH or pyenv (release builds)
#   3.14, 3.15          Debian's packages, in a sid root (scripts/debian-root.sh)
#   3.14-dbg, 3.15-dbg  Debian's debug builds (Py_DEBUG) in the same root; they
#                       also run the reference-leak checks (tests/test_refleaks.py)
#   3.15-asan           the extension and the C tests built with ASan+UBSan, the
#                       whole suite under them (scripts/root-job.sh)
#   ctests-tsan         the C tests built with ThreadSanitizer
# Each job builds manygil into its own venv (.venv-JOB), runs the C tests
# (tests/c, each in its own process with a timeout) and pytest (tests/, the
# fault suite tests/stress included).  Jobs run MANYGIL_PARALLEL (default 2)
# at a time: most of the suite waits on wake-ups and timeouts rather than
# computing, and tests that measure parallel speed-up check what the machine
# gives at that moment.  A version that cannot be had here (no root, no
# Debian archive) is reported as SKIPPED, loudly, and the rest still run.
# The last lines give per-job counts and minutes, then the total.
#
# Usage: scripts/test.sh [pytest args...]     (e.g. tests/test_pool.py -x)
#   MANYGIL_JOBS="3.13 3.15-dbg"   only those jobs
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/scripts/find-pythons.sh"
LOGS=$REPO/.test-logs
rm -rf "$LOGS"; mkdir -p "$LOGS"
T0=$(date +%s)
PARALLEL=${MANYGIL_PARALLEL:-2}
PYTEST_ARGS=("$@")
declare -a JOBS=() SKIPPED=()
declare -A WHERE=() EXE=()

wanted() { [ -z "${MANYGIL_JOBS:-}" ] || [[ " $MANYGIL_JOBS " == *" $1 "* ]]; }
add_job() { wanted "$1" || return 0; JOBS+=("$1"); WHERE[$1]=$2; EXE[$1]=$3; }
version_of() { "$1" -c "import sys; print('%d.%d' % sys.version_info[:2])"; }

# ---- which jobs this machine can run -----------------------------------------
find_pythons 13 12
host_py=""
for py in "${PYTHONS[@]}"; do
  add_job "$(version_of "$py")" host "$py"; host_py=${host_py:-$py}
done
for ver in 3.13 3.12; do
  [ -n "${EXE[$ver]:-}" ] || ! wanted "$ver" || SKIPPED+=("$ver: no CPython $ver on PATH or under pyenv")
done

deb_wanted=()
for job in 3.15-asan 3.15-dbg 3.14-dbg 3.15 3.14; do wanted "$job" && deb_wanted+=("$job"); done
root_ok=0
if [ ${#deb_wanted[@]} -gt 0 ] || { wanted ctests-tsan && [ -z "$host_py" ]; }; then
  echo "=== Debian sid root (scripts/debian-root.sh setup)"
  if root_err=$("$REPO/scripts/debian-root.sh" setup 2>&1 >/dev/null); then
    root_ok=1
    for ver in 3.14 3.15; do
      if ! "$REPO/scripts/debian-root.sh" wheels "$ver" "$REPO/.wheels/$ver" 2>"$LOGS/wheels-$ver.err"; then
        grep -v '^WARNING: Location' "$LOGS/wheels-$ver.err" >&2
        echo "=== could not download the test tools' wheels for $ver" >&2
      fi
    done
    for job in "${deb_wanted[@]}"; do
      ver=${job%%-*}
      case $job in *-dbg) add_job "$job" root "python${ver}d" ;; *) add_job "$job" root "python$ver" ;; esac
    done
  else
    for job in "${deb_wanted[@]}"; do SKIPPED+=("$job: $root_err"); done
    # Without the root, a 3.14/3.15 of this machine's own still gets tested.
    find_pythons 15 14
    for py in "${PYTHONS[@]}"; do add_job "$(version_of "$py")" host "$py"; done
  fi
fi
if [ -n "$host_py" ]; then add_job ctests-tsan tsan-host "$host_py"
elif [ "$root_ok" = 1 ]; then add_job ctests-tsan tsan-root python3.15
elif wanted ctests-tsan; then SKIPPED+=("ctests-tsan: no CPython >= 3.12 here and no Debian root"); fi

# ---- running one job (output to .test-logs/JOB.out) ---------------------------
run_job() {
  local job=$1 where=${WHERE[$1]} exe=${EXE[$1]} vpy rc=0
  local ver=${job%%-*}
  echo "=== $job (${exe}, ${where})"
  case $where in
    host)
      if vpy=$(make_venv "$exe" "$REPO/.venv-$job"); then
        "$REPO/scripts/run-suite.sh" "$job" "$vpy" "${PYTEST_ARGS[@]}" || rc=$?
      else echo "=== build failed for $job"; rc=1; fi ;;
    tsan-host)
      MANYGIL_CTEST_SANITIZE=thread MANYGIL_CTESTS_ONLY=1 "$REPO/scripts/run-suite.sh" "$job" "$exe" || rc=$? ;;
    tsan-root)
      (cd "$REPO" && "$REPO/scripts/debian-root.sh" run env MANYGIL_CTEST_SANITIZE=thread MANYGIL_CTESTS_ONLY=1 \
         bash "$REPO/scripts/run-suite.sh" "$job" "/usr/bin/$exe") || rc=$? ;;
    root)
      local setup=()
      [[ $job == *-asan ]] && setup=(-Db_sanitize=address,undefined -Db_lundef=false)
      (cd "$REPO" && "$REPO/scripts/debian-root.sh" run env PIP_NO_INDEX=1 PIP_FIND_LINKS="$REPO/.wheels/$ver" \
         bash "$REPO/scripts/root-job.sh" "$job" "$exe" "${setup[@]}" -- "${PYTEST_ARGS[@]}") || rc=$? ;;
  esac
  return $rc
}

# run_job in the background: JOB.out, then JOB.rc and JOB.time when done.
launch() {
  local job=$1
  ( start=$(date +%s); run_job "$job" >"$LOGS/$job.out" 2>&1; rc=$?
    echo "$start $(date +%s)" >"$LOGS/$job.time"; echo "$rc" >"$LOGS/$job.rc" ) &
}

# ---- the schedule: longest jobs first, PARALLEL at a time ----------------------
declare -a ORDER=() RESULTS=()
for job in 3.15-asan 3.15-dbg 3.14-dbg 3.15 3.14 3.13 3.12 ctests-tsan; do
  [ -n "${WHERE[$job]:-}" ] && ORDER+=("$job")
done
status=0
declare -A SHOWN=()
pending=("${ORDER[@]}")
running=0
report_done() {   # print the log of every finished job not shown yet
  local job start end rc counts mins
  for job in "${ORDER[@]}"; do
    [ -f "$LOGS/$job.rc" ] && [ -z "${SHOWN[$job]:-}" ] || continue
    SHOWN[$job]=1; running=$((running - 1))
    grep -v '^WARNING: Location' "$LOGS/$job.out"
    read -r start end <"$LOGS/$job.time"; rc=$(cat "$LOGS/$job.rc")
    mins=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", (e - s) / 60 }')
    counts=$(python3 "$REPO/scripts/junit_counts.py" "$LOGS/$job.xml" "$LOGS/$job.ctests")
    RESULTS+=("$(printf '%-12s %s, %s min%s' "$job" "$counts" "$mins" "$([ "$rc" -eq 0 ] || echo ', FAILED')")")
    [ "$rc" -eq 0 ] || status=1
    echo "=== $job done: $counts, $mins min (exit $rc)"
  done
}
while [ ${#pending[@]} -gt 0 ] || [ "$running" -gt 0 ]; do
  while [ ${#pending[@]} -gt 0 ] && [ "$running" -lt "$PARALLEL" ]; do
    launch "${pending[0]}"; running=$((running + 1)); pending=("${pending[@]:1}")
  done
  sleep 2
  report_done
done
wait

# ---- summary --------------------------------------------------------------------
echo
echo "=== per job (counts: pytest, and the C tests passed/run)"
for line in "${RESULTS[@]}"; do echo "$line"; done
for line in "${SKIPPED[@]}"; do echo "SKIPPED      $line"; done
[ ${#SKIPPED[@]} -eq 0 ] || echo "!!! ${#SKIPPED[@]} job(s) SKIPPED: those versions or gates were NOT tested on this machine"
[ ${#RESULTS[@]} -gt 0 ] || { echo "no job ran (no CPython >= 3.12 found, no Debian root)"; status=2; }
awk -v s="$T0" -v e="$(date +%s)" 'BEGIN { printf "=== total %.1f min, %d job(s) at a time\n", (e - s) / 60, '"$PARALLEL"' }'
python3 "$REPO/scripts/junit_counts.py" --total "$LOGS"
exit $status
