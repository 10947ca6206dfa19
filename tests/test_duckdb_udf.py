"""manygil.duckdb.create_function compared with DuckDB's own create_function
on the same data and function: every type, NULLs in both modes, errors,
several cursors at once, many queries, functions by reference and by value."""
import os
import subprocess
import sys
import threading

import pytest

from helpers.duckdb_util import duckdb, mgdb
from helpers import duckdb_funcs as funcs
from helpers.proc import child_env

pytestmark = pytest.mark.timeout(120)
pytest.importorskip("numpy", reason="DuckDB's own create_function (the reference) needs numpy, "
                                    "which does not install for this Python")

# (SQL type, values as SQL literals; NULL among them)
TYPES = {
    "BOOLEAN": ["true", "false", "NULL"],
    "TINYINT": ["-128", "0", "127", "NULL", "5"],
    "SMALLINT": ["-32768", "32767", "NULL", "-1"],
    "INTEGER": ["-2147483648", "2147483647", "NULL", "42"],
    "BIGINT": ["-9223372036854775808", "9223372036854775807", "NULL", "0"],
    "UTINYINT": ["0", "255", "NULL"],
    "USMALLINT": ["0", "65535", "NULL"],
    "UINTEGER": ["0", "4294967295", "NULL"],
    "UBIGINT": ["0", "18446744073709551615", "NULL", "7"],
    "FLOAT": ["1.5", "-0.0", "3.4e38", "NULL", "'nan'", "'inf'"],
    "DOUBLE": ["2.5", "-1e308", "NULL", "'nan'", "'-inf'", "0.1"],
    "VARCHAR": ["'a'", "''", "NULL", "'exactly12byt'", "'longer than twelve bytes'",
                "'héllo wörld ünïcode ✓'"],
    "BLOB": ["'\\x00\\x01'::BLOB", "''::BLOB", "NULL", "'abcdefghijklmnopqrstuvwxyz'::BLOB"],
}


@pytest.fixture
def con():
    c = mgdb.connect(config={"threads": "2"})
    yield c
    c.close()


def make_table(con, sql_type, values, repeat=1):
    rows = ", ".join(f"(({v})::{sql_type})" for v in values)
    con.execute(f"CREATE OR REPLACE TABLE t AS SELECT x FROM (VALUES {rows}) v(x), range({repeat})")


def both(con, name, fn, params, ret, **kw):
    """Register fn as mg_<name> (manygil) and py_<name> (DuckDB's own)."""
    mgdb.create_function(con, "mg_" + name, fn, params, ret, **kw)
    con.create_function("py_" + name, fn, params, ret, **kw)


def nan_as_null(rows):
    return [tuple(None if isinstance(v, float) and v != v else v for v in row) for row in rows]


def same(con, sql, nan_is_null=False):
    """The query with mg_ and with py_ functions gives the same rows.
    nan_is_null: DuckDB's own UDF returns NULL for a NaN result (manygil
    returns NaN); compare with NaNs as NULLs."""
    mine = con.execute(sql.replace("{f}", "mg_")).fetchall()
    ref = con.execute(sql.replace("{f}", "py_")).fetchall()
    if nan_is_null:
        assert repr(nan_as_null(mine)) == repr(nan_as_null(ref))
    else:
        assert repr(mine) == repr(ref)      # repr: nan equals nan, -0.0 differs from 0.0
    return mine


@pytest.mark.parametrize("sql_type", list(TYPES))
def test_identity_matches_duckdb(con, sql_type):
    make_table(con, sql_type, TYPES[sql_type])
    both(con, "id", lambda x: x, [sql_type], sql_type)
    rows = same(con, "SELECT x, {f}id(x) FROM t ORDER BY rowid",
                nan_is_null=sql_type in ("FLOAT", "DOUBLE"))
    assert (None, None) in rows
    if sql_type in ("FLOAT", "DOUBLE"):
        assert any(v != v for _, v in rows)     # manygil keeps NaN a NaN


