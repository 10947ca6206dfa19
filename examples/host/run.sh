#!/usr/bin/env bash
# Build examples/host/host.c against an installed manygil and run it:
#   examples/host/run.sh PYTHON [ROWS] [THREADS] [--gil]
# PYTHON is an interpreter that has manygil installed (a venv's python is
# fine).  The program includes manygil.h from manygil.get_include() and
# links only libpython; PYTHONPATH points the embedded Python at PYTHON's
# packages (an embedded interpreter does not know about venvs).
# Defaults: 1,000,000 rows; THREADS = the number of CPUs (at least 2).
# Prints, last, one line per thread count: threads=N rows_per_s=R
set -eu
PY=${1:?usage: run.sh PYTHON [ROWS] [THREADS] [--gil]}
ROWS=${2:-1000000}
THREADS=${3:-$(nproc 2>/dev/null || echo 2)}
[ "$THREADS" -ge 2 ] || THREADS=2
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${MANYGIL_HOST_BUILD:-$(mktemp -d)}
mkdir -p "$OUT"
read -r MGINC PYINC LIBDIR LDVER SITE < <("$PY" -c '
import manygil, sysconfig, os
v = sysconfig.get_config_var
print(manygil.get_include(), sysconfig.get_paths()["include"], v("LIBDIR"), v("LDVERSION"),
      os.path.dirname(os.path.dirname(manygil.__file__)))')
CC=${CC:-cc}
# shellcheck disable=SC2086
$CC -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror ${HOST_CFLAGS:-} \
  -I"$MGINC" -I"$PYINC" "$HERE/host.c" -o "$OUT/host" \
  -L"$LIBDIR" -Wl,-rpath,"$LIBDIR" -lpython"$LDVER" -lpthread -lm
PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" exec "$OUT/host" "$ROWS" "$THREADS" ${4:-}
