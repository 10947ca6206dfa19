"""Race 3: Future.cancel() against completion on the pool.

Batches of short tasks; the even ones are cancelled at a random moment
(queued, running or finished).  Each cancelled-at future ends either
cancelled (cancel() returned True: cancelled() is True and result() raises
CancelledError) or with its result (cancel() returned False: cancelled() is
False); the futures never cancelled always give their result -- an
interrupt meant for a cancelled task must never hit the next one.

usage: race_cancel.py [N=2000 [SWITCH_INTERVAL=1e-5]]   (N tasks in all)
"""
import concurrent.futures as cf
import random
import sys
import time

from manygil import InterpreterPoolExecutor
from _child import count, fail, ident, spin

BATCH = 8


def main():
    n = count(1, 2000)
    # Hand the main interpreter's GIL over often: the user's cancel() and the
    # collector thread resolving the same future then interleave more.
    sys.setswitchinterval(float(sys.argv[2]) if len(sys.argv) > 2 else 1e-5)
    rng = random.Random(1234)
    stats = {"cancelled": 0, "finished_first": 0, "plain": 0}
    with InterpreterPoolExecutor(2) as pool:
        pool.submit(ident, 0).result(timeout=60)         # workers are up
        done = 0
        while done < n:
            # Most rounds: as many tasks as workers, so that the cancelled
            # ones are running; some rounds: a queue of them.
            batch = BATCH if (done // 2) % 4 == 0 else 2
            futs = []
            for j in range(batch):
                value = done + j
                futs.append((value, pool.submit(spin, rng.random() * 0.002, value)))
            time.sleep(rng.random() * 0.002)
            answers = {}
            for value, fut in futs:
                if value % 2 == 0:
                    answers[value] = fut.cancel()
            for value, fut in futs:
                try:
                    got = fut.result(timeout=60)
                except cf.CancelledError:
                    if not answers.get(value, False):
                        fail(f"task {value}: cancel() returned {answers.get(value)} "
                             "but result() raised CancelledError")
                    if not fut.cancelled():
                        fail(f"task {value}: result() raised CancelledError, cancelled() is False")
                    stats["cancelled"] += 1
                    continue
                except cf.TimeoutError:
                    fail(f"task {value} never resolved")
                except BaseException as e:      # noqa: BLE001
                    fail(f"task {value} (cancel() -> {answers.get(value)}) raised "
                         f"{type(e).__name__}: {e}")
                if got != value:
                    fail(f"task {value} returned {got!r}")
                if fut.cancelled():
                    fail(f"task {value}: result() returned but cancelled() is True")
                if answers.get(value):
                    fail(f"task {value}: cancel() returned True but result() returned {got!r}")
                stats["finished_first" if value in answers else "plain"] += 1
            done += batch
        for k in range(4):
            if pool.submit(ident, k).result(timeout=30) != k:
                fail("the pool stopped serving")
    print(f"tasks={done} " + " ".join(f"{k}={v}" for k, v in stats.items()))
    print("DONE")


if __name__ == "__main__":
    main()
