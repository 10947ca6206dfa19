"""Runs one Dask task's own work in a worker interpreter (manygil.dask sends it).

A module of its own, small and free of Dask: interpreters import it, and
``distributed`` cannot be imported there (psutil, tornado, msgpack...).  The
main interpreter turns Dask's ``Task`` into plain values first: the task's
function (pickled once per function), its arguments with the dependencies'
data put in, and ``Node`` objects for tasks nested in the arguments.
"""
from __future__ import annotations

import re
import threading
import time

from . import _pickle

__all__ = ["Node", "ImportRefused", "run"]

# Messages CPython (and manygil's import hint) use when an extension module
# refuses an own-GIL interpreter.
_REFUSED = ("does not support loading in subinterpreters",
            "does not support the per-interpreter GIL",
            "cannot be loaded in a manygil interpreter")


_NAMED = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception): ")


class ImportRefused(ImportError):
    """The task could not run here only because a module it needs refuses
    own-GIL interpreters (numpy, pandas...): manygil.dask runs it on the
    worker's threads instead."""


class Node:
    """A task nested in another task's arguments: ``func(*args, **kwargs)``
    evaluated before the outer call (as Dask's Task.__call__ does); func is
    None for a container node (kwargs then holds its constructor)."""

    __slots__ = ("func", "args", "kwargs")

    def __init__(self, func, args: tuple, kwargs: dict) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs

    def __reduce__(self):
        return Node, (self.func, self.args, self.kwargs)

    def evaluate(self):
        args = tuple(a.evaluate() if type(a) is Node else a for a in self.args)
        kwargs = self.kwargs
        if self.func is None:               # a container: list, tuple, set, dict
            kind = kwargs["kind"]
            if kind == "dict":
                return dict(zip(args[::2], args[1::2]))
            return {"list": list, "tuple": tuple, "set": set}[kind](args)
        if kwargs:
            kwargs = {k: v.evaluate() if type(v) is Node else v for k, v in kwargs.items()}
            return self.func(*args, **kwargs)
        return self.func(*args)


# Functions loaded in this interpreter, by their pickle (bounded).
_funcs: dict[bytes, object] = {}
_MAX_FUNCS = 512


def run(name: str, fn_data: bytes, fn_buffers: list | None, args: tuple, kwargs: dict | None):
    """Run the task: returns (result, start, stop, thread ident), times from
    time.time() around the call.  ImportRefused when the function, or a
    module the call imports, cannot load in an own-GIL interpreter."""
    fn = _funcs.get(fn_data)
    if fn is None:
        try:
            fn = _pickle.loads(fn_data, fn_buffers)
        except Exception as exc:
            if _refused(exc):
                raise ImportRefused(f"task function {name} cannot be loaded in an own-GIL "
                                    f"interpreter: {_first_line(exc)}") from exc
            raise
        if len(_funcs) >= _MAX_FUNCS:
            _funcs.clear()
        _funcs[fn_data] = fn
    start = time.time()
    try:
        args = tuple(a.evaluate() if type(a) is Node else a for a in args)
        if kwargs:
            kwargs = {k: v.evaluate() if type(v) is Node else v for k, v in kwargs.items()}
            result = fn(*args, **kwargs)
        else:
            result = fn(*args)
    except ImportError as exc:
        if _refused(exc):
            raise ImportRefused(f"task {name} imports a module that cannot be loaded in an "
                                f"own-GIL interpreter: {_first_line(exc)}") from exc
        raise
    return result, start, time.time(), threading.get_ident()


def _refused(exc: BaseException) -> bool:
    """True if exc, or an exception it was raised from, says an extension
    module refused this interpreter."""
    seen = 0
    while exc is not None and seen < 16:
        if isinstance(exc, ImportError) and any(m in str(exc) for m in _REFUSED):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _first_line(exc: BaseException) -> str:
    root = exc
    for _ in range(16):
        nxt = root.__cause__ or root.__context__
        if nxt is None:
            break
        root = nxt
    for e in (root, exc):
        for line in str(e).splitlines():
            if any(m in line for m in _REFUSED):
                line = line.strip()
                if _NAMED.match(line):          # a remote traceback's last line
                    return line
                return f"{type(e).__name__}: {line}"
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
