"""InterpreterPoolExecutor: a concurrent.futures pool of warm own-GIL
interpreters.

The machinery is C (manygil._core._Pool): worker threads that each own an
interpreter, the task queue, dispatch, and map's chunks.  This module is the
``concurrent.futures`` face: futures, ``map``'s ordering and laziness, and one
collector thread that hands finished tasks to their futures.
"""
from __future__ import annotations

import itertools
import os
import threading
import time
import weakref
from collections import deque
from concurrent.futures import Executor, Future, InvalidStateError
from concurrent.futures._base import LOGGER as _LOGGER
from concurrent.futures._base import PENDING, RUNNING
from concurrent.futures.thread import BrokenThreadPool
TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)

from . import _core, _progress
from ._errors import ExceptionInfo, ExceptionType, ExecutionFailed, TaskTimeout
from . import _watch
from ._guard import GuardedFuture, call_uninterrupted, gives_back, start_thread
from ._errors import InterpreterError, NotShareableError

if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Iterator

__all__ = ["InterpreterPoolExecutor", "BrokenInterpreterPool", "map"]

_OK, _RAISED = 0, 1
_NOT_DONE = frozenset((PENDING, RUNNING))   # Future states before done()
_CANCELLED = -20                  # MG_ECANCELLED
_TIMEDOUT = -17                   # MG_ETIMEDOUT: interrupted by task_timeout
_DECODE_LIMIT = 10                # x interrupt_grace: longest an interrupted task may spend outside its code
_BROKEN = -19                     # MG_EBROKEN

# map(): chunks aim at this much work each, and this many are in flight per worker.
_CHUNK_TARGET_NS = 2_000_000
_MAX_CHUNK = 1024
_WINDOW_PER_WORKER = 4
# shutdown(wait=True) (and exit) waits this long for on_hang to take the
# pool's last reports.
_REPORT_FLUSH_TIMEOUT = 2.0


class BrokenInterpreterPool(BrokenThreadPool):
    """A worker of an InterpreterPoolExecutor failed to start (its
    initializer raised): pending and later tasks fail with this.  A
    ``BrokenThreadPool``, as the stdlib's ``BrokenInterpreterPool`` is."""


