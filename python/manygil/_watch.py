"""Diagnostics across interpreters: settings, stack dumps, the watchdog.

All of it reads the activity table kept in C (``_core._activity()``): every
blocked channel/queue wait, every ``exec``/``call``/pool task in progress,
with the interpreter, the thread and since when.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from typing import Any, Callable, Iterable, TextIO

from . import _core
from ._guard import start_thread

__all__ = ["configure", "dump_stacks", "format_stacks", "watchdog", "Watchdog", "HangReport"]

log = logging.getLogger("manygil")

# How long a stack dump waits to enter an interpreter whose GIL a thread
# keeps (C code that never releases it) before giving up on that one.
DUMP_GIL_TIMEOUT = 2.0


def configure(*, deadlock_detection: bool | None = None) -> dict[str, Any]:
    """Change process-wide settings; returns them all as a dict.

    ``deadlock_detection`` (default True): break waits that can never
    complete with :class:`DeadlockError`."""
    if deadlock_detection is not None and not isinstance(deadlock_detection, bool):
        raise TypeError(f"deadlock_detection must be a bool, not {type(deadlock_detection).__name__}")
    return _core._configure(deadlock_detection=deadlock_detection)


# ---- the activity table, as text ------------------------------------------

def _age(since_ns: int, now_ns: int) -> float:
    return max(0.0, (now_ns - since_ns) / 1e9)


def _holders(rec: tuple) -> str:
    """Who can complete a wait: the interpreters holding the other end."""
    holders, open_to_all = rec[9], rec[10]
    if open_to_all:
        return "; the other end is reachable by anyone (a plain id, or a handle in a message)"
    if not holders:
        return "; no one holds the other end"
    return f"; the other end is held by interpreter{'s' if len(holders) > 1 else ''} " + \
        ", ".join(str(h) for h in holders)


def _describe(rec: tuple, now_ns: int) -> str:
    kind, interp, ident, since, what, end_id, cid, forever, is_queue = rec[:9]
    age = _age(since, now_ns)
    who = f"interpreter {interp} thread {ident:#x}"
    if kind in ("send", "recv"):
        if len(rec) > 11 and rec[11]:
            return f"{who} is an actor worker waiting for messages (idle {age:.1f} s)"
        if is_queue:
            op = "get from queue" if kind == "recv" else "put into queue"
            target = f"{op} {end_id}"
        else:
            end = "RecvChannel" if kind == "recv" else "SendChannel"
            op = "receive on" if kind == "recv" else "send on"
            target = f"{op} channel {cid} ({end} id {end_id})"
        limit = "" if forever else " (with a timeout)"
        return f"{who} waits to {target}{limit} for {age:.1f} s{_holders(rec)}"
    if kind == "run":
        if what == "actor":
            return f"{who} runs actor method {rec[13]}() for {age:.1f} s"
        if what == "actors":
            return f"{who} runs an actor worker's loop for {age:.1f} s"
        return f"{who} runs {what or 'code'} for {age:.1f} s"
    return f"{who} lives there"


def format_graph(activity: list | None = None) -> str:
    """The wait-for graph: who waits on what, who runs what, since when."""
    activity = _core._activity() if activity is None else activity
    now = time.monotonic_ns()
    lines = [_describe(r, now) for r in activity if r[0] != "home"]
    return "\n".join(lines) if lines else "(no manygil waits or runs)"


# ---- stacks --------------------------------------------------------------

def _stacks_of(interp_id: int) -> str:
    if interp_id == _core.get_current():
        text = _core._stacks(interp_id)
    else:
        # Entering another interpreter waits for its GIL: give up after a
        # while rather than hang behind C code that never releases it.
        got: list[Any] = []

        def read() -> None:
            try:
                got.append(_core._stacks(interp_id))
            except BaseException as e:       # noqa: BLE001 - reported below
                got.append(e)

        t = threading.Thread(target=read, name="manygil-stacks", daemon=True)
        try:
            start_thread(t)
        except RuntimeError:                # no new threads at interpreter exit
            return "  (no stacks: the process is exiting)"
        t.join(DUMP_GIL_TIMEOUT)
        if not got:
            return (f"  (no stacks: a thread kept the interpreter's GIL for "
                    f"{DUMP_GIL_TIMEOUT:g} s, running C code that does not release it)")
        if isinstance(got[0], BaseException):
            return f"  (no stacks: {got[0]})"
        text = got[0]
    return text if text else "  (no thread runs Python code)"


def format_stacks(interps: Iterable[int] | None = None) -> str:
    """The Python stack of every thread in every interpreter manygil knows
    (or in ``interps``), with what each thread waits on, as text."""
    main = _core.get_main()
    ids = list(_core.list_all()) if interps is None else sorted(set(interps))
    activity = _core._activity()
    now = time.monotonic_ns()
    parts = []
    for iid in ids:
        head = f"Interpreter {iid}" + (" (main)" if iid == main else "")
        parts.append(f"{head}:\n{_stacks_of(iid)}")
        doing = [_describe(r, now) for r in activity if r[1] == iid and r[0] != "home"]
        if doing:
            parts.append("  manygil: " + "\n  manygil: ".join(doing))
    return "\n".join(parts) + "\n"


def dump_stacks(file: TextIO | Any | None = None) -> None:
    """Write :func:`format_stacks` to ``file`` (default ``sys.stderr``): any
    object with ``write()``, or with only ``fileno()``.  Safe in a signal handler, e.g.::

        signal.signal(signal.SIGUSR1, lambda *a: manygil.dump_stacks())
    """
    text = format_stacks()
    out = sys.stderr if file is None else file
    if not hasattr(out, "write") and hasattr(out, "fileno"):
        data = text.encode("utf-8", "replace")
        fd = out.fileno()
        while data:
            data = data[os.write(fd, data):]
        return
    out.write(text)
    flush = getattr(out, "flush", None)
    if flush is not None:
        flush()


# ---- hang reports and the watchdog ------------------------------------------

class HangReport:
    """What the watchdog saw: one wait, run or task that made no progress
    for longer than ``warn_after`` (or a pool worker given up on)."""

    def __init__(self, kind: str, interp_id: int, thread_id: int, seconds: float,
                 description: str, graph: str, stacks: str) -> None:
        self.kind = kind
        self.interp_id = interp_id
        self.thread_id = thread_id
        self.seconds = seconds
        self.description = description
        self.graph = graph
        self.stacks = stacks

    def __str__(self) -> str:
        return (f"manygil: {self.description}\n"
                f"-- waits and runs --\n{self.graph}\n"
                f"-- stacks --\n{self.stacks}")

    def __repr__(self) -> str:
        return f"<HangReport {self.kind} interpreter {self.interp_id}: {self.description}>"


def make_report(kind: str, interp_id: int, thread_id: int, seconds: float,
                description: str, activity: list | None = None) -> HangReport:
    """Build a report with the graph and the stacks of the interpreters
    involved (the one named, and every one with a blocked wait)."""
    activity = _core._activity() if activity is None else activity
    waits = [r for r in activity if r[0] in ("send", "recv")]
    involved = {interp_id} | {r[1] for r in waits} | {h for r in waits for h in r[9]}
    known = set(_core.list_all())
    stacks = format_stacks(i for i in involved if i in known)
    return HangReport(kind, interp_id, thread_id, seconds, description,
                      format_graph(activity), stacks)


def deliver(report: HangReport, on_hang: Callable[[HangReport], Any] | None) -> None:
    """Hand a report to on_hang, or log it as a warning on logger manygil."""
    if on_hang is None:
        log.warning("%s", report)
        return
    try:
        on_hang(report)
    except Exception:                   # noqa: BLE001 - a failing callback is logged
        log.exception("manygil: on_hang callback failed")


class Reporter:
    """Hands reports to ``on_hang`` (or the log) on a daemon thread of its
    own, in order.  A callback that blocks holds up only later reports:
    never the checks of a watchdog or a pool's monitor (so tasks are still
    timed out and abandoned), ``Watchdog.stop()``, or the process's exit.

    The thread starts with the reporter: threads cannot be started once the
    interpreter is exiting, when a pool's last reports are made."""

    def __init__(self, on_hang: Callable[[HangReport], Any] | None, name: str) -> None:
        self._on_hang = on_hang
        self._cond = threading.Condition()
        self._queue: deque[HangReport] = deque()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        start_thread(self._thread)

    def put(self, report: HangReport) -> None:
        """Queue a report (dropped once closed)."""
        with self._cond:
            if not self._closed:
                self._queue.append(report)
                self._cond.notify()

    def close(self, wait: float = 0.0) -> None:
        """Deliver what is queued, then end the thread.  Waits at most
        ``wait`` seconds for that (a callback may block for ever)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if wait > 0 and self._thread is not threading.current_thread():
            self._thread.join(wait)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                report = self._queue.popleft()
            deliver(report, self._on_hang)


def check_number(name: str, value: Any, *, allow_none: bool = False) -> float | None:
    """A positive number (or None when allowed); ValueError/TypeError else."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number{' or None' if allow_none else ''}, "
                        f"not {type(value).__name__}")
    if not value > 0 or value != value:
        raise ValueError(f"{name} must be > 0, not {value!r}")
    return float(value)


