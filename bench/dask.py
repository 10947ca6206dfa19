"""Dask workers with manygil.dask against plain Dask workers, side by side in
one run, printed as a Markdown table with a verdict line per target.

    .venv-3.13/bin/python bench/dask.py
    scripts/debian-root.sh run .venv-3.15/bin/python bench/dask.py

Three local clusters (loopback TCP, worker processes started by Dask's
nannies), all started at the beginning and taking turns:

- plain:      1 worker x 2 threads (Dask's default thread pool)
- manygil:    1 worker x 2 threads, ``preload=["manygil.dask"]`` (2 interpreters)
- processes:  2 workers x 1 thread

Workloads:

1. CPU-bound pure Python: a graph of 64 tasks of ~0.1 s (``spin(n)``, n
   calibrated here at the start) that each depend on one of 8 seed tasks,
   and one task that sums them; wall time from ``compute()`` to the result,
   best of 3 rounds (the clusters taking turns);
2. tiny tasks: ``client.map(inc, range(10_000))`` and ``gather``, best of 3
   rounds after a warm-up of 1,000;
3. memory: the sum of the PSS of the cluster's worker processes after
   workload 1 (Linux: /proc/PID/smaps_rollup).

Targets: manygil >= 1.7x the plain worker and >= 0.9x the two processes on
workload 1, with less memory than the two processes; workload 2 no slower
than the plain worker.  About five minutes; run it on a quiet machine.
"""
from __future__ import annotations

import logging
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# This file's folder goes last on sys.path: `import dask` must find the
# package, not this script; workers import pool_funcs from it by name.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE] + [HERE]
from pool_funcs import inc, spin  # noqa: E402

TASKS = 64
SEEDS = 8
TASK_SECONDS = 0.1
TINY_N = 10_000
CPU_ROUNDS = 3
TINY_ROUNDS = 3
CONFIGS = {
    "plain": dict(n_workers=1, threads_per_worker=2),
    "manygil": dict(n_workers=1, threads_per_worker=2, preload=["manygil.dask"]),
    "processes": dict(n_workers=2, threads_per_worker=1),
}


def seed(i: int) -> int:
    return i


def spin_from(s: int, n: int) -> int:
    return spin(n + s) % 1_000_003


def total(*xs: int) -> int:
    return sum(xs)


def calibrate(seconds: float) -> int:
    n = 100_000
    while True:
        t0 = time.perf_counter()
        spin(n)
        elapsed = time.perf_counter() - t0
        if elapsed > 0.05:
            return max(1, int(n * seconds / elapsed))
        n *= 4


def cpu_graph(client, n: int) -> float:
    import dask
    seeds = [dask.delayed(seed, pure=False)(i) for i in range(SEEDS)]
    tasks = [dask.delayed(spin_from, pure=False)(seeds[i % SEEDS], n) for i in range(TASKS)]
    final = dask.delayed(total, pure=False)(*tasks)
    t0 = time.perf_counter()
    got = client.compute(final).result()
    elapsed = time.perf_counter() - t0
    expect = sum(spin(n + i % SEEDS) % 1_000_003 for i in range(TASKS))
    assert got == expect, (got, expect)
    return elapsed


def tiny(client, count: int) -> float:
    t0 = time.perf_counter()
    futures = client.map(inc, range(count), pure=False)
    got = client.gather(futures)
    elapsed = time.perf_counter() - t0
    assert got == [x + 1 for x in range(count)]
    del futures
    return elapsed


def pss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise RuntimeError(f"no Pss line for process {pid}")


def workers_pss_mib(client) -> float:
    pids = client.run(os.getpid).values()
    return sum(pss_kib(pid) for pid in pids) / 1024


def main() -> None:
    from distributed import Client, LocalCluster
    n = calibrate(TASK_SECONDS)
    clusters, clients = {}, {}
    try:
        for name, kw in CONFIGS.items():
            clusters[name] = LocalCluster(processes=True, host="127.0.0.1",
                                          dashboard_address="127.0.0.1:0",
                                          silence_logs=logging.ERROR, **kw)
            clients[name] = Client(clusters[name])
            clients[name].wait_for_workers(kw["n_workers"])
        cpu = {name: [] for name in CONFIGS}
        fast = {name: [] for name in CONFIGS}
        mem = {}
        for name, c in clients.items():     # warm-up: imports, interpreters
            cpu_graph(c, n // 10)
            tiny(c, 1_000)
        for _ in range(CPU_ROUNDS):
            for name, c in clients.items():
                cpu[name].append(cpu_graph(c, n))
        for name, c in clients.items():
            mem[name] = workers_pss_mib(c)
        for _ in range(TINY_ROUNDS):
            for name, c in clients.items():
                fast[name].append(tiny(c, TINY_N))
        stats = None
        if "manygil" in clients:
            import manygil.dask
            stats = next(iter(manygil.dask.stats(clients["manygil"]).values()))
    finally:
        for c in clients.values():
            c.close()
        for cl in clusters.values():
            cl.close()
    report(n, cpu, fast, mem, stats)


def report(n, cpu, fast, mem, stats) -> None:
    import dask
    import distributed
    load = os.getloadavg()[0]
    print(f"dask/distributed {distributed.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}, {time.strftime('%Y-%m-%d')}, "
          f"load average {load:.1f} at the end")
    print(f"CPU-bound: {TASKS} tasks of spin({n}) (~{TASK_SECONDS} s each) after {SEEDS} "
          f"seed tasks, one sum; best of {CPU_ROUNDS}. Tiny: {TINY_N:,} x inc, best of "
          f"{TINY_ROUNDS}.\n")
    seq = TASKS * TASK_SECONDS
    print("| cluster | CPU-bound graph | vs plain | tiny tasks | per task | workers' PSS |")
    print("|---|---|---|---|---|---|")
    best = {k: min(v) for k, v in cpu.items()}
    tbest = {k: min(v) for k, v in fast.items()}
    for name in CONFIGS:
        print(f"| {name} ({_shape(name)}) | {best[name]:.2f} s | "
              f"{best['plain'] / best[name]:.2f}x | {tbest[name]:.2f} s | "
              f"{tbest[name] / TINY_N * 1e6:.0f} us | {mem[name]:.0f} MiB |")
    print(f"\n(sequential estimate of the CPU-bound tasks: {seq:.1f} s)")
    if stats is not None:
        print(f"manygil worker: {stats['tasks']}")
    print()
    verdict("CPU-bound: manygil / plain", best["plain"] / best["manygil"], 1.7)
    verdict("CPU-bound: manygil / processes", best["processes"] / best["manygil"], 0.9)
    verdict("memory: processes / manygil", mem["processes"] / mem["manygil"], 1.0, strict=True)
    verdict("tiny tasks: plain / manygil", tbest["plain"] / tbest["manygil"], 1.0)
    print(f"(dask {dask.__version__})")


def _shape(name: str) -> str:
    kw = CONFIGS[name]
    return f"{kw['n_workers']} x {kw['threads_per_worker']}"


def verdict(what: str, ratio: float, target: float, strict: bool = False) -> None:
    ok = ratio > target if strict else ratio >= target
    sign = ">" if strict else ">="
    print(f"- {what}: {ratio:.2f}x (target {sign} {target:.1f}x): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
