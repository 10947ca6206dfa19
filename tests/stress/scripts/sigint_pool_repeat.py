"""Ctrl-C, over and over, into a thread that waits on pool futures.

usage: sigint_pool_repeat.py [SECONDS=3]

A killer thread sends SIGINT to this process every 0.5-10 ms for SECONDS
while the main thread runs ``pool.submit(abs, -i).result(10)`` in a loop --
so KeyboardInterrupt lands everywhere in the pool's Python code: in
result(), in the drain that hands finished tasks to futures, inside a
future's condition.  Then every future submitted must still resolve, to the
right value, within a bounded time (a lost task or a lock left held by an
interrupted ``with`` hangs here), and the pool must still run new tasks and
shut down.  Prints ``KI <n>``, ``TASKS <n>``, ``DONE``.

The SIGINT handler raises KeyboardInterrupt only while the loop's ``try`` is
armed, so that the interrupt always lands where the loop catches it (the
pool's code runs inside that ``try``); a signal that arrives while unarmed
is dropped.
"""
import random
import signal
import sys
import threading
import time
from concurrent.futures import wait

import manygil
from _child import arg, fail

armed = False


def on_sigint(signum, frame):
    if armed:
        raise KeyboardInterrupt


signal.signal(signal.SIGINT, on_sigint)


def killer(stop, seconds, sent):
    import os
    end = time.monotonic() + seconds
    rng = random.Random(1234)
    while time.monotonic() < end:
        time.sleep(rng.uniform(0.0005, 0.010))
        os.kill(os.getpid(), signal.SIGINT)
        sent[0] += 1
    stop.set()


def main():
    global armed
    seconds = float(arg(1, "3"))
    pool = manygil.InterpreterPoolExecutor(2)
    if pool.submit(abs, -1).result(60) != 1:
        fail("warm-up task gave a wrong result")
    futures = []
    stop = threading.Event()
    sent = [0]
    kill = threading.Thread(target=killer, args=(stop, seconds, sent))
    time.sleep(0.2)
    kill.start()
    i = ki = 0
    while not stop.is_set():
        i += 1
        try:
            armed = True
            f = pool.submit(abs, -i)
            futures.append((i, f))
            f.result(10)
            armed = False
        except KeyboardInterrupt:
            armed = False
            ki += 1
    kill.join()
    done, not_done = wait([f for _, f in futures], timeout=30)
    if not_done:
        fail(f"{len(not_done)} of {len(futures)} futures never resolved "
             f"after {ki} interrupts")
    for n, f in futures:
        if f.result(0) != n:
            fail(f"future {n} resolved to {f.result(0)!r}")
    if pool.submit(abs, -7).result(30) != 7:
        fail("the pool gave a wrong result after the interrupts")
    pool.shutdown(wait=True)
    print(f"KI {ki}")
    print(f"SENT {sent[0]}")
    print(f"TASKS {len(futures)}")
    print("DONE")
    sys.stdout.flush()


main()
