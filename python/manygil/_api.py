"""Interpreter objects: the PEP 734 (``concurrent.interpreters``) shape."""
from __future__ import annotations

import threading
TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)

from . import _core, _pickle
from ._errors import InterpreterError, InterpreterNotFoundError

if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["Interpreter", "create", "list_all", "get_current", "get_main", "is_shareable"]


class Interpreter:
    """A handle to an isolated interpreter with its own GIL.

    Handles are cheap: two handles with the same ``id`` are equal.  The
    interpreter lives until :meth:`close` (or the end of a ``with`` block,
    or process exit), not until the handle is garbage collected."""

    __slots__ = ("_id", "__weakref__")

    def __init__(self, id: int) -> None:
        if not isinstance(id, int):
            raise TypeError(f"interpreter id must be an int, not {type(id).__name__}")
        self._id = id

    @property
    def id(self) -> int:
        return self._id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._id})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Interpreter):
            return NotImplemented
        return self._id == other._id

    def __hash__(self) -> int:
        return hash(self._id)

    def __enter__(self) -> "Interpreter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def exec(self, code: str) -> None:
        """Run source code (or a code object) in the interpreter's __main__.

        Blocks the calling thread only: its GIL is released meanwhile.
        Raises :class:`ExecutionFailed` if the code raises."""
        _core.exec(self._id, code)

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call ``fn(*args, **kwargs)`` in the interpreter; return a copy of
        the result.  ``fn`` and the arguments are copied there first."""
        return _core.call(self._id, fn, args, kwargs)

    def acall(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``await interp.acall(fn, *args, **kwargs)``: :meth:`call` for
        asyncio.  The call runs on a thread of the running loop's default
        executor (it does work there; no thread waits for it), and its end
        wakes the loop.  Cancelling the coroutine does not stop a call that
        has started: it runs to its end and its result is dropped."""
        if not callable(fn):
            raise TypeError(f"acall() needs a callable, not {type(fn).__name__}")
        from ._asyncio import acall
        return acall(self._id, fn, args, kwargs)

    def call_in_thread(self, fn: Callable[..., Any], /, *args: Any,
                       **kwargs: Any) -> threading.Thread:
        """Start a thread that runs :meth:`call`; the result is discarded."""
        t = threading.Thread(target=_core.call, args=(self._id, fn, args, kwargs),
                             name=f"manygil-interp-{self._id}")
        t.start()
        return t

    def prepare_main(self, ns: dict[str, Any] | None = None, /, **kwargs: Any) -> "Interpreter":
        """Bind copies of the given values as globals of the interpreter's
        __main__.  Returns the interpreter, for chaining."""
        merged = dict(ns) if ns is not None else {}
        merged.update(kwargs)
        _core.prepare_main(self._id, merged)
        return self

    def is_running(self) -> bool:
        """Whether some thread is running code in the interpreter now."""
        return _core.is_running(self._id)

    def interrupt(self, exc: type[BaseException] = KeyboardInterrupt) -> int:
        """Raise ``exc`` (a built-in exception class) at the next bytecode
        boundary in every thread now running :meth:`exec` or :meth:`call` in
        this interpreter; each of those calls then fails with
        :class:`ExecutionFailed` naming ``exc``.  Returns how many threads
        were interrupted (0 if none was running code here).

        Code in C that does not return to Python (``time.sleep``, a blocking
        read, a manygil wait) sees the interrupt only when it returns.  The
        interrupt lands only in the code of the run it was sent to (never in
        manygil's own copying around it, never in a later call).
        Raises :class:`InterpreterNotFoundError` if the interpreter does not
        exist (or was closed), like every other method."""
        return _core._interrupt(self._id, exc)

    def close(self) -> None:
        """Close the interpreter.  Closing a closed one does nothing;
        closing one that runs code raises :class:`InterpreterError`."""
        try:
            _core.destroy(self._id)
        except InterpreterNotFoundError:
            pass


def create() -> Interpreter:
    """Create an isolated interpreter with its own GIL.

    It starts with a copy of the creating interpreter's ``sys.path``, so
    whatever imports here imports there (extension modules that do not
    support own-GIL interpreters excepted: ``python -m manygil check MOD``)."""
    if _pickle.importing_main is not None:
        raise InterpreterError(
            f"manygil.create() was called while the main script {_pickle.importing_main!r} "
            "is being imported in another interpreter to find a function or class "
            "defined there. Protect the script's entry point with "
            "`if __name__ == \"__main__\":` (as with multiprocessing)")
    return Interpreter(_core.create())


def list_all() -> list[Interpreter]:
    """The main interpreter and every open manygil interpreter."""
    return [Interpreter(i) for i in _core.list_all()]


def get_current() -> Interpreter:
    """The interpreter the calling thread runs in."""
    return Interpreter(_core.get_current())


def get_main() -> Interpreter:
    """The main interpreter."""
    return Interpreter(_core.get_main())


def is_shareable(obj: object) -> bool:
    """Whether ``obj`` can be copied to another interpreter (natively or by
    pickle).  Shareability is checked by encoding the value."""
    return _core.is_shareable(obj)
