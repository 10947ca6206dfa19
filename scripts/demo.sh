#!/usr/bin/env bash
# The main job: build manygil for the newest CPython >= 3.12 found, then run
# the same CPU-bound pure-Python workload sequentially and on all cores
# (python -m manygil demo) and print both times and the speedup.
# Usage: scripts/demo.sh [--limit N] [--workers N]
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/scripts/find-pythons.sh"
find_pythons
if [ ${#PYTHONS[@]} -eq 0 ]; then
  echo "no CPython >= 3.12 found (looked for python3.12+ on PATH and under pyenv)" >&2
  exit 2
fi
vpy=$(make_venv "${PYTHONS[0]}")
cd "$REPO"
exec "$vpy" -m manygil demo "$@"
