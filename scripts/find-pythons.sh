# Sourced by the scripts: sets PYTHONS to the CPython >= 3.12 interpreters
# found on this machine (newest first), one per minor version.
# Looks on PATH (python3.N) and in pyenv's versions folder.
find_pythons() {
  PYTHONS=()
  local seen="" cand minor root
  local roots=("${PYENV_ROOT:-$HOME/.pyenv}/versions")
  if command -v pyenv >/dev/null 2>&1; then roots+=("$(pyenv root)/versions"); fi
  for minor in 14 13 12; do
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

# Create (or reuse) a virtualenv in .venv-3.N for interpreter $1 with the
# build and test tools, and install manygil into it.  Prints the venv python.
make_venv() {
  local py="$1" ver venv
  ver=$("$py" -c "import sys; print('%d.%d' % sys.version_info[:2])")
  venv="$REPO/.venv-$ver"
  if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv" >&2 || return 1
  fi
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
      "meson-python>=0.15" "meson>=1.2" ninja pytest pytest-timeout hypothesis numpy >&2 || return 1
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-build-isolation \
      --force-reinstall --no-deps "$REPO" >&2 || return 1
  echo "$venv/bin/python"
}
