"""Race 2: the task_timeout interrupt against the end of a task.

InterpreterPoolExecutor(2, task_timeout=0.05) runs N tasks whose length
straddles the timeout (pure-Python spins, time.sleep, spins that catch the
interrupt and return, and spins whose argument or result runs Python code
while it is decoded or encoded).  Every future must resolve -- with its result or
manygil.TaskTimeout, nothing else, none lost or hung -- and a task that
caught the interrupt must still give TaskTimeout, never its "swallowed"
return value.  Tasks far over the limit must time out; the pool must keep
serving afterwards.  Then short-lived pools whose workers are replaced every
2 tasks (interrupts in flight while interpreters end), and an exit with
tasks at their limit.

usage: race_task_timeout.py [N=120 [ROUNDS=N/12]]
"""
import concurrent.futures as cf
import itertools
import time

import os

import manygil
from manygil import InterpreterPoolExecutor
from _child import (SlowPickle, count, fail, ident, nap, spin, spin_slow_arg,
                    spin_slow_result, spin_swallow)

TIMEOUT = 0.05
# A new worker's first task imports its module before the task's code (and
# its time limit's interrupt) can start: under a debug build or a sanitizer
# on a loaded machine that alone has taken over 2 s.
GRACE = 2.0 * float(os.environ.get("MANYGIL_TIMEOUT_SCALE", "1"))
LENGTHS = (0.02, 0.035, 0.045, 0.048, 0.05, 0.052, 0.055, 0.065, 0.08)
KINDS = (spin, nap, spin_swallow, spin_slow_result, spin_slow_arg)


def check_outcome(label, kind, length, fut, expected, outcomes):
    """The future must give its result or TaskTimeout, in bounded time."""
    try:
        got = fut.result(timeout=60)
    except manygil.TaskTimeout:
        outcomes["timeout"] += 1
        return
    except cf.TimeoutError:
        fail(f"{label} ({kind.__name__} {length}) never resolved (lost or hung)")
    except BaseException as e:      # noqa: BLE001
        fail(f"{label} ({kind.__name__} {length}) raised {type(e).__name__}: {e}")
    if got == "swallowed":
        fail(f"{label} ({kind.__name__} {length}) caught its timeout interrupt and its "
             "future gave the returned value instead of TaskTimeout")
    if kind is spin_slow_result and isinstance(got, SlowPickle):
        got = got.value
    if got != expected:
        fail(f"{label} returned {got!r}, expected {expected!r}")
    outcomes["result"] += 1


def submit(pool, kind, length, j):
    arg = SlowPickle(j, 0.01) if kind is spin_slow_arg else j
    return pool.submit(kind, length, arg)


ABANDONED = []


def on_hang(report):
    ABANDONED.append(report)


def check_not_abandoned(where):
    """Every task here is pure Python or sleeps <= 0.08 s: after its
    interrupt it stops within ~0.1 s, far inside interrupt_grace (GRACE), so
    no worker may ever be given up on."""
    if ABANDONED:
        fail(f"{where}: a worker was abandoned although its task could stop within 0.1 s "
             f"of its interrupt:\n{ABANDONED[0]}")


def main():
    n = count(1, 120)
    rounds = count(2, max(2, n // 12))
    outcomes = {"result": 0, "timeout": 0}
    combos = itertools.cycle([(k, L) for L in LENGTHS for k in KINDS])
    t0 = time.monotonic()
    # A: one pool, many tasks at the limit.
    with InterpreterPoolExecutor(2, task_timeout=TIMEOUT, interrupt_grace=GRACE,
                                 on_hang=on_hang) as pool:
        jobs = []
        for j in range(n):
            kind, length = next(combos)
            jobs.append((j, kind, length, submit(pool, kind, length, j)))
        # Far over the limit: these must time out.
        long_jobs = [pool.submit(spin, 0.5, "long"), pool.submit(spin_swallow, 0.5, "long")]
        for j, kind, length, fut in jobs:
            check_outcome(f"task {j}", kind, length, fut, j, outcomes)
        for fut in long_jobs:
            try:
                got = fut.result(timeout=60)
            except manygil.TaskTimeout:
                continue
            except BaseException as e:      # noqa: BLE001
                fail(f"a 0.5 s task raised {type(e).__name__}: {e}")
            fail(f"a task 10x over task_timeout returned {got!r} instead of TaskTimeout")
        # The workers go on serving.
        for k in range(8):
            got = pool.submit(ident, k).result(timeout=30)
            if got != k:
                fail(f"after the timeouts, ident({k}) gave {got!r}")
    check_not_abandoned("phase A")
    print(f"phase A: {time.monotonic() - t0:.2f} s", flush=True)
    t0 = time.monotonic()
    # B: short-lived pools whose workers are replaced every 2 tasks, so that
    # timeout interrupts are in flight while interpreters end and start, and
    # while the pool shuts down.
    for r in range(rounds):
        pool = InterpreterPoolExecutor(2, task_timeout=TIMEOUT, max_tasks_per_worker=2,
                                       interrupt_grace=GRACE, on_hang=on_hang)
        jobs = []
        for j in range(6):
            kind, length = next(combos)
            jobs.append((j, kind, length, submit(pool, kind, length, j)))
        pool.shutdown(wait=(r % 2 == 0))
        for j, kind, length, fut in jobs:
            check_outcome(f"round {r} task {j}", kind, length, fut, j, outcomes)
        check_not_abandoned(f"phase B, round {r}")
    check_not_abandoned("phase B")
    print(f"phase B: {time.monotonic() - t0:.2f} s", flush=True)
    # C: the program ends while tasks sit at their limit.
    last = InterpreterPoolExecutor(2, task_timeout=TIMEOUT)
    for j in range(4):
        last.submit(spin, TIMEOUT, j)
    print(f"tasks={n} rounds={rounds} results={outcomes['result']} "
          f"timeouts={outcomes['timeout']}")
    print("DONE")


if __name__ == "__main__":
    main()
