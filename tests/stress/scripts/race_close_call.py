"""Race 4: Interpreter.close() against calls from other threads.

Each round: a fresh interpreter, two threads calling it in a loop, and
close() from the main thread at a random moment.  close() either raises
InterpreterError (it runs code: retried) or succeeds; every call either
succeeds or raises InterpreterNotFoundError / InterpreterError; after close
succeeded the callers see InterpreterNotFoundError.  No crash.

usage: race_close_call.py [N=150]   (rounds)
"""
import random
import threading
import time

import manygil
from _child import count, fail, ident, short


def main():
    rounds = count(1, 150)
    rng = random.Random(99)
    totals = {"calls_ok": 0, "not_found": 0, "interp_error": 0, "close_refused": 0}
    lock = threading.Lock()
    for r in range(rounds):
        interp = manygil.create()
        start = threading.Barrier(3)
        errors = []

        def caller(me):
            start.wait()
            ok = 0
            end = time.monotonic() + 30
            while time.monotonic() < end:
                try:
                    got = interp.call(short, 30)
                except manygil.InterpreterNotFoundError:
                    with lock:
                        totals["not_found"] += 1
                        totals["calls_ok"] += ok
                    return
                except manygil.InterpreterError:
                    with lock:
                        totals["interp_error"] += 1
                    continue
                except BaseException as e:      # noqa: BLE001
                    errors.append(f"caller {me}: {type(e).__name__}: {e}")
                    return
                if got != sum(range(30)):
                    errors.append(f"caller {me}: call returned {got!r}")
                    return
                ok += 1
            errors.append(f"caller {me}: still calling 30 s after the round began")

        threads = [threading.Thread(target=caller, args=(m,)) for m in range(2)]
        for t in threads:
            t.start()
        start.wait()
        time.sleep(rng.choice((0, 0, rng.random() * 0.003)))
        end = time.monotonic() + 20
        while True:
            try:
                interp.close()
                break
            except manygil.InterpreterNotFoundError:
                fail("close() raised InterpreterNotFoundError (closing a closed one does nothing)")
            except manygil.InterpreterError:
                totals["close_refused"] += 1
                if time.monotonic() > end:
                    fail(f"round {r}: close() refused for 20 s")
        for t in threads:
            t.join(30)
            if t.is_alive():
                fail(f"round {r}: a caller is still running after close()")
        if errors:
            fail(f"round {r}: " + "; ".join(errors))
        interp.close()                              # harmless twice
    fresh = manygil.create()
    if fresh.call(ident, 7) != 7:
        fail("a fresh interpreter does not work")
    fresh.close()
    print(f"rounds={rounds} " + " ".join(f"{k}={v}" for k, v in totals.items()))
    print("DONE")


if __name__ == "__main__":
    main()
