#!/usr/bin/env bash
# run-suite.sh JOB VENV_PY [pytest args...]: the C tests (scripts/ctests.sh)
# and pytest for one job, with the Python of an installed venv.  Writes
# .test-logs/JOB.ctests (the C tests' closing line) and .test-logs/JOB.xml
# (pytest's JUnit report), which scripts/test.sh sums up.
# MANYGIL_CTEST_SANITIZE=thread builds the C tests with that sanitizer.
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
JOB=$1 VPY=$2; shift 2
LOGS=$REPO/.test-logs
mkdir -p "$LOGS"
status=0
"$REPO/scripts/ctests.sh" "$VPY" 2>&1 | tee "$LOGS/$JOB.clog"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
grep -E '^C tests: ' "$LOGS/$JOB.clog" | tail -n 1 >"$LOGS/$JOB.ctests" || true
if [ "${MANYGIL_CTESTS_ONLY:-0}" != 1 ]; then
  # No test paths among the arguments: all of tests/.
  paths=(tests)
  for a in "$@"; do [ -e "$REPO/${a%%::*}" ] && { paths=(); break; }; done
  # A bound on the whole run: a process that hangs (at exit, say) must not
  # eat the rest of the budget; pytest-timeout bounds each test inside it.
  (cd "$REPO" && timeout -k 30 "${MANYGIL_SUITE_TIMEOUT:-2400}" \
     "$VPY" -m pytest "${paths[@]}" -q -p no:cacheprovider --junitxml="$LOGS/$JOB.xml" "$@") || status=1
fi
exit $status
