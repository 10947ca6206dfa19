"""Exit in one lifecycle state: set the state up, then end the program.

usage: exit_case.py CASE END [DIR]
  END: "return" (falls off the end: exit code 0) or "exit3" (sys.exit(3))
  DIR: for pool_nowait_files, where the tasks write their files

The parent checks the exit code, a clean stderr and a quick exit; it
prints READY when the state is set up, just before the program ends.
"""
import os
import sys
import threading
import time

import manygil
from _child import fail, ident, recv_forever, spin, spin_forever, wait_until, write_file_after

CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def daemon(target, *args):
    t = threading.Thread(target=target, args=args, daemon=True)
    t.start()
    return t


def watching():
    """Start a watchdog and return a function that waits for its first report."""
    reports = []
    wd = manygil.watchdog(warn_after=0.1, on_hang=reports.append)

    def wait_report():
        wait_until(lambda: reports, 10, "the watchdog's first report")
        return wd
    return wait_report


# ---- a daemon thread inside an interpreter ---------------------------------

def _running(interp):
    wait_until(interp.is_running, 10, "the interpreter to run the daemon's code")


@case
def daemon_exec_sleep():
    interp = manygil.create()
    daemon(interp.exec, "import time; time.sleep(100)")
    _running(interp)


@case
def daemon_call_spin():
    interp = manygil.create()
    daemon(interp.call, spin_forever)
    _running(interp)


@case
def daemon_recv_block():
    interp = manygil.create()
    recv, send = manygil.create_channel()
    daemon(interp.call, recv_forever, recv)
    _running(interp)
    wait_until(lambda: manygil._core._waits(), 10, "the daemon's recv() to block")
    globals()["_keep"] = send          # the send end stays open: the wait is not hopeless


@case
def watchdog_daemon_exec_sleep():
    wait_report = watching()
    daemon_exec_sleep()
    wait_report()


@case
def watchdog_daemon_call_spin():
    wait_report = watching()
    daemon_call_spin()
    wait_report()


@case
def watchdog_daemon_recv_block():
    wait_report = watching()
    daemon_recv_block()
    wait_report()


# ---- actors ------------------------------------------------------------------

@case
def actors_busy():
    """A default actor system open at exit: its actor in a method, 20 tells
    queued behind it (drained at exit), a submit() future pending (its
    resolver thread alive)."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from helpers import actor_funcs as af          # tests/helpers, importable by reference
    log = manygil.spawn(af.Log)
    for k in range(20):
        log.add_slowly.tell(k, 0.02)
    globals()["_pending"] = (log, log.items_.submit())


@case
def actors_interrupted():
    """Exit just after ActorRef.interrupt(): one actor's method spinning in
    Python (the interrupt lands as the program ends), another's asleep in C
    (it cannot land: that interpreter is ended without waiting), each on a
    worker of its own, a submit() pending on each."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from helpers import actor_funcs as af          # tests/helpers, importable by reference
    system = manygil.ActorSystem(workers=2)
    spinner = manygil.spawn(af.Spinner, system=system)
    sleeper = manygil.spawn(af.Sleeper, system=system)
    futs = (spinner.spin.submit(60), sleeper.sleep.submit(3600))
    for ref in (spinner, sleeper):
        wait_until(ref.interrupt, 30, f"{ref} to start its method")     # True once it runs
    globals()["_pending"] = (system, futs)


# ---- pools -------------------------------------------------------------------

@case
def pool_starting():
    globals()["_pool"] = manygil.InterpreterPoolExecutor(4)


@case
def pool_starting_task():
    pool = manygil.InterpreterPoolExecutor(4)
    pool.submit(ident, 1)
    globals()["_pool"] = pool


@case
def pool_starting_nowait():
    pool = manygil.InterpreterPoolExecutor(4)
    pool.submit(ident, 1)
    pool.shutdown(wait=False)


@case
def pool_nowait_files():
    out = sys.argv[3]
    pool = manygil.InterpreterPoolExecutor(2)
    for k in range(6):
        pool.submit(write_file_after, os.path.join(out, f"task-{k}.txt"), 0.05)
    pool.shutdown(wait=False)


@case
def pool_abandoned_worker():
    # Exactly as a user would write it: no reference kept to the pool.
    manygil.InterpreterPoolExecutor(1, task_timeout=0.5, interrupt_grace=0.5).submit(
        time.sleep, 3600)


@case
def pool_abandoned_worker_running():
    pool = manygil.InterpreterPoolExecutor(1, task_timeout=0.5, interrupt_grace=0.5)
    fut = pool.submit(time.sleep, 3600)
    wait_until(fut.running, 10, "the sleeping task to start")


# ---- a watchdog whose on_hang blocks ---------------------------------------------

@case
def watchdog_on_hang_blocks():
    entered = threading.Event()

    def on_hang(report):
        entered.set()
        time.sleep(100)

    wd = manygil.watchdog(warn_after=0.1, on_hang=on_hang)
    recv, send = manygil.create_channel()
    waiter = daemon(lambda: recv.recv_nowait(None) or _timed_recv(recv))
    if not entered.wait(10):
        fail("on_hang was not called within 10 s")
    waiter.join(10)
    wd.stop()
    send.close()


def _timed_recv(recv):
    try:
        recv.recv(timeout=0.5)
    except manygil.ChannelTimeoutError:
        pass


def main():
    name, end = sys.argv[1], sys.argv[2]
    if name not in CASES:
        fail(f"unknown case {name!r}; known: {sorted(CASES)}")
    CASES[name]()
    print("READY", flush=True)
    if end == "exit3":
        sys.exit(3)
    if end != "return":
        fail(f"unknown end {end!r}")


if __name__ == "__main__":
    main()
