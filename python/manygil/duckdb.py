"""DuckDB Python UDFs evaluated in parallel, one own-GIL interpreter per
DuckDB worker thread.

    import manygil.duckdb as mgdb

    con = mgdb.connect()                      # a duckdb.DuckDBPyConnection
    mgdb.create_function(con, "plus_one", lambda x: x + 1, ["BIGINT"], "BIGINT")
    con.sql("SELECT sum(plus_one(i)) FROM t").fetchall()

The work is done by manygil's DuckDB extension (manygil.duckdb_extension,
built with the package): DuckDB loads it into the connection's database and
calls it from its own threads; each thread evaluates the UDF in the
interpreter manygil binds to it, so the main interpreter's GIL is never taken
while a query runs.  Python reaches the extension's own functions through
ctypes (the library DuckDB opened, opened again by the same path).
"""
from __future__ import annotations

import ctypes
import os
import threading

__all__ = ["ExtensionError", "connect", "load", "create_function", "extension_path"]

_HERE = os.path.dirname(os.path.abspath(__file__))
_EXTENSION = os.path.join(_HERE, "manygil.duckdb_extension")
_MISSING = os.path.join(_HERE, "duckdb_extension_missing.txt")
_CTYPES_ABI = 1


class ExtensionError(RuntimeError):
    """manygil's DuckDB extension is missing, or not loaded where it is needed."""


def extension_path() -> str:
    """The path of manygil's DuckDB extension; ExtensionError if this build has none."""
    if not os.path.isfile(_EXTENSION):
        why = "the file is missing"
        if os.path.isfile(_MISSING):
            with open(_MISSING, encoding="utf-8") as f:
                why = f.read().strip()
        raise ExtensionError(f"manygil's DuckDB extension is not installed ({_EXTENSION}): {why}")
    return _EXTENSION


def _duckdb():
    try:
        import duckdb
    except ImportError as e:
        raise ImportError("manygil.duckdb needs the duckdb package (pip install duckdb)") from e
    return duckdb


# Held from staging a function to the LOAD that registers it (the entry
# point takes whatever is staged), and around plain loads for the same reason.
_stage_lock = threading.Lock()
_alias_count = 0     # guarded by _stage_lock: a new alias for each registering LOAD
_lib_lock = threading.Lock()
_lib = None          # the extension's library, once opened


def _library():
    """The extension's exported functions (ctypes.PyDLL: called holding the GIL)."""
    global _lib
    with _lib_lock:
        if _lib is None:
            path = extension_path()
            # RTLD_LOCAL as DuckDB opens it: the same path gives the same handle.
            lib = ctypes.PyDLL(path, mode=os.RTLD_NOW | os.RTLD_LOCAL)
            if lib.manygil_duckdb_abi() != _CTYPES_ABI:
                raise ExtensionError(f"{path} does not match this manygil.duckdb "
                                     f"(interface {lib.manygil_duckdb_abi()}, expected {_CTYPES_ABI})")
            lib.manygil_duckdb_stage.argtypes = [ctypes.c_char_p, ctypes.py_object,
                                                 ctypes.py_object, ctypes.c_char_p,
                                                 ctypes.c_char_p, ctypes.c_int]
            lib.manygil_duckdb_stage.restype = ctypes.c_int
            lib.manygil_duckdb_discard.restype = None
            _lib = lib
        return _lib


def _unsigned_allowed(con) -> bool:
    rows = con.execute("SELECT current_setting('allow_unsigned_extensions')").fetchall()
    return bool(rows[0][0])


def _loaded(con) -> bool:
    rows = con.execute("SELECT count(*) FROM duckdb_extensions() "
                       "WHERE extension_name = 'manygil' AND loaded").fetchall()
    return rows[0][0] > 0


class _Cursor:
    """A cursor of con for manygil's own statements (con's pending result, if
    any, stays as it was), closed on leaving."""

    def __init__(self, con):
        self.cur = con.cursor()

    def __enter__(self):
        return self.cur

    def __exit__(self, *exc):
        self.cur.close()


def load(con):
    """Load manygil's DuckDB extension into con's database (once per database;
    loading again is harmless).  con must have been made with unsigned
    extensions allowed, which cannot be changed on a running database."""
    duckdb = _duckdb()
    if not isinstance(con, duckdb.DuckDBPyConnection):
        raise TypeError(f"manygil.duckdb.load() needs a duckdb.DuckDBPyConnection, "
                        f"not {type(con).__name__}")
    with _Cursor(con) as cur:
        _load(cur)
    _library()
    return con


def _load(con):
    if not _loaded(con):
        if not _unsigned_allowed(con):
            raise ExtensionError(
                "this DuckDB connection does not allow unsigned extensions, and manygil's "
                "extension is unsigned: make the connection with manygil.duckdb.connect(...), or "
                "with duckdb.connect(..., config={'allow_unsigned_extensions': 'true'}) and then "
                "call manygil.duckdb.load(con) (the setting cannot be changed once the "
                "database runs)")
        with _stage_lock:
            con.load_extension(extension_path())


