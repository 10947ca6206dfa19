"""The pickle side of the codec: values the C codec does not write natively.

Pickle protocol 5, plus reductions that let functions and classes cross
between interpreters of one process:

* importable functions and classes cross by reference (module + qualname);
* functions and classes of the main script cross by reference to the script,
  which the target imports under the name ``__mp_main__`` (as
  ``multiprocessing``'s spawn does; keep the ``if __name__ == "__main__":``
  guard in scripts), also for ``python -m mod``.  The
  target imports it once: threads of the target that need it meanwhile wait
  for that import to finish (never see a half-imported script).  A package's
  ``__main__`` (``python -m pkg``) is never imported in a target (it usually
  has no guard: importing it would run the program again); its functions
  cross by value, its classes cannot cross;
* functions that cannot be found by name -- lambdas, nested functions,
  functions typed at the prompt -- cross by value: their code (``marshal``),
  defaults, closure cells and the globals they use; modules they use are
  re-imported by name in the target.
"""
from __future__ import annotations

import _pickle
import _thread
import builtins
import importlib
import importlib.util
import io
import marshal
import os
import sys
import types

from . import _owngil
from ._errors import NotShareableError

_MAIN_NAMES = ("__main__", "__mp_main__")


# Out-of-band buffers (pickle protocol 5) at least this big travel in shared
# memory: copied once here, used in place by the receiving side.
OOB_MIN = 64 * 1024


def dumps(obj: object, main_by_value: bool = False) -> bytes | tuple[bytes, list]:
    """Pickle obj for another interpreter; NotShareableError if it cannot.

    Returns the pickle, or (pickle, [PickleBuffer, ...]) when obj exports
    big out-of-band buffers: the C codec moves those to shared memory.
    main_by_value: the main script's functions cross by value, so the
    target never imports the script (as cloudpickle does; manygil.joblib:
    a script that imports joblib cannot be imported in an interpreter)."""
    buf = io.BytesIO()
    oob: list = []

    def keep_big_buffers_out_of_band(pb: object) -> bool:
        if pb.raw().nbytes < OOB_MIN:       # type: ignore[attr-defined]
            return True                     # small: in-band
        oob.append(pb)
        return False

    try:
        pickler = _MainByValuePickler if main_by_value else _Pickler
        pickler(buf, 5, True, keep_big_buffers_out_of_band).dump(obj)
    except NotShareableError:
        raise
    except RecursionError:
        raise NotShareableError(
            f"cannot share {_type_name(obj)} object: it is nested too deeply "
            "(or is a very long chain of references)") from None
    except Exception as exc:
        where = _find_captured_culprit(obj)
        if where is not None:
            raise NotShareableError(f"cannot share {_type_name(obj)} object: {where}") from exc
        raise NotShareableError(f"cannot share {_type_name(obj)} object: {exc}") from exc
    return (buf.getvalue(), oob) if oob else buf.getvalue()


def loads(data: bytes, buffers: list | None = None) -> object:
    if not buffers:
        return _pickle.loads(data)
    if _KEYWORDS_UNSAFE and _in_subinterpreter():
        import pickle
        return pickle._loads(data, buffers=buffers)  # type: ignore[attr-defined]
    return _pickle.loads(data, buffers=buffers)


def _type_name(obj: object) -> str:
    tp = type(obj)
    mod = tp.__module__
    name = tp.__qualname__ if mod == "builtins" else f"{mod}.{tp.__qualname__}"
    return repr(name)


# CPython 3.12: calling a C function with keyword arguments inside a
# subinterpreter can corrupt the heap when that interpreter is finalized
# (seen on 3.12.1 with pickle's `protocol=`, `buffer_callback=` and
# `buffers=`: 'free(): invalid pointer' at exit).  So the C pickler is always
# called positionally, and unpickling with out-of-band buffers in a 3.12
# subinterpreter (keyword-only in C) uses the pure-Python unpickler.
_KEYWORDS_UNSAFE = sys.version_info < (3, 13)


def _in_subinterpreter() -> bool:
    from . import _core
    return _core.get_current() != _core.get_main()


_UNKNOWN = object()
_refusals = _owngil.refusals


