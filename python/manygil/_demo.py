"""The demonstration behind `python -m manygil demo`.

The same CPU-bound pure-Python workload -- counting the primes below a bound
by trial division, split into chunks -- runs first sequentially in the main
interpreter and then across all cores, one own-GIL interpreter per core,
driven from one thread each.  Both times and the speedup are printed."""
from __future__ import annotations

import os
import threading
import time


def count_primes(lo: int, hi: int) -> int:
    """Number of primes p with lo <= p < hi (plain trial division)."""
    count = 0
    for n in range(max(lo, 2), hi):
        if n % 2 == 0:
            count += n == 2
            continue
        d = 3
        while d * d <= n:
            if n % d == 0:
                break
            d += 2
        else:
            count += 1
    return count


def chunks(limit: int, parts: int) -> list[tuple[int, int]]:
    step = -(-limit // parts)
    return [(lo, min(lo + step, limit)) for lo in range(0, limit, step)]


def run_sequential(work: list[tuple[int, int]]) -> int:
    return sum(count_primes(lo, hi) for lo, hi in work)


def run_parallel(work: list[tuple[int, int]], workers: int) -> int:
    import manygil
    interps = [manygil.create() for _ in range(workers)]
    results = [0] * len(work)
    lock = threading.Lock()
    todo = list(enumerate(work))

    def drive(interp: manygil.Interpreter) -> None:
        while True:
            with lock:
                if not todo:
                    return
                i, (lo, hi) = todo.pop()
            results[i] = interp.call(count_primes, lo, hi)

    try:
        threads = [threading.Thread(target=drive, args=(it,)) for it in interps]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for it in interps:
            it.close()
    return sum(results)


def main(limit: int = 1_500_000, workers: int | None = None) -> float:
    workers = workers or os.cpu_count() or 1
    work = chunks(limit, workers * 8)
    print(f"manygil demo: count primes below {limit:,} by trial division, "
          f"{len(work)} chunks, {workers} interpreter(s)")

    t0 = time.perf_counter()
    seq = run_sequential(work)
    t_seq = time.perf_counter() - t0
    print(f"  sequential (main interpreter): {t_seq:6.2f} s  -> {seq:,} primes")

    t0 = time.perf_counter()
    par = run_parallel(work, workers)
    t_par = time.perf_counter() - t0
    print(f"  manygil, {workers} interpreters:      {t_par:6.2f} s  -> {par:,} primes")

    if par != seq:
        raise SystemExit(f"results differ: {seq} != {par}")
    speedup = t_seq / t_par
    print(f"  speedup: {speedup:.2f}x on {os.cpu_count()} core(s)")
    return speedup
