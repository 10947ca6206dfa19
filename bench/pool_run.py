"""One executor, one workload, in a fresh process: prints one JSON line.
bench/pool.py runs this once per (executor, workload); it is not meant to be
run by hand, but can be:

    PYTHONPATH=bench .venv-3.13/bin/python bench/pool_run.py EXECUTOR WORKLOAD [ARG]

EXECUTOR: manygil | thread | fork | forkserver | spawn | stdlib (3.14's
concurrent.futures.InterpreterPoolExecutor).
WORKLOAD: tiny | cpu LOOPS [RUNS] | cold | memory | bare.

Why a process each: on CPython 3.13.0 a fork() while any subinterpreter is
alive kills the child (Fatal Python error: PyThreadState_Get), so the process
pools run where no interpreter was ever created: manygil is imported only
when EXECUTOR is manygil.  A fresh process also gives every executor the same
start (no arenas or threads left over from another executor's run).
"""
from __future__ import annotations

import gc
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:            # workers copy sys.path at pool creation
    sys.path.insert(0, HERE)

from bench_common import raw_create_close  # noqa: E402
from pool_funcs import hold, inc, noop, spin  # noqa: E402

TINY_N = 20_000
CPU_TASKS = 8
PROCESS_METHODS = ("fork", "forkserver", "spawn")


def factory(executor: str):
    """A function workers -> a new executor, with its modules imported now
    (so that the cold start does not time the imports)."""
    if executor == "manygil":
        import manygil
        return lambda workers: manygil.InterpreterPoolExecutor(workers)
    if executor == "thread":
        from concurrent.futures import ThreadPoolExecutor
        return lambda workers: ThreadPoolExecutor(workers)
    if executor in PROCESS_METHODS:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        ctx = multiprocessing.get_context(executor)
        return lambda workers: ProcessPoolExecutor(workers, mp_context=ctx)
    if executor == "stdlib":
        from concurrent.futures import InterpreterPoolExecutor  # 3.14+
        return lambda workers: InterpreterPoolExecutor(workers)
    raise SystemExit(f"unknown executor {executor!r}")


def start_all(ex, workers: int, seconds: float = 0.1) -> None:
    """Make sure all workers are up and have imported pool_funcs: one
    sleeping task per worker, all at once."""
    futs = [ex.submit(hold, seconds) for _ in range(workers)]
    assert [f.result() for f in futs] == [1] * workers


def repeat(fn, times: int = 3, budget: float = 3.0) -> list[float]:
    """Run fn up to `times` times (at least once), stopping early once the
    runs took more than `budget` seconds: the slow executors get fewer."""
    out: list[float] = []
    while len(out) < times and (not out or sum(out) < budget):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


# ---- workloads -------------------------------------------------------------

def tiny(make) -> dict:
    expected = list(range(1, TINY_N + 1))
    with make(2) as ex:
        start_all(ex, 2)
        assert list(ex.map(inc, range(100))) == expected[:100]

        def by_map():
            assert list(ex.map(inc, range(TINY_N))) == expected

        def by_submit():
            futs = [ex.submit(inc, i) for i in range(TINY_N)]
            assert [f.result() for f in futs] == expected

        return {"n": TINY_N, "map": repeat(by_map), "submit": repeat(by_submit)}


def cpu(make, loops: int, runs: int = 1) -> dict:
    """8 x spin(loops) on 1, 2 and 4 workers, warm pools: the times of
    `runs` runs each (bench/pool.py calls this once per round, the executors
    in turn, so that a noisy spell does not fall on one executor only)."""
    want = spin(loops)
    out = {}
    for workers in (1, 2, 4):
        with make(workers) as ex:
            start_all(ex, workers)
            assert ex.submit(spin, 1000).result() == spin(1000)

            def run():
                futs = [ex.submit(spin, loops) for _ in range(CPU_TASKS)]
                assert [f.result() for f in futs] == [want] * CPU_TASKS

            out[str(workers)] = repeat(run, times=runs, budget=1e9)
    return out


def cold(make) -> dict:
    """Construct -> first result of noop(), 2 workers; the pool's shutdown is
    not timed.  The first one in the process is reported apart (it pays
    one-time costs: the forkserver process, the resource tracker, ...)."""
    times = []
    for _ in range(6):
        t0 = time.perf_counter()
        ex = make(2)
        ex.submit(noop).result()
        times.append(time.perf_counter() - t0)
        ex.shutdown(wait=True)
    return {"first": times[0], "rest": times[1:]}


def bare(executor: str) -> dict:
    """One bare interpreter: create (+ close), best of 5 after a warm-up."""
    out: dict = {}
    if executor == "manygil":
        import manygil

        def create_close():
            manygil.create().close()
        create_close()
        out["manygil_create_close"] = repeat(create_close, times=5, budget=1e9)
        only = []
        for _ in range(5):
            t0 = time.perf_counter()
            interp = manygil.create()
            only.append(time.perf_counter() - t0)
            interp.close()
        out["manygil_create"] = only
    raw = raw_create_close()
    if raw is not None:
        raw()
        out["raw_create_destroy"] = repeat(raw, times=5, budget=1e9)
    return out


# ---- memory ----------------------------------------------------------------

def pss_kib(pid: int) -> int | None:
    """Proportional set size of a process, in KiB (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def descendants(root: int) -> set[int]:
    """Every live process below root (scans /proc/*/stat for parent ids)."""
    parent: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        parent[int(name)] = int(fields[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier} - found
        found |= frontier
    return found


def settle() -> None:
    gc.collect()
    time.sleep(0.3)


def memory(executor: str, make, workers: int = 4) -> dict:
    """PSS per idle worker: (this process's PSS growth + the PSS of every new
    descendant process) / workers, with `workers` idle workers that each ran
    one task.  For the interpreter and thread pools there are no new
    processes: it is this process's growth / workers."""
    me = os.getpid()
    settle()
    before_self = pss_kib(me)
    before_children = {pid: pss_kib(pid) or 0 for pid in descendants(me)}
    ex = make(workers)
    try:
        start_all(ex, workers, 0.3)
        settle()
        after_self = pss_kib(me)
        now = descendants(me)
        new = {pid: pss_kib(pid) or 0 for pid in now - set(before_children)}
        old_growth = sum((pss_kib(pid) or 0) - kib for pid, kib in before_children.items())
        workers_pids = set(getattr(ex, "_processes", None) or {})
        out = {
            "workers": workers,
            "parent_growth_kib": after_self - before_self,
            "children_kib": sum(new.values()) + old_growth,
            "n_children": len(new),
            "worker_procs_kib": [kib for pid, kib in new.items() if pid in workers_pids],
            "helper_procs_kib": [kib for pid, kib in new.items() if pid not in workers_pids],
        }
    finally:
        ex.shutdown(wait=True)
    return out


def main(argv: list[str]) -> None:
    executor, workload, *args = argv
    if workload == "bare":
        result = bare(executor)
    else:
        make = factory(executor)
        if workload == "tiny":
            result = tiny(make)
        elif workload == "cpu":
            result = cpu(make, *map(int, args))
        elif workload == "cold":
            result = cold(make)
        elif workload == "memory":
            result = memory(executor, make)
        else:
            raise SystemExit(f"unknown workload {workload!r}")
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