class _Pickler(_pickle.Pickler):
    def reducer_override(self, obj, _get=_refusals.get, _unknown=_UNKNOWN):
        # Types from extensions that refuse own-GIL interpreters: the target
        # could not rebuild them (one dict lookup per type after the first).
        refusal = _get(type(obj), _unknown)
        if refusal is not None:
            _refuse(obj, type(obj), refusal)
        if isinstance(obj, types.FunctionType):
            return _reduce_function(obj)
        if isinstance(obj, type):
            refusal = _get(obj, _unknown)
            if refusal is not None:
                _refuse(obj, obj, refusal)
            return _reduce_class(obj)
        if isinstance(obj, types.ModuleType):
            return importlib.import_module, (obj.__name__,)
        if isinstance(obj, types.CodeType):
            return marshal.loads, (marshal.dumps(obj),)
        if type(obj) is memoryview:
            return _reduce_memoryview(obj)
        if type(obj).__module__ in _PURE_FALLBACKS:
            return _reduce_pure_fallback(obj)
        return NotImplemented


class _MainByValuePickler(_Pickler):
    def reducer_override(self, obj):
        if isinstance(obj, types.FunctionType) and obj.__module__ in _MAIN_NAMES:
            return _reduce_by_value(obj)
        return super().reducer_override(obj)


def _refuse(obj: object, tp: type, refusal) -> None:
    """NotShareableError if tp comes from an extension that refuses own-GIL
    interpreters (refusal: its cached verdict, or _UNKNOWN)."""
    if refusal is _UNKNOWN:
        refusal = _owngil.find_refusal(tp)
    if refusal is not None:
        raise NotShareableError(_owngil.message(obj, refusal))


def _reduce_memoryview(mv: memoryview):
    """A memoryview inside a pickled value (a closure cell, a global, an
    object's attribute) crosses as it does on its own: a copy of its bytes
    (out of band, so shared memory, when big) viewed with the same format,
    shape and read-only flag."""
    data = _pickle.PickleBuffer(mv) if mv.c_contiguous else mv.tobytes()
    return _make_memoryview, (data, mv.format, mv.shape, mv.readonly)


def _make_memoryview(data, fmt: str, shape: tuple, readonly: bool) -> memoryview:
    view = memoryview(data)
    if readonly and not view.readonly:
        view = view.toreadonly()
    if view.format == fmt and view.shape == shape:
        return view
    try:
        return view.cast("B").cast(fmt, shape)
    except (TypeError, ValueError):
        return view                         # a layout cast() cannot express


# CPython 3.12's _datetime and _decimal cannot load in own-GIL interpreters,
# so there `datetime` and `decimal` are the pure-Python _pydatetime and
# _pydecimal.  Their objects are sent as instances of the public module's
# class, so they arrive as the main interpreter's C types (and back).
_PURE_FALLBACKS = {"_pydatetime": "datetime", "_pydecimal": "decimal"}


def _reduce_pure_fallback(obj):
    rv = obj.__reduce_ex__(5)
    if not isinstance(rv, tuple) or not isinstance(rv[0], type):
        return rv
    # The constructor arguments carry the whole value (as for the C types);
    # the pure classes' slot state has no meaning for the C types: drop it.
    public = _PURE_FALLBACKS[type(obj).__module__]
    return _construct, (public, rv[0].__qualname__, rv[1])


def _construct(module: str, qualname: str, args: tuple):
    return _lookup(importlib.import_module(module), qualname)(*args)


# ---- lookup by name -------------------------------------------------------

def _lookup(module: types.ModuleType | None, qualname: str):
    if module is None or "<" in qualname:
        return None
    obj = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _main_ref(module_name: str):
    """How the target finds the main script: ('path', file) or
    ('module', name) for ``python -m``; None when main is interactive."""
    mod = sys.modules.get(module_name)
    if mod is None:
        return None
    spec = getattr(mod, "__spec__", None)
    if spec is not None and spec.name not in _MAIN_NAMES:
        if spec.name.endswith(".__main__"):
            return None                     # python -m pkg: see the docstring
        return ("module", spec.name)
    path = getattr(mod, "__file__", None)
    if path:
        return ("path", os.path.abspath(path))
    return None


def _main_attr(ref: tuple, qualname: str):
    """In the target: the object `qualname` of the main script named by ref."""
    obj = _lookup(_main_module(ref), qualname)
    if obj is None:
        raise AttributeError(f"main script has no attribute {qualname!r}")
    return obj


