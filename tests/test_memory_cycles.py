"""manygil's own RSS growth per create/close cycle, against CPython's own
isolated interpreters (``_interpreters`` / ``_xxsubinterpreters``) measured
in the same child process, interleaved in blocks so drift hits both alike.

CPython 3.12/3.13 keep an isolated interpreter's whole object heap when it
is destroyed (~1.6 MiB per cycle here); everything an interpreter touches
is kept with it, so manygil's extra is what its bootstrap touches in each
new interpreter (src/py/runsrc.c: compiled once per process, loaded from
marshal; before, compiling there cost ~30 KiB more per cycle).  CPython
3.14 and 3.15 give the heap back (~0 KiB per cycle of their own): there the limit
bounds manygil's growth on its own."""
import os
import sys

import pytest

from helpers.proc import describe, run_script

KIB = 1024

CHILD = """
import sys
from helpers.rss_cycles import rss_bytes, raw_cycle_factory, manygil_cycle
raw = raw_cycle_factory()
if raw is None:
    print("unavailable")
    sys.exit(0)
BLOCK, ROUNDS = 50, 6
for _ in range(20):
    raw()
    manygil_cycle()
total = {"raw": 0, "manygil": 0}
for _ in range(ROUNDS):
    for name, cycle in (("raw", raw), ("manygil", manygil_cycle)):
        before = rss_bytes()
        for _ in range(BLOCK):
            cycle()
        total[name] += rss_bytes() - before
n = BLOCK * ROUNDS
print(total["raw"] / n, total["manygil"] / n)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc (Linux)")
@pytest.mark.timeout(300)
@pytest.mark.rss_bound
def test_growth_per_cycle_within_16_kib_of_cpython():
    import tempfile
    import pathlib
    with tempfile.TemporaryDirectory() as tmp:
        proc = run_script(pathlib.Path(tmp), CHILD, timeout=280)
    assert proc.returncode == 0, describe(proc)
    out = proc.stdout.strip()
    if out == "unavailable":
        pytest.skip("no private subinterpreter module for the baseline")
    raw, mine = (float(x) for x in out.split())
    if sys.version_info < (3, 14):      # the baseline itself shows the known growth
        assert raw > 256 * KIB, f"baseline not measured: CPython grew {raw / KIB:.1f} KiB/cycle"
    assert mine - raw < 16 * KIB, (
        f"manygil grew {mine / KIB:.1f} KiB per create/close cycle, CPython's own "
        f"interpreters {raw / KIB:.1f} KiB: {(mine - raw) / KIB:.1f} KiB more (limit 16)")
