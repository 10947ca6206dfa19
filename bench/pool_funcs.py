"""Task functions for bench/pool.py: importable by name, so every executor's
workers (threads, interpreters, forked / forkserver / spawned processes) run
the very same code.  Nothing else: importing this must stay cheap."""
from __future__ import annotations

import time


def inc(x: int) -> int:
    """The tiny task: x + 1."""
    return x + 1


def noop() -> None:
    """The trivial task of the cold-start measurement."""
    return None


def spin(n: int) -> int:
    """The CPU-bound pure-Python task (same loop as bench/foundation.py)."""
    x = 0
    for i in range(n):
        x += i
    return x


def hold(seconds: float) -> int:
    """Keep a worker busy without using the CPU: submitting one per worker at
    once makes every executor start all of its workers (process pools with
    the spawn / forkserver methods start workers on demand)."""
    time.sleep(seconds)
    return 1
