"""The (thread, interpreter) thread-state cache: reuse and clean-up."""
import threading
import time

import manygil
from manygil import _core
from helpers import remote


def count(interp):
    return _core._thread_state_count(interp.id)


def wait_for_count(interp, expected, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = count(interp)
        if n == expected:
            return n
        time.sleep(0.01)
    return count(interp)


def test_repeated_calls_from_one_thread_reuse_one_thread_state(interp):
    interp.call(remote.identity, 0)
    before = count(interp)
    for i in range(1000):
        assert interp.call(remote.identity, i) == i
    assert count(interp) == before


def test_a_thread_adds_one_state_while_alive_and_releases_it_when_it_ends(interp):
    interp.call(remote.identity, 0)
    base = count(interp)
    entered, release = threading.Event(), threading.Event()

    def worker():
        for i in range(100):
            interp.call(remote.identity, i)
        entered.set()
        release.wait(10)

    t = threading.Thread(target=worker)
    t.start()
    assert entered.wait(10)
    assert count(interp) == base + 1        # one state for 100 calls
    release.set()
    t.join()
    # The state is deleted by the thread's exit hook, just after join returns.
    assert wait_for_count(interp, base) == base


def test_many_short_threads_leave_no_states_behind(interp):
    interp.call(remote.identity, 0)
    base = count(interp)
    for _ in range(5):
        threads = [threading.Thread(target=interp.call, args=(remote.identity, 1))
                   for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert wait_for_count(interp, base) == base


def test_close_deletes_states_of_threads_still_alive():
    """A live thread's cached state must not keep the interpreter from
    closing (CPython aborts on Py_EndInterpreter with stray thread states)."""
    interp = manygil.create()
    entered, release = threading.Event(), threading.Event()

    def worker():
        interp.call(remote.identity, 1)
        entered.set()
        release.wait(10)
        # The interpreter is gone now: using it raises, it does not crash.
        try:
            interp.call(remote.identity, 2)
        except manygil.InterpreterNotFoundError:
            results.append("not found")

    results = []
    t = threading.Thread(target=worker)
    t.start()
    assert entered.wait(10)
    interp.close()
    release.set()
    t.join()
    assert results == ["not found"]
