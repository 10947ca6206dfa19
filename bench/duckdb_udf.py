"""Python UDFs in DuckDB: DuckDB's own (native and arrow types) against
manygil.duckdb, and the SQL built-in where there is one, at threads = 1, 2, 8.

    .venv-3.13/bin/python bench/duckdb_udf.py [--rows N] [--quick]

A stored table of 4,000,000 rows (row groups of 122,880: 33 of them, so up to
33 threads scan in parallel) with a BIGINT and a VARCHAR column.  UDFs
(bench/duckdb_udf_funcs.py): identity (x), ~1 us/row and ~10 us/row of pure
Python on the BIGINT, and s.upper()[::-1] on the VARCHAR.  The query is
SELECT sum(f(x)) FROM t (sum(length(f(s))) for the string), over every row
for identity and the string UDF, over a quarter of the rows (x % 4 = 0) for
the 1 us UDF and a twentieth (x % 20 = 0) for the 10 us one; ns/row divides
the query's time by the rows the UDF saw.  Each cell is the best of 2 runs
(after a warm-up run that creates manygil's interpreters).

DuckDB's arrow UDF gets pyarrow arrays and applies the Python function per
value (pa.array([f(v) for v in x.to_pylist()])), as a user with a per-row
Python function would write it; it is left out when pyarrow is missing.

Last, the memory of one interpreter bound to a DuckDB thread: the process's
RSS grown by the first manygil query at threads=8 divided by the number of
DuckDB threads that ran the UDF (each got its interpreter then).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import duckdb  # noqa: E402

import duckdb_udf_funcs as funcs  # noqa: E402
import manygil.duckdb as mgdb  # noqa: E402

try:
    import pyarrow as pa
except ImportError:
    pa = None

THREADS = (1, 2, 8)

# name, function, column, SQL type, filter (every k-th row), SQL built-in or None
UDFS = [
    ("identity", funcs.identity, "x", "BIGINT", 1, "x"),
    ("1 us Python", funcs.work_1us, "x", "BIGINT", 4, None),
    ("10 us Python", funcs.work_10us, "x", "BIGINT", 20, None),
    ("s.upper()[::-1]", funcs.string_udf, "s", "VARCHAR", 1, "reverse(upper(s))"),
]


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def arrow_wrap(fn):
    def per_value(col):
        return pa.array([None if v is None else fn(v) for v in col.to_pylist()])
    return per_value


def query(expr, col, every):
    where = f" WHERE x % {every} = 0" if every > 1 else ""
    agg = f"sum(length({expr}))" if col == "s" else f"sum({expr})"
    return f"SELECT {agg} FROM t{where}"


def timed(con, sql, runs=2):
    con.execute(sql).fetchall()          # warm-up (manygil: creates the interpreters)
    best = None
    result = None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = con.execute(sql).fetchall()
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return best, result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=4_000_000)
    ap.add_argument("--quick", action="store_true", help="one run per cell (no best of 2)")
    args = ap.parse_args()
    runs = 1 if args.quick else 2

    con = mgdb.connect()
    con.execute(f"CREATE TABLE t AS SELECT i AS x, 'item-' || (i % 977) || '-abc' AS s "
                f"FROM range({args.rows}) r(i)")
    groups = con.execute("SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('t')").fetchall()[0][0]
    methods = ["native", "arrow", "manygil", "SQL"] if pa else ["native", "manygil", "SQL"]
    for i, (name, fn, col, typ, every, builtin) in enumerate(UDFS):
        con.create_function(f"nat{i}", fn, [typ], typ)
        if pa:
            con.create_function(f"arw{i}", arrow_wrap(fn), [typ], typ, type="arrow")
        mgdb.create_function(con, f"mg{i}", fn, [typ], typ)
    mgdb.create_function(con, "thr", funcs.thread_token, ["BIGINT"], "BIGINT")

    # Memory per interpreter: the first manygil query at threads=8.
    con.execute("SET threads = 8")
    before = rss()
    nthreads = con.execute("SELECT count(DISTINCT thr(x)) FROM t").fetchall()[0][0]
    per_interp = (rss() - before) / max(nthreads, 1)

    print(f"# DuckDB {duckdb.__version__}, CPython {platform.python_version()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
          f"{args.rows:,} rows in {groups} row groups", flush=True)
    table = {}
    for i, (name, fn, col, typ, every, builtin) in enumerate(UDFS):
        nrows = args.rows // every
        for threads in THREADS:
            con.execute(f"SET threads = {threads}")
            results = {}
            for m in methods:
                if m == "SQL" and builtin is None:
                    continue
                expr = {"native": f"nat{i}({col})", "arrow": f"arw{i}({col})",
                        "manygil": f"mg{i}({col})", "SQL": builtin}[m]
                dt, res = timed(con, query(expr, col, every), runs)
                results[m] = res
                table[(name, threads, m)] = dt / nrows * 1e9
                print(f"  {name:16} threads={threads} {m:8} {dt / nrows * 1e9:9.1f} ns/row",
                      file=sys.stderr, flush=True)
            ref = results["native"]
            for m, res in results.items():
                if res != ref:
                    raise SystemExit(f"{name} threads={threads}: {m} gave {res}, native {ref}")

    print()
    head = "| UDF | threads | " + " | ".join(f"{m} ns/row" for m in methods) + \
           " | manygil vs native | manygil vs its threads=1 |"
    print(head)
    print("|" + "---|" * (len(methods) + 4))
    for name, *_ in UDFS:
        for threads in THREADS:
            cells = []
            for m in methods:
                v = table.get((name, threads, m))
                cells.append("—" if v is None else f"{v:,.0f}")
            mg = table[(name, threads, "manygil")]
            vs_native = table[(name, threads, "native")] / mg
            vs_t1 = table[(name, 1, "manygil")] / mg
            print(f"| {name} | {threads} | " + " | ".join(cells) +
                  f" | {vs_native:.2f}x | {vs_t1:.2f}x |")
    print()
    print(f"memory per interpreter bound to a DuckDB thread: {per_interp / 2**20:.1f} MiB "
          f"(RSS grown by the first manygil query at threads=8 / {nthreads} threads that ran it)")

    def check(label, ok):
        print(f"{'PASS' if ok else 'MISS'}  {label}")

    for name in ("1 us Python", "10 us Python"):
        r = table[(name, 1, "manygil")] / table[(name, 2, "manygil")]
        check(f"{name}: manygil threads=2 vs threads=1 = {r:.2f}x (target >= 1.8x)", r >= 1.8)
    for name in ("1 us Python", "s.upper()[::-1]"):
        r = table[(name, 2, "native")] / table[(name, 2, "manygil")]
        check(f"{name}: manygil vs native at threads=2 = {r:.2f}x (target >= 1.8x)", r >= 1.8)
    r = table[("identity", 1, "manygil")] / table[("identity", 1, "native")]
    check(f"identity: manygil ns/row / native ns/row at threads=1 = {r:.2f} (target <= 0.5)", r <= 0.5)
    check(f"memory per interpreter {per_interp / 2**20:.1f} MiB (target <= 5 MiB)",
          per_interp <= 5 * 2**20)
    con.close()


if __name__ == "__main__":
    main()
