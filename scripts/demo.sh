#!/usr/bin/env bash
# The main job: build manygil for the newest CPython >= 3.12 found, then run
# one CPU-bound pure-Python workload sequentially, on ThreadPoolExecutor, on
# ProcessPoolExecutor and on manygil's pool, each with a progress bar
# (python -m manygil demo), and print one table: time, speedup, peak memory.  With no
# CPython >= 3.12 on PATH or under pyenv, it uses Debian's 3.15 in the sid
# root of scripts/debian-root.sh (needs root and Debian's archive).
# Usage: scripts/demo.sh [--limit N] [--workers N]
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/scripts/find-pythons.sh"
find_pythons
cd "$REPO"
if [ ${#PYTHONS[@]} -gt 0 ]; then
  vpy=$(make_venv "${PYTHONS[0]}")
  exec "$vpy" -m manygil demo "$@"
fi
echo "no CPython >= 3.12 on PATH or under pyenv: using Debian's python3.15 (scripts/debian-root.sh)" >&2
"$REPO/scripts/debian-root.sh" setup >/dev/null \
  || { echo "no CPython >= 3.12 found, and no Debian root could be made" >&2; exit 2; }
"$REPO/scripts/debian-root.sh" wheels 3.15 "$REPO/.wheels/3.15" 2>/dev/null
exec "$REPO/scripts/debian-root.sh" run env PIP_NO_INDEX=1 PIP_FIND_LINKS="$REPO/.wheels/3.15" bash -c '
  . scripts/find-pythons.sh; REPO=$(pwd)
  vpy=$(make_venv /usr/bin/python3.15 "$REPO/.venv-3.15") && exec "$vpy" -m manygil demo "$@"' demo "$@"
