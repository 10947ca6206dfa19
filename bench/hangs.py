"""Hang handling figures (issue #5), printed as one Markdown table.

    .venv-3.13/bin/python bench/hangs.py

Each row gives the median, p90 (nearest rank) and max over the trials of
this run (p90 by nearest rank: of 10 trials the 9th, of 5 or fewer the max):

1. Deadlock detection: interpreters A and B in a receive cycle (A holds
   recv1 and send2, B holds recv2 and send1; main dropped its handles with
   ``del`` + ``gc.collect()``), each waiting ``r.recv()`` in ``exec`` run
   from its own thread of the main interpreter.  Timed until both ``exec``
   calls raised ExecutionFailed(DeadlockError): from the moment both waits
   are in ``_core._waits()`` (polled in a tight loop), and from the start of
   the second ``exec``.  20 trials, fresh channels each, the same two
   interpreters.  Without detection a user has the timeout they set.
2. ``Interpreter.interrupt()`` of ``while True: pass`` running in ``exec`` in
   a thread: until ``exec`` has raised.  20 trials after an untimed one (the
   first exception out of a fresh interpreter imports what describing it
   needs there: tens of ms, see 6 vs 6c).
3. Pool ``task_timeout=0.2`` on ``while True: pass`` (1 worker): how long
   after the limit (counted from ``submit``) the future raised TaskTimeout;
   then a trivial task on the same worker.  10 trials, started at delays
   spread over one period of the pool's limit check (40 ms): back to back,
   every trial would start just after a check and be caught a whole period
   late.
4. ``Future.cancel()`` of a running ``while True: pass`` task: until the
   1-worker pool has served a trivial task after it.  10 trials.
5. A task stuck in ``time.sleep(3600)``, ``task_timeout=0.2``,
   ``interrupt_grace=0.3``: until its future raised, and until the
   replacement worker served a task; for reference, a worker start (a new
   1-worker pool: construct -> first trivial task served).  5 trials.
6. Ctrl-C: a child process runs ``exec("while True: pass")`` in its main
   thread; from the parent's ``kill(SIGINT)`` to the child's
   KeyboardInterrupt (the child prints a ``time.monotonic()`` stamp:
   CLOCK_MONOTONIC is system-wide).  5 trials with the child's interpreter
   fresh, 5 with it having raised once before.
7. ``manygil.format_stacks()`` and ``manygil.dump_stacks()`` (to
   /dev/null) with 4 interpreters, 2 of them looping in threads.  10 calls
   each, before the pool rows (abandoned workers' interpreters stay listed
   until the process exits).

Every wait has a timeout and the whole run is bounded by
``faulthandler.dump_traceback_later``; a row that fails prints
``error: ...`` (``BENCH_TRACEBACK=1`` prints its traceback).  Threads that
are still stuck after their row make the script exit with status 1 after
printing the table.
"""
from __future__ import annotations

import faulthandler
import gc
import os
import platform
import queue
import random
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
# The functions run in interpreters and workers are the tests' (importable
# there: interpreters copy sys.path when they are made).
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import manygil                              # noqa: E402
from manygil import _core                   # noqa: E402
from helpers import hang_funcs as hf        # noqa: E402

WATCHDOG_S = 150        # the whole run; a wedged row dumps the stacks and exits
JOIN_S = 10.0           # any single wait for a thread, a future or a child
STUCK: list[str] = []   # threads left running by a failed trial


class Stuck(RuntimeError):
    pass


