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
  if timeout 120 "$OUT/$name"; then passed=$((passed + 1)); else
    echo "C test $name: FAILED (exit $?)"; failed=$((failed + 1)); fi
done
echo "C tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
