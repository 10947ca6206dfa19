"""Race 5: concurrent first calls into a fresh interpreter.

This main script imports a few modules before it defines ``ident``, so a
first call of ``ident`` imports the script (as __mp_main__) in the target,
which takes a while.  (Not fractions or decimal: CPython 3.12's _decimal
corrupts the heap in subinterpreters by itself.)  Each round: a fresh interpreter, 4 threads released
at once, each calling i.call(ident, 1); all must return 1.

usage: race_first_calls.py [N=30]   (rounds)
"""
import collections          # noqa: F401 - imported in every target too
import dataclasses          # noqa: F401
import enum                 # noqa: F401
import json                 # noqa: F401
import string               # noqa: F401
import textwrap             # noqa: F401
import threading

import manygil
from _child import count, fail

THREADS = 4


def ident(x):
    return x


def main():
    rounds = count(1, 30)
    for r in range(rounds):
        interp = manygil.create()
        barrier = threading.Barrier(THREADS)
        results = [None] * THREADS

        def first_call(k):
            barrier.wait()
            try:
                results[k] = ("ok", interp.call(ident, 1))
            except BaseException as e:      # noqa: BLE001
                results[k] = ("raised", f"{type(e).__name__}: {e}")

        threads = [threading.Thread(target=first_call, args=(k,)) for k in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
            if t.is_alive():
                fail(f"round {r}: a first call did not return in 60 s")
        bad = [res for res in results if res != ("ok", 1)]
        if bad:
            fail(f"round {r}: {len(bad)} of {THREADS} concurrent first calls failed: {bad}")
        interp.close()
    print(f"rounds={rounds}")
    print("DONE")


if __name__ == "__main__":
    main()