def poll(pred, timeout=JOIN_S):
    """Spin on pred() (no sleep) until it is true; False on timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
    return False


def join(threads, what):
    end = time.monotonic() + JOIN_S
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    alive = [t for t in threads if t.is_alive()]
    if alive:
        STUCK.append(f"{what}: {len(alive)} thread(s)")
        raise Stuck(f"{what}: {len(alive)} thread(s) still running after {JOIN_S:g} s")


def start_exec(interp, code, out, key, starts=None):
    """exec(code) in a daemon thread; out[key] = (perf_counter when it
    returned or raised, the exception or None)."""
    def run():
        if starts is not None:
            starts[key] = time.perf_counter()
        try:
            interp.exec(code)
            out[key] = (time.perf_counter(), None)
        except BaseException as e:          # noqa: BLE001 - recorded
            out[key] = (time.perf_counter(), e)
    t = threading.Thread(target=run, daemon=True, name=f"bench-exec-{key}")
    t.start()
    return t


def remote_type(e) -> str:
    if isinstance(e, manygil.ExecutionFailed):
        return e.excinfo.type.__name__
    return "no exception" if e is None else f"{type(e).__name__} here"


# ---- 1. deadlock detection -------------------------------------------------

def deadlock_trial(a, b):
    r1, s1 = manygil.create_channel()
    r2, s2 = manygil.create_channel()
    a.prepare_main(r=r1, s=s2)
    b.prepare_main(r=r2, s=s1)
    del r1, s1, r2, s2
    gc.collect()
    ids = {a.id, b.id}
    out: dict = {}
    starts: dict = {}
    threads = [start_exec(a, "r.recv()", out, "a", starts)]
    threads.append(start_exec(b, "r.recv()", out, "b", starts))

    def both_waiting():
        return ids <= {w[0] for w in _core._waits() if w[3] == "recv"}

    seen = poll(lambda: both_waiting() or len(out) == 2)
    visible = time.perf_counter()
    join(threads, "deadlock cycle")
    if not seen:
        raise RuntimeError("the two waits never showed in _core._waits()")
    got = {k: remote_type(e) for k, (_, e) in out.items()}
    if set(got.values()) != {"DeadlockError"}:
        raise RuntimeError(f"expected DeadlockError in both, got {got}")
    done = max(t for t, _ in out.values())
    return done - visible, done - max(starts.values())


# ---- 2. Interpreter.interrupt() --------------------------------------------

def interrupt_trial(interp):
    out: dict = {}
    t = start_exec(interp, "while True: pass", out, "x")
    if not poll(interp.is_running):
        raise RuntimeError("exec never started")
    time.sleep(0.02)                        # well inside the loop
    start = time.perf_counter()
    n = interp.interrupt()
    join([t], "interrupted exec")
    if n != 1 or remote_type(out["x"][1]) != "KeyboardInterrupt":
        raise RuntimeError(f"interrupt() -> {n}, exec raised {remote_type(out['x'][1])}")
    return out["x"][0] - start


# ---- 3-5. the pool -----------------------------------------------------------

def expect_timeout(fut):
    try:
        value = fut.result(JOIN_S)
    except manygil.TaskTimeout:
        return time.perf_counter()
    raise RuntimeError(f"the task returned {value!r} instead of raising TaskTimeout")


def timeout_trial(pool, delay):
    # The pool checks its limits on a fixed tick (40 ms here): back-to-back
    # trials would all start just after a tick and all be caught a whole tick
    # late.  Delays spread over one tick spread the trials over its phases.
    time.sleep(delay)
    start = time.perf_counter()
    raised = expect_timeout(pool.submit(hf.spin_forever))
    if pool.submit(hf.add, 1, 2).result(JOIN_S) != 3:
        raise RuntimeError("wrong result after the timeout")
    return raised - start - 0.2, time.perf_counter() - raised


def cancel_trial(pool):
    fut = pool.submit(hf.spin_forever)
    if not poll(fut.running):
        raise RuntimeError("the task never ran")
    start = time.perf_counter()
    if not fut.cancel() or not fut.cancelled():
        raise RuntimeError("cancel() of the running task failed")
    if pool.submit(hf.add, 1, 2).result(JOIN_S) != 3:
        raise RuntimeError("wrong result after the cancel")
    return time.perf_counter() - start


def abandon_trial():
    reports = []
    with manygil.InterpreterPoolExecutor(1, task_timeout=0.2, interrupt_grace=0.3,
                                         on_hang=reports.append) as pool:
        pool.submit(hf.add, 0, 0).result(JOIN_S)
        start = time.perf_counter()
        raised = expect_timeout(pool.submit(hf.sleep_forever))
        if pool.submit(hf.add, 1, 2).result(JOIN_S) != 3:
            raise RuntimeError("wrong result from the replacement worker")
        served = time.perf_counter()
    if [r.kind for r in reports] != ["abandoned"]:
        raise RuntimeError(f"hang reports: {reports!r}")
    return raised - start, served - start


def worker_start_trial():
    start = time.perf_counter()
    with manygil.InterpreterPoolExecutor(1) as pool:
        pool.submit(hf.add, 0, 0).result(JOIN_S)
        return time.perf_counter() - start


# ---- 6. Ctrl-C ------------------------------------------------------------------

CHILD = """
import sys, threading, time, manygil
it = manygil.create()
if sys.argv[1] == "warm":
    try:
        it.exec("raise ValueError")
    except manygil.ExecutionFailed:
        pass
def ready():
    end = time.monotonic() + 10
    while not it.is_running() and time.monotonic() < end:
        time.sleep(0.001)
    print("READY", flush=True)
threading.Thread(target=ready, daemon=True).start()
try:
    it.exec("while True: pass")
except KeyboardInterrupt:
    print("KI", time.monotonic(), flush=True)
except BaseException as e:
    print("OTHER", type(e).__name__, time.monotonic(), flush=True)
