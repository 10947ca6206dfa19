"""Ctrl-C landing right after a lock of the pool or the actors is taken
never leaves it held.

A KeyboardInterrupt can be raised between a lock's acquire and the ``with``
block that would release it (threading.Condition's ``__enter__`` is Python;
on 3.14+ ``with`` checks for signals after any ``__enter__`` returns).  A
future's lock left held by the main thread blocks the pool's collector for
ever (seen in the SIGINT sweep on 3.14: every later future unresolved,
``shutdown()`` hung); the actors' reply collector is in the same place.  These tests raise KeyboardInterrupt at exactly that
point, from a profile function on the acquire's return, deterministically.
"""
import sys
import threading
from concurrent.futures import Future

import pytest

import manygil
from manygil import _core

pytestmark = pytest.mark.timeout(60)


class _Probe:
    """A profile function that raises KeyboardInterrupt once, when a C
    function for which hit(frame, fn) is true returns in this thread."""

    fired = False

    def hit(self, frame, fn) -> bool:
        raise NotImplementedError

    def __call__(self, frame, event, arg):
        if event == "c_return" and not self.fired and self.hit(frame, arg):
            self.fired = True
            raise KeyboardInterrupt("simulated Ctrl-C")

    def run(self, fn, *args):
        sys.setprofile(self)
        try:
            return fn(*args)
        finally:
            sys.setprofile(None)


class _InterruptOnAcquire(_Probe):
    """Fires when an acquire of `lock` (its __enter__ or acquire(); or
    another of its C methods named in `names`) returns."""

    def __init__(self, lock, names=("__enter__", "acquire")):
        self.lock = lock
        self.names = names

    def hit(self, frame, fn):
        return getattr(fn, "__self__", None) is self.lock and getattr(fn, "__name__", "") in self.names


def _free_in_another_thread(lock) -> bool:
    got = []
    t = threading.Thread(target=lambda: got.append(lock.acquire(timeout=5) and lock.release() is None))
    t.start()
    t.join(10)
    return got == [True]


def wait_for(q):
    return q.get(timeout=30)


@pytest.fixture
def pool():
    p = manygil.InterpreterPoolExecutor(1)
    yield p
    p.shutdown(wait=True, cancel_futures=True)


def test_the_simulated_interrupt_does_leak_a_plain_futures_lock():
    """The control: the stdlib Future's lock stays held -- what the pool's
    futures must not do."""
    fut = Future()
    lock = fut._condition._lock
    probe = _InterruptOnAcquire(lock)
    with pytest.raises(KeyboardInterrupt):
        probe.run(fut.done)
    assert probe.fired
    assert lock._is_owned()
    lock.release()


METHODS = {
    "result": lambda fut: fut.result(timeout=30),
    "exception": lambda fut: fut.exception(timeout=30),
    "done": lambda fut: fut.done(),
    "cancelled": lambda fut: fut.cancelled(),
    "running": lambda fut: fut.running(),
    "cancel": lambda fut: fut.cancel(),
    "add_done_callback": lambda fut: fut.add_done_callback(lambda f: None),
    "repr": repr,
}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_future_lock_is_free_after_an_interrupt_in(pool, method):
    gate = manygil.create_queue()
    fut = pool.submit(wait_for, gate)
    lock = fut._condition._lock
    probe = _InterruptOnAcquire(lock)
    with pytest.raises(KeyboardInterrupt):
        probe.run(METHODS[method], fut)
    assert probe.fired
    assert not lock._is_owned(), f"{method}() left the future's lock held"
    assert _free_in_another_thread(lock)
    # The collector can still resolve it: the task finishes and its result arrives.
    gate.put("go")
    assert fut.result(timeout=30) == "go"
    assert pool.submit(abs, -3).result(timeout=30) == 3


def test_interrupt_as_the_wait_releases_the_lock_raises_keyboardinterrupt(pool):
    """Ctrl-C right after Condition.wait() released the lock, before its try
    block: the stdlib's Future.result() then raises RuntimeError("cannot
    release un-acquired lock") from its `with`; the pool's future gives the
    user the KeyboardInterrupt, and the lock is free."""
    plain = Future()
    probe = _InterruptOnAcquire(plain._condition._lock, names=("_release_save",))
    with pytest.raises(RuntimeError, match="un-acquired lock"):
        probe.run(plain.result, 5)
    assert probe.fired
    gate = manygil.create_queue()
    fut = pool.submit(wait_for, gate)
    lock = fut._condition._lock
    probe = _InterruptOnAcquire(lock, names=("_release_save",))
    with pytest.raises(KeyboardInterrupt) as info:
        probe.run(fut.result, 30)
    assert probe.fired and str(info.value) == "simulated Ctrl-C"
    assert not lock._is_owned()
    assert _free_in_another_thread(lock)
    gate.put("go")
    assert fut.result(timeout=30) == "go"


