# Sourced by the scripts.
#
# find_pythons [MINOR...]: sets PYTHONS to the CPython interpreters found on
# this machine for the given 3.N minor versions (default 15 14 13 12; newest
# first), one per minor version.  Looks on PATH (python3.N) and in pyenv's
# versions folder.
find_pythons() {
  PYTHONS=()
  local seen="" cand minor root
  local roots=("${PYENV_ROOT:-$HOME/.pyenv}/versions")
  if command -v pyenv >/dev/null 2>&1; then roots+=("$(pyenv root)/versions"); fi
  local minors=("$@")
  [ ${#minors[@]} -gt 0 ] || minors=(15 14 13 12)
  for minor in "${minors[@]}"; do
    local cands=()
    for root in "${roots[@]}"; do
      for cand in "$root"/3."$minor".*/bin/python3; do cands+=("$cand"); done
    done
    for cand in $(command -v "python3.$minor" 2>/dev/null) \
                $(printf '%s\n' "${cands[@]}" | sort -Vr); do
      [ -x "$cand" ] || continue
      # pyenv shims only work when that version is selected: ask the binary.
      if "$cand" -c "import sys; sys.exit(sys.version_info[:2] != (3, $minor))" 2>/dev/null; then
        case " $seen " in *" 3.$minor "*) ;; *) PYTHONS+=("$cand"); seen="$seen 3.$minor";; esac
        break
      fi
    done
  done
}

# make_venv PY [VENV [MESON_SETUP_ARG...]]: create (or reuse) a virtualenv
# (default .venv-3.N) for interpreter PY with the build and test tools, and
# install manygil into it, built with the extra meson setup arguments (e.g.
# -Db_sanitize=address,undefined).  Prints the venv's python.  pip's own
# configuration applies (PIP_NO_INDEX / PIP_FIND_LINKS inside the Debian root).
# numpy, hypothesis, joblib, duckdb and distributed (with dask) are optional: where
# no build of them installs (the debug ABI has no wheels), the tests that need them skip.
make_venv() {
  local py="$1" venv="${2:-}" ver arg
  shift; [ $# -gt 0 ] && shift
  ver=$("$py" -c "import sys; print('%d.%d' % sys.version_info[:2])")
  [ -n "$venv" ] || venv="$REPO/.venv-$ver"
  if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv" >&2 || return 1
  fi
  local pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
  "${pip[@]}" "meson-python>=0.15" "meson>=1.2" ninja pytest pytest-timeout >&2 || return 1
  local opt
  # duckdb pinned to the release whose headers build manygil's DuckDB extension.
  local duckdb="duckdb==$(cat "$REPO/src/duckdb/duckdb-version.txt")"
  for opt in hypothesis numpy joblib "$duckdb" distributed==2026.8.0; do
    "${pip[@]}" --only-binary=:all: "$opt" >/dev/null 2>&1 \
      || echo "note: $opt does not install for $("$venv/bin/python" -c 'import sys; print(sys.version.split()[0], sys.abiflags)'); its tests skip" >&2
  done
  local setup=()
  for arg in "$@"; do setup+=(--config-settings=setup-args="$arg"); done
  # A build folder per venv: the venvs of one checkout never share objects.
  # meson-python runs the venv's meson and ninja: put them on PATH.
  PATH="$venv/bin:$PATH" "${pip[@]}" --no-build-isolation --force-reinstall --no-deps \
      --config-settings=build-dir="$venv/build" "${setup[@]}" "$REPO" >&2 || return 1
  echo "$venv/bin/python"
}
