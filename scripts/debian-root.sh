#!/usr/bin/env bash
# debian-root.sh -- CPython 3.14 and 3.15 (release and debug builds) from
# Debian's own packages, in a Debian sid root made with debootstrap, for the
# test command.  Needs root and Debian's package archive; the archive's
# address is read from this machine's apt configuration.
#
#   scripts/debian-root.sh setup         make the root if it is missing (a few
#                                        minutes the first time); prints its path
#   scripts/debian-root.sh run CMD...    run CMD inside it, in the current folder
#                                        (bind-mounted at the same path, in a
#                                        private mount namespace: nothing stays
#                                        mounted when CMD ends)
#   scripts/debian-root.sh wheels PY DIR download, on the host, the wheels the
#                                        test venvs need for Python PY (3.14,
#                                        3.15) into DIR (pip inside the root
#                                        cannot reach the package index)
# Exit status 3 from setup: this machine cannot have the root (not root, no
# archive in its apt sources, no debootstrap); the reason is on stderr.
set -euo pipefail
ROOT=${MANYGIL_DEBIAN_ROOT:-/opt/manygil-sid}
PKGS="python3.14 python3.14-dev python3.14-venv python3.14-dbg
      python3.15 python3.15-dev python3.15-venv python3.15-dbg
      gcc libc6-dev make ca-certificates"
STAMP=$ROOT/.manygil-root-v1      # written once every package is in

cannot() { echo "debian-root: $*" >&2; exit 3; }

# The first Debian archive named in this machine's apt sources (one-line
# `deb URL ...` or deb822 `URIs: URL`), security archives left out.
mirror() {
  grep -rhoE '(URIs:[[:space:]]*|^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)[a-z]+://[^[:space:]]+/debian/?([[:space:]]|$)' \
      /etc/apt/sources.list /etc/apt/sources.list.d 2>/dev/null \
    | grep -oE '[a-z]+://[^[:space:]]+' | grep -v -- '-security' | head -n 1
}

setup() {
  [[ -f $STAMP ]] && { echo "$ROOT"; return 0; }
  [[ $(id -u) -eq 0 ]] || cannot "needs root (debootstrap, chroot)"
  local url; url=$(mirror) || true
  [[ -n ${url:-} ]] || cannot "no Debian archive in this machine's apt sources"
  if ! command -v debootstrap >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; } \
      >/dev/null 2>&1 || cannot "debootstrap is not installed and could not be installed"
  fi
  local log=$ROOT.log
  if [[ ! -x $ROOT/usr/bin/apt-get ]]; then
    rm -rf "$ROOT"; mkdir -p "$ROOT"
    echo "debian-root: debootstrap sid from $url into $ROOT (log: $log)" >&2
    debootstrap --variant=minbase --include="$(echo $PKGS | tr ' ' ,)" sid "$ROOT" "$url" >"$log" 2>&1 \
      || { rm -rf "$ROOT"; cannot "debootstrap failed (see $log)"; }
  fi
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
  # An archive snapshot may be older than its Valid-Until date.
  echo 'Acquire::Check-Valid-Until "false";' >"$ROOT/etc/apt/apt.conf.d/99manygil"
  local missing=() p
  for p in $PKGS; do chroot "$ROOT" dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [[ ${#missing[@]} -gt 0 ]]; then
    chroot "$ROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
      "apt-get update -qq && apt-get install -y -qq ${missing[*]}" >>"$log" 2>&1 \
      || cannot "could not install ${missing[*]} in $ROOT (see $log)"
  fi
  touch "$STAMP"
  echo "$ROOT"
}

run() {
  [[ -f $STAMP ]] || cannot "no root at $ROOT: run '$0 setup' first"
  local here; here=$(pwd -P)
  # Private mounts: they vanish with the namespace when CMD ends.
  exec unshare --mount --propagation private /usr/bin/env ROOT="$ROOT" HERE="$here" bash -c '
    set -e
    for d in /proc /dev /sys; do mount --bind "$d" "$ROOT$d"; done
    mkdir -p "$ROOT$HERE"; mount --bind "$HERE" "$ROOT$HERE"
    exec chroot "$ROOT" /usr/bin/env -C "$HERE" HOME=/root PATH=/usr/local/bin:/usr/bin:/bin \
      LANG=C.UTF-8 "$@"' bash "$@"
}

# Wheels for the test venv of Python $1 into $2 (pure-Python ones serve the
# debug builds too; numpy has none for their ABI and is left out there).
wheels() {
  local ver=$1 dir=$2 host
  host=$(command -v python3) || cannot "no python3 on the host to download wheels with"
  mkdir -p "$dir"
  "$host" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "$ver" --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 --platform any -d "$dir" \
    meson-python meson ninja packaging pyproject-metadata pytest pytest-timeout hypothesis \
    iniconfig pluggy pygments sortedcontainers attrs numpy joblib cloudpickle \
    dask==2026.8.0 distributed==2026.8.0 click fsspec partd locket pyyaml toolz jinja2 \
    markupsafe msgpack psutil tblib tornado zict \
    "duckdb==$(cat "$(dirname "$0")/../src/duckdb/duckdb-version.txt")"
  # DuckDB's source distribution: its headers build manygil's DuckDB extension
  # (scripts/duckdb_headers.py looks for it under .wheels/).
  duckdb_sdist "$dir"
}

duckdb_sdist() {
  local dir=$1 ver
  ver=$(cat "$(dirname "$0")/../src/duckdb/duckdb-version.txt")
  [[ -f $dir/duckdb-$ver.tar.gz ]] && return 0
  "$host" -m pip download -q --disable-pip-version-check --no-deps --no-binary duckdb \
    -d "$dir" "duckdb==$ver" \
    || echo "debian-root: could not download DuckDB's source distribution; the DuckDB extension will not be built in the root" >&2
}

case ${1:-} in
  setup) setup ;;
  run) shift; run "$@" ;;
  wheels) shift; wheels "$@" ;;
  *) sed -n '2,19p' "$0"; exit 2 ;;
esac