def _main_module(ref: tuple) -> types.ModuleType:
    """The main script named by ref, imported in this interpreter once.

    Threads of one interpreter may ask at once (concurrent first calls): one
    imports, the others wait on _main_lock until it is done, so none sees
    the script half-executed in sys.modules.  The lock is reentrant: the
    script's own top level, while being imported, gets its partial module
    (as any circular import would)."""
    mod = _find_main(ref)
    if mod is not None:
        return mod
    with _main_lock:
        mod = _find_main(ref)               # imported while we waited
        if mod is not None:
            return mod
        if _main_lock._recursion_count() > 1:  # type: ignore[attr-defined]
            mod = sys.modules.get("__mp_main__")
            if mod is not None:
                return mod                  # this thread is importing it
        mod = _import_main(ref)
        _imported_main[ref] = mod
        return mod


def _find_main(ref: tuple) -> types.ModuleType | None:
    """The main script named by ref if it is fully there: this interpreter's
    own __main__ (the main interpreter, sending back), or an import that
    _main_module finished."""
    mod = _imported_main.get(ref)
    if mod is not None:
        return mod
    main = sys.modules.get("__main__")
    if main is not None and _main_ref("__main__") == ref:
        return main
    return None


def _import_main(ref: tuple) -> types.ModuleType:
    """Run the main script in this interpreter as module ``__mp_main__``
    (so its guarded code does not run), from its path or, for ``python -m
    mod``, from the module's spec (as multiprocessing's spawn does)."""
    kind, where = ref
    if kind == "module":
        spec = importlib.util.find_spec(where)
        code = spec.loader.get_code(where) if spec is not None and spec.loader is not None else None
        if code is None:
            raise ImportError(f"cannot import the main module {where!r}")
        mod = types.ModuleType("__mp_main__")
        mod.__spec__ = spec
        mod.__loader__ = spec.loader
        mod.__package__ = spec.parent
        if spec.has_location:
            mod.__file__ = spec.origin
            mod.__cached__ = spec.cached
        run = lambda: exec(code, mod.__dict__)  # noqa: E731
    else:
        spec = importlib.util.spec_from_file_location("__mp_main__", where)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import the main script {where!r}")
        mod = importlib.util.module_from_spec(spec)
        run = lambda: spec.loader.exec_module(mod)  # noqa: E731
    sys.modules["__mp_main__"] = mod
    global importing_main
    importing_main = where
    try:
        run()
    except BaseException:
        del sys.modules["__mp_main__"]
        raise
    finally:
        importing_main = None
    return mod


# Guards the import of the main script in this interpreter (this module is
# per interpreter, so is the lock); _imported_main: the imports finished.
_main_lock = _thread.RLock()
_imported_main: dict[tuple, types.ModuleType] = {}

# The main script being imported as __mp_main__ in this interpreter, if any:
# creating interpreters then means the script lacks its main guard.
importing_main: str | None = None


def _reduce_class(cls: type):
    if cls.__module__ in _PURE_FALLBACKS:
        return _lookup, (importlib.import_module(_PURE_FALLBACKS[cls.__module__]),
                         cls.__qualname__)
    if cls.__module__ not in _MAIN_NAMES:
        return NotImplemented
    ref = _main_ref(cls.__module__)
    pkg_main = _package_main_name(cls.__module__)
    if pkg_main is not None:
        raise NotShareableError(
            f"cannot share class {cls.__qualname__!r}: it is defined in {pkg_main!r} "
            "(run with python -m), which other interpreters never import (that would "
            "run the program again); define it in another module of the package")
    if ref is None or _lookup(sys.modules.get(cls.__module__), cls.__qualname__) is not cls:
        raise NotShareableError(
            f"cannot share class {cls.__qualname__!r}: it is defined interactively or "
            "inside a function of the main script; define it at the top level of a "
            "module or script")
    return _main_attr, (ref, cls.__qualname__)


def _package_main_name(module_name: str) -> str | None:
    """'pkg.__main__' if module_name is the main script run as python -m pkg."""
    spec = getattr(sys.modules.get(module_name), "__spec__", None)
    name = getattr(spec, "name", None)
    return name if isinstance(name, str) and name.endswith(".__main__") else None