class _RemoteTraceback(Exception):
    """Carries the traceback text of an exception raised in a worker."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


def _exception_from_info(info: tuple) -> BaseException:
    """The exception a worker raised, rebuilt here when possible (its
    ``__cause__`` carries the remote traceback), else ExecutionFailed."""
    name, qualname, module, msg, formatted, pickled = info
    excinfo = ExceptionInfo(ExceptionType(name, qualname, module), msg, formatted, pickled)
    exc = excinfo.rebuild()
    if exc is None:
        return ExecutionFailed(excinfo)
    exc.__cause__ = _RemoteTraceback(f'\n"""\n{formatted}"""')
    return exc


def _default_workers() -> int:
    count = getattr(os, "process_cpu_count", os.cpu_count)()
    return count or 1


class _TaskFuture(GuardedFuture):
    """A Future whose cancel() also takes a queued task off the C queue
    (a running task cannot be cancelled)."""

    elapsed_ns = 0                  # the task's run time in its worker
    unshareable = False             # its callable or arguments could not cross

    def __init__(self, pool: "InterpreterPoolExecutor", seq: int) -> None:
        super().__init__()           # its _condition: a Condition on an RLock
        self._pool = pool
        self._seq = seq
        self._cancel_lock = threading.RLock()
        self._cancel_notified = False

    @gives_back(lambda self: (self._cancel_lock, self._condition._lock))
    def _cancel_and_notify(self) -> bool:
        """Future.cancel() plus the one notification of wait() and
        as_completed() waiters, done once even when the user's cancel() and
        the collector's resolution of the cancelled task race (the second
        set_running_or_notify_cancel() would raise and log CRITICAL)."""
        with self._cancel_lock:
            if not Future.cancel(self):
                return False
            if not self._cancel_notified:
                self._cancel_notified = True
                self.set_running_or_notify_cancel()
            return True

    def result(self, timeout: float | None = None) -> Any:
        if self._state in _NOT_DONE:
            # Resolve whatever has finished here, in the waiting thread,
            # rather than wait for the collector thread to get the GIL.
            # (A read without the lock: only a hint; result() decides.)
            self._pool._resolve_finished(0)
        return super().result(timeout)

    def __await__(self) -> Any:
        """``await fut`` in a coroutine: the loop is woken when the task ends."""
        import asyncio
        return asyncio.wrap_future(self).__await__()

    def running(self) -> bool:
        """True while a worker runs the task."""
        if self.done():
            return False
        return any(seq == self._seq for seq, *_ in self._pool._core.running())

    def cancel(self) -> bool:
        """Cancel the task: a queued one is taken off the queue; a running
        one is interrupted inside its worker (KeyboardInterrupt at its next
        bytecode boundary; after ``interrupt_grace`` seconds without
        stopping, its worker is abandoned and replaced).  False only when
        the task has already finished."""
        return self._cancel(running_too=True)

    def _cancel(self, running_too: bool) -> bool:
        if self.done():
            return self.cancelled()
        pool = self._pool
        if not pool._core.cancel(self._seq):
            if not running_too or not pool._core.interrupt(self._seq, True):
                return False
            pool._note_interrupt(self._seq, "cancel")
        # Wakes wait() / as_completed(); False if it finished meanwhile.
        return self._cancel_and_notify()


def _resolve(fut: Future, status: int, value: Any, broken_reason: Callable[[], BaseException],
             timeout: float | None = None) -> None:
    try:
        if status == _TIMEDOUT:
            fut.set_exception(TaskTimeout(
                f"the task ran longer than task_timeout={timeout:g} s and was interrupted"))
        elif status == _OK:
            fut.set_result(value)
        elif status == _RAISED:
            fut.set_exception(_exception_from_info(value))
        elif status == _CANCELLED:
            if isinstance(fut, _TaskFuture):
                fut._cancel_and_notify()
            elif not fut.done() and Future.cancel(fut):
                fut.set_running_or_notify_cancel()
        elif status == _BROKEN:
            fut.set_exception(broken_reason())
        else:
            fut.set_exception(MemoryError(f"task failed with code {status}"))
    except InvalidStateError:
        pass                        # cancelled by the user meanwhile


class InterpreterPoolExecutor(Executor):
    """Run calls on a pool of warm own-GIL interpreters.

    ``max_workers`` interpreters (default: the number of CPUs) are created in
    parallel, each on its own thread, in the background, when the pool is
    made; they start with this interpreter's ``sys.path``.  ``initializer``
    runs once in each (``initargs`` are checked for shareability at once);
    if it raises, the pool is broken: pending and later tasks fail with
    :class:`BrokenInterpreterPool`.  ``max_tasks_per_worker=N`` replaces a
    worker's interpreter after N tasks.

    Functions and arguments cross as manygil values (see the README): an
    importable function crosses by reference and its module is imported once
    per worker.  A task's exception is re-raised by ``Future.result()`` as
    the same type when it can be rebuilt here (``__cause__`` holds the
    remote traceback), otherwise as :class:`ExecutionFailed`.
    """

    _counter = itertools.count().__next__   # default thread name prefixes, as the stdlib's

    def __init__(self, max_workers: int | None = None, thread_name_prefix: str = "",
                 initializer: Callable[..., Any] | None = None, initargs: tuple = (), *,
                 max_tasks_per_worker: int | None = None, task_timeout: float | None = None,
                 interrupt_grace: float = 2.0, warn_after: float | None = None,
                 on_hang: Callable[[_watch.HangReport], Any] | None = None) -> None:
        self._task_timeout = _watch.check_number("task_timeout", task_timeout, allow_none=True)
        self._grace = _watch.check_number("interrupt_grace", interrupt_grace)
        self._warn_after = _watch.check_number("warn_after", warn_after, allow_none=True)
        if on_hang is not None and not callable(on_hang):
            raise TypeError(f"on_hang must be callable or None, not {type(on_hang).__name__}")
        self._on_hang = on_hang
        self._interrupted: dict[int, tuple[float, str]] = {}   # seq -> (when, why)
        # seq -> when an interrupted task was last seen outside its own code
        # (interrupt_grace counts from then).
        self._started_late: dict[int, float] = {}
        self._warned: set[int] = set()
        self._monitor: threading.Thread | None = None
        self._reporter: _watch.Reporter | None = None
        self._monitor_lock = threading.Lock()
        if max_workers is None:
            max_workers = _default_workers()
        if not isinstance(max_workers, int) or isinstance(max_workers, bool):
            raise TypeError(f"max_workers must be an int, not {type(max_workers).__name__}")
        if max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if not isinstance(initargs, (tuple, list)):
            raise TypeError(f"initargs must be a tuple, not {type(initargs).__name__}")
        if max_tasks_per_worker is not None:
            if not isinstance(max_tasks_per_worker, int) or max_tasks_per_worker <= 0:
                raise ValueError("max_tasks_per_worker must be a positive int")
        if not isinstance(thread_name_prefix, str):
            raise TypeError(f"thread_name_prefix must be a str, not {type(thread_name_prefix).__name__}")
        init = (initializer, tuple(initargs)) if initializer is not None else None
        self._max_workers = max_workers
        # As the stdlib's: worker threads are named f"{prefix}_{n}" (the OS
        # name: its first 15 bytes, as threading does on 3.14).
        prefix = thread_name_prefix or f"InterpreterPoolExecutor-{self._counter()}"
        self._thread_name_prefix = prefix
        os_prefix = prefix.encode()[:15].decode(errors="ignore")
        self._core = _core._Pool(max_workers, init, max_tasks_per_worker or 0, os_prefix)
        self._futures: dict[int, Future] = {}
        # Finished tasks taken from the C pool, not yet handed to their
        # futures (see _drain_ready), and the lock of whoever hands them.
        self._ready: deque = deque()
        self._drain_lock = threading.RLock()
        self._seq = itertools.count(1)
        self._shutdown_lock = threading.RLock()
        self._shutdown = False
        self._broken: BaseException | None = None
        self._broken_lock = threading.RLock()
        name = prefix + "-collector"
        self._collector = threading.Thread(target=self._collect_loop, name=name, daemon=True)
        start_thread(self._collector)
        if self._task_timeout is not None or self._warn_after is not None:
            call_uninterrupted(self._start_monitor)
        _live_pools.add(self)

    # ---- time limits, interrupts, hung workers ------------------------------

    def _start_monitor(self) -> None:
        """Start the monitor thread once.  Called only through
        call_uninterrupted (off the main thread), so Ctrl-C cannot land in
        it: its lock needs no give-back guard."""
        with self._monitor_lock:
            if self._monitor is None:
                name = self._collector.name[:-10]
                # Reports go out on their own thread: an on_hang that blocks
                # must not stop the monitor from timing out and abandoning
                # (exit waits for that).
                self._reporter = _watch.Reporter(self._on_hang, f"{name}-reports")
                self._monitor = threading.Thread(target=self._monitor_loop, daemon=True,
                                                 name=f"{name}-monitor")
                self._monitor.start()

    def _note_interrupt(self, seq: int, why: str) -> None:
        self._interrupted.setdefault(seq, (time.monotonic(), why))
        # Often right after a Ctrl-C, where the next may land: the monitor is
        # started (and recorded) where none can stop that half-way.
        call_uninterrupted(self._start_monitor)

    def _monitor_loop(self) -> None:
        limits = [x for x in (self._task_timeout, self._warn_after, self._grace) if x]
        interval = min(0.05, min(limits) / 5)
        stop = self._collector
        try:
            while stop.is_alive():
                time.sleep(interval)
                try:
                    self._monitor_once()
                except Exception:               # noqa: BLE001 - keep watching
                    _watch.log.exception("manygil: pool monitor failed")
        finally:
            assert self._reporter is not None
            self._reporter.close()

    def _monitor_once(self) -> None:
        now_ns = time.monotonic_ns()
        now = time.monotonic()
        running = self._core.running()
        seqs = set()
        for seq, started, interp_id, ident, _irq, in_code in running:
            seqs.add(seq)
            elapsed = (now_ns - started) / 1e9
            if (self._task_timeout is not None and elapsed > self._task_timeout
                    and seq not in self._interrupted):
                if self._core.interrupt(seq, False):
                    self._interrupted[seq] = (now, "timeout")
            if self._warn_after is not None and elapsed > self._warn_after and seq not in self._warned:
                self._warned.add(seq)
                self._report(_watch.make_report(
                    "task", interp_id, ident, elapsed,
                    f"no progress: pool task {seq} runs in interpreter {interp_id} "
                    f"for {elapsed:.1f} s"))
            irq = self._interrupted.get(seq)
            if irq is None:
                continue
            if not in_code:
                # The interrupt lands only in the task's own code: before it
                # (decoding the task, maybe a slow first import of its
                # module) it raises as the code starts; after it (encoding
                # the result or the exception) nothing is left to stop.
                # interrupt_grace counts only while the code runs; outside
                # it the worker is given up after _DECODE_LIMIT x grace
                # (at least 30 s).
                if now - irq[0] > max(30.0, _DECODE_LIMIT * self._grace):
                    self._abandon(seq, interp_id, ident, elapsed, irq[1])
                else:
                    self._started_late[seq] = now
            elif now - self._started_late.get(seq, irq[0]) > self._grace:
                self._abandon(seq, interp_id, ident, elapsed, irq[1])
        # A snapshot: cancel() adds to _interrupted from the user's thread.
        for gone in [s for s in list(self._interrupted) if s not in seqs]:
            self._interrupted.pop(gone, None)
            self._started_late.pop(gone, None)
        self._warned &= seqs

    def _abandon(self, seq: int, interp_id: int, ident: int, elapsed: float, why: str) -> None:
        replaced = self._core.abandon(seq)
        if replaced is None:
            return                          # it finished meanwhile
        self._interrupted.pop(seq, None)
        self._started_late.pop(seq, None)
        fut = self._futures.pop(seq, None)
        if fut is not None and why == "timeout":
            _resolve(fut, _TIMEDOUT, None, self._broken_error, self._task_timeout)
        what = "timed out" if why == "timeout" else "cancelled"
        outcome = {
            1: "was abandoned and replaced by a new worker",
            0: "was abandoned; no replacement could start (out of worker slots or threads)",
        }.get(replaced, "was abandoned (no replacement needed: the pool is shut down with "
                        "nothing queued)")
        report = _watch.make_report(
            "abandoned", interp_id, ident, elapsed,
            f"pool task {seq} was {what} but did not stop within interrupt_grace={self._grace:g} s "
            f"(it is stuck in code that never returns to Python); its worker "
            f"(interpreter {interp_id}, thread {ident:#x}) {outcome}")
        self._report(report)

    def _report(self, report: _watch.HangReport) -> None:
        reporter = self._reporter
        if reporter is not None:
            reporter.put(report)
        else:
            _watch.deliver(report, self._on_hang)

    # ---- results --------------------------------------------------------

    @gives_back(lambda self: (self._broken_lock,))
    def _broken_error(self) -> BaseException:
        """The pool's BrokenInterpreterPool, made (and its cause logged as
        the stdlib pools log a failed initializer: "Exception in
        initializer:", CRITICAL, logger ``concurrent.futures``) once, by
        whichever thread first learns that the pool is broken."""
        with self._broken_lock:
            if self._broken is not None:
                return self._broken
            info = self._core.broken_info()
            detail = ""
            cause: BaseException | None = None
            if isinstance(info, str):
                detail = f": CPython could not create its interpreter: {info}"
                cause = InterpreterError(f"CPython could not create an interpreter: {info}")
            elif info is not None:
                detail = f": the initializer raised {info[0]}: {info[3]}"
                cause = _exception_from_info(info)
            exc = BrokenInterpreterPool(
                "a worker interpreter failed to start; the pool cannot run tasks" + detail)
            if isinstance(info, tuple):
                exc.__cause__ = cause
            self._broken = exc
        if cause is not None:
            _LOGGER.critical("Exception in initializer:",
                             exc_info=(type(cause), cause, cause.__traceback__))
        return exc

    def _resolve_finished(self, timeout: float | None) -> bool:
        """Hand the finished tasks to their futures (waiting up to timeout
        for one; None: until one finishes or a nudge).  False when nothing
        more will ever finish."""
        got = self._core.collect(timeout, self._ready)
        self._drain_ready()
        return got != 0 or timeout is not None

    @gives_back(lambda self: (self._drain_lock,))
    def _drain_ready(self) -> None:
        """Resolve the futures of the tasks in self._ready, oldest first.

        Safe against an exception raised at any point in the thread that
        runs it (Ctrl-C lands in the main thread, which comes here from
        result()): a task leaves the deque only after its future was
        resolved, so an interrupted drain leaves the rest -- the one being
        resolved included, which is then resolved again, harmlessly -- for
        the next drain, and nudges the collector thread to do it.  The lock
        is an RLock (gives_back lets go of it if Ctrl-C lands between its
        acquire and the ``with`` block): a done-callback that calls result()
        drains again in the same thread, so each drain pops only the task it
        resolved."""
        ready = self._ready
        futures = self._futures
        try:
            with self._drain_lock:
                while ready:
                    item = ready[0]
                    seq, status, value, elapsed = item
                    fut = futures.get(seq)
                    if fut is not None:
                        fut.elapsed_ns = elapsed
                        _resolve(fut, status, value, self._broken_error, self._task_timeout)
                        futures.pop(seq, None)
                    if ready and ready[0] is item:
                        ready.popleft()
        finally:
            if ready and threading.current_thread() is not self._collector:
                self._core.nudge()

    def _collect_loop(self) -> None:
        while self._resolve_finished(None):
            pass
        # Nothing more will finish (shut down and drained, or broken): fail
        # whatever is left.
        self._drain_ready()
        if self._core.stats()["broken"]:
            self._broken_error()            # logs the initializer's failure
        for seq in list(self._futures):
            fut = self._futures.pop(seq, None)
            if fut is not None and not fut.done():
                _resolve(fut, _BROKEN, None, self._broken_error)

    # ---- submitting -----------------------------------------------------

    @gives_back(lambda self: (self._shutdown_lock,))
    def _queue(self, fut: _TaskFuture, submit: Callable[[int], None]) -> None:
        """Register fut under a new seq and queue its task with submit(seq).
        A task whose callable or arguments cannot cross does not raise:
        its NotShareableError (the cause chained) is set on fut, as the
        stdlib's InterpreterPoolExecutor and ProcessPoolExecutor do."""
        with self._shutdown_lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            seq = next(self._seq)
            fut._seq = seq
            self._futures[seq] = fut
            try:
                submit(seq)
            except BrokenInterpreterPool:
                del self._futures[seq]
                broken = self._broken_error()
                # (not "from None": that would wipe the shared exception's cause)
                raise broken from broken.__cause__
            except NotShareableError as exc:
                del self._futures[seq]
                fut.unshareable = True
                fut.set_exception(exc)
            except BaseException:
                del self._futures[seq]
                raise

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Schedule ``fn(*args, **kwargs)``; return a Future."""
        if not callable(fn):
            raise TypeError(f"submit() expects a callable, not {type(fn).__name__}")
        fut = _TaskFuture(self, 0)
        self._queue(fut, lambda seq: self._core.submit(seq, fn, args, kwargs))
        return fut

    def _submit_chunk(self, fn: Callable[..., Any], items: list, star: bool) -> "_ChunkFuture":
        fut = _ChunkFuture(self, 0)
        self._queue(fut, lambda seq: self._core.submit_map(seq, fn, items, star))
        return fut

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int | None = None, buffersize: int | None = None,
            progress: bool | str = False) -> Iterator[Any]:
        """Like ``map(fn, *iterables)``, on the workers: results in order.

        Lazy: items are taken from the iterables as results are consumed, at
        most ``buffersize`` chunks ahead (default: 4 per worker), so an
        endless or huge generator runs in bounded memory.  ``chunksize``
        items go to a worker at once; by default it adapts so that a chunk
        is about 2 ms of work.  ``timeout`` (seconds, from this call) bounds
        the wait for each result (TimeoutError).  With no iterables: an
        empty iterator.  An item that cannot cross raises its
        NotShareableError where its result would be yielded.
        ``progress=True`` shows a progress bar (tqdm if importable, else a
        plain one on stderr; its total from len() when the iterables have
        one) advanced as results arrive; a str is also the bar's label."""
        if buffersize is not None and not isinstance(buffersize, int):
            raise TypeError("buffersize must be an integer or None")
        if buffersize is not None and buffersize < 1:
            raise ValueError("buffersize must be None or > 0")
        if chunksize is not None and (not isinstance(chunksize, int) or chunksize < 1):
            raise ValueError("chunksize must be >= 1")
        if not iterables:
            return iter(())
        deadline = None if timeout is None else time.monotonic() + timeout
        star = len(iterables) > 1
        items = zip(*iterables) if star else iter(iterables[0])
        window = buffersize or self._max_workers * _WINDOW_PER_WORKER
        known = None
        try:
            known = min(len(it) for it in iterables)  # type: ignore[arg-type]
        except TypeError:
            known = None
        planner = _ChunkPlanner(chunksize, known, self._max_workers)
        pending: deque[_ChunkFuture] = deque()
        bar = None
        if progress:
            bar = _progress.make(known, progress if isinstance(progress, str) else "")
        failed = False

        def fill() -> None:
            nonlocal failed
            while not failed and len(pending) < window:
                chunk = list(itertools.islice(items, planner.next_size()))
                if not chunk:
                    return
                fut = self._submit_chunk(fn, chunk, star)
                if fut.unshareable:
                    failed = True           # nothing is queued after this chunk
                    new = self._split_unshareable(fn, chunk, star, fut.exception())
                else:
                    new = [fut]
                pending.extend(new)
                if bar is not None:
                    for f in new:
                        _progress.track(bar, f)

        fill()                      # start the work now, as Executor.map does

        def results() -> Iterator[Any]:
            try:
                while pending:
                    fut = pending[0]
                    remaining = None if deadline is None else deadline - time.monotonic()
                    values, info = fut.result(remaining)
                    pending.popleft()
                    planner.observe(len(values) + (info is not None), fut.elapsed_ns)
                    fill()
                    yield from values
                    if isinstance(info, BaseException):
                        raise info
                    if info is not None:
                        raise _exception_from_info(info)
            finally:
                for fut in pending:
                    fut._cancel(running_too=False)   # as the stdlib: running chunks finish
                if bar is not None:
                    bar.close()
        return results()

    def _split_unshareable(self, fn: Callable[..., Any], chunk: list, star: bool,
                           exc: BaseException) -> list["_ChunkFuture"]:
        """For a chunk that could not cross: the items before the first one
        that cannot (queued as a chunk of their own), then a done future
        that yields nothing and raises exc -- so map() yields those results
        and then raises where that item's result would be."""
        from ._api import is_shareable
        first = 0
        if is_shareable(fn):
            first = next((i for i, item in enumerate(chunk) if not is_shareable(item)), 0)
        out = []
        if first:
            out.append(self._submit_chunk(fn, chunk[:first], star))
        failed = _ChunkFuture(self, 0)
        failed.set_result(([], exc))
        out.append(failed)
        return out

    @gives_back(lambda self: (self._shutdown_lock,))
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new tasks; with ``cancel_futures`` cancel the queued ones;
        with ``wait`` return when the workers have finished and exited.

        Without ``wait`` the queued tasks still run: at exit the process
        waits for them (as ``ThreadPoolExecutor`` does), bounded for a task
        stuck past ``task_timeout`` by ``interrupt_grace`` (its worker is
        abandoned, never waited for)."""
        with self._shutdown_lock:
            self._shutdown = True
            if cancel_futures:
                # Cancel the queued tasks' futures now (not when the collector
                # gets to them): shutdown() returns with them cancelled.
                for fut in list(self._futures.values()):
                    fut._cancel(running_too=False)      # running tasks finish
            self._core.shutdown(cancel_futures)
        if wait:
            self._core.join()
            me = threading.current_thread()
            if me is not self._collector:
                self._collector.join()
            # The monitor's last reports (an abandonment at exit) are made
            # once the collector is gone; then they are handed out, waiting
            # a little for a callback, never for ever.
            monitor = self._monitor
            if monitor is not None and monitor is not me:
                monitor.join()
            if self._reporter is not None:
                self._reporter.close(wait=_REPORT_FLUSH_TIMEOUT)
            # Joined: nothing left for exit to wait for.  (Without wait the
            # pool stays listed, and exit joins it: see _shutdown_all.)
            _live_pools.discard(self)


class _ChunkFuture(_TaskFuture):
    """The future of one chunk of map(): (results, exception info or None)."""


class _ChunkPlanner:
    """Chooses map()'s chunk sizes: fixed when given; from the length when
    known (about 8 chunks per worker, at most _MAX_CHUNK); otherwise
    doubling from 1 until a chunk is about _CHUNK_TARGET_NS of work."""

    def __init__(self, chunksize: int | None, known: int | None, workers: int) -> None:
        self.fixed = chunksize
        self.size = 1
        if chunksize is None and known is not None:
            self.fixed = max(1, min(_MAX_CHUNK, -(-known // (workers * 8))))

    def next_size(self) -> int:
        return self.fixed or self.size

    def observe(self, n: int, elapsed_ns: int) -> None:
        if self.fixed or n == 0:
            return
        per_item = max(elapsed_ns / n, 1.0)
        want = int(_CHUNK_TARGET_NS / per_item)
        self.size = max(1, min(_MAX_CHUNK, want, self.size * 2))


# ---- pools alive at exit, and manygil.map ----------------------------------

_live_pools: weakref.WeakSet = weakref.WeakSet()
_default_pools: dict[int, InterpreterPoolExecutor] = {}
_default_lock = threading.RLock()


def _shutdown_all() -> None:
    """At exit, before threads are joined (threading._register_atexit):
    shut down every pool not yet joined -- also those shut down without
    waiting -- and wait for its workers to run what is queued and end their
    interpreters.  No worker may still be creating, running or ending an
    interpreter when the main interpreter finalizes.  Abandoned workers are
    not waited for (see src/py/pool_limits.c)."""
    for pool in list(_live_pools):
        pool.shutdown(wait=True)
    _default_pools.clear()
    # A pool whose object the garbage collector took meanwhile -- its
    # dealloc may be joining its workers on another thread right now, with
    # the weak reference above already cleared -- is joined here too.
    _core._join_all_pools()


def map(fn: Callable[..., Any], iterable: Iterable[Any], *, workers: int | None = None,
        chunksize: int | None = None, progress: bool | str = False) -> Iterator[Any]:
    """``InterpreterPoolExecutor().map(fn, iterable)`` over a default pool
    (one per worker count, created on first use, closed at exit);
    ``progress=True`` shows a progress bar as results arrive."""
    pool = _default_pool(workers or _default_workers())
    return pool.map(fn, iterable, chunksize=chunksize, progress=progress)


@gives_back((_default_lock,))
def _default_pool(n: int) -> InterpreterPoolExecutor:
    with _default_lock:
        pool = _default_pools.get(n)
        if pool is None or pool._shutdown:
            pool = _default_pools[n] = InterpreterPoolExecutor(n)
        return pool


if _core.get_current() == _core.get_main():
    try:
        threading._register_atexit(_shutdown_all)  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        import atexit
        atexit.register(_shutdown_all)
