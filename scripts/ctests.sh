#!/usr/bin/env bash
# Build and run the C tests (tests/c/test_*.c) against Python $1: each test
# program runs in its own process under a timeout.
# MANYGIL_CTEST_SANITIZE=thread (or address,undefined) builds them with that
# sanitizer; a report fails the test (the sanitizers' exit codes are kept).
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY="$1"
SAN=${MANYGIL_CTEST_SANITIZE:-}
OUT="$REPO/tests/c/bin/$("$PY" -c "import sys; print('%d.%d%s' % (sys.version_info[:2] + (sys.abiflags,)))")${SAN:+-${SAN//,/-}}"
mkdir -p "$OUT"
read -r PYINC PYLIBDIR PYLDVER < <("$PY" -c "import sysconfig as s; v = s.get_config_var; print(s.get_paths()['include'], v('LIBDIR'), v('LDVERSION'))")
CFLAGS="-std=c11 -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE -DMG_BUILDING -I$REPO/include -I$REPO/src"
if [ -n "$SAN" ]; then
  CFLAGS="$CFLAGS -fsanitize=$SAN -fno-omit-frame-pointer -fno-sanitize-recover=all"
  export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1 suppressions=$REPO/tests/c/tsan.supp}"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1 print_stacktrace=1}"
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
fi
CORE=$(ls "$REPO"/src/core/*.c)
PYSRC=$(ls "$REPO"/src/py/*.c)
passed=0; failed=0
for src in "$REPO"/tests/c/test_*.c; do
  name=$(basename "$src" .c)
  if grep -q "include <Python.h>" "$src"; then
    extra="-I$PYINC $PYSRC -L$PYLIBDIR -Wl,-rpath,$PYLIBDIR -lpython$PYLDVER -lm"
  else
    extra=""
  fi
  # shellcheck disable=SC2086
  if ! gcc $CFLAGS "$src" $CORE $extra -lpthread -o "$OUT/$name"; then
    echo "C test $name: build FAILED"; failed=$((failed + 1)); continue
  fi
  # A test that measures parallel speed-up (it says so in a comment
  # "measures: parallel") runs while no other job of scripts/test.sh measures
  # (the lock tests/conftest.py's two_cores fixture takes); after 300 s of
  # waiting (flock's exit 75) it runs anyway.
  run=(timeout 120 "$OUT/$name")
  rc=75
  if grep -q "measures: parallel" "$src" && [ -d "$REPO/.test-logs" ] && command -v flock >/dev/null; then
    flock -E 75 -w 300 "$REPO/.test-logs/timing.lock" "${run[@]}"; rc=$?
  fi
  if [ "$rc" -eq 75 ]; then "${run[@]}"; rc=$?; fi
  if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); else
    echo "C test $name: FAILED (exit $rc)"; failed=$((failed + 1)); fi
done
echo "C tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
