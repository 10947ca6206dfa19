"""Race 3: Future.cancel() against completion on the pool.

Batches of short tasks; a canceller thread cancels the even ones at a
random moment (queued, running or just finished) while the main thread
collects results (InterpreterPoolExecutor's result() also hands finished
tasks to their futures, so the canceller races both the main thread and
the pool's collector thread).  Each cancelled-at future ends either
cancelled (cancel() returned True: cancelled() is True and result() raises
CancelledError) or with its result (cancel() returned False: cancelled() is
False); cancel() itself never raises; the futures never cancelled always
give their result -- an interrupt meant for a cancelled task must never hit
the next one.

usage: race_cancel.py [N=8000 [SWITCH_INTERVAL=1e-5]]   (N tasks in all)
"""
import concurrent.futures as cf
import queue
import random
import sys
import threading
import time

from manygil import InterpreterPoolExecutor
from _child import count, fail, ident, spin

BATCH = 8


def canceller(jobs):
    while True:
        item = jobs.get()
        if item is None:
            return
        futs, answers, done = item
        for value, fut in futs:
            try:
                answers[value] = fut.cancel()
            except BaseException as e:      # noqa: BLE001 - reported by the main thread
                answers[value] = e
        done.set()


def check(value, fut, answers, stats):
    answer = answers.get(value)
    if isinstance(answer, BaseException):
        fail(f"task {value}: cancel() raised {type(answer).__name__}: {answer}")
    try:
        got = fut.result(timeout=60)
    except cf.CancelledError:
        if answer is not True:
            fail(f"task {value}: cancel() returned {answer} but result() raised CancelledError")
        if not fut.cancelled():
            fail(f"task {value}: result() raised CancelledError, cancelled() is False")
        stats["cancelled"] += 1
        return
    except cf.TimeoutError:
        fail(f"task {value} never resolved")
    except BaseException as e:      # noqa: BLE001
        fail(f"task {value} (cancel() -> {answer}) raised {type(e).__name__}: {e}")
    if got != value:
        fail(f"task {value} returned {got!r}")
    if fut.cancelled():
        fail(f"task {value}: result() returned but cancelled() is True")
    if answer is True:
        fail(f"task {value}: cancel() returned True but result() returned {got!r}")
    stats["finished_first" if value in answers else "plain"] += 1


def main():
    n = count(1, 8000)
    # Hand the main interpreter's GIL over often: cancel() and the threads
    # resolving the same future then interleave more.
    sys.setswitchinterval(float(sys.argv[2]) if len(sys.argv) > 2 else 1e-5)
    rng = random.Random(1234)
    stats = {"cancelled": 0, "finished_first": 0, "plain": 0}
    jobs = queue.SimpleQueue()
    t = threading.Thread(target=canceller, args=(jobs,), name="canceller", daemon=True)
    t.start()
    with InterpreterPoolExecutor(2) as pool:
        pool.submit(ident, 0).result(timeout=60)         # workers are up
        done = 0
        while done < n:
            # Most rounds: as many tasks as workers, so that the cancelled
            # ones are running; some rounds: a queue of them.
            batch = BATCH if (done // 2) % 4 == 0 else 2
            futs = [(done + j, pool.submit(spin, rng.random() * 0.0005, done + j))
                    for j in range(batch)]
            answers = {}
            cancelled = threading.Event()
            time.sleep(rng.random() * 0.0005)
            jobs.put(([f for f in futs if f[0] % 2 == 0], answers, cancelled))
            for value, fut in futs:
                if value % 2:
                    check(value, fut, answers, stats)
            if not cancelled.wait(60):
                fail("the canceller thread is stuck")
            for value, fut in futs:
                if value % 2 == 0:
                    check(value, fut, answers, stats)
            done += batch
        for k in range(4):
            if pool.submit(ident, k).result(timeout=30) != k:
                fail("the pool stopped serving")
    jobs.put(None)
    t.join(10)
    print(f"tasks={done} " + " ".join(f"{k}={v}" for k, v in stats.items()))
    print("DONE")


if __name__ == "__main__":
    main()