"""


def ctrl_c_trial(warm):
    p = subprocess.Popen([sys.executable, "-c", CHILD, "warm" if warm else "cold"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=HERE)
    lines: queue.Queue = queue.Queue()

    def reader():
        for line in p.stdout:
            lines.put((time.monotonic(), line.split()))
        lines.put((time.monotonic(), ["EOF"]))
    threading.Thread(target=reader, daemon=True).start()
    try:
        _, first = lines.get(timeout=JOIN_S)
        if first != ["READY"]:
            raise RuntimeError(f"child said {first!r}: {p.stderr.read()[-300:] if first == ['EOF'] else ''}")
        time.sleep(0.05)                    # well inside the loop
        start = time.monotonic()
        p.send_signal(signal.SIGINT)
        arrived, line = lines.get(timeout=JOIN_S)
        if line[0] != "KI":
            raise RuntimeError(f"child said {line!r} after SIGINT")
        p.wait(JOIN_S)
        return float(line[1]) - start, arrived - start
    except queue.Empty:
        raise RuntimeError(f"no line from the child within {JOIN_S:g} s") from None
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(JOIN_S)
        p.stdout.close()
        p.stderr.close()


# ---- 7. stack dumps ----------------------------------------------------------------

def spin_in(interp):
    try:
        interp.call(hf.hang_marker_spin, 60.0)
    except manygil.ExecutionFailed:         # the interrupt that ends it
        pass


def stacks_trial():
    interps = [manygil.create() for _ in range(4)]
    threads = []
    try:
        for i in interps[:2]:
            t = threading.Thread(target=spin_in, args=(i,), daemon=True)
            t.start()
            threads.append(t)
        if not poll(lambda: all(i.is_running() for i in interps[:2])):
            raise RuntimeError("the loops never started")
        time.sleep(0.05)
        known = sorted(_core.list_all())
        if len(known) != 5:
            raise RuntimeError(f"expected main + 4 interpreters, manygil knows {known}")
        fmt, dump = [], []
        with open(os.devnull, "w") as devnull:
            for _ in range(10):
                start = time.perf_counter()
                text = manygil.format_stacks()
                fmt.append(time.perf_counter() - start)
                if text.count("hang_marker_spin") < 2:
                    raise RuntimeError("format_stacks() misses a looping interpreter")
                start = time.perf_counter()
                manygil.dump_stacks(devnull)
                dump.append(time.perf_counter() - start)
        return list(zip(fmt, dump))
    finally:
        for i in interps[:2]:
            i.interrupt()
        join(threads, "looping calls")
        for i in interps:
            i.close()


# ---- the table ---------------------------------------------------------------------

def pct(values, q):
    s = sorted(values)
    return s[max(0, -(-len(s) * q // 100) - 1)]     # nearest rank


def ms(x: float) -> str:
    return f"{x * 1e3:.1f} ms"


def guarded(fn, *args):
    try:
        return fn(*args)
    except Exception as e:                  # noqa: BLE001 - one row must not kill the table
        if os.environ.get("BENCH_TRACEBACK"):
            traceback.print_exc()
        msg = f"{type(e).__name__}: {e}".replace("|", "/").replace("\n", " ")
        return f"error: {msg[:200]}"


def trials(fn, n, *args):
    return [fn(*args) for _ in range(n)]


def column(res, k):
    """One element of tuple results, or the error string as is."""
    return res if isinstance(res, str) else [r[k] for r in res]


def row(what, values, alt):
    if isinstance(values, str):
        print(f"| {what} | {values} | | | | {alt} |")
        return
    print(f"| {what} | {ms(statistics.median(values))} | {ms(pct(values, 90))} | {ms(max(values))} | "
          f"{len(values)} | {alt} |")


def main() -> int:
    t_start = time.perf_counter()
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    settings = manygil.configure()

    # The subprocess row first, before any interpreter exists in this process.
    ctrl_c = guarded(trials, ctrl_c_trial, 5, False)
    ctrl_c_warm = guarded(trials, ctrl_c_trial, 5, True)

    # Before the pool rows: abandoned workers keep their interpreters (listed
    # by format_stacks) until the process exits.
    stacks = guarded(stacks_trial)

    def deadlock_rows():
        a, b = manygil.create(), manygil.create()
        try:
            return trials(deadlock_trial, 20, a, b)
        finally:
            for i in (a, b):
                try:
                    i.exec("r = s = None")
                    i.close()
                except Exception:           # noqa: BLE001 - a stuck trial is reported already
                    pass
    dead = guarded(deadlock_rows)

    def interrupt_rows():
        with manygil.create() as c:
            interrupt_trial(c)              # untimed: its first exception imports things
            return trials(interrupt_trial, 20, c)
    irq = guarded(interrupt_rows)

    def timeout_rows():
        with manygil.InterpreterPoolExecutor(1, task_timeout=0.2) as pool:
            pool.submit(hf.add, 0, 0).result(JOIN_S)
            delays = [i * 0.004 for i in range(10)]
            random.Random(5).shuffle(delays)
            return [timeout_trial(pool, d) for d in delays]
    tmo = guarded(timeout_rows)

    def cancel_rows():
        with manygil.InterpreterPoolExecutor(1) as pool:
            pool.submit(hf.add, 0, 0).result(JOIN_S)
            return trials(cancel_trial, 10, pool)
    cancel = guarded(cancel_rows)
    abandon = guarded(trials, abandon_trial, 5)
    wstart = guarded(trials, worker_start_trial, 5)

    print(f"manygil {manygil.__version__}, Python {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs, load {load}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, deadlock_detection={settings['deadlock_detection']}\n")
    print("| what | median | p90 | max | n | what a user has otherwise |")
    print("|---|---|---|---|---|---|")
    row("1. deadlock: both waits visible -> DeadlockError in both", column(dead, 0),
        "`recv(timeout=…)` — as long as the timeout")
    row("1b. deadlock: second `exec` started -> DeadlockError in both", column(dead, 1),
        "`recv(timeout=…)` — as long as the timeout")
    row("2. `Interpreter.interrupt()` -> `exec` raised", irq, "none: the loop runs on")
    row("3. `task_timeout=0.2`: TaskTimeout raised, past the 0.2 s", column(tmo, 0),
        "`result(timeout)` stops waiting; the worker stays busy for ever")
    row("3b. ... then a trivial task on the same worker", column(tmo, 1), "a lost worker")
    row("4. running `Future.cancel()` -> next task served", cancel,
        "stdlib pools: `cancel()` of a running task returns False")
    row("5. `time.sleep(3600)` task, timeout 0.2 + grace 0.3: future raised", column(abandon, 0),
        "the worker is lost; `result(timeout)`")
    row("5b. ... replacement worker served a task", column(abandon, 1), "a pool one worker short")
    row("5c. (reference) a worker start: new 1-worker pool -> first task served", wstart, "")
    row("6. Ctrl-C -> KeyboardInterrupt out of `exec`, main thread (child's stamp)", column(ctrl_c, 0),
        "deferred until the code ends (never, here): kill the process")
    row("6b. ... the child's KI line read by the parent", column(ctrl_c, 1), "")
    row("6c. Ctrl-C, the interpreter has raised once before (child's stamp)", column(ctrl_c_warm, 0), "")
    row("7. `format_stacks()`, 4 interpreters (2 looping)", column(stacks, 0),
        "`faulthandler.dump_traceback`: this interpreter only")
    row("7b. `dump_stacks(/dev/null)`, same", column(stacks, 1), "")
    print(f"\nCommand: `{shlex.join([sys.executable] + sys.argv)}` "
          f"(whole run {time.perf_counter() - t_start:.1f} s)\n")
    print("1. Two threads of main each run `exec(\"r.recv()\")` in A and B (a receive cycle, main "
          "holds no end); timed until both raised, from the poll of `_core._waits()` seeing both "
          "waits (1) and from the later of the two threads entering `exec` (1b).")
    print("2. `exec(\"while True: pass\")` in a thread, interrupted 20 ms into the loop; until "
          "`exec` raised ExecutionFailed(KeyboardInterrupt) in the thread; after one untimed trial.")
    print("3. Overshoot = TaskTimeout raised − submit − 0.2 s, `while True: pass` on a 1-worker "
          "pool, submitted 0, 4, ..., 36 ms (shuffled) after the previous trial, so over the "
          "phases of the pool's 40 ms limit check; 3b: submit -> result of `add(1, 2)` right after, same worker.")
    print("4. Cancelled once `Future.running()`; until `add(1, 2)` submitted after it returned. "
          "The first trial on a fresh worker (as in 3) carries its first exception's cost (6 vs 6c).")
    print("5. From submit; expected 0.2 + 0.3 s + the pool's monitor ticks (5b: + a worker start, "
          "5c); one `abandoned` hang report each.")
    print("6. `kill(SIGINT)` by the parent after the child printed READY (its `exec` running) "
          "+ 50 ms; the child stamps `time.monotonic()` in its `except KeyboardInterrupt`; 6c: the "
          "child's interpreter raised once before, which imports what describing an exception needs.")
    print("7. Per call, alternating, 10 each; the looping interpreters hand over their GIL "
          "every switch interval (5 ms) to let the dump in.")
    if STUCK:
        print(f"\nstill running: {'; '.join(STUCK)}", flush=True)
        os._exit(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
