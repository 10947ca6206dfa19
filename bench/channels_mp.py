"""multiprocessing figures for bench/channels.py, in a process of their own.

    python bench/channels_mp.py latency fork 2000     # Pipe round trip parent <-> child
    python bench/channels_mp.py throughput fork 100000 bytes|tuple   # Queue, parent -> child

Prints one JSON object on the last line of stdout. Kept apart from
bench/channels.py because on CPython 3.13.0 a fork() while a subinterpreter is
alive kills the child: this process never imports manygil.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import statistics
import sys
import time


def _echo(conn):
    while True:
        x = conn.recv()
        if x is None:
            break
        conn.send(x)


def _count(q, back):
    back.put(1)  # ready
    n = 0
    while True:
        x = q.get()
        if x is None:
            break
        n += 1
    back.put(n)


def payload(kind: str, i: int):
    if kind == "bytes":
        return b"x" * 1024
    return (i, "x", 1.5)


def latency(method: str, n: int, warmup: int = 200) -> dict:
    ctx = mp.get_context(method)
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_echo, args=(child,))
    p.start()
    for i in range(warmup):
        parent.send(i)
        parent.recv()
    times = []
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        parent.send(i)
        parent.recv()
        times.append(clock() - t0)
    parent.send(None)
    p.join()
    times.sort()
    return {"median_us": times[len(times) // 2] / 1e3,
            "p90_us": times[len(times) * 9 // 10] / 1e3,
            "mean_us": statistics.fmean(times) / 1e3}


def throughput(method: str, n: int, kind: str) -> dict:
    ctx = mp.get_context(method)
    q, back = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=_count, args=(q, back))
    p.start()
    back.get()  # the child is ready
    blob = b"x" * 1024
    t0 = time.perf_counter_ns()
    if kind == "bytes":
        for _ in range(n):
            q.put(blob)
    else:
        for i in range(n):
            q.put((i, "x", 1.5))
    q.put(None)
    got = back.get()
    dt = time.perf_counter_ns() - t0
    p.join()
    if got != n:
        raise RuntimeError(f"child counted {got}, expected {n}")
    return {"msgs_per_s": n / (dt / 1e9), "n": n, "seconds": dt / 1e9}


def main(argv: list[str]) -> None:
    what, method, n = argv[0], argv[1], int(argv[2])
    if what == "latency":
        out = latency(method, n)
    elif what == "throughput":
        out = throughput(method, n, argv[3])
    else:
        raise SystemExit(f"unknown measure {what!r}")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