def connect(database: str = ":memory:", read_only: bool = False, config: dict | None = None):
    """duckdb.connect() with unsigned extensions allowed and manygil's extension
    loaded: a duckdb.DuckDBPyConnection."""
    duckdb = _duckdb()
    config = dict(config or {})
    value = config.get("allow_unsigned_extensions", "true")
    if str(value).lower() not in ("true", "1"):
        raise ValueError("manygil.duckdb.connect() needs allow_unsigned_extensions "
                         f"(config has {value!r}): manygil's extension is unsigned")
    config["allow_unsigned_extensions"] = "true"
    con = duckdb.connect(database, read_only=read_only, config=config)
    try:
        return load(con)
    except BaseException:
        con.close()
        raise


# Options of the extension's manygil_duckdb_stage (src/duckdb/udf.c).
_OPT_SPECIAL_NULL = 0x1
_OPT_RETURN_NULL = 0x2
_OPT_SIDE_EFFECTS = 0x4


def _type_name(duckdb, name, t):
    """DuckDB's canonical name of a type given as a duckdb.sqltypes object or a name."""
    if isinstance(t, duckdb.sqltypes.DuckDBPyType):
        return str(t)
    if isinstance(t, str):
        try:
            return str(duckdb.sqltype(t))
        except duckdb.Error as e:
            raise ValueError(f"manygil.duckdb UDF {name}: unknown SQL type {t!r}: {e}") from None
    raise TypeError(f"manygil.duckdb UDF {name}: a type must be a duckdb.sqltypes type or a type "
                    f"name such as 'BIGINT', not {type(t).__name__}")


def _choice(name, what, value, choices):
    key = getattr(value, "name", value)        # duckdb.func.FunctionNullHandling.SPECIAL
    if isinstance(key, str) and key.lower() in choices:
        return key.lower()
    raise ValueError(f"manygil.duckdb UDF {name}: {what} must be one of "
                     f"{', '.join(map(repr, choices))}, not {value!r}")


def create_function(con, name: str, function, parameters, return_type, *,
                    null_handling="default", exception_handling="default",
                    side_effects: bool = False, initializer=None):
    """Register `function` as the SQL scalar function `name` in con's database,
    evaluated in parallel: each DuckDB thread calls it in its own own-GIL
    interpreter, one chunk of rows at a time.

    Mirrors duckdb's DuckDBPyConnection.create_function: `parameters` (a list)
    and `return_type` are duckdb.sqltypes types or type names ("BIGINT");
    null_handling="special" passes None for NULLs (by default a NULL argument
    gives NULL without a call); exception_handling="return_null" makes a row
    whose call raises (or whose result does not fit) NULL; side_effects=True
    marks the function volatile.  `initializer`, if given, is called with no
    arguments once in each interpreter before its first call of `function`.
    The function (and the initializer) cross to the interpreters as manygil
    sends functions: importable ones by reference, lambdas, closures and
    __main__'s by value; module-level state lives once per interpreter.
    Supported types: BOOLEAN, TINYINT, SMALLINT, INTEGER, BIGINT, UTINYINT,
    USMALLINT, UINTEGER, UBIGINT, FLOAT, DOUBLE, VARCHAR, BLOB.  Returns con."""
    global _alias_count
    duckdb = _duckdb()
    if not isinstance(con, duckdb.DuckDBPyConnection):
        raise TypeError(f"manygil.duckdb.create_function() needs a duckdb.DuckDBPyConnection, "
                        f"not {type(con).__name__}")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"manygil.duckdb.create_function(): the name must be an identifier, "
                         f"not {name!r}")
    if not callable(function):
        raise TypeError(f"manygil.duckdb UDF {name}: the function is not callable "
                        f"({type(function).__name__})")
    if initializer is not None and not callable(initializer):
        raise TypeError(f"manygil.duckdb UDF {name}: the initializer is not callable")
    if isinstance(parameters, (str, duckdb.sqltypes.DuckDBPyType)) or parameters is None:
        raise TypeError(f"manygil.duckdb UDF {name}: parameters must be a list of types")
    params = [_type_name(duckdb, name, t) for t in parameters]
    ret = _type_name(duckdb, name, return_type)
    options = 0
    if _choice(name, "null_handling", null_handling, ("default", "special")) == "special":
        options |= _OPT_SPECIAL_NULL
    if _choice(name, "exception_handling", exception_handling,
               ("default", "return_null")) == "return_null":
        options |= _OPT_RETURN_NULL
    if side_effects:
        options |= _OPT_SIDE_EFFECTS
    with _Cursor(con) as cur:
        if not _loaded(cur):
            raise ExtensionError(
                f"manygil.duckdb UDF {name}: manygil's DuckDB extension is not loaded in this "
                "connection's database: make the connection with manygil.duckdb.connect(), or call "
                "manygil.duckdb.load(con) on a connection made with "
                "config={'allow_unsigned_extensions': 'true'}")
        exists = cur.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name = ?",
                             [name]).fetchall()[0][0]
        if exists:
            raise ValueError(f"manygil.duckdb UDF {name}: a function named {name!r} already exists "
                             "in this database")
        lib = _library()
        path = extension_path().replace("'", "''")
        with _stage_lock:
            lib.manygil_duckdb_stage(name.encode(), function, initializer, ",".join(params).encode(),
                                     ret.encode(), options)
            _alias_count += 1
            try:
                cur.execute(f"LOAD '{path}' AS manygil_udf_{_alias_count}")
            except duckdb.Error as e:
                raise ExtensionError(f"manygil.duckdb UDF {name}: DuckDB did not register it: {e}") \
                    from None
            finally:
                lib.manygil_duckdb_discard()
    return con
