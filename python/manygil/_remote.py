"""Helpers that run inside a target interpreter (imported there on demand)."""
from __future__ import annotations


def describe(exc: BaseException) -> tuple:
    """Describe an exception for the interpreter that ran the code:
    (name, qualname, module, msg, formatted traceback, pickled or None)."""
    import traceback
    tp = type(exc)
    try:
        msg = str(exc)
    except Exception:
        msg = "<exception str() failed>"
    try:
        formatted = "".join(traceback.format_exception(exc))
    except Exception:
        formatted = ""
    try:
        from ._pickle import dumps
        pickled = dumps(exc)
    except Exception:
        pickled = None
    return (tp.__name__, tp.__qualname__, tp.__module__, msg, formatted, pickled)
