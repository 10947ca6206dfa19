#!/usr/bin/env bash
# Run every test, on every supported CPython, with the debug-build and
# sanitizer gates.  Jobs, in order:
#   3.13, 3.12        CPython from PATH or pyenv (release builds)
#   3.14, 3.15        Debian's packages, in a sid root (scripts/debian-root.sh)
#   3.14-dbg, 3.15-dbg  Debian's debug builds (Py_DEBUG), same root, plus the
#                     reference-leak checks (tests/test_refleaks.py)
#   3.15-asan         the extension built with ASan+UBSan, the whole suite
#                     under it (PYTHONMALLOC=malloc, so ASan sees every block)
#   ctests-tsan       the C tests built with TSan
# Each job builds manygil into its own venv (.venv-JOB), runs the C tests
# (tests/c, each in its own process with a timeout) and pytest.  A version
# that cannot be had here (no root or no Debian archive for the sid root) is
# reported as SKIPPED, loudly, and the rest still run.  The last lines give
# per-job counts and minutes, then the total.
# Usage: scripts/test.sh [pytest args...]     (e.g. tests/test_pool.py -x)
# MANYGIL_JOBS="3.13 3.15-dbg" runs only those jobs.
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/scripts/find-pythons.sh"
LOGS=$REPO/.test-logs
rm -rf "$LOGS"; mkdir -p "$LOGS"
T0=$(date +%s)
declare -a RESULTS=() SKIPPED=()
status=0

wanted() { [ -z "${MANYGIL_JOBS:-}" ] || [[ " $MANYGIL_JOBS " == *" $1 "* ]]; }

# record JOB RC START: one summary line for a job that ran.
record() {
  local job=$1 rc=$2 start=$3 mins counts
  mins=$(awk -v s="$start" -v e="$(date +%s)" 'BEGIN { printf "%.1f", (e - s) / 60 }')
  counts=$(python3 "$REPO/scripts/junit_counts.py" "$LOGS/$job.xml" "$LOGS/$job.ctests")
  RESULTS+=("$(printf '%-12s %s, %s min%s' "$job" "$counts" "$mins" "$([ "$rc" -eq 0 ] || echo ', FAILED')")")
  [ "$rc" -eq 0 ] || status=1
}

# ---- CPythons on this machine (3.12, 3.13) ------------------------------
find_pythons 13 12
host_versions=" "
for py in "${PYTHONS[@]}"; do
  ver=$("$py" -c "import sys; print('%d.%d' % sys.version_info[:2])")
  host_versions+="$ver "
  wanted "$ver" || continue
  echo "=== $ver ($py)"
  start=$(date +%s)
  if vpy=$(make_venv "$py" "$REPO/.venv-$ver"); then
    "$REPO/scripts/run-suite.sh" "$ver" "$vpy" "$@"; record "$ver" $? "$start"
  else
    echo "=== build failed for $ver"; record "$ver" 1 "$start"
  fi
done
for ver in 3.13 3.12; do
  [[ $host_versions == *" $ver "* ]] || { wanted "$ver" && SKIPPED+=("$ver: no CPython $ver on PATH or under pyenv"); }
done

# ---- the C tests under ThreadSanitizer (host compiler, host Python) -------
if wanted ctests-tsan; then
  tsan_py=""
  for v in $host_versions; do [ -x "$REPO/.venv-$v/bin/python" ] && { tsan_py=$REPO/.venv-$v/bin/python; break; }; done
  if [ -n "$tsan_py" ]; then
    echo "=== ctests-tsan ($tsan_py)"
    start=$(date +%s)
    MANYGIL_CTEST_SANITIZE=thread MANYGIL_CTESTS_ONLY=1 "$REPO/scripts/run-suite.sh" ctests-tsan "$tsan_py"
    record ctests-tsan $? "$start"
  fi
fi

# ---- Debian's CPythons (3.14, 3.15, debug builds, ASan) in a sid root ------
DEB_JOBS=()
for job in 3.14 3.15 3.14-dbg 3.15-dbg 3.15-asan; do wanted "$job" && DEB_JOBS+=("$job"); done
if [ ${#DEB_JOBS[@]} -gt 0 ]; then
  echo "=== Debian sid root for ${DEB_JOBS[*]}"
  if root_err=$("$REPO/scripts/debian-root.sh" setup 2>&1 >/dev/null); then
    for job in "${DEB_JOBS[@]}"; do
      ver=${job%%-*}; kind=${job#"$ver"}; kind=${kind#-}
      case $kind in
        dbg)  exe=python${ver}d; setup=() ;;
        asan) exe=python$ver; setup=(-Db_sanitize=address,undefined -Db_lundef=false) ;;
        *)    exe=python$ver; setup=() ;;
      esac
      echo "=== $job ($exe, Debian)"
      start=$(date +%s)
      wheels=$REPO/.wheels/$ver
      if ! "$REPO/scripts/debian-root.sh" wheels "$ver" "$wheels"; then
        echo "=== could not download the test tools' wheels for $ver"; record "$job" 1 "$start"; continue
      fi
      (cd "$REPO" && "$REPO/scripts/debian-root.sh" run env PIP_NO_INDEX=1 PIP_FIND_LINKS="$wheels" \
         MANYGIL_JOB="$job" bash "$REPO/scripts/root-job.sh" "$job" "$exe" "${setup[@]}" -- "$@")
      record "$job" $? "$start"
    done
  else
    for job in "${DEB_JOBS[@]}"; do SKIPPED+=("$job: $root_err"); done
    # Without the root, a 3.14/3.15 on this machine still gets tested.
    find_pythons 15 14
    for py in "${PYTHONS[@]}"; do
      ver=$("$py" -c "import sys; print('%d.%d' % sys.version_info[:2])")
      wanted "$ver" || continue
      echo "=== $ver ($py, this machine's)"
      start=$(date +%s)
      if vpy=$(make_venv "$py" "$REPO/.venv-$ver"); then
        "$REPO/scripts/run-suite.sh" "$ver" "$vpy" "$@"; record "$ver" $? "$start"
      else
        echo "=== build failed for $ver"; record "$ver" 1 "$start"
      fi
    done
  fi
fi

# ---- summary -----------------------------------------------------------
echo
echo "=== per job (counts: pytest + C tests)"
for line in "${RESULTS[@]}"; do echo "$line"; done
for line in "${SKIPPED[@]}"; do echo "SKIPPED     $line"; done
[ ${#SKIPPED[@]} -eq 0 ] || echo "!!! ${#SKIPPED[@]} job(s) SKIPPED: those versions or gates were NOT tested on this machine"
[ ${#RESULTS[@]} -gt 0 ] || { echo "no job ran (no CPython >= 3.12 found, no Debian root)"; status=2; }
awk -v s="$T0" -v e="$(date +%s)" 'BEGIN { printf "=== total %.1f min\n", (e - s) / 60 }'
python3 "$REPO/scripts/junit_counts.py" --total "$LOGS"
exit $status
