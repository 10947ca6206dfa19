"""Interpreter objects: the PEP 734 (``concurrent.interpreters``) shape."""
from __future__ import annotations

import threading
import types
TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)

from . import _core, _pickle
from ._guard import start_thread
from ._errors import InterpreterError, InterpreterNotFoundError

if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["Interpreter", "create", "list_all", "get_current", "get_main", "is_shareable"]


class Interpreter:
    """A handle to an isolated interpreter with its own GIL.

    ``Interpreter(id)`` is a handle of an existing interpreter: the main one
    or one manygil made (TypeError for a non-int id or a bool, ValueError
    for a negative one, InterpreterNotFoundError for no such interpreter).
    Handles are cheap: two handles with the same ``id`` are equal, and a
    handle pickles by id (it can be passed to other interpreters).  The
    interpreter lives until :meth:`close` (or the end of a ``with`` block,
    or process exit), not until the handle is garbage collected."""

    __slots__ = ("_id", "_whence", "__weakref__")

    def __init__(self, id: int) -> None:
        if not isinstance(id, int) or isinstance(id, bool):
            raise TypeError(f"interpreter id must be an int, not {type(id).__name__}")
        self._whence = _core._whence(id)    # ValueError, InterpreterNotFoundError
        self._id = int(id)

    @classmethod
    def _of(cls, id: int) -> "Interpreter":
        """A handle of an interpreter known to exist (no checks)."""
        self = object.__new__(cls)
        self._id = id
        self._whence = None
        return self

    def __reduce__(self) -> tuple:
        return (type(self), (self._id,))

    @property
    def id(self) -> int:
        return self._id

    @property
    def whence(self) -> str:
        """Where the interpreter came from, in ``concurrent.interpreters``'
        words: ``"runtime init"`` for the main interpreter, ``"C-API"`` for
        one manygil made (it uses ``Py_NewInterpreterFromConfig``), or what
        CPython says of an interpreter manygil did not make."""
        if self._whence is None:
            try:
                self._whence = _core._whence(self._id)
            except InterpreterNotFoundError:
                self._whence = "C-API"      # manygil made it; closed since
            if self._whence is None:
                self._whence = _foreign_whence(self._id)
        return self._whence

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

    def exec(self, code: str | Callable[[], object], /) -> None:
        """Run source code, a code object, or the body of a function that
        takes no arguments in the interpreter's __main__ (its names resolve
        there, as ``concurrent.interpreters`` does it).  A function with
        arguments, a closure, or a return value other than None is refused
        with ValueError, as by ``concurrent.interpreters``.

        Blocks the calling thread only: its GIL is released meanwhile.
        Raises :class:`ExecutionFailed` if the code raises."""
        if isinstance(code, types.FunctionType):
            code = code.__code__
        if isinstance(code, types.CodeType):
            _check_script(code)
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
        start_thread(t)
        return t

    def prepare_main(self, ns: dict[str, Any] | None = None, /, **kwargs: Any) -> "Interpreter":
        """Bind copies of the given values as globals of the interpreter's
        __main__.  Returns the interpreter, for chaining."""
        merged = dict(ns) if ns is not None else {}
        merged.update(kwargs)
        if not merged:
            raise ValueError("prepare_main() needs at least one name to bind")
        _core.prepare_main(self._id, merged)
        return self

    def is_running(self) -> bool:
        """Whether some thread is running code in the interpreter now (for
        the main interpreter: always, until the program exits)."""
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
    return [Interpreter._of(i) for i in _core.list_all()]


def get_current() -> Interpreter:
    """The interpreter the calling thread runs in."""
    return Interpreter._of(_core.get_current())


def get_main() -> Interpreter:
    """The main interpreter."""
    return Interpreter._of(_core.get_main())


# ---- PEP 734 details ---------------------------------------------------------

# CPython's names for where an interpreter came from (concurrent.interpreters).
_WHENCE_NAMES = ("unknown", "runtime init", "legacy C-API", "C-API",
                 "cross-interpreter C-API", "_interpreters module")


def _foreign_whence(id: int) -> str:
    """whence of an interpreter manygil did not make (the current one):
    CPython's own answer where it gives one (3.13+), else "unknown"."""
    try:
        import _interpreters
        code = _interpreters.whence(id)
        names = {getattr(_interpreters, f"WHENCE_{n}"): s for n, s in zip(
            ("UNKNOWN", "RUNTIME", "LEGACY_CAPI", "CAPI", "XI", "STDLIB"), _WHENCE_NAMES)}
        return names.get(code, "unknown")
    except Exception:
        return "unknown"


# Code flags (Include/cpython/code.h; stable since 3.5).
_CO_VARARGS, _CO_VARKEYWORDS = 0x04, 0x08
_CO_GENERATOR, _CO_COROUTINE, _CO_ITERABLE_COROUTINE, _CO_ASYNC_GENERATOR = 0x20, 0x80, 0x100, 0x200


def _check_script(co: types.CodeType) -> None:
    """Refuse, as concurrent.interpreters does (same ValueError messages),
    code that is not a script: a closure, code with arguments, code that
    returns a value (generators and coroutines included)."""
    if co.co_freevars:
        raise ValueError("closures not supported")
    if (co.co_argcount or co.co_posonlyargcount or co.co_kwonlyargcount
            or co.co_flags & (_CO_VARARGS | _CO_VARKEYWORDS)):
        raise ValueError("code with args not supported")
    if not _returns_only_none(co):
        raise ValueError("code that returns a value is not a script")


def _returns_only_none(co: types.CodeType) -> bool:
    """Whether every return in co returns None (CPython's
    _PyCode_ReturnsOnlyNone): each RETURN_VALUE follows a load of None
    (LOAD_CONST; LOAD_COMMON_CONSTANT on 3.15+), each RETURN_CONST (3.12,
    3.13) returns None."""
    if co.co_flags & (_CO_GENERATOR | _CO_COROUTINE | _CO_ITERABLE_COROUTINE | _CO_ASYNC_GENERATOR):
        return False
    import opcode
    ops = opcode.opmap
    ret_value, ext = ops["RETURN_VALUE"], ops["EXTENDED_ARG"]
    ret_const, load_common = ops.get("RETURN_CONST", -1), ops.get("LOAD_COMMON_CONSTANT", -1)
    common = getattr(opcode, "_common_constants", ())
    none_index = next((i for i, c in enumerate(co.co_consts) if c is None), -1)
    loads_none = {(ops["LOAD_CONST"], none_index)}
    loads_none.update((load_common, i) for i, c in enumerate(common) if c is None)
    raw = co.co_code
    prev, arg = (-1, -1), 0
    for i in range(0, len(raw), 2):
        op = raw[i]
        arg = arg << 8 | raw[i + 1]
        if op == ext:
            continue
        if op == ret_value and prev not in loads_none:
            return False
        if op == ret_const and arg != none_index:
            return False
        prev, arg = (op, arg), 0
    return True


def is_shareable(obj: object) -> bool:
    """Whether ``obj`` can be copied to another interpreter (natively or by
    pickle).  Shareability is checked by encoding the value."""
    return _core.is_shareable(obj)
