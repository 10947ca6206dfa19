#!/usr/bin/env bash
# Build a host program against an installed manygil, the way a real host
# does: manygil.h from manygil.get_include(), libpython only.
#   tests/host/build.sh PYTHON SOURCE.c OUTPUT
# Prints the PYTHONPATH the program needs (PYTHON's packages) on stdout.
set -eu
PY=$1 SRC=$2 OUT=$3
read -r MGINC PYINC LIBDIR LDVER SITE < <("$PY" -c '
import manygil, sysconfig, os
v = sysconfig.get_config_var
print(manygil.get_include(), sysconfig.get_paths()["include"], v("LIBDIR"), v("LDVERSION"),
      os.path.dirname(os.path.dirname(manygil.__file__)))')
# shellcheck disable=SC2086
${CC:-cc} -O1 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror ${HOST_CFLAGS:-} \
  -I"$MGINC" -I"$PYINC" "$SRC" -o "$OUT" \
  -L"$LIBDIR" -Wl,-rpath,"$LIBDIR" -lpython"$LDVER" -lpthread -lm >&2
echo "$SITE"
