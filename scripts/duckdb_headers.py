"""Find DuckDB's C extension headers for the build (run by meson at setup).

    python scripts/duckdb_headers.py VERSION OUTDIR [SEARCH_DIR...]

Puts duckdb.h and duckdb_extension.h of DuckDB VERSION (the duckdb release on
the package index, pinned in src/duckdb/duckdb-version.txt) into OUTDIR and
prints OUTDIR's path.  The headers are never part of the repository; they are
taken, in this order, from:

  1. $MANYGIL_DUCKDB_INCLUDE: a folder that holds both headers (for example
     Debian's libduckdb-dev, /usr/include);
  2. a source distribution duckdb-VERSION.tar.gz already downloaded into
     OUTDIR or into one of the SEARCH_DIRs (looked for recursively: the
     build tree, the checkout's .wheels/ that scripts/debian-root.sh fills);
  3. `pip download --no-binary duckdb --no-deps duckdb==VERSION` into
     OUTDIR, with this machine's own pip configuration
     ($MANYGIL_DUCKDB_NO_DOWNLOAD=1 skips this step).

Exit status 0 with the folder on stdout, or 3 with the reason on stderr (the
build then leaves the extension out and the DuckDB tests say so).
"""
import os
import shutil
import subprocess
import sys
import tarfile

HEADERS = ("duckdb.h", "duckdb_extension.h")
INCLUDE_IN_SDIST = "external/duckdb/src/include/"


def from_folder(folder, outdir):
    """Copy both headers from `folder`; False if one is missing."""
    if not all(os.path.isfile(os.path.join(folder, h)) for h in HEADERS):
        return False
    for h in HEADERS:
        shutil.copyfile(os.path.join(folder, h), os.path.join(outdir, h))
    return True


def from_sdist(path, outdir):
    """Extract both headers from the sdist at `path`; False if it lacks them."""
    found = 0
    with tarfile.open(path) as tar:
        for member in tar:
            name = member.name.split("/", 1)[-1]   # strip "duckdb-VERSION/"
            if name.startswith(INCLUDE_IN_SDIST) and name[len(INCLUDE_IN_SDIST):] in HEADERS:
                src = tar.extractfile(member)
                with open(os.path.join(outdir, name[len(INCLUDE_IN_SDIST):]), "wb") as dst:
                    shutil.copyfileobj(src, dst)
                found += 1
    return found == len(HEADERS)


def find_sdist(version, dirs):
    want = f"duckdb-{version}.tar.gz"
    for d in dirs:
        for root, _subdirs, files in os.walk(d):
            if want in files:
                return os.path.join(root, want)
    return None


def download(version, outdir):
    """pip download the sdist into outdir; (path or None, error text)."""
    cmds = [[sys.executable, "-m", "pip"], ["pip3"], ["pip"]]
    err = "no pip found"
    for pip in cmds:
        try:
            proc = subprocess.run(
                pip + ["download", "-q", "--disable-pip-version-check", "--no-deps",
                       "--no-binary", "duckdb", f"duckdb=={version}", "-d", outdir],
                capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            err = str(e)
            continue
        if proc.returncode == 0:
            return find_sdist(version, [outdir]), ""
        err = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["pip failed"]
        err = err[0]
        if "No module named pip" not in (proc.stderr or ""):
            break
    return None, err


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    version, outdir, search = argv[1], os.path.abspath(argv[2]), argv[3:]
    os.makedirs(outdir, exist_ok=True)
    env_dir = os.environ.get("MANYGIL_DUCKDB_INCLUDE")
    if env_dir:
        if from_folder(env_dir, outdir):
            print(outdir)
            return 0
        print(f"MANYGIL_DUCKDB_INCLUDE={env_dir} does not hold {' and '.join(HEADERS)}",
              file=sys.stderr)
        return 3
    sdist = find_sdist(version, [outdir] + [d for d in search if os.path.isdir(d)])
    why = ""
    if sdist is None and os.environ.get("MANYGIL_DUCKDB_NO_DOWNLOAD") != "1":
        sdist, why = download(version, outdir)
    if sdist is None:
        print(f"no DuckDB {version} headers: no duckdb-{version}.tar.gz found and the download "
              f"failed ({why or 'skipped'}); set MANYGIL_DUCKDB_INCLUDE to a folder with "
              f"{' and '.join(HEADERS)}", file=sys.stderr)
        return 3
    if not from_sdist(sdist, outdir):
        print(f"{sdist} does not contain {INCLUDE_IN_SDIST}{{{','.join(HEADERS)}}}", file=sys.stderr)
        return 3
    print(outdir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