@pytest.mark.parametrize("sql_type", list(TYPES))
def test_special_null_handling_matches_duckdb(con, sql_type):
    make_table(con, sql_type, TYPES[sql_type])
    both(con, "d", funcs.describe, [sql_type], "VARCHAR", null_handling="special")
    rows = same(con, "SELECT {f}d(x) FROM t ORDER BY rowid")
    assert ("NoneType:None",) in rows


@pytest.mark.parametrize("sql_type", ["BIGINT", "VARCHAR", "DOUBLE", "BLOB"])
def test_result_types_from_python_values_match_duckdb(con, sql_type):
    conv = {"BIGINT": lambda x: x * 3 - 1, "VARCHAR": lambda x: f"<{x}>",
            "DOUBLE": lambda x: x / 7, "BLOB": lambda x: str(x).encode() * 2}[sql_type]
    make_table(con, "BIGINT", ["1", "-5", "NULL", "1000000"])
    both(con, "c", conv, ["BIGINT"], sql_type)
    same(con, "SELECT {f}c(x) FROM t ORDER BY rowid")


def test_sixty_four_arguments(con):
    mgdb.create_function(con, "m64", lambda *a: sum(a), ["BIGINT"] * 64, "BIGINT")
    args = ", ".join(str(i) for i in range(64))
    assert con.execute(f"SELECT m64({args})").fetchall() == [(sum(range(64)),)]


def test_several_arguments_and_no_arguments(con):
    con.execute("CREATE TABLE t2 AS SELECT i AS a, 'ab' || i AS s FROM range(5000) r(i)")
    both(con, "rep", lambda a, s: s * (a % 4), ["BIGINT", "VARCHAR"], "VARCHAR")
    same(con, "SELECT {f}rep(a, s) FROM t2 ORDER BY a")
    both(con, "k", lambda: 42, [], "BIGINT", side_effects=True)
    same(con, "SELECT {f}k() FROM range(3)")


def test_default_null_handling_does_not_call_the_function(con):
    make_table(con, "BIGINT", ["1", "NULL", "3"])
    mgdb.create_function(con, "plus", lambda x: x + 1, ["BIGINT"], "BIGINT")   # + None raises
    assert con.execute("SELECT plus(x) FROM t ORDER BY rowid").fetchall() == [(2,), (None,), (4,)]


def test_exception_handling_return_null_matches_duckdb(con):
    con.execute("CREATE TABLE t AS SELECT i AS x FROM range(3000) r(i)")
    both(con, "r", funcs.reciprocal, ["BIGINT"], "BIGINT", exception_handling="return_null")
    rows = same(con, "SELECT {f}r(x) FROM t ORDER BY x")
    assert rows[0] == (None,) and rows[1] == (1000,)


def test_duckdb_type_objects_and_names_are_both_accepted(con):
    from duckdb import sqltypes
    mgdb.create_function(con, "a1", lambda x: str(x), [sqltypes.INTEGER], sqltypes.VARCHAR)
    mgdb.create_function(con, "a2", lambda x: str(x), ["int4"], "text")
    assert con.execute("SELECT a1(5), a2(6)").fetchall() == [("5", "6")]


def test_a_large_parallel_scan_uses_several_threads_each_in_its_own_interpreter():
    con = mgdb.connect(config={"threads": "4"})
    con.execute("CREATE TABLE big AS SELECT i AS x FROM range(4 * 122880) r(i)")
    mgdb.create_function(con, "thr", funcs.thread_token, ["BIGINT"], "BIGINT")
    mgdb.create_function(con, "itp", funcs.interp_token, ["BIGINT"], "BIGINT")
    pairs = con.execute("SELECT DISTINCT thr(x), itp(x) FROM big").fetchall()
    threads = {t for t, _ in pairs}
    interps = {i for _, i in pairs}
    assert len(threads) >= 2, pairs
    # One module copy per interpreter, one interpreter per thread.
    assert len(interps) == len(threads), pairs
    con.close()


def test_initializer_runs_once_per_interpreter():
    con = mgdb.connect(config={"threads": "4"})
    con.execute("CREATE TABLE big AS SELECT i AS x FROM range(4 * 122880) r(i)")
    mgdb.create_function(con, "ic", funcs.init_calls, ["BIGINT"], "BIGINT",
                         initializer=funcs.initializer)
    assert con.execute("SELECT DISTINCT ic(x) FROM big").fetchall() == [(1,)]
    con.close()