class Watchdog:
    """A background thread reporting waits, exec/call runs and pool tasks in
    progress for longer than ``warn_after`` seconds, once each.  Stop it with
    :meth:`stop` or use it as a context manager."""

    def __init__(self, warn_after: float = 10.0,
                 on_hang: Callable[[HangReport], Any] | None = None) -> None:
        self.warn_after = check_number("warn_after", warn_after)
        if on_hang is not None and not callable(on_hang):
            raise TypeError(f"on_hang must be callable or None, not {type(on_hang).__name__}")
        self.on_hang = on_hang
        self._stop = threading.Event()
        self._reported: set[tuple] = set()
        # Callbacks run on the reporter's thread: one that blocks cannot
        # stall the checks or stop().
        self._reporter = Reporter(on_hang, "manygil-watchdog-reports")
        self._thread = threading.Thread(target=self._run, name="manygil-watchdog", daemon=True)
        start_thread(self._thread)

    def _run(self) -> None:
        interval = min(max(self.warn_after / 4, 0.02), 0.5)
        while not self._stop.wait(interval):
            try:
                self._check(self._reporter.put, background=True)
            except Exception:           # noqa: BLE001 - the watchdog must survive
                log.exception("manygil: watchdog check failed")

    def check(self) -> None:
        """Look once and report what is new and overdue (the callback runs
        in the calling thread)."""
        self._check(lambda report: deliver(report, self.on_hang), background=False)

    def _check(self, report_to: Callable[[HangReport], Any], background: bool) -> None:
        activity = _core._activity()
        now = time.monotonic_ns()
        limit = int(self.warn_after * 1e9)
        present = set()
        # One report per stuck thread and hang: describe its wait if it
        # waits, else its innermost run; a hang is keyed by the thread's
        # outermost record, so a call that waits, then spins, is one hang.
        chosen: dict[int, tuple] = {}
        outermost: dict[int, tuple] = {}
        for rec in activity:                # newest first
            kind, what, ident = rec[0], rec[4], rec[2]
            if kind == "home" or (kind == "run" and what not in ("exec", "call", "task", "actor")):
                continue
            if len(rec) > 11 and rec[11]:
                continue                    # an idle actor worker waits for messages
            outermost[ident] = rec
            if ident not in chosen or (kind in ("send", "recv") and chosen[ident][0] == "run"):
                chosen[ident] = rec
        for ident, rec in chosen.items():
            kind, interp, _, since, what = rec[:5]
            first = outermost[ident]
            key = (ident, first[1], first[3])
            present.add(key)
            if now - since < limit or key in self._reported:
                continue
            self._reported.add(key)
            rkind = "wait" if kind in ("send", "recv") else what
            if background and self._stop.is_set():
                return                      # stopped: make no more reports
            report_to(make_report(rkind, interp, ident, _age(since, now),
                                  "no progress: " + _describe(rec, now), activity))
        self._reported &= present

    def stop(self) -> None:
        """Stop watching (idempotent).  Returns once the watching thread has
        ended; a callback still running (or blocked) is not waited for, and
        reports made before stop() are still delivered."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        self._reporter.close()

    def __enter__(self) -> "Watchdog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def watchdog(warn_after: float = 10.0,
             on_hang: Callable[[HangReport], Any] | None = None) -> Watchdog:
    """Start a :class:`Watchdog`: every manygil wait, ``exec``/``call`` and
    pool task in progress for longer than ``warn_after`` seconds is reported
    once -- to ``on_hang(report)`` if given, else as a warning on logger
    ``manygil`` -- with the wait-for graph and the Python stacks of the
    interpreters involved.  It reports; it never stops anything."""
    return Watchdog(warn_after, on_hang)