def _reduce_function(fn: types.FunctionType):
    module_name = fn.__module__
    qualname = fn.__qualname__
    if module_name in _MAIN_NAMES:
        ref = _main_ref(module_name)
        if ref is not None and _lookup(sys.modules.get(module_name), qualname) is fn:
            return _main_attr, (ref, qualname)
    elif _lookup(sys.modules.get(module_name), qualname) is fn:
        return NotImplemented               # by reference: pickle's save_global
    return _reduce_by_value(fn)


# ---- functions by value ---------------------------------------------------

class _Empty:
    """Marks an empty closure cell."""


def _global_names(code: types.CodeType, out: set) -> set:
    out.update(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _global_names(const, out)
    return out


def _reduce_by_value(fn: types.FunctionType):
    code = fn.__code__
    g = fn.__globals__
    used = {name: g[name] for name in _global_names(code, set()) if name in g}
    cells = []
    for cell in fn.__closure__ or ():
        try:
            cells.append(cell.cell_contents)
        except ValueError:
            cells.append(_Empty)
    state = (used, fn.__defaults__, fn.__kwdefaults__, tuple(cells),
             fn.__dict__ or None, fn.__doc__, fn.__annotations__ or None)
    args = (marshal.dumps(code), fn.__name__, fn.__qualname__, fn.__module__, len(cells))
    return _make_function, args, state, None, None, _fill_function


def _make_function(code_bytes, name, qualname, module, ncells):
    """The skeleton of a function sent by value: its globals and cells are
    filled by _fill_function once they are unpickled (they may refer back to
    the function itself)."""
    code = marshal.loads(code_bytes)
    g = {"__builtins__": builtins, "__name__": module}
    cells = tuple(types.CellType() for _ in range(ncells)) if ncells else None
    fn = types.FunctionType(code, g, name, None, cells)
    fn.__qualname__ = qualname
    fn.__module__ = module
    return fn


def _fill_function(fn, state):
    used, defaults, kwdefaults, cells, fdict, doc, annotations = state
    fn.__globals__.update(used)
    fn.__defaults__ = defaults
    fn.__kwdefaults__ = kwdefaults
    for cell, value in zip(fn.__closure__ or (), cells):
        if value is not _Empty:
            cell.cell_contents = value
    if fdict:
        fn.__dict__.update(fdict)
    fn.__doc__ = doc
    if annotations:
        fn.__annotations__ = annotations


# ---- saying what cannot cross ----------------------------------------------

class _Culprit(Exception):
    """Carries the description of a value captured by a function sent by
    value that cannot cross (raised through nested picklers)."""


class _Diagnoser(_Pickler):
    """Pickles like _Pickler, into nothing, but pickles each value captured
    by a function sent by value on its own, so the first that fails is named:
    "closure variable 'mv' of function '<lambda>': cannot share ...".  Run
    only after a dump failed, so the common path pays nothing."""

    def reducer_override(self, obj):
        rv = super().reducer_override(obj)
        if isinstance(rv, tuple) and len(rv) >= 3 and rv[0] is _make_function:
            fn = obj
            used = rv[2][0]
            for name, value in used.items():
                _probe(value, f"global {name!r}", fn)
            names = fn.__code__.co_freevars
            for name, value in zip(names, rv[2][3]):
                if value is not _Empty:
                    _probe(value, f"closure variable {name!r}", fn)
            for name, value in (fn.__kwdefaults__ or {}).items():
                _probe(value, f"default of {name!r}", fn)
            for value in fn.__defaults__ or ():
                _probe(value, "a default value", fn)
        return rv


def _probe(value: object, what: str, fn: types.FunctionType) -> None:
    try:
        _Diagnoser(io.BytesIO(), 5, True, lambda pb: True).dump(value)
    except _Culprit:
        raise
    except RecursionError:
        return                              # the caller's message says it
    except Exception as exc:
        raise _Culprit(f"{what} of function {fn.__qualname__!r}: cannot share "
                       f"{_type_name(value)} object: {exc}") from None


def _find_captured_culprit(obj: object) -> str | None:
    """After dumps(obj) failed: the description of the value captured by a
    function (sent by value) that made it fail, or None if the failure is
    not about a captured value."""
    try:
        _Diagnoser(io.BytesIO(), 5, True, lambda pb: True).dump(obj)
    except _Culprit as found:
        return str(found)
    except Exception:
        return None
    return None
