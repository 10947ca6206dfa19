"""A host program calling Python from native threads: manygil's C API
(each thread in its own interpreter, mg_call_batch over batches of 2048
rows) against what such a host does without manygil (every thread takes
the main interpreter's GIL with PyGILState_Ensure and calls per row).

Builds and runs examples/host (built against the installed manygil, linked
with libpython only) with this Python, best of --repeat runs per row, and
prints a table: rows/s, ns/row and the speed-up over 1 thread.

    python bench/host.py [--rows 4000000] [--threads 2] [--repeat 3]
"""
import argparse
import os
import platform
import re
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(rows, threads, gil, build):
    cmd = ["bash", os.path.join(REPO, "examples", "host", "run.sh"), sys.executable, str(rows),
           str(threads)] + (["--gil"] if gil else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, MANYGIL_HOST_BUILD=build)).stdout
    return {int(k): int(v) for k, v in re.findall(r"threads=(\d+) rows_per_s=(\d+)", out)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=4_000_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    build = os.path.join(REPO, "build", "bench-host")
    best = {}
    for _ in range(args.repeat):
        for gil in (True, False):
            for k, v in run(args.rows, args.threads, gil, build).items():
                best[gil, k] = max(best.get((gil, k), 0), v)
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}; {args.rows:,} int64 rows, f(x) = x + 1, "
          f"best of {args.repeat}")
    print("| host threads call Python through | threads | rows/s | ns/row | vs 1 thread |")
    print("|---|---|---|---|---|")
    for gil, name in ((True, "the main interpreter's GIL (PyGILState_Ensure, per row)"),
                      (False, "manygil: own interpreter per thread (mg_call_batch)")):
        for k in (1, args.threads):
            r = best[gil, k]
            print(f"| {name} | {k} | {r / 1e6:.1f} M | {1e9 / r:.0f} | "
                  f"{r / best[gil, 1]:.2f}x |")


if __name__ == "__main__":
    sys.exit(main())
