#!/usr/bin/env bash
# Run every test: for each CPython >= 3.12 on this machine (3.13 and 3.12
# here), build and install manygil into .venv-3.N, run the C tests
# (tests/c, each in its own process with a timeout) and pytest.
# Usage: scripts/test.sh [pytest args...]
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/scripts/find-pythons.sh"
find_pythons
if [ ${#PYTHONS[@]} -eq 0 ]; then
  echo "no CPython >= 3.12 found (looked for python3.12+ on PATH and under pyenv)" >&2
  exit 2
fi
status=0
for py in "${PYTHONS[@]}"; do
  ver=$("$py" -c "import sys; print('%d.%d' % sys.version_info[:2])")
  echo "=== Python $ver ($py)"
  vpy=$(make_venv "$py") || { echo "=== build failed for $ver"; status=1; continue; }
  "$REPO/scripts/ctests.sh" "$vpy" || status=1
  (cd "$REPO" && "$vpy" -m pytest tests -q -p no:cacheprovider "$@") || status=1
done
exit $status
