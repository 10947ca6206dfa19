"""Runs a joblib batch in a worker interpreter (manygil.joblib sends it).

A module of its own: workers import it, and joblib itself cannot be
imported in an own-GIL interpreter (its loky backend imports faulthandler,
which CPython refuses in subinterpreters)."""
from __future__ import annotations

from . import _pickle
from ._errors import NotShareableError


def run(names: str, data: bytes, buffers: list | None, calls: list) -> list:
    """Run a batch: calls are (i, args) or (i, args, kwargs), i indexing the
    functions pickled in data; NotShareableError naming the functions when
    they cannot be loaded here."""
    try:
        funcs = _pickle.loads(data, buffers)
    except Exception as exc:
        raise NotShareableError(_cannot_load(names, exc)) from exc
    try:
        return [funcs[c[0]](*c[1], **c[2]) if len(c) == 3 else funcs[c[0]](*c[1])
                for c in calls]
    except ImportError as exc:
        if not _through_joblib(exc):
            raise
        raise NotShareableError(_cannot_load(names, exc)) from exc


def _through_joblib(exc: BaseException) -> bool:
    """True if exc was raised while importing joblib (its traceback passes
    through joblib's files)."""
    tb = exc.__traceback__
    while tb is not None:
        if "/joblib/" in tb.tb_frame.f_code.co_filename.replace("\\", "/"):
            return True
        tb = tb.tb_next
    return False


def _cannot_load(names: str, exc: BaseException) -> str:
    root = exc                              # numpy's own text is at the bottom
    for _ in range(8):
        nxt = root.__cause__ or root.__context__
        if nxt is None:
            break
        root = nxt
    first = (str(root).strip().splitlines() or [""])[0]
    why = f"{type(root).__name__}: {first}"
    if _through_joblib(exc):
        advice = ("it imports joblib, which cannot be imported in an own-GIL interpreter "
                  "(joblib's loky imports faulthandler, refused in subinterpreters), so a "
                  "task cannot call joblib itself; keep joblib out of the task's module")
    else:
        advice = ("its module, or a module it imports, cannot be imported there (extensions "
                  "such as numpy and pandas refuse own-GIL interpreters); define the "
                  "function in a module that does not import them, or use another backend")
    return f"joblib task {names} cannot be loaded in an own-GIL interpreter ({why}): {advice}"

