"""Hang handling figures (issue #5), printed as a Markdown table.

    .venv-3.13/bin/python bench/hangs.py

Each row is the median / max over repeated trials in this run:

1. Deadlock detection: interpreters A and B in a receive cycle (each waits
   ``r.recv()`` in ``exec`` from its own thread; only the other holds the
   send end).  From the moment both waits are in the activity table
   (``_core._waits()``, polled) to both ``exec`` calls having raised
   DeadlockError.  What a user has otherwise: a timeout of their choosing.
2. ``Interpreter.interrupt()`` of ``while True: pass`` running in ``exec`` in a
   thread: until ``exec`` has raised.
3. Pool ``task_timeout=0.2`` on ``while True: pass``: how long after the
   limit the future raised TaskTimeout; then the next task on the same
   1-worker pool.
4. ``Future.cancel()`` of a running ``while True: pass`` task: until the
   1-worker pool has served the next task.
5. A task stuck in ``time.sleep(3600)``, ``task_timeout=0.2``,
   ``interrupt_grace=0.3``: until its future raised, and until the
   replacement worker served a task.
6. Ctrl-C: a child process runs ``exec("while True: pass")`` in its main
   thread; from ``kill(SIGINT)`` to the child's KeyboardInterrupt.
7. ``manygil.format_stacks()`` with 4 interpreters, 2 of them looping.
"""
from __future__ import annotations

import gc
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# The functions run in interpreters and workers are the tests' (importable
# there: interpreters copy sys.path when they are made).
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import manygil                              # noqa: E402
from manygil import _core                   # noqa: E402
from helpers import hang_funcs as hf        # noqa: E402


def poll(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
    return False


def run_exec(interp, code, out, key):
    try:
        interp.exec(code)
        out[key] = (time.perf_counter(), None)
    except Exception as e:                  # noqa: BLE001 - recorded
        out[key] = (time.perf_counter(), e)


def deadlock_trial(a, b):
    r1, s1 = manygil.create_channel()
    r2, s2 = manygil.create_channel()
    a.prepare_main(r=r1, s=s2)
    b.prepare_main(r=r2, s=s1)
    del r1, s1, r2, s2
    gc.collect()
    out: dict = {}
    ts = [threading.Thread(target=run_exec, args=(i, "r.recv()", out, k)) for i, k in ((a, "a"), (b, "b"))]
    for t in ts:
        t.start()
    poll(lambda: len(_core._waits()) >= 2 or out)
    blocked = time.perf_counter()
    for t in ts:
        t.join(10)
    names = {type(e).__name__ if not isinstance(e, manygil.ExecutionFailed) else e.excinfo.type.__name__
             for _, e in out.values()}
    assert names == {"DeadlockError"}, names
    return max(t for t, _ in out.values()) - blocked


def interrupt_trial(interp):
    out: dict = {}
    t = threading.Thread(target=run_exec, args=(interp, "while True: pass", out, "x"))
    t.start()
    poll(interp.is_running)
    time.sleep(0.02)
    start = time.perf_counter()
    assert interp.interrupt() == 1
    t.join(10)
    return out["x"][0] - start


def timeout_trial(pool):
    start = time.perf_counter()
    fut = pool.submit(hf.spin_forever)
    try:
        fut.result(20)
    except manygil.TaskTimeout:
        pass
    raised = time.perf_counter()
    pool.submit(hf.add, 1, 2).result(20)
    return raised - start - 0.2, time.perf_counter() - raised


def cancel_trial(pool):
    fut = pool.submit(hf.spin_forever)
    poll(fut.running)
    start = time.perf_counter()
    assert fut.cancel()
    pool.submit(hf.add, 1, 2).result(20)
    return time.perf_counter() - start


def abandon_trial():
    with manygil.InterpreterPoolExecutor(1, task_timeout=0.2, interrupt_grace=0.3,
                                         on_hang=lambda r: None) as pool:
        pool.submit(hf.add, 0, 0).result(20)
        start = time.perf_counter()
        fut = pool.submit(hf.sleep_forever)
        try:
            fut.result(20)
        except manygil.TaskTimeout:
            pass
        raised = time.perf_counter()
        pool.submit(hf.add, 1, 2).result(30)
        return raised - start, time.perf_counter() - start


CHILD = """
import sys, time, manygil
it = manygil.create()
print("READY", flush=True)
try:
    it.exec("while True: pass")
except KeyboardInterrupt:
    print("KI", time.monotonic(), flush=True)
"""


def ctrl_c_trial():
    p = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "READY"
        time.sleep(0.1)                     # let it reach the loop
        start = time.monotonic()
        p.send_signal(signal.SIGINT)
        line = p.stdout.readline().split()
        p.wait(20)
        return float(line[1]) - start       # CLOCK_MONOTONIC is system-wide
    finally:
        p.kill()


def stacks_trial():
    interps = [manygil.create() for _ in range(4)]
    threads = [threading.Thread(target=i.call, args=(hf.hang_marker_spin, 3.0)) for i in interps[:2]]
    for t in threads:
        t.start()
    time.sleep(0.1)
    times = []
    for _ in range(10):
        start = time.perf_counter()
        text = manygil.format_stacks()
        times.append(time.perf_counter() - start)
        assert "hang_marker_spin" in text
    for t in threads:
        t.join()
    for i in interps:
        i.close()
    return times


def ms(x: float) -> str:
    return f"{x * 1e3:.1f} ms"


def row(what, values, alt):
    print(f"| {what} | {ms(statistics.median(values))} | {ms(max(values))} | {len(values)} | {alt} |")


def main() -> None:
    print(f"Hang handling, {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}\n")
    print("| what | median | max | n | without it |")
    print("|---|---|---|---|---|")
    a, b = manygil.create(), manygil.create()
    row("deadlock detected: cycle closed -> DeadlockError in both", [deadlock_trial(a, b) for _ in range(20)],
        "blocked for ever, or `recv(timeout=T)`: T")
    row("`Interpreter.interrupt()` -> `exec` raised", [interrupt_trial(a) for _ in range(20)],
        "none (the loop runs on)")
    for i in (a, b):
        i.exec("r = s = None")
        i.close()
    with manygil.InterpreterPoolExecutor(1, task_timeout=0.2) as pool:
        pool.submit(hf.add, 0, 0).result(20)
        res = [timeout_trial(pool) for _ in range(10)]
    row("`task_timeout=0.2`: TaskTimeout raised after the limit", [r[0] for r in res],
        "`result(timeout)` gives up waiting; the worker stays busy")
    row("... then the next task on the same worker", [r[1] for r in res], "")
    with manygil.InterpreterPoolExecutor(1) as pool:
        pool.submit(hf.add, 0, 0).result(20)
        row("running `Future.cancel()` -> next task served", [cancel_trial(pool) for _ in range(10)],
            "stdlib pools: cancel() of a running task is refused")
    res = [abandon_trial() for _ in range(3)]
    row("`time.sleep(3600)` task, grace 0.3: future raised (0.2 + 0.3 + checks)", [r[0] for r in res],
        "the worker is lost")
    row("... replacement worker served a task", [r[1] for r in res], "")
    row("Ctrl-C -> KeyboardInterrupt out of `exec` in the main thread", [ctrl_c_trial() for _ in range(5)],
        "deferred until the code ends (never, here)")
    row("`format_stacks()`, 4 interpreters (2 looping)", stacks_trial(), "faulthandler: this interpreter only")
    print("\nCommand: `.venv-3.13/bin/python bench/hangs.py`")


if __name__ == "__main__":
    main()
