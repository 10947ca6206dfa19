"""Locks that Ctrl-C cannot leave held, and futures built on them.

A KeyboardInterrupt is raised in the main thread wherever the eval loop next
checks for signals -- also between a lock's acquire and the ``with`` block
that would release it: on 3.14+ right after any ``__enter__`` returns, and in
threading.Condition's Python ``__enter__`` on every version (bpo-29988).
The lock is then held for good.  Where a background thread needs the same
lock (a pool's collector resolving futures, the actors' reply collector),
it blocks for ever, and every later result with it.  So every method that
the user's threads run and that takes such a lock runs under
``_core._locked_call`` (src/py/lockguard.c): when the method returns or
raises, the holds it took and kept are given back, in C, where no signal
handler can run in between.
"""
from __future__ import annotations

import _thread
import functools
import threading
from concurrent.futures import Future

from . import _core

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["gives_back", "GuardedFuture", "call_uninterrupted", "start_thread"]


def gives_back(locks: "tuple | Callable[[Any], tuple]") -> "Callable":
    """Decorator: the function runs under ``_core._locked_call`` over
    ``locks`` -- a tuple of RLocks, or (for a method) a function of ``self``
    returning one.  Only for functions that leave those locks as they found
    them (a hold meant to outlive the call would be given back too)."""
    def wrap(fn: "Callable") -> "Callable":
        if isinstance(locks, tuple):
            def guarded(*args: "Any", **kwargs: "Any") -> "Any":
                return _core._locked_call(locks, fn, *args, **kwargs)
        else:
            def guarded(self: "Any", *args: "Any", **kwargs: "Any") -> "Any":
                return _core._locked_call(locks(self), fn, self, *args, **kwargs)
        return functools.update_wrapper(guarded, fn)
    return wrap


def _own_lock(fut: Future) -> tuple:
    return (fut._condition._lock,)      # type: ignore[attr-defined]  (an RLock)


class GuardedFuture(Future):
    """A concurrent.futures.Future whose every method that takes its lock
    gives it back even when Ctrl-C lands right after the acquire."""

    def result(self, timeout: float | None = None) -> "Any":
        try:
            return _core._locked_call(_own_lock(self), Future.result, self, timeout)
        except RuntimeError as exc:
            # Ctrl-C just after Condition.wait() released the lock, before
            # its try block: the `with` then releases an unheld lock.  The
            # user pressed Ctrl-C; give them the KeyboardInterrupt.
            ki = exc.__context__
            if isinstance(ki, KeyboardInterrupt) and "un-acquired lock" in str(exc):
                raise ki from None
            raise


for _name in ("done", "cancelled", "cancel", "exception", "add_done_callback", "set_result",
              "set_exception", "set_running_or_notify_cancel", "__repr__"):
    setattr(GuardedFuture, _name, gives_back(_own_lock)(getattr(Future, _name)))
del _name


def call_uninterrupted(fn: "Callable[[], Any]", *, wait: bool = True) -> None:
    """Call ``fn()`` where Ctrl-C cannot land in it.

    Only the main thread of the main interpreter gets KeyboardInterrupt;
    there ``fn`` runs on a short-lived helper thread (started by one C call:
    a Ctrl-C lands before it, and nothing has run, or after it, and all of
    ``fn`` runs).  With ``wait`` this thread waits for it and gets its
    exception; a Ctrl-C in that wait is raised here as usual while ``fn``
    completes.  Without ``wait`` it returns at once and ``fn`` must handle
    its own errors.  Elsewhere ``fn()`` is simply called.  For work that
    must not stop half-way (a thread start) and whose state ``fn`` itself
    sets: state set by the caller before the call could be left behind."""
    if (threading.current_thread() is not threading.main_thread()
            or _core.get_current() != _core.get_main()):
        fn()
        return
    if not wait:
        _thread.start_new_thread(fn, ())
        return
    done = _thread.allocate_lock()
    done.acquire()
    failed: list = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:    # handed to the caller below
            failed.append(exc)
        finally:
            done.release()

    _thread.start_new_thread(run, ())
    done.acquire()      # a one-shot lock: held or not after a Ctrl-C, no one else needs it
    if failed:
        raise failed.pop()


def start_thread(thread: threading.Thread) -> None:
    """``thread.start()``, made so that Ctrl-C cannot leave the new thread stuck.

    ``Thread.start()`` takes threading's ``_active_limbo_lock`` and waits on
    the new thread's ``_started`` Event, both plain Locks behind a ``with``.
    A KeyboardInterrupt landing just after either acquire leaves it held: the
    new thread then blocks for ever in ``_started.set()`` before it runs its
    target (the actors' reply collector, every reply pending on it), or no
    thread can be started again.  So the start is made by
    :func:`call_uninterrupted`."""
    call_uninterrupted(thread.start)