@pytest.mark.skipif(sys.version_info < (3, 14), reason="`with` is interruptible after __enter__ on 3.14+")
@pytest.mark.parametrize("where", ["submit", "drain"])
def test_pool_locks_are_free_after_an_interrupt_in(pool, where):
    pool.submit(abs, 1).result(timeout=30)
    lock = pool._shutdown_lock if where == "submit" else pool._drain_lock
    probe = _InterruptOnAcquire(lock)
    if where == "submit":
        call = lambda: pool.submit(abs, -1)             # noqa: E731
    else:
        fut = pool.submit(abs, -1)
        call = lambda: fut.result(timeout=30)           # noqa: E731  (drains in this thread)
    with pytest.raises(KeyboardInterrupt):
        probe.run(call)
    assert probe.fired
    assert not lock._is_owned()
    assert _free_in_another_thread(lock)
    assert [f.result(timeout=30) for f in [pool.submit(abs, -k) for k in range(20)]] == list(range(20))


def test_locked_call_keeps_holds_taken_before_and_returns_the_result():
    lock = threading.RLock()
    lock.acquire()

    def take_twice(x, *, y):
        lock.acquire()
        lock.acquire()
        return x + y

    assert _core._locked_call((lock,), take_twice, 1, y=2) == 3
    assert lock._recursion_count() == 1
    lock.release()


def test_locked_call_releases_what_a_raising_call_kept():
    lock = threading.RLock()

    def take_and_raise():
        lock.acquire()
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        _core._locked_call((lock,), take_and_raise)
    assert not lock._is_owned()
    assert _free_in_another_thread(lock)


@pytest.mark.parametrize("args, exc", [
    ((), TypeError), (((),), TypeError), (([threading.RLock()], abs), TypeError),
    (((threading.RLock(),) * 5, abs), TypeError), (((object(),), abs), AttributeError),
])
def test_locked_call_bad_arguments(args, exc):
    with pytest.raises(exc):
        _core._locked_call(*args)


class Echo:
    def echo(self, x, gate=None):
        if gate is not None:
            gate.get(timeout=30)
        return x


@pytest.fixture
def echo():
    with manygil.spawn(Echo, dedicated=True) as ref:
        yield ref


def test_actor_future_lock_is_free_after_an_interrupt(echo):
    gate = manygil.create_queue()
    fut = echo.echo.submit(7, gate)
    lock = fut._condition._lock
    probe = _InterruptOnAcquire(lock)
    with pytest.raises(KeyboardInterrupt):
        probe.run(fut.result, 30)
    assert probe.fired
    assert not lock._is_owned()
    gate.put("go")
    assert fut.result(timeout=30) == 7
    assert [f.result(timeout=30) for f in [echo.echo.submit(k) for k in range(20)]] == list(range(20))


@pytest.mark.skipif(sys.version_info < (3, 14), reason="`with` is interruptible after __enter__ on 3.14+")
def test_actor_reply_collector_lock_is_free_after_an_interrupt(echo):
    from manygil import _actors
    assert echo.echo.submit(1).result(timeout=30) == 1
    lock = _actors._get_collector().lock
    probe = _InterruptOnAcquire(lock)
    with pytest.raises(KeyboardInterrupt):
        probe.run(echo.echo.submit, 2)
    assert probe.fired
    assert not lock._is_owned()
    assert _free_in_another_thread(lock)
    assert [f.result(timeout=30) for f in [echo.echo.submit(k) for k in range(20)]] == list(range(20))


# ---- thread starts ------------------------------------------------------------

def _in_thread_start(frame) -> bool:
    """frame is inside threading.Thread.start()."""
    while frame is not None:
        if frame.f_code.co_name == "start" and frame.f_code.co_filename == threading.__file__:
            return True
        frame = frame.f_back
    return False


class _InterruptInThreadStart(_Probe):
    """Fires when any lock acquire made inside threading.Thread.start() (its
    `_active_limbo_lock`, the wait on the new thread's `_started` Event)
    returns.  With `started_wait_only`, only the acquire of Event.wait's
    `with`."""

    def __init__(self, started_wait_only=False):
        self.started_wait_only = started_wait_only

    def hit(self, frame, fn):
        if getattr(fn, "__name__", "") not in ("__enter__", "acquire"):
            return False
        if not self.started_wait_only:
            return _in_thread_start(frame)
        return (frame.f_code.co_name == "__enter__" and frame.f_back is not None
                and frame.f_back.f_code.co_name == "wait"
                and frame.f_back.f_back is not None
                and frame.f_back.f_back.f_code.co_name == "start")


