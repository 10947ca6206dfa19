"""Race 1: Interpreter.interrupt() against the end of a call.

One thread calls i.interrupt() in a loop while the main thread makes N
calls i.call(short, k % 200).  A call may fail with ExecutionFailed naming
KeyboardInterrupt; nothing may crash, and once the interrupter has stopped
no interrupt may be left over to hit a later call.

usage: race_interrupt_call.py [N=3000]
"""
import threading

import manygil
from _child import count, fail, short


def main():
    n = count(1, 3000)
    interp = manygil.create()
    stop = threading.Event()
    sent = [0, 0]                       # interrupt() calls, threads interrupted

    def interrupter():
        while not stop.is_set():
            sent[0] += 1
            sent[1] += interp.interrupt()

    t = threading.Thread(target=interrupter, name="interrupter", daemon=True)
    t.start()
    ok = interrupted = 0
    for k in range(n):
        try:
            got = interp.call(short, k % 200)
        except manygil.ExecutionFailed as e:
            if e.excinfo.type.__name__ != "KeyboardInterrupt":
                fail(f"call {k} failed with something else than the interrupt: {e}")
            interrupted += 1
            continue
        if got != sum(range(k % 200)):
            fail(f"call {k} returned {got!r}")
        ok += 1
    stop.set()
    t.join(30)
    if t.is_alive():
        fail("the interrupter thread did not stop")
    # The interrupter is gone: no interrupt may still be pending anywhere.
    for k in range(200):
        try:
            got = interp.call(short, 50)
        except manygil.ExecutionFailed as e:
            fail(f"a call after the last interrupt() returned was interrupted ({k}): {e}")
        if got != sum(range(50)):
            fail(f"late call returned {got!r}")
    interp.close()
    print(f"calls={n} ok={ok} interrupted={interrupted} interrupt_calls={sent[0]} "
          f"threads_interrupted={sent[1]}")
    print("DONE")


if __name__ == "__main__":
    main()
