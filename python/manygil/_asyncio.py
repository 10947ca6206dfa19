"""asyncio for manygil: channel and queue waits that occupy no thread.

``await recv.arecv()`` (and ``asend``, ``Queue.aget``, ``Queue.aput``)
first tries the non-blocking call.  When it must wait, it arms a *watch* on
the channel (in the C core) and awaits a future of its event loop.  The
loop watches one descriptor per loop (an eventfd, or a pipe) with
``loop.add_reader``; the thread that makes the channel ready -- a sender in
any interpreter -- fires the watch, which posts its token to that
descriptor.  The reader callback resolves the futures of the tokens posted,
and each woken coroutine takes its item *itself*, with the non-blocking
call, in its own step.

So a cancelled (or timed-out) coroutine never holds an item: the take
happens only in a coroutine that is running, after its wait ended.  A
coroutine woken but cancelled before it ran passes its turn on to the next
waiter of that channel (``_awatch_kick``).  Watches are not blocked threads:
the deadlock detector does not see them, as an event loop that waits is not
stuck.
"""
from __future__ import annotations

import asyncio
import functools
import weakref

from . import _core
from ._errors import ChannelTimeoutError, QueueEmpty, QueueFull

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["arecv", "asend", "aget", "aput", "acall"]

_SEND, _RECV = 1, 2             # MG__WAIT_SEND / MG__WAIT_RECV
_MISSING = object()
_EXPIRED = object()


class _Notifier:
    """A loop's descriptor and the futures waiting on its tokens.  It holds
    the futures weakly and the loop not at all, so that a loop dropped with
    waits pending is collected (with this notifier and its descriptor)."""

    __slots__ = ("nt", "futs", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.nt = _core._notifier()
        self.futs: dict[int, weakref.ref] = {}
        loop.add_reader(_core._notifier_fd(self.nt), self._on_ready)

    def _on_ready(self) -> None:
        futs = self.futs
        for token in _core._notifier_drain(self.nt):
            ref = futs.pop(token, None)
            fut = ref() if ref is not None else None
            if fut is not None and not fut.done():
                fut.set_result(None)


_notifiers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Notifier]" = \
    weakref.WeakKeyDictionary()


def _notifier(loop: asyncio.AbstractEventLoop) -> _Notifier:
    n = _notifiers.get(loop)
    if n is None:
        n = _notifiers[loop] = _Notifier(loop)
    return n


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(_EXPIRED)


def _timeout(timeout: Any) -> float | None:
    """Validate a timeout as the blocking calls do; None or seconds >= 0."""
    if timeout is None:
        return None
    tp = type(timeout)
    if not (hasattr(tp, "__float__") or hasattr(tp, "__index__")) or isinstance(timeout, str):
        raise TypeError(f"timeout must be a number or None, not {tp.__name__}")
    secs = float(timeout)
    if not secs >= 0:
        raise ValueError("timeout must be a non-negative number or None")
    return secs


async def _wait(handle: Any, kind: int, attempt: Callable[[], Any],
                timeout: float | None, timed_out: Callable[[], BaseException]) -> Any:
    """Run attempt() (a non-blocking call; _MISSING when it must wait) until
    it succeeds, waiting on handle's channel between tries."""
    value = attempt()
    if value is not _MISSING:
        return value
    loop = asyncio.get_running_loop()
    n = _notifier(loop)
    deadline = None if timeout is None else loop.time() + timeout
    w, token = _core._awatch(n.nt, handle, kind)
    while True:
        fut = loop.create_future()
        n.futs[token] = weakref.ref(fut)
        if _core._awatch_arm(w):            # became ready meanwhile
            del n.futs[token]
            value = attempt()
            if value is not _MISSING:
                return value
            continue
        timer = None if deadline is None else loop.call_at(deadline, _expire, fut)
        try:
            woke = await fut
        except BaseException:
            # Cancelled (or the task was closed): a turn given to us but not
            # taken goes to the next waiter.  We took nothing.
            n.futs.pop(token, None)
            if _core._awatch_disarm(w):
                _core._awatch_kick(w)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        n.futs.pop(token, None)
        _core._awatch_disarm(w)
        value = attempt()
        if value is not _MISSING:
            return value
        if woke is _EXPIRED or (deadline is not None and loop.time() >= deadline):
            raise timed_out()


def _recv_attempt(handle: Any) -> Callable[[], Any]:
    return functools.partial(handle.recv_nowait, _MISSING)


def _raising_attempt(call: Callable[[], Any], full: type) -> Callable[[], Any]:
    def attempt() -> Any:
        try:
            return call()
        except full:
            return _MISSING
    return attempt


def arecv(handle: Any, timeout: Any = None) -> Any:
    """``await recv.arecv(timeout=None)``: see RecvChannel.arecv."""
    secs = _timeout(timeout)
    if secs == 0:
        return _now(handle.recv_nowait)
    return _wait(handle, _RECV, _recv_attempt(handle), secs,
                 lambda: ChannelTimeoutError(f"channel end {handle.id}: timed out"))


def asend(handle: Any, obj: Any, timeout: Any = None) -> Any:
    """``await send.asend(obj, timeout=None)``: see SendChannel.asend."""
    from ._errors import ChannelFullError
    secs = _timeout(timeout)
    if secs == 0:
        return _now(handle.send_nowait, obj)
    return _wait(handle, _SEND, _raising_attempt(functools.partial(handle.send_nowait, obj),
                                                 ChannelFullError), secs,
                 lambda: ChannelTimeoutError(f"channel end {handle.id}: timed out"))


def aget(queue: Any, timeout: Any = None) -> Any:
    """``await queue.aget(timeout=None)``: see Queue.aget."""
    secs = _timeout(timeout)
    if secs == 0:
        return _now(queue.get_nowait)
    return _wait(queue, _RECV, _raising_attempt(queue.get_nowait, QueueEmpty), secs,
                 lambda: QueueEmpty(f"queue {queue.id}: timed out"))


def aput(queue: Any, obj: Any, timeout: Any = None) -> Any:
    """``await queue.aput(obj, timeout=None)``: see Queue.aput."""
    secs = _timeout(timeout)
    if secs == 0:
        return _now(queue.put_nowait, obj)
    return _wait(queue, _SEND, _raising_attempt(functools.partial(queue.put_nowait, obj),
                                                QueueFull), secs,
                 lambda: QueueFull(f"queue {queue.id}: timed out"))


async def _now(call: Callable[..., Any], *args: Any) -> Any:
    return call(*args)


async def acall(interp_id: int, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """Run ``fn(*args, **kwargs)`` in interpreter ``interp_id`` on a thread of
    the running loop's default executor; its completion wakes the loop
    (``call_soon_threadsafe``), nothing polls."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, _core.call, interp_id, fn, args, kwargs)
