"""Actors: objects that live in a worker interpreter and are called by message.

An :class:`ActorSystem` runs ``workers`` interpreters, each with one thread
running the dispatch loop of ``_actor_worker``.  ``spawn(cls, ...)`` pins a
new instance to one worker for its life; an :class:`ActorRef` names it by
(worker inbox, actor id), both plain ints, so a ref pickles and works in any
interpreter, and a call made there goes straight to the worker's inbox.

A call sends ``(CALL, aid, method, args, kwargs, reply)`` where ``reply`` is
the send end of a fresh channel (channels cost about 0.3 us); the caller
waits on its receive end.  If the message is dropped unanswered (the actor's
worker ended), that send end goes with it and the caller wakes with
ActorStoppedError instead of waiting for ever.  ``submit()``'s reply
channels are watched (the C core's channel watches, as asyncio uses them)
by one collector thread per interpreter, alive only while futures are
pending (in the main interpreter, a second more); ``acall()`` waits with
``arecv`` (a watch, no thread).  ``mailbox=N`` is a channel of N credits
(plain ids): a sender puts a credit before its message and the worker
takes it when it takes the message, so senders wait (or time out) while N
messages queue.

Each system has a supervisor thread reading a control channel: workers
report stopped actors there (the system forgets their specs), refs report
interrupts (from any interpreter).  A method still running
``interrupt_grace`` seconds after its interrupt gets its worker abandoned
(``_core._actor_abandon``) and a new worker serving the same inbox
(``_actor_worker.serve_adopted``); see ActorSystem._abandon.
"""
from __future__ import annotations

import atexit
import heapq
import itertools
import os
import threading
import weakref
from concurrent.futures import Future

from . import _actor_worker as _w
from . import _api, _core
from ._guard import GuardedFuture, call_uninterrupted, gives_back, start_thread
from ._errors import (ChannelClosedError, ChannelError, ChannelNotFoundError,
                      ChannelTimeoutError)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ActorSystem", "ActorRef", "ActorStoppedError", "spawn"]


class ActorStoppedError(RuntimeError):
    """The actor has stopped (or stopped before it answered this message)."""


def _exception(info: tuple) -> BaseException:
    from ._pool import _exception_from_info
    return _exception_from_info(info)


def _deadline(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number or None, not {type(timeout).__name__}")
    if timeout != timeout or timeout < 0:
        raise ValueError("timeout must be >= 0")
    return _now() + timeout


def _now() -> float:
    import time
    return time.monotonic()


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - _now())


# ---- the reply side ------------------------------------------------------------

def _outcome(ref: "ActorRef", name: str, status: int, payload: Any) -> Any:
    if status == _w.OK:
        return payload
    if status == _w.ERR:
        raise _exception(payload)
    if status == _w.GONE:
        raise ActorStoppedError(payload)
    raise ActorStoppedError(f"actor {ref._label}: {payload} ({name}() was not run)")


def _unanswered(ref: "ActorRef", name: str) -> ActorStoppedError:
    """The error of a call whose reply channel closed unanswered."""
    return ActorStoppedError(
        f"actor {ref._label} did not answer {name}(): it stopped first, or its worker "
        "could not load the message (a class or an argument that cannot be rebuilt "
        "there: the worker's stderr says why)")


def _wait_reply(ref: "ActorRef", name: str, recv: Any, deadline: float | None,
                timeout: float | None) -> Any:
    try:
        status, payload = recv.recv(_left(deadline))
    except ChannelTimeoutError:
        raise TimeoutError(f"actor {ref._label}: no answer to {name}() within "
                           f"{timeout} s") from None
    except ChannelClosedError:
        raise _unanswered(ref, name) from None
    return _outcome(ref, name, status, payload)