def test_the_simulated_interrupt_does_stall_a_plain_thread_start():
    """The control: Ctrl-C just after Thread.start()'s wait took its Event's
    lock leaves the new thread stuck before its target, for good."""
    ran = threading.Event()
    t = threading.Thread(target=ran.set, daemon=True)
    probe = _InterruptInThreadStart(started_wait_only=True)
    with pytest.raises(KeyboardInterrupt):
        probe.run(t.start)
    assert probe.fired
    assert not ran.wait(0.5)            # stuck in _started.set()
    t._started._cond._lock.release()    # the held lock, given back by hand
    assert ran.wait(10)
    t.join(10)


def test_start_thread_completes_the_start_after_an_interrupt_in_its_wait():
    from manygil._guard import start_thread
    ran = threading.Event()
    t = threading.Thread(target=ran.set, daemon=True)

    def probe(frame, event, arg):
        # The KeyboardInterrupt lands as start_thread's wait for the helper
        # returns (the second acquire of its one-shot lock; the first, before
        # the helper exists, would leave nothing started).
        if (event == "c_return" and frame.f_code.co_name == "call_uninterrupted"
                and getattr(arg, "__name__", "") == "acquire"):
            acquires.append(True)
            if len(acquires) == 2:
                fired.append(True)
                raise KeyboardInterrupt("simulated Ctrl-C")
    acquires, fired = [], []
    sys.setprofile(probe)
    try:
        with pytest.raises(KeyboardInterrupt):
            start_thread(t)
    finally:
        sys.setprofile(None)
    assert fired
    assert ran.wait(10)
    t.join(10)
    assert not t.is_alive()


def test_call_uninterrupted_hands_back_the_error_and_runs_here_off_the_main_thread():
    from manygil._guard import call_uninterrupted
    where = []

    def boom():
        where.append(threading.current_thread() is threading.main_thread())
        raise ValueError("from fn")
    with pytest.raises(ValueError, match="from fn"):
        call_uninterrupted(boom)
    t = threading.Thread(target=lambda: call_uninterrupted(lambda: where.append(
        threading.current_thread() is threading.main_thread())))
    t.start()
    t.join(10)
    assert where == [False, False]      # the main thread's call ran on a helper


def _idle_collector():
    """This interpreter's actor reply collector, once its thread has ended
    (so that the next submit() starts one)."""
    import time
    from manygil import _actors
    c = _actors._get_collector()
    end = time.monotonic() + 20
    while c.thread is not None and time.monotonic() < end:
        time.sleep(0.01)
    assert c.thread is None
    return c


def test_actor_replies_flow_after_an_interrupt_in_the_reply_threads_start(echo):
    """A Ctrl-C inside the start of the reply collector's thread (before
    the fix it landed in Thread.start()'s wait and every later reply of this
    interpreter was stuck).  The start is now made off the main thread, so
    no acquire inside Thread.start() happens here and the probe has nothing
    to interrupt: what must hold is that every reply arrives."""
    assert echo.echo.submit(0).result(timeout=30) == 0
    _idle_collector()
    probe = _InterruptInThreadStart()
    try:
        fut = probe.run(echo.echo.submit, 1)
    except KeyboardInterrupt:
        fut = None
    if fut is not None:
        assert fut.result(timeout=30) == 1
    assert [f.result(timeout=30) for f in [echo.echo.submit(k) for k in range(20)]] == list(range(20))


def test_interrupted_submit_leaves_nothing_pending(echo):
    c = _idle_collector()

    def probe(frame, event, arg):
        if event == "c_return" and getattr(arg, "__name__", "") == "_awatch_arm" and not fired:
            fired.append(True)
            raise KeyboardInterrupt("simulated Ctrl-C")
    fired = []
    sys.setprofile(probe)
    try:
        with pytest.raises(KeyboardInterrupt):
            echo.echo.submit(5)
    finally:
        sys.setprofile(None)
    assert fired
    with c.lock:
        assert c.pending == {}
    assert [f.result(timeout=30) for f in [echo.echo.submit(k) for k in range(20)]] == list(range(20))
    _idle_collector()       # the reply thread ends: nothing was left for it