def test_module_state_by_reference_matches_duckdb(con):
    make_table(con, "VARCHAR", ["'123 abc def'", "'XYZ'", "NULL", "'  hello'"])
    both(con, "w", funcs.first_word, ["VARCHAR"], "VARCHAR")
    same(con, "SELECT {f}w(x) FROM t ORDER BY rowid")


def test_lambdas_and_closures_cross_by_value(con):
    table = {i: f"v{i * i}" for i in range(10)}
    offset = 1000

    def lookup(x):
        return table.get(x % 10, "?") + str(x + offset)

    con.execute("CREATE TABLE t AS SELECT i AS x FROM range(20000) r(i)")
    both(con, "lk", lookup, ["BIGINT"], "VARCHAR")
    same(con, "SELECT {f}lk(x) FROM t ORDER BY x")


def test_main_module_functions_cross_by_value():
    script = (
        "import manygil.duckdb as mgdb\n"
        "SCALE = 3\n"
        "def triple(x):\n"
        "    return x * SCALE\n"
        "con = mgdb.connect(config={'threads': '2'})\n"
        "mgdb.create_function(con, 'triple', triple, ['BIGINT'], 'BIGINT')\n"
        "print(con.execute('SELECT sum(triple(i)) FROM range(100000) r(i)').fetchall()[0][0])\n"
        "con.close()\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, env=child_env())
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == 3 * sum(range(100000))


def test_several_cursors_query_at_once(con):
    con.execute("CREATE TABLE big AS SELECT i AS x FROM range(100000) r(i)")
    mgdb.create_function(con, "b", funcs.busy, ["BIGINT"], "BIGINT")
    expected = con.execute("SELECT sum(x + 0) FROM big").fetchall()[0][0]
    results, errors = [], []

    def run():
        try:
            cur = con.cursor()
            for _ in range(2):
                results.append(cur.execute("SELECT sum(b(x)) FROM big WHERE x % 10 < 3").fetchall())
            cur.close()
        except BaseException as e:   # noqa: BLE001 - reported below
            errors.append(e)

    ref = con.execute("SELECT sum(x) FROM big WHERE x % 10 < 3").fetchall()
    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results == [ref] * 8
    assert expected == sum(range(100000))


@pytest.mark.rss_bound
@pytest.mark.timeout(300)
def test_a_thousand_queries_keep_memory_bounded(con):
    con.execute("CREATE TABLE t AS SELECT i AS x, 'row' || i AS s FROM range(4096) r(i)")
    mgdb.create_function(con, "u", lambda s: s.upper(), ["VARCHAR"], "VARCHAR")

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    for _ in range(100):
        con.execute("SELECT count(u(s)) FROM t").fetchall()
    before = rss()
    for _ in range(1000):
        assert con.execute("SELECT count(u(s)) FROM t").fetchall() == [(4096,)]
    grown = rss() - before
    assert grown < 20 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB over 1,000 queries"


def test_registering_leaves_the_connections_pending_result_alone(con):
    res = con.execute("SELECT i FROM range(5000) r(i) ORDER BY i")
    first = res.fetchmany(10)
    mgdb.create_function(con, "p", abs, ["BIGINT"], "BIGINT")
    rest = res.fetchall()
    assert [r[0] for r in first + rest] == list(range(5000))
    assert con.execute("SELECT p(-2)").fetchall() == [(2,)]


def test_a_read_only_database_takes_functions_too(tmp_path):
    path = str(tmp_path / "ro.duckdb")
    rw = mgdb.connect(path)
    rw.execute("CREATE TABLE t AS SELECT i AS x FROM range(10) r(i)")
    rw.close()
    ro = mgdb.connect(path, read_only=True)
    mgdb.create_function(ro, "neg", lambda x: -x, ["BIGINT"], "BIGINT")
    assert ro.execute("SELECT sum(neg(x)) FROM t").fetchall() == [(-45,)]
    ro.close()


# ---- errors ----------------------------------------------------------------------

def test_a_raising_udf_fails_the_query_with_type_message_and_traceback(con):
    con.execute("CREATE TABLE t AS SELECT i AS x FROM range(10) r(i)")
    mgdb.create_function(con, "boom", funcs.boom, ["BIGINT"], "BIGINT")
    with pytest.raises(duckdb.Error) as exc:
        con.execute("SELECT boom(x) FROM t").fetchall()
    msg = str(exc.value)
    assert "boom" in msg and "ValueError" in msg and "seven is not allowed (7)" in msg
    assert "duckdb_funcs.py" in msg and "in boom" in msg, msg   # the traceback's line


@pytest.mark.parametrize("ret, fn, needle", [
    ("BIGINT", lambda x: "a string", "BIGINT"),
    ("TINYINT", lambda x: 300, "TINYINT"),
    ("UTINYINT", lambda x: -1, "UTINYINT"),
    ("VARCHAR", lambda x: "\udc80", "VARCHAR"),
    ("VARCHAR", lambda x: b"bytes", "VARCHAR"),
])
def test_a_result_that_does_not_fit_fails_the_query_naming_the_udf(con, ret, fn, needle):
    mgdb.create_function(con, "bad", fn, ["BIGINT"], ret)
    with pytest.raises(duckdb.Error) as exc:
        con.execute("SELECT bad(i) FROM range(3) r(i)").fetchall()
    msg = str(exc.value)
    assert "bad" in msg and needle in msg and "does not fit" in msg, msg


def test_return_null_also_covers_results_that_do_not_fit(con):
    mgdb.create_function(con, "small", lambda x: x * 100, ["BIGINT"], "TINYINT",
                         exception_handling="return_null")
    assert con.execute("SELECT small(i) FROM range(3) r(i) ORDER BY i").fetchall() == \
        [(0,), (100,), (None,)]


def test_a_function_that_cannot_cross_names_its_type_and_why(con):
    lock = threading.Lock()
    with pytest.raises(TypeError) as exc:
        mgdb.create_function(con, "locked", lambda x: lock.locked(), ["BIGINT"], "BOOLEAN")
    msg = str(exc.value)
    assert "locked" in msg and "cannot be sent" in msg
    assert "lock" in msg.lower(), msg


def test_an_unsupported_sql_type_is_named(con):
    with pytest.raises(ValueError, match=r"DATE is not supported"):
        mgdb.create_function(con, "d", lambda x: x, ["DATE"], "BIGINT")
    with pytest.raises(ValueError, match=r"HUGEINT is not supported"):
        mgdb.create_function(con, "d", lambda x: x, ["BIGINT"], "HUGEINT")
    with pytest.raises(ValueError, match=r"unknown SQL type 'NOSUCH'"):
        mgdb.create_function(con, "d", lambda x: x, ["NOSUCH"], "BIGINT")


def test_create_function_without_the_extension_says_how_to_get_it():
    plain = duckdb.connect()
    with pytest.raises(mgdb.ExtensionError, match=r"manygil.duckdb.connect\(\)"):
        mgdb.create_function(plain, "f", lambda x: x, ["BIGINT"], "BIGINT")
    plain.close()


def test_bad_arguments(con):
    with pytest.raises(TypeError, match="not callable"):
        mgdb.create_function(con, "f", 3, ["BIGINT"], "BIGINT")
    with pytest.raises(ValueError, match="identifier"):
        mgdb.create_function(con, "no such", len, ["BIGINT"], "BIGINT")
    with pytest.raises(ValueError, match="null_handling"):
        mgdb.create_function(con, "f", len, ["BIGINT"], "BIGINT", null_handling="sometimes")
    with pytest.raises(TypeError, match="list of types"):
        mgdb.create_function(con, "f", len, "BIGINT", "BIGINT")
    with pytest.raises(ValueError, match="more than 64 parameters"):
        mgdb.create_function(con, "f", max, ["BIGINT"] * 65, "BIGINT")
    mgdb.create_function(con, "f", abs, ["BIGINT"], "BIGINT")
    with pytest.raises(ValueError, match="already exists"):
        mgdb.create_function(con, "f", abs, ["BIGINT"], "BIGINT")
    assert con.execute("SELECT f(-3)").fetchall() == [(3,)]


def test_closing_and_exiting_with_udfs_registered_is_clean():
    script = (
        "import manygil.duckdb as mgdb\n"
        "from helpers import duckdb_funcs as funcs\n"
        "a = mgdb.connect(config={'threads': '4'})\n"
        "a.execute('SET enable_progress_bar = false')\n"
        "mgdb.create_function(a, 'b', funcs.busy, ['BIGINT'], 'BIGINT')\n"
        "a.execute('CREATE TABLE t AS SELECT i AS x FROM range(200000) r(i)')\n"
        "print(a.execute('SELECT count(b(x)) FROM t').fetchall()[0][0])\n"
        "a.close()\n"
        "b = mgdb.connect(config={'threads': '4'})\n"
        "b.execute('SET enable_progress_bar = false')\n"
        "mgdb.create_function(b, 'b', funcs.busy, ['BIGINT'], 'BIGINT')\n"
        "b.execute('CREATE TABLE t AS SELECT i AS x FROM range(200000) r(i)')\n"
        "print(b.execute('SELECT count(b(x)) FROM t').fetchall()[0][0])\n"
        "# b stays open: the process exits with DuckDB's threads and their interpreters alive\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, env=child_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["200000", "200000"]
    assert "Fatal" not in out.stderr and "Exception ignored" not in out.stderr, out.stderr


def test_ctrl_c_interrupts_the_query_and_the_running_udfs():
    # The UDF would spin for 60 s per row; Ctrl-C must end the query at once
    # (DuckDB's interrupt, and a KeyboardInterrupt in every running UDF).
    script = (
        "import os, signal, threading, time\n"
        "import duckdb, manygil.duckdb as mgdb\n"
        "from helpers import duckdb_funcs as funcs\n"
        "con = mgdb.connect(config={'threads': '2'})\n"
        "con.execute('SET enable_progress_bar = false')\n"
        "con.execute('CREATE TABLE t AS SELECT i AS x FROM range(300000) r(i)')\n"
        "mgdb.create_function(con, 'spin', funcs.spin, ['BIGINT'], 'BIGINT')\n"
        "threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()\n"
        "t0 = time.monotonic()\n"
        "seen = []\n"
        "try:\n"
        "    try:\n"
        "        con.execute('SELECT sum(spin(x)) FROM t').fetchall()\n"
        "    except (RuntimeError, duckdb.Error) as e:\n"
        "        seen.append(type(e).__name__)\n"
        "    time.sleep(0.5)   # a KeyboardInterrupt still pending lands here\n"
        "except KeyboardInterrupt:\n"
        "    seen.append('KeyboardInterrupt')\n"
        "print('stopped', '+'.join(seen), round(time.monotonic() - t0, 1))\n"
        "print(con.execute('SELECT 41 + 1').fetchall()[0][0])\n"
        "con.close()\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, env=child_env())
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert lines[0].startswith("stopped") and "KeyboardInterrupt" in lines[0], out.stdout
    assert float(lines[0].split()[-1]) < 20, out.stdout
    assert lines[1] == "42"


def test_a_udf_stuck_in_c_is_reported_by_the_watchdog(con):
    import manygil
    reports = []
    mgdb.create_function(con, "sl", funcs.sleep_in_c, ["BIGINT"], "BIGINT")
    with manygil.watchdog(warn_after=0.5, on_hang=reports.append):
        assert con.execute("SELECT sl(1)").fetchall() == [(1,)]
    assert reports, "no hang report"
    assert reports[0].kind == "call" and reports[0].seconds >= 0.5, reports[0]


@pytest.mark.timeout(180)
def test_the_main_jobs_duckdb_table(capsys):
    # The demo's DuckDB part: the same query with DuckDB's own UDF and with
    # manygil.duckdb's (the demo checks the two sums agree), one table.
    pytest.importorskip("numpy", reason="DuckDB's own create_function needs numpy")
    from manygil import _demo
    rows = _demo.duckdb_demo(300_000)
    out = capsys.readouterr().out
    assert [r[0] for r in rows] == ["DuckDB's own Python UDF", "manygil.duckdb UDF"], out
    assert "over 300,000 stored rows" in out and out.count("\n| ") == 2 + 1, out
