#!/usr/bin/env bash
# Build and run the C tests (tests/c/test_*.c) against Python $1: each test
# program runs in its own process under a timeout.
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY="$1"
OUT="$REPO/tests/c/bin/$("$PY" -c "import sys; print('%d.%d' % sys.version_info[:2])")"
mkdir -p "$OUT"
read -r PYINC PYLIBDIR PYLDVER < <("$PY" -c "import sysconfig as s; v = s.get_config_var; print(s.get_paths()['include'], v('LIBDIR'), v('LDVERSION'))")
CFLAGS="-std=c11 -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE -I$REPO/include -I$REPO/src"
CORE="$REPO/src/core/buf.c $REPO/src/core/channel.c $REPO/src/core/deadlock.c $REPO/src/core/errors.c $REPO/src/core/pool.c $REPO/src/core/registry.c $REPO/src/core/shbuf.c $REPO/src/core/waits.c"
PYSRC="$REPO/src/py/channel.c $REPO/src/py/codec.c $REPO/src/py/embed.c $REPO/src/py/errors.c $REPO/src/py/fork.c $REPO/src/py/interp.c $REPO/src/py/interrupt.c $REPO/src/py/module.c $REPO/src/py/pool.c $REPO/src/py/pool_limits.c $REPO/src/py/runsrc.c $REPO/src/py/shbuf.c $REPO/src/py/watch.c"
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
