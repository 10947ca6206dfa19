"""joblib's "manygil" backend against joblib's own loky and threading
backends, side by side in one run, printed as a Markdown table with a verdict
line per target.

    .venv-3.13/bin/python bench/joblib_backends.py
    scripts/debian-root.sh run .venv-3.15/bin/python bench/joblib_backends.py

Workloads (n_jobs=2, batch_size="auto", joblib's defaults otherwise):

1. tiny tasks: ``delayed(inc)(x)`` for 20,000 ints (x + 1 each); the workers
   warmed by one full run first, then the best of 3 runs;
2. CPU-bound pure Python: 8 tasks of ~0.15 s (a loop count calibrated at the
   start), against running them sequentially in the main thread of the same
   process, the two alternating: best of 2 of each after a warm-up.  The
   speedup is that process's sequential time over its parallel time, so a
   load that moves between processes shifts both.

Three rounds, the backends (and the sequential baseline) taking turns; the
table shows each one's best.

Each backend runs in its own fresh process (CPython 3.13.0 kills a child
forked while a subinterpreter is alive; loky starts processes), from the
same task functions (bench/pool_funcs.py).  joblib's "sequential" backend
(n_jobs forced to 1, no workers) shows joblib's own cost per task in the
calling thread -- ``delayed()``, batching, bookkeeping -- which every
backend pays before any worker is involved.  Targets: manygil >= 1.8x
threading on CPU-bound work, >= loky there, >= 5x loky on tiny tasks.
About two minutes; run it on a quiet machine.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pool_funcs import inc, spin  # noqa: E402

TINY_N = 20_000
CPU_TASKS = 8
TASK_SECONDS = 0.15
N_JOBS = 2
BACKENDS = ["manygil", "loky", "threading", "sequential"]   # the last: joblib's own cost
TIMEOUT = 300
ROUNDS = 3


def run_child(backend: str, loops: int) -> dict:
    """In a fresh process: this backend's timings, as a dict."""
    import joblib
    from joblib import Parallel, delayed
    if backend == "manygil":
        import manygil.joblib  # noqa: F401
    out = {}
    with joblib.parallel_config(backend=backend, n_jobs=N_JOBS):
        expect = [x + 1 for x in range(TINY_N)]
        assert Parallel(batch_size="auto")(delayed(inc)(x) for x in range(TINY_N)) == expect
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            res = Parallel(batch_size="auto")(delayed(inc)(x) for x in range(TINY_N))
            best = min(best, time.perf_counter() - t0)
            assert res == expect
        out["tiny"] = best
        Parallel()(delayed(spin)(loops) for _ in range(CPU_TASKS))
        best = seq = float("inf")
        for _ in range(2):                  # the sequential baseline alternates with it
            t0 = time.perf_counter()
            for _ in range(CPU_TASKS):
                spin(loops)
            seq = min(seq, time.perf_counter() - t0)
            t0 = time.perf_counter()
            Parallel(batch_size="auto")(delayed(spin)(loops) for _ in range(CPU_TASKS))
            best = min(best, time.perf_counter() - t0)
        out["cpu"] = best
        out["seq"] = seq
    return out


def measure(backend: str, loops: int) -> dict | str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (HERE, env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.run([sys.executable, __file__, "--run", backend, str(loops)],
                              capture_output=True, text=True, env=env, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"timed out after {TIMEOUT} s"
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        err = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        return f"error: {(err or ['?'])[-1]} (exit status {proc.returncode})"
    return json.loads(lines[-1])


def calibrate() -> int:
    """The loop count for which spin() takes TASK_SECONDS here (best of 3)."""
    loops = 1_000_000
    took = min(_timed(spin, loops) for _ in range(3))
    return max(int(loops * TASK_SECONDS / took), 1)


def _timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def main() -> None:
    import joblib
    loops = calibrate()
    # Rounds with the backends taking turns (best of each): on a shared
    # machine the load moves between one backend's run and the next.
    results: dict = {}
    for _ in range(ROUNDS):
        for b in BACKENDS:
            r = measure(b, loops)
            old = results.get(b)
            if isinstance(r, str) or old is None or isinstance(old, str):
                results[b] = r if old is None or isinstance(old, str) else old
            else:
                results[b] = {k: min(old[k], r[k]) for k in r}
    print(f"joblib {joblib.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}, n_jobs={N_JOBS}, "
          f"{time.strftime('%Y-%m-%d', time.gmtime())}, load average "
          f"{os.getloadavg()[0]:.1f} at the end")
    print(f"CPU-bound: {CPU_TASKS} tasks of spin({loops})\n")
    print("| backend | tiny tasks (20,000 x `x + 1`) | per task | CPU-bound | same process, "
          "sequential | speedup |")
    print("|---|---|---|---|---|---|")
    for b in BACKENDS:
        r = results[b]
        if isinstance(r, str):
            print(f"| {b} | {r} | | | | |")
            continue
        print(f"| {b} | {r['tiny'] * 1e3:.0f} ms | {r['tiny'] / TINY_N * 1e6:.1f} us | "
              f"{r['cpu']:.2f} s | {r['seq']:.2f} s | {r['seq'] / r['cpu']:.2f}x |")
    m, lo, th = (results[b] for b in BACKENDS[:3])
    if not any(isinstance(r, str) for r in (m, lo, th)):
        print()
        sp = {b: results[b]["seq"] / results[b]["cpu"] for b in BACKENDS[:3]}
        verdict(f"CPU-bound: manygil / threading speedups {sp['manygil'] / sp['threading']:.2f}x",
                sp["manygil"] / sp["threading"], 1.8)
        verdict(f"CPU-bound: manygil / loky speedups {sp['manygil'] / sp['loky']:.2f}x",
                sp["manygil"] / sp["loky"], 1.0)
        verdict(f"tiny tasks: manygil / loky speedup {lo['tiny'] / m['tiny']:.2f}x", lo["tiny"] / m["tiny"], 5.0)


def verdict(text: str, value: float, target: float) -> None:
    print(f"- {text} (target >= {target}x): {'met' if value >= target else 'NOT met'}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--run":
        print(json.dumps(run_child(sys.argv[2], int(sys.argv[3]))))
    else:
        main()