class _Collector:
    """Waits for the answers of submit() in this interpreter, with one
    thread and no thread per call.  Each call has its own reply channel (so
    a message dropped unanswered closes it, as for a blocking call); a
    *watch* on it (the C core's, as asyncio uses) posts the call's token to
    one eventfd that the thread waits on.  The thread runs only while
    futures are pending (and, in the main interpreter, ``linger`` seconds
    after): an interpreter whose futures are all done has no thread of it."""

    def __init__(self) -> None:
        self.nt = _core._notifier()
        self.wake_r, self.wake_w = os.pipe()
        self.lock = threading.RLock()     # see _guard: Ctrl-C cannot leave it held
        self.pending: dict[int, list] = {}      # guarded by lock: token -> entry
        self.deadlines: list = []               # guarded by lock: heap of (deadline, token)
        self.thread: threading.Thread | None = None  # guarded by lock
        self.closed = False                     # guarded by lock
        # How long the thread waits for more futures once none is pending.
        # In the main interpreter (a daemon thread) it stays a while, so that
        # submit().result() in a loop does not start a thread per call; in
        # another interpreter it ends at once (a thread left there would
        # keep the interpreter from closing).
        self.linger = _LINGER if _core.get_current() == _core.get_main() else 0.0

    @gives_back(lambda self: (self.lock,))
    def add(self, fut: Future, ref: "ActorRef", name: str, deadline: float | None) -> tuple:
        """Register fut; returns (token, the reply channel's send end)."""
        recv, send = _core.create_channel()
        w, token = _core._awatch(self.nt, recv, _RECV)
        try:
            with self.lock:
                if self.closed:
                    raise ActorStoppedError("this interpreter's actor replies are closed")
                self.pending[token] = [fut, ref, name, recv, w]
                if deadline is not None:
                    heapq.heappush(self.deadlines, (deadline, token))
                idle = self.thread is None
            if idle:
                # The thread is started where Ctrl-C cannot stop it half-way
                # (see _guard.start_thread); _start_loop sets all its state.
                call_uninterrupted(self._start_loop, wait=False)
            if _core._awatch_arm(w):        # cannot be ready before the call is sent
                self._settle(token)
        except BaseException:
            self.forget(token)      # a Ctrl-C: nothing of this call stays pending
            raise
        return token, send

    def _start_loop(self) -> None:
        """Start the thread of _loop unless one runs or nothing is pending
        (add() may ask more than once).  If no thread can be started, the
        pending futures fail with that error."""
        with self.lock:
            if self.thread is not None or not self.pending:
                return
            t = self.thread = threading.Thread(target=self._loop, name="manygil-actor-replies",
                                               daemon=_core.get_current() == _core.get_main())
        try:
            t.start()
        except BaseException as exc:
            with self.lock:
                if self.thread is t:
                    self.thread = None
                left = list(self.pending.values())
                self.pending.clear()
                self.deadlines.clear()
            for fut, ref, name, recv, w in left:
                _core._awatch_disarm(w)
                _fail(fut, ActorStoppedError(f"actor {ref._label}: no thread could wait "
                                             f"for the answer to {name}(): {exc}"))

    @gives_back(lambda self: (self.lock,))
    def forget(self, token: int) -> None:
        with self.lock:
            entry = self.pending.pop(token, None)
        if entry is not None:
            _core._awatch_disarm(entry[4])

    def _settle(self, token: int) -> None:
        """The reply channel of token is ready: resolve its future (or arm
        the watch again if it was not ready after all)."""
        with self.lock:
            entry = self.pending.get(token)
        if entry is None:
            return
        fut, ref, name, recv, w = entry
        while True:
            try:
                msg = recv.recv_nowait(_MISSING)
            except ChannelClosedError:
                msg = None
            if msg is not _MISSING or not _core._awatch_arm(w):
                break
        if msg is _MISSING:
            return
        with self.lock:
            if self.pending.pop(token, None) is None:
                return
        _core._awatch_disarm(w)
        if not fut.set_running_or_notify_cancel():
            return
        if msg is None:
            fut.set_exception(_unanswered(ref, name))
            return
        try:
            fut.set_result(_outcome(ref, name, msg[0], msg[1]))
        except BaseException as e:
            fut.set_exception(e)
            del e

    def _loop(self) -> None:
        import select
        fd = _core._notifier_fd(self.nt)
        idle_since: float | None = None
        while True:
            expired = []
            with self.lock:
                now = _now()
                while self.deadlines and self.deadlines[0][0] <= now:
                    _, token = heapq.heappop(self.deadlines)
                    entry = self.pending.pop(token, None)
                    if entry is not None:
                        expired.append(entry)
                wait = self.deadlines[0][0] - now if self.deadlines else None
                left = []
                if self.closed:
                    left = list(self.pending.values())
                    self.pending.clear()
                done = False
                if self.pending:
                    idle_since = None
                else:
                    if idle_since is None:
                        idle_since = now
                    linger = idle_since + self.linger - now
                    if self.closed or linger <= 0:
                        done = True
                        self.thread = None
                    else:
                        wait = linger if wait is None else min(wait, linger)
            for fut, ref, name, recv, w in expired:
                _core._awatch_disarm(w)
                _fail(fut, TimeoutError(f"actor {ref._label}: no answer to {name}() in time"))
            for fut, ref, name, recv, w in left:
                _core._awatch_disarm(w)
                _fail(fut, ActorStoppedError(f"actor {ref._label}: the interpreter that "
                                             f"waits for {name}() is ending"))
            if done:
                return
            ready, _, _ = select.select([fd, self.wake_r], [], [], wait)
            if self.wake_r in ready:
                os.read(self.wake_r, 512)
            if fd in ready:
                for token in _core._notifier_drain(self.nt):
                    self._settle(token)

    @gives_back(lambda self: (self.lock,))
    def close(self) -> None:
        with self.lock:
            self.closed = True
            t = self.thread
        if t is not None:
            os.write(self.wake_w, b"x")
            t.join()


