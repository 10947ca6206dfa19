"""Race 6: pool start against shutdown.

Repeatedly: InterpreterPoolExecutor(4), submit (in most rounds),
shutdown(wait=False) at once -- while its workers are still starting.  The
submitted task must still give its result (shutdown without cancel_futures
runs queued tasks).  The last pools are left shut down with wait=False and
their workers starting when the program exits.

usage: race_pool_start_shutdown.py [N=40]   (rounds)
"""
import manygil
from manygil import InterpreterPoolExecutor
from _child import count, fail, ident


def main():
    rounds = count(1, 40)
    for r in range(rounds):
        pool = InterpreterPoolExecutor(4)
        fut = pool.submit(ident, r) if r % 4 != 3 else None
        pool.shutdown(wait=False)
        if fut is not None:
            try:
                got = fut.result(timeout=60)
            except BaseException as e:          # noqa: BLE001
                fail(f"round {r}: the task queued before shutdown(wait=False) raised "
                     f"{type(e).__name__}: {e}")
            if got != r:
                fail(f"round {r}: result {got!r}")
    # At exit: pools shut down with wait=False while their workers start.
    last = [InterpreterPoolExecutor(4) for _ in range(2)]
    for k, pool in enumerate(last):
        pool.submit(ident, k)
        pool.shutdown(wait=False)
    print(f"rounds={rounds}")
    print("DONE")


if __name__ == "__main__":
    main()
