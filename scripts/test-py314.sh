#!/usr/bin/env bash
# Optional: run the pytest suite on Python 3.14, inside the Debian sid root
# that ../shared/tools/py314 provides (needs root and Debian's archive; not
# part of CI).  pip inside the root cannot reach PyPI, so the wheels are
# downloaded on the host first.
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY314=${PY314:-$REPO/../shared/tools/py314}
ROOT=$("$PY314" setup | tail -n 1)
WHEELS=$ROOT/tmp/manygil-wheels
mkdir -p "$WHEELS"
HOSTPY=$(command -v python3)
"$HOSTPY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.14 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux_2_28_x86_64 --platform any -d "$WHEELS" \
  meson-python meson ninja packaging pyproject-metadata pytest pytest-timeout hypothesis \
  iniconfig pluggy pygments sortedcontainers attrs numpy
"$PY314" run python3.14 -m venv /tmp/manygil-v314
"$PY314" run /tmp/manygil-v314/bin/pip install -q --no-index --find-links /tmp/manygil-wheels \
  meson-python meson ninja pytest pytest-timeout hypothesis numpy
cd "$REPO"
"$PY314" run env PATH=/tmp/manygil-v314/bin:/usr/bin:/bin /tmp/manygil-v314/bin/pip install -q \
  --no-index --no-build-isolation --force-reinstall --no-deps .
"$PY314" run bash -c "cd /tmp && /tmp/manygil-v314/bin/python -m pytest '$REPO/tests' -q -p no:cacheprovider $*"
