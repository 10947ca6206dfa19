"""The hosts' C API as a host uses it: programs built against the installed
manygil (manygil.h from manygil.get_include(), libpython only, the table
fetched with mg_import()), each check in its own process with a timeout."""
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

import manygil
from helpers.proc import describe
from helpers.timing import assert_parallel, calibrate_busy

HERE = pathlib.Path(__file__).parent
REPO = HERE.parent
CHECKS = ["import_version_mismatch", "import_no_table", "import_not_installed", "thread_interp", "types_roundtrip",
          "errors", "call_forms", "row_loops", "iset", "interrupt", "finalize_with_host_thread", "no_growth"]

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None,
                                reason="no C compiler (cc) to build a host program")


def build(tmp_path_factory, source, name):
    out = tmp_path_factory.mktemp("host") / name
    proc = subprocess.run(["bash", str(HERE / "host" / "build.sh"), sys.executable, str(source),
                           str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, describe(proc)
    return out, proc.stdout.strip()


@pytest.fixture(scope="module")
def checks(tmp_path_factory):
    return build(tmp_path_factory, HERE / "host" / "capi_checks.c", "capi_checks")


def host_env(site=None):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONNOUSERSITE"] = "1"
    if site:
        env["PYTHONPATH"] = site
    return env


def test_get_include_holds_the_header():
    inc = pathlib.Path(manygil.get_include())
    header = (inc / "manygil.h").read_text()
    assert "mg_import" in header and "MG_CAPI_VERSION" in header
    assert header == (REPO / "include" / "manygil.h").read_text()
    proc = subprocess.run([sys.executable, "-m", "manygil", "include"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == str(inc), describe(proc)


@pytest.mark.timeout(120)
def test_the_checks_list_is_complete(checks):
    exe, _ = checks
    proc = subprocess.run([str(exe), "--list"], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == CHECKS
    proc = subprocess.run([str(exe), "no_such_check"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", [pytest.param(c, marks=pytest.mark.rss_bound) if c == "no_growth"
                                  else c for c in CHECKS])
def test_capi(checks, name):
    exe, site = checks
    # Without PYTHONPATH the embedded Python does not see the venv's manygil.
    env = host_env(None if name == "import_not_installed" else site)
    proc = subprocess.run([str(exe), name], capture_output=True, text=True, timeout=150, env=env)
    assert proc.returncode == 0, describe(proc)
    if name == "import_not_installed":
        assert "ImportError" in proc.stderr and "manygil" in proc.stderr, describe(proc)
    else:
        assert f"PASSED {name}" in proc.stdout, describe(proc)


def run_example(rows, threads, *extra):
    proc = subprocess.run(["bash", str(REPO / "examples" / "host" / "run.sh"), sys.executable,
                           str(rows), str(threads), *extra],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, describe(proc)
    lines = proc.stdout.strip().splitlines()
    prefix = "gil " if extra else ""
    rates = {}
    for line in lines[-2:]:
        m = re.fullmatch(prefix + r"threads=(\d+) rows_per_s=(\d+)", line)
        assert m, describe(proc)
        rates[int(m.group(1))] = int(m.group(2))
    assert sorted(rates) == [1, threads], describe(proc)
    return rates


@pytest.mark.timeout(600)
def test_example_host_runs_and_checks_every_row():
    run_example(300_000, 3)
    run_example(100_000, 2, "--gil")


@pytest.mark.timeout(900)
def test_example_host_threads_run_in_parallel(two_cores):
    """2 host threads, each in its own interpreter, against 1: the ratio
    time(2 x work) / time(work) is ~1 with own GILs, ~2 with a shared one."""
    n = calibrate_busy(0.3)

    def measure():
        samples = []
        best = float("inf")
        for _ in range(3):
            r = run_example(4_000_000, 2)
            ratio = 2 * r[1] / r[2]
            samples.append((r[1], r[2], round(ratio, 2)))
            best = min(best, ratio)
            if best < 1.4:
                break
        return best, samples

    best, samples = measure()
    assert_parallel(best, samples, n, retry=measure)