_RECV = 2                       # MG__WAIT_RECV
_LINGER = 1.0                   # seconds: see _Collector.linger
_MISSING = object()


def _fail(fut: Future, exc: BaseException) -> None:
    if fut.set_running_or_notify_cancel():
        fut.set_exception(exc)


_collector: _Collector | None = None
_collector_lock = threading.RLock()


@gives_back((_collector_lock,))
def _get_collector() -> _Collector:
    global _collector
    c = _collector
    if c is None:
        with _collector_lock:
            if _collector is None:
                _collector = _Collector()
            c = _collector
    return c


def _collector_close() -> None:
    """End this interpreter's reply collector (an actor worker's loop ends)."""
    c = _collector
    if c is not None:
        c.close()


# ---- refs -------------------------------------------------------------------

def _send_by_id(end_id: int):
    send = _core._channel_send
    return lambda obj, timeout=None: send(end_id, obj, timeout)


class ActorRef:
    """A handle of an actor.  ``ref.method(*args, timeout=None, **kwargs)``
    calls and waits; ``ref.method.submit(...)`` returns a
    ``concurrent.futures.Future``; ``await ref.method.acall(...)``;
    ``ref.method.tell(...)`` sends one-way.  A ref crosses to any other
    interpreter (it pickles as plain ids) and works there the same way.
    Refs are equal when they name the same actor."""

    __slots__ = ("_aid", "_label", "_inbox_id", "_urgent_id", "_credits_id", "_uid",
                 "_ctl_id", "_send", "_urgent", "_stopped", "__dict__", "__weakref__")

    def __init__(self, aid: int, label: str, inbox_id: int, urgent_id: int,
                 credits_id: int | None, uid: int, ctl_id: int, send: Any = None,
                 urgent: Any = None) -> None:
        self._aid = aid
        self._label = label
        self._uid = uid                 # process-unique: the id of its method runs
        self._ctl_id = ctl_id           # its system's control channel (send end)
        self._inbox_id = inbox_id
        self._urgent_id = urgent_id
        self._credits_id = credits_id
        self._send = send if send is not None else _send_by_id(inbox_id)
        self._urgent = urgent if urgent is not None else _send_by_id(urgent_id)
        self._stopped = False

    def __reduce__(self) -> tuple:
        return (ActorRef, (self._aid, self._label, self._inbox_id, self._urgent_id,
                           self._credits_id, self._uid, self._ctl_id))

    def __getattr__(self, name: str) -> "_Method":
        if name.startswith("__"):
            raise AttributeError(name)
        # Kept in the instance dict: the next ref.name is a plain lookup.
        m = self.__dict__[name] = _Method(self, name)
        return m

    def __repr__(self) -> str:
        return f"<ActorRef {self._label}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ActorRef):
            return NotImplemented
        return (self._inbox_id, self._aid) == (other._inbox_id, other._aid)

    def __hash__(self) -> int:
        return hash((self._inbox_id, self._aid))

    def __enter__(self) -> "ActorRef":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        self.join()

    @property
    def id(self) -> int:
        """The actor's id (unique in its system; ``label`` adds the class)."""
        return self._aid

    @property
    def label(self) -> str:
        """``"Class#id"``: how errors and reports name this actor."""
        return self._label

    def _post(self, msg: tuple, deadline: float | None, timeout: float | None,
              what: str, credit: bool = True) -> None:
        """Put msg in the actor's mailbox: a credit first when the mailbox is
        bounded (waits until deadline while it is full)."""
        if self._stopped:
            raise ActorStoppedError(f"actor {self._label} has stopped")
        try:
            if credit and self._credits_id is not None:
                try:
                    _core._channel_send(self._credits_id, None, _left(deadline))
                except ChannelTimeoutError:
                    raise TimeoutError(f"actor {self._label}: mailbox full, {what} not sent "
                                       f"within {timeout} s") from None
            self._send(msg)
        except (ChannelClosedError, ChannelNotFoundError):
            raise ActorStoppedError(f"actor {self._label} has stopped") from None

    def interrupt(self, exc: type[BaseException] = KeyboardInterrupt) -> bool:
        """Stop the method this actor runs now: raise ``exc`` (a built-in
        exception class) in it at its next bytecode boundary.  That method
        fails with ``exc`` like any method that raises (its caller gets
        ``exc``; a ``tell()``'s is printed to stderr) and the actor goes on
        with its next message, its state as the method left it.  Returns
        True if a method of this actor was running (the interrupt is on its
        way: it lands only in that method run, never in a later message's),
        False if none was (nothing happens; queued messages are not
        touched).  Code in C that does not return to Python
        (``time.sleep``, a blocking read) sees it only when it returns: if
        the method still runs ``interrupt_grace`` seconds later (see
        ActorSystem), the system abandons the worker interpreter and serves
        its actors from a new one -- restarted with their ``__init__``
        arguments if spawned with ``restart=True``, else stopped; the stuck
        call's caller gets ActorStoppedError.  Works from any interpreter,
        like every call on a ref."""
        import builtins
        if not (isinstance(exc, type) and issubclass(exc, BaseException)
                and getattr(builtins, exc.__name__, None) is exc):
            raise TypeError(f"exc must be a built-in exception class (e.g. KeyboardInterrupt, "
                            f"TimeoutError), not {exc!r}: it is raised in the actor's "
                            "interpreter, where only built-in classes are shared")
        for rec in _core._activity():
            if rec[0] == "run" and rec[4] == "actor" and rec[5] == self._uid:
                _core._interrupt_run(rec[1], rec[2], rec[12], exc)
                _w._report(self._ctl_id, (_w.R_INTERRUPTED, self._aid, rec[12]))
                return True
        return False

    def stop(self, drain: bool = True) -> None:
        """Stop the actor: after the messages already queued have run
        (``drain=True``), or now, failing those queued messages' callers with
        ActorStoppedError (``drain=False``; the method running now finishes).
        Later calls raise ActorStoppedError.  Returns at once: ``join()``
        waits.  Stopping a stopped actor does nothing."""
        if self._stopped:
            return
        try:
            if not drain:
                self._urgent(self._aid)
            self._send((_w.STOP, self._aid, None))
        except (ChannelClosedError, ChannelNotFoundError):
            pass
        self._stopped = True

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the actor has stopped; True if it has, False when
        ``timeout`` passed first."""
        deadline = _deadline(timeout)
        recv, send = _core.create_channel()
        try:
            self._send((_w.JOIN, self._aid, send))
        except (ChannelClosedError, ChannelNotFoundError):
            return True
        del send
        try:
            recv.recv(_left(deadline))
        except ChannelTimeoutError:
            return False
        except ChannelClosedError:
            pass
        return True


class _Method:
    """``ref.name``: the four ways to send the message ``name``."""

    __slots__ = ("ref", "name")

    def __init__(self, ref: ActorRef, name: str) -> None:
        self.ref = ref
        self.name = name

    def __repr__(self) -> str:
        return f"<actor method {self.ref._label}.{self.name}>"

    def __call__(self, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Call and wait for the answer (``timeout``: TimeoutError)."""
        ref = self.ref
        deadline = _deadline(timeout)
        # A reply channel the deadlock detector can follow into the inbox.
        cur = _core._actor_current()
        who = f"actor {cur[0]} in {cur[1]}()" if cur is not None else "a caller"
        recv, send = _core._reply_channel(ref._inbox_id,
                                          f"{who} waits for actor {ref._label}.{self.name}()")
        ref._post((_w.CALL, ref._aid, self.name, args, kwargs, send), deadline, timeout,
                  f"{self.name}()")
        del send
        return _wait_reply(ref, self.name, recv, deadline, timeout)

    def submit(self, *args: Any, timeout: float | None = None, **kwargs: Any) -> Future:
        """Send the call; return a Future of its answer.  ``timeout`` bounds
        the wait for mailbox room (TimeoutError from submit) and for the
        answer (the Future fails with TimeoutError)."""
        ref = self.ref
        deadline = _deadline(timeout)
        c = _get_collector()
        fut: Future = GuardedFuture()
        tag, send = c.add(fut, ref, self.name, deadline)
        try:
            ref._post((_w.CALL, ref._aid, self.name, args, kwargs, send), deadline,
                      timeout, f"{self.name}()")
        except BaseException:
            c.forget(tag)
            raise
        return fut

    async def acall(self, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """``await``: the call for asyncio.  The answer wakes the loop through
        a channel watch (no thread waits); only a full bounded mailbox is
        waited for on a thread of the loop's default executor."""
        ref = self.ref
        deadline = _deadline(timeout)
        recv, send = _core.create_channel()
        msg = (_w.CALL, ref._aid, self.name, args, kwargs, send)
        del send
        if ref._credits_id is not None and not ref._stopped:
            try:
                _core._channel_send(ref._credits_id, None, 0)
            except ChannelError as e:
                if not isinstance(e, ChannelTimeoutError) and type(e).__name__ != "ChannelFullError":
                    raise ActorStoppedError(f"actor {ref._label} has stopped") from None
                import asyncio
                await asyncio.get_running_loop().run_in_executor(
                    None, lambda: ref._post(msg, deadline, timeout, f"{self.name}()"))
                msg = None
            if msg is not None:
                ref._post(msg, deadline, timeout, f"{self.name}()", credit=False)
        else:
            ref._post(msg, deadline, timeout, f"{self.name}()")
        del msg
        try:
            status, payload = await recv.arecv(timeout=_left(deadline))
        except ChannelTimeoutError:
            raise TimeoutError(f"actor {ref._label}: no answer to {self.name}() within "
                               f"{timeout} s") from None
        except ChannelClosedError:
            raise _unanswered(ref, self.name) from None
        return _outcome(ref, self.name, status, payload)

    def tell(self, *args: Any, timeout: float | None = None, **kwargs: Any) -> None:
        """Send one-way: no answer; returns once the message is in the
        mailbox (``timeout`` bounds the wait for room in a bounded one).  An
        exception the method raises is printed to the worker's stderr."""
        ref = self.ref
        if timeout is None and ref._credits_id is None and not ref._stopped:
            try:                    # the fast path: one channel send
                ref._send((_w.CALL, ref._aid, self.name, args, kwargs or None, None))
                return
            except (ChannelClosedError, ChannelNotFoundError):
                raise ActorStoppedError(f"actor {ref._label} has stopped") from None
        ref._post((_w.CALL, ref._aid, self.name, args, kwargs or None, None),
                  _deadline(timeout), timeout, f"{self.name}()")


# ---- systems ------------------------------------------------------------------

class _Worker:
    """One worker interpreter and the thread that runs its dispatch loop.
    The worker makes its inbox itself and sends back the send ends
    (``inbox``, ``urgent``: read them through ``ends()``, which waits for
    the worker's start the first time).  With ``adopt`` = (the abandoned
    worker, restart specs, gone), it serves that worker's inbox instead."""

    def __init__(self, name: str, solo: bool, ctl: int,
                 adopt: tuple | None = None) -> None:
        self._boot, boot_send = _core.create_channel()
        self._ends: tuple | None = None
        self._lock = threading.RLock()
        self.name = name
        self.solo = solo
        self.error: BaseException | None = None
        self.interp_id: int | None = None
        if adopt is None:
            entry, args = _w.serve, (solo, ctl)
        else:
            old, restarts, gone = adopt
            self._ends = old.ends()
            self._boot = None
            entry = _w.serve_adopted
            args = (solo, ctl, self._ends[1], self._ends[3], restarts, gone)
        self.thread = threading.Thread(target=self._serve, args=(boot_send, entry, args),
                                       name=name, daemon=_core.get_current() == _core.get_main())
        start_thread(self.thread)

    def _serve(self, boot_send: Any, entry: Any, args: tuple) -> None:
        try:
            interp = _api.create()
        except BaseException as e:
            self.error = e
            boot_send.close()
            return
        self.interp_id = interp.id
        try:
            # A run named "actors", not "call": the watchdog does not take the
            # loop for one long call, Interpreter.interrupt leaves it alone.
            _core.call(interp.id, entry, (boot_send,) + args, None, "actors")
        except BaseException as e:
            self.error = e
        finally:
            boot_send.close()
            del boot_send
            try:
                interp.close()
            except Exception:
                pass

    @gives_back(lambda self: (self._lock,))
    def ends(self) -> tuple:
        """(inbox SendChannel, its id, urgent SendChannel, its id); raises
        ActorStoppedError if the worker could not start."""
        e = self._ends
        if e is None:
            with self._lock:
                if self._ends is None:
                    try:
                        inbox, urgent = self._boot.recv()
                    except ChannelClosedError:
                        raise ActorStoppedError("the actor worker could not start") \
                            from self.error
                    self._ends = (inbox, inbox.id, urgent, urgent.id)
                    self._boot = None
                e = self._ends
        return e

    def exit(self) -> None:
        try:
            self.ends()[0].send((_w.EXIT,))
        except (ChannelError, ActorStoppedError):
            pass


class _Spec:
    """What the system keeps of one live actor: where it is, the channels
    of plain ids that outlive its worker, and -- with ``restart=True`` --
    how to make it again."""

    __slots__ = ("aid", "uid", "label", "credits", "joins", "worker", "make")

    def __init__(self, aid: int, label: str, credits: tuple | None, joins: tuple,
                 worker: _Worker, make: tuple | None) -> None:
        self.aid = aid
        self.uid = joins[0]             # process-unique (a channel end id)
        self.label = label
        self.credits = credits
        self.joins = joins
        self.worker = worker
        self.make = make                # (cls, args, kwargs) if restart=True, else None

    def wire(self, cls: Any, args: tuple, kwargs: dict) -> tuple:
        """The spec as the worker reads it (_actor_worker._slot_of)."""
        return (self.aid, self.uid, cls, args, kwargs, self.label, self.credits, self.joins)


_systems: "weakref.WeakSet[ActorSystem]" = weakref.WeakSet()
_system_ids = itertools.count(1)


class ActorSystem:
    """Worker interpreters that host actors: ``workers`` of them (default:
    one per core), each serving any number of actors, one message at a time.
    ``spawn()`` places actors round-robin.  ``stop()`` (also at the end of a
    ``with`` block, and at interpreter exit) lets the queued messages run and
    ends the workers; its actors are stopped.

    ``interrupt_grace``: seconds a method may go on after ``ref.interrupt()``
    before the system abandons its worker interpreter (stuck in C code that
    never returns to Python) and serves that worker's actors from a new one
    (None: never).  An abandoned interpreter is left to its stuck thread and
    ended at process exit."""

    def __init__(self, workers: int | None = None, *,
                 interrupt_grace: float | None = 1.0) -> None:
        if workers is None:
            workers = getattr(os, "process_cpu_count", os.cpu_count)() or 1
        if isinstance(workers, bool) or not isinstance(workers, int):
            raise TypeError(f"workers must be an int, not {type(workers).__name__}")
        if workers < 1:
            raise ValueError("workers must be >= 1")
        if interrupt_grace is not None:
            if isinstance(interrupt_grace, bool) or not isinstance(interrupt_grace,
                                                                   (int, float)):
                raise TypeError("interrupt_grace must be a number or None, not "
                                f"{type(interrupt_grace).__name__}")
            if not interrupt_grace >= 0:
                raise ValueError("interrupt_grace must be >= 0")
        self._id = next(_system_ids)
        self._grace = interrupt_grace
        self._lock = threading.RLock()
        self._aids = itertools.count(1)
        self._next = 0
        self._stopped = False
        self._specs: dict[int, _Spec] = {}      # guarded by _lock: the live actors
        self._abandoned: list[_Worker] = []     # guarded by _lock
        # The control channel: workers report stopped actors, refs report
        # interrupts (to its send end's id: pinned, it closes only by that
        # id); the supervisor thread reads it.  Made like a worker's inbox,
        # so that the watchdog takes the supervisor's wait for an idle one.
        self._ctl_recv, ctl_send = _core._actor_inbox()
        self._ctl = ctl_send.id
        del ctl_send
        self._workers = [_Worker(f"manygil-actors-{self._id}-{i}", False, self._ctl)
                         for i in range(workers)]
        self._dedicated: list[_Worker] = []
        self._supervisor = threading.Thread(target=self._supervise,
                                            name=f"manygil-actors-{self._id}-supervisor",
                                            daemon=_core.get_current() == _core.get_main())
        start_thread(self._supervisor)
        _systems.add(self)

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else f"{len(self._workers)} workers"
        return f"<ActorSystem {self._id}: {state}>"

    def __enter__(self) -> "ActorSystem":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def workers(self) -> int:
        return len(self._workers)

    @property
    def abandoned(self) -> int:
        """How many worker interpreters this system has abandoned."""
        return len(self._abandoned)

    @gives_back(lambda self: (self._lock,))
    def spawn(self, cls: type, /, *args: Any, mailbox: int = 0, dedicated: bool = False,
              restart: bool = False, **kwargs: Any) -> ActorRef:
        """``manygil.spawn`` on this system."""
        if not callable(cls):
            raise TypeError(f"spawn() needs a class, not {type(cls).__name__}")
        if isinstance(mailbox, bool) or not isinstance(mailbox, int):
            raise TypeError(f"mailbox must be an int, not {type(mailbox).__name__}")
        if mailbox < 0:
            raise ValueError("mailbox must be >= 0 (0: unbounded)")
        if not isinstance(restart, bool):
            raise TypeError(f"restart must be a bool, not {type(restart).__name__}")
        label_of = getattr(cls, '__qualname__', type(cls).__name__)
        credits = _core._channel_ids(mailbox) if mailbox else None
        joins = _core._channel_ids()
        with self._lock:
            if self._stopped:
                _w.close_ids(credits)
                _w.close_ids(joins)
                raise ActorStoppedError(f"{self!r} is stopped")
            aid = next(self._aids)
            if dedicated:
                w = _Worker(f"manygil-actor-{self._id}-{aid}", True, self._ctl)
                self._dedicated = [d for d in self._dedicated if d.thread.is_alive()]
                self._dedicated.append(w)
            else:
                w = self._workers[self._next]
                self._next = (self._next + 1) % len(self._workers)
            spec = _Spec(aid, f"{label_of}#{aid}", credits, joins, w,
                         (cls, args, kwargs) if restart else None)
            self._specs[aid] = spec
        try:
            ref = self._start(spec, cls, args, kwargs)
        except BaseException:
            with self._lock:
                self._specs.pop(aid, None)
            _w.close_ids(credits)
            _w.close_ids(joins)
            raise
        return ref

    def _start(self, spec: _Spec, cls: type, args: tuple, kwargs: dict) -> ActorRef:
        w = spec.worker
        inbox, inbox_id, urgent, urgent_id = w.ends()
        recv, send = _core.create_channel()
        try:
            inbox.send((_w.SPAWN, spec.aid, spec.wire(cls, args, kwargs), send))
        except (ChannelClosedError, ChannelNotFoundError):
            raise ActorStoppedError(f"{self!r}: its worker is gone") from w.error
        del send
        try:
            status, payload = recv.recv()
        except ChannelClosedError:
            if w.thread.is_alive():     # the worker dropped the message: see its stderr
                raise ActorStoppedError(
                    f"{self!r}: {spec.label} was not started: its worker could not load "
                    "the class or its arguments (the worker's stderr says why; a class "
                    "of a script must be defined where the script can be imported: "
                    "protect its entry point with `if __name__ == \"__main__\":`)") from None
            raise ActorStoppedError(f"{self!r}: its worker ended before {spec.label} "
                                    "started") from w.error
        if status == _w.ERR:
            raise _exception(payload)
        # send_nowait: both channels are unbounded (never full), and it
        # takes its one argument without parsing keywords (~60 ns a tell).
        return ActorRef(spec.aid, spec.label, inbox_id, urgent_id,
                        spec.credits[0] if spec.credits else None, spec.uid, self._ctl,
                        inbox.send_nowait, urgent.send_nowait)

    # -- the supervisor: stopped actors, interrupts past their grace ----------

    def _supervise(self) -> None:
        """The system's thread: forgets the actors its workers report
        stopped, and abandons a worker whose interrupted method still runs
        ``interrupt_grace`` seconds after ``interrupt()``."""
        try:
            self._supervise_loop()
        finally:
            _core._channel_close(self._ctl)
            self._ctl_recv.close()

    def _supervise_loop(self) -> None:
        deadlines: list = []            # heap of (deadline, serial, aid)
        recv = self._ctl_recv.recv
        while True:
            wait = None
            if deadlines:
                wait = max(0.0, deadlines[0][0] - _now())
            try:
                msg = recv(wait)
            except ChannelTimeoutError:
                msg = None
            except ChannelError:        # closed: the system stopped
                return
            if msg is not None:
                kind = msg[0]
                if kind == _w.R_EXIT:
                    return
                if kind == _w.R_STOPPED:
                    with self._lock:
                        self._specs.pop(msg[1], None)
                elif kind == _w.R_INTERRUPTED and self._grace is not None:
                    heapq.heappush(deadlines, (_now() + self._grace, msg[2], msg[1]))
            while deadlines and deadlines[0][0] <= _now():
                _, serial, aid = heapq.heappop(deadlines)
                try:
                    self._abandon(serial, aid)
                except Exception:       # reported; the supervisor goes on
                    import traceback
                    traceback.print_exc()

    def _abandon(self, serial: int, aid: int) -> None:
        """Abandon the worker of actor aid if its method run ``serial`` is
        still running; serve its actors from a new worker interpreter."""
        import sys
        got = _core._actor_abandon(serial)
        if got is None:
            return                      # it ended in time
        _, reply_id, what = got
        with self._lock:
            spec = self._specs.get(aid)
            if spec is None or self._stopped:
                w = None
            else:
                w = spec.worker
                on_w = [s for s in self._specs.values() if s.worker is w]
        why = (f"{what}() did not stop within {self._grace} s of interrupt(): its "
               f"worker interpreter was abandoned")
        if reply_id >= 0:
            restarted = spec is not None and spec.make is not None and w is not None
            _w._report(reply_id, (_w.GONE, f"actor {what.rsplit('.', 1)[0]}: {why}"
                                  + (" (the actor was restarted)" if restarted else "")))
        if w is None:
            return
        restarts, gone, stopped = [], {}, []
        for s in on_w:
            if s.make is not None:
                restarts.append(s)
            else:
                gone[s.aid] = f"actor {s.label} was stopped: {why}"
                stopped.append(s)
        with self._lock:
            for s in stopped:
                self._specs.pop(s.aid, None)
            self._abandoned.append(w)
            if w.solo and not restarts:
                self._dedicated = [d for d in self._dedicated if d is not w]
                new = None
            else:
                new = _Worker(w.name + "-r", w.solo, self._ctl,
                              (w, [s.wire(*s.make) for s in restarts], gone))
                if w.solo:
                    self._dedicated = [new if d is w else d for d in self._dedicated]
                else:
                    self._workers = [new if d is w else d for d in self._workers]
                for s in restarts:
                    s.worker = new
        for s in stopped:
            _w.close_ids(s.credits)
            _w.close_ids(s.joins)       # their joiners wake
        if new is None:                 # a dedicated actor not restarted
            _, inbox_id, _, urgent_id = w.ends()
            _w.close_ids((inbox_id, inbox_id + 1))     # queued messages drop
            _w.close_ids((urgent_id, urgent_id + 1))
        parts = [f"manygil: {self!r}: {why}"]
        if restarts:
            parts.append(f"restarted: {', '.join(s.label for s in restarts)}")
        if stopped:
            parts.append(f"stopped: {', '.join(s.label for s in stopped)}")
        sys.stderr.write("; ".join(parts) + "\n")

    @gives_back(lambda self: (self._lock,))
    def stop(self, timeout: float | None = None) -> bool:
        """Stop every actor (the messages already queued run first) and end
        the workers.  Waits up to ``timeout`` seconds (None: until done);
        True when every worker has ended (abandoned ones are not waited
        for)."""
        deadline = _deadline(timeout)
        workers = self._begin_stop()
        ok = True
        for t in [w.thread for w in workers] + [self._supervisor]:
            if t is threading.current_thread():
                continue
            t.join(_left(deadline))
            ok = ok and not t.is_alive()
        return ok

    @gives_back(lambda self: (self._lock,))
    def _begin_stop(self) -> list:
        """Mark the system stopped, ask its workers and its supervisor to
        end; returns the workers to wait for."""
        with self._lock:
            self._stopped = True
            workers = self._workers + self._dedicated
        for w in workers:
            w.exit()
        _w._report(self._ctl, (_w.R_EXIT,))
        return workers


_default: ActorSystem | None = None
_default_lock = threading.RLock()


@gives_back((_default_lock,))
def _default_system() -> ActorSystem:
    global _default
    with _default_lock:
        if _default is None or _default._stopped:
            _default = ActorSystem()
        return _default


def spawn(cls: type, /, *args: Any, system: ActorSystem | None = None, mailbox: int = 0,
          dedicated: bool = False, restart: bool = False, **kwargs: Any) -> ActorRef:
    """Create ``cls(*args, **kwargs)`` in a worker interpreter of ``system``
    (the default system, made on first use, when None) and return its ref.
    ``__init__`` runs there; if it raises, spawn raises it.  ``mailbox=N``
    bounds the actor's queued messages (senders wait or time out); with
    ``dedicated=True`` the actor gets a worker interpreter of its own, ended
    when the actor stops.  ``restart=True``: if its worker interpreter is
    abandoned (a method stuck past its interrupt's grace period, see
    ActorRef.interrupt), the actor is made again there with the same
    arguments (which the system keeps) instead of stopped."""
    if system is None:
        system = _default_system()
    elif not isinstance(system, ActorSystem):
        raise TypeError(f"system must be an ActorSystem, not {type(system).__name__}")
    return system.spawn(cls, *args, mailbox=mailbox, dedicated=dedicated, restart=restart,
                        **kwargs)


def _stop_all_at_exit() -> None:
    """At interpreter exit: stop every open system, giving queued messages
    2 s in all (a stuck actor is left to manygil's own exit, which ends its
    interpreter without waiting for it)."""
    deadline = _now() + 2.0
    waits = [(s, s._begin_stop()) for s in list(_systems)]
    for s, workers in waits:
        for t in [w.thread for w in workers] + [s._supervisor]:
            if t.daemon:
                t.join(_left(deadline))
    _collector_close()


if _core.get_current() == _core.get_main():
    atexit.register(_stop_all_at_exit)
else:
    # Before the interpreter joins its non-daemon threads (the workers).
    threading._register_atexit(_stop_all_at_exit)
