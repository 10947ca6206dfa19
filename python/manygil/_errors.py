"""Exceptions raised by manygil, and the description of a remote exception."""
from __future__ import annotations

import queue as _queue

__all__ = [
    "DeadlockError",
    "TaskTimeout",
    "ChannelError",
    "ChannelNotFoundError",
    "ChannelClosedError",
    "ChannelEmptyError",
    "ChannelFullError",
    "ChannelTimeoutError",
    "QueueError",
    "QueueNotFoundError",
    "QueueEmpty",
    "QueueFull",
    "InterpreterError",
    "InterpreterNotFoundError",
    "ExecutionFailed",
    "NotShareableError",
    "ExceptionInfo",
    "ExceptionType",
]


class InterpreterError(Exception):
    """Base class of interpreter errors (a failed create, a refused close...)."""


class InterpreterNotFoundError(InterpreterError):
    """The interpreter does not exist (never created, or already closed)."""


class NotShareableError(TypeError):
    """A value cannot be copied to another interpreter."""


class ChannelError(Exception):
    """Base class of channel errors."""


class ChannelNotFoundError(ChannelError):
    """No channel has this id (never existed, or both its ends are closed)."""


class ChannelClosedError(ChannelError):
    """The channel is closed (for receivers: closed and drained)."""


class ChannelEmptyError(ChannelError):
    """recv_nowait() found the channel empty."""


class ChannelFullError(ChannelError):
    """send_nowait() found the bounded channel full."""


class ChannelTimeoutError(ChannelError, TimeoutError):
    """A send or receive waited for its whole timeout."""


class DeadlockError(RuntimeError):
    """A blocking channel or queue operation can never complete: every
    interpreter that could satisfy it is itself blocked in such a wait (the
    message names the cycle: interpreters, channels, directions)."""


class TaskTimeout(TimeoutError):
    """A pool task ran longer than the pool's ``task_timeout`` and was
    interrupted (or its worker abandoned)."""


class QueueError(RuntimeError):
    """Base class of queue errors (as concurrent.interpreters' QueueError)."""


class QueueNotFoundError(QueueError):
    """No queue has this id (never created, or every handle of it is gone)."""


class QueueEmpty(QueueError, _queue.Empty):
    """get() on an empty queue (without waiting, or after its timeout)."""


class QueueFull(QueueError, _queue.Full):
    """put() on a full queue (without waiting, or after its timeout)."""


class ExceptionType:
    """Stands for the type of an exception raised in another interpreter.

    It carries the names only (``__name__``, ``__qualname__``,
    ``__module__``): the class itself lives in the other interpreter."""

    def __init__(self, name: str, qualname: str, module: str) -> None:
        self.__name__ = name
        self.__qualname__ = qualname
        self.__module__ = module

    def __repr__(self) -> str:
        if self.__module__ == "builtins":
            return f"<remote exception type {self.__qualname__}>"
        return f"<remote exception type {self.__module__}.{self.__qualname__}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExceptionType):
            return NotImplemented
        return (self.__name__, self.__qualname__, self.__module__) == (
            other.__name__, other.__qualname__, other.__module__)

    def __hash__(self) -> int:
        return hash((self.__qualname__, self.__module__))


class ExceptionInfo:
    """What is known of an exception raised in another interpreter.

    ``type`` (an :class:`ExceptionType`), ``msg`` (``str()`` of the
    exception), ``formatted`` (its formatted traceback, as the other
    interpreter printed it), ``errdisplay`` (``"Type: msg"``)."""

    __slots__ = ("type", "msg", "formatted", "_pickled")

    def __init__(self, type: ExceptionType, msg: str, formatted: str,
                 pickled: bytes | None = None) -> None:
        self.type = type
        self.msg = msg
        self.formatted = formatted
        self._pickled = pickled

    @property
    def errdisplay(self) -> str:
        return f"{self.type.__qualname__}: {self.msg}" if self.msg else self.type.__qualname__

    def rebuild(self) -> BaseException | None:
        """The original exception rebuilt in this interpreter, or None when
        it cannot be (its class is not importable here, or it does not
        pickle)."""
        if self._pickled is None:
            return None
        from . import _pickle
        try:
            exc = _pickle.loads(self._pickled)
        except Exception:
            return None
        return exc if isinstance(exc, BaseException) else None

    def __repr__(self) -> str:
        return f"ExceptionInfo(type={self.type!r}, msg={self.msg!r})"


class ExecutionFailed(InterpreterError):
    """Code run in another interpreter raised.  ``excinfo`` describes it."""

    def __init__(self, excinfo: ExceptionInfo) -> None:
        self.excinfo = excinfo
        super().__init__(excinfo.errdisplay)

    def __str__(self) -> str:
        info = self.excinfo
        text = info.errdisplay
        if info.formatted:
            text += "\n\nUncaught in the interpreter:\n\n" + info.formatted.rstrip("\n")
        return text


def _execution_failed(info: tuple) -> ExecutionFailed:
    """Build ExecutionFailed from the tuple the C core brings back:
    (name, qualname, module, msg, formatted, pickled exception or None)."""
    name, qualname, module, msg, formatted, pickled = info
    return ExecutionFailed(ExceptionInfo(ExceptionType(name, qualname, module),
                                         msg, formatted, pickled))


def _result_not_shareable(info: tuple) -> NotShareableError:
    """The error for a call whose result could not be copied back: a
    NotShareableError saying so, its cause the ExecutionFailed that carries
    the other interpreter's traceback of the failed copy (with the reason
    the value cannot cross)."""
    failed = _execution_failed(info)
    exc = NotShareableError(
        f"the call's result cannot be copied to the calling interpreter: {failed.excinfo.msg}")
    exc.__cause__ = failed
    return exc
