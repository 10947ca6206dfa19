"""The demonstration behind `python -m manygil demo` (scripts/demo.sh).

One CPU-bound pure-Python workload -- counting the primes below a bound by
trial division, split into chunks -- runs four ways: sequentially, on
``ThreadPoolExecutor``, on ``ProcessPoolExecutor`` and on manygil's
``InterpreterPoolExecutor``, each with a progress bar, and one table gives
time, speedup and peak memory for each: the numbers a user needs to choose.
Then, when duckdb is installed and manygil's DuckDB extension was built, one
query with a pure-Python UDF runs with DuckDB's own UDF and with
manygil.duckdb's, at DuckDB's default thread count, and a second table gives
both times.

Time: from creating the executor to its shutdown (start-up included).
Memory: the peak of the resident set (RSS) of this process plus the
descendant processes started during the run (the worker processes, and the
forkserver; one left from an earlier run is not counted), sampled every
20 ms while the run lasts; this process's own exact peak (VmHWM,
reset before each run through /proc/self/clear_refs) is taken too, so a
spike between samples is not missed for in-process runs.  RSS counts pages
that forked children share with their parent once per process.  Linux only
(elsewhere the column says n/a)."""
from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import Future

from . import _progress


def count_primes(lo: int, hi: int) -> int:
    """Number of primes p with lo <= p < hi (plain trial division)."""
    count = 0
    for n in range(max(lo, 2), hi):
        if n % 2 == 0:
            count += n == 2
            continue
        d = 3
        while d * d <= n:
            if n % d == 0:
                break
            d += 2
        else:
            count += 1
    return count


def chunks(limit: int, parts: int) -> list[tuple[int, int]]:
    step = -(-limit // parts)
    return [(lo, min(lo + step, limit)) for lo in range(0, limit, step)]


# ---- memory ---------------------------------------------------------------

def _status_kb(pid: int | str, field: str) -> int:
    """A ``kB`` field of /proc/PID/status (0 if the process is gone)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(field.encode() + b":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    """pid's child processes, theirs, and so on (/proc/PID/task/*/children)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    kids = [int(k) for k in f.read().split()]
            except (OSError, ValueError):
                continue
            out.extend(kids)
            todo.extend(kids)
    return out


class PeakMemory:
    """Peak RSS (bytes) of this process plus the descendants started
    during a ``with`` block, sampled every ``interval`` s, combined with
    this process's VmHWM; ``peak`` is None where /proc is missing."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.ok = os.path.exists(f"/proc/{os.getpid()}/task")
        self.peak: int | None = None
        self._max_kb = 0
        self._before: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        me = os.getpid()
        kids = [p for p in _descendants(me) if p not in self._before]
        kb = _status_kb(me, "VmRSS") + sum(_status_kb(p, "VmRSS") for p in kids)
        self._max_kb = max(self._max_kb, kb)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "PeakMemory":
        if self.ok:
            self._before = set(_descendants(os.getpid()))
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")                # reset VmHWM to the current RSS
            except OSError:
                pass                            # then VmHWM is the process's lifetime peak
            self._sample()
            self._thread = threading.Thread(target=self._loop, name="demo-memory", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._sample()
            hwm = _status_kb(os.getpid(), "VmHWM")
            self.peak = max(self._max_kb, hwm) * 1024


# ---- the four runs --------------------------------------------------------

def _on_executor(executor, work: list[tuple[int, int]], label: str) -> int:
    bar = _progress.make(len(work), label)
    try:
        futs: list[Future] = []
        for lo, hi in work:
            fut = executor.submit(count_primes, lo, hi)
            fut.add_done_callback(lambda f: bar.update(1))
            futs.append(fut)
        return sum(f.result() for f in futs)
    finally:
        bar.close()


def run_sequential(work: list[tuple[int, int]], workers: int) -> int:
    bar = _progress.make(len(work), "sequential")
    total = 0
    try:
        for lo, hi in work:
            total += count_primes(lo, hi)
            bar.update(1)
    finally:
        bar.close()
    return total


def run_threads(work: list[tuple[int, int]], workers: int) -> int:
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(workers) as ex:
        return _on_executor(ex, work, "threads")


def run_processes(work: list[tuple[int, int]], workers: int) -> int:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    # forkserver (3.14's default on Linux) on every version: forking this
    # process, which has threads, is what 3.12+ warns against.
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx) as ex:
        return _on_executor(ex, work, "processes")


def run_manygil(work: list[tuple[int, int]], workers: int) -> int:
    import manygil
    los, his = zip(*work)
    with manygil.InterpreterPoolExecutor(workers) as pool:
        return sum(pool.map(count_primes, los, his, chunksize=1, progress="manygil"))


RUNS = [
    ("sequential (one thread)", run_sequential),
    ("ThreadPoolExecutor", run_threads),
    ("ProcessPoolExecutor", run_processes),
    ("manygil InterpreterPoolExecutor", run_manygil),
]


def _mb(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:,.0f} MB"


# ---- DuckDB: its own Python UDF against manygil.duckdb's ---------------------

def udf_score(x: int) -> int:
    """The demo's UDF: ~1 us of pure Python per row."""
    h = x
    for _ in range(12):
        h = (h * 31 + 7) % 1_000_003
    return h


def duckdb_demo(rows: int = 2_000_000) -> list[tuple[str, float]] | None:
    """SELECT sum(score(x)) over a stored table of `rows` BIGINTs (row groups
    of 122,880 rows: DuckDB scans them in parallel), with DuckDB's own
    native-type UDF and with manygil.duckdb's; prints a table and returns its
    rows (name, seconds), or prints why not and returns None."""
    try:
        import duckdb
        import numpy  # noqa: F401 -- DuckDB's own create_function needs it
        from . import duckdb as mgdb
        con = mgdb.connect()
    except Exception as e:                  # not installed, or the extension not built
        print(f"\nDuckDB part skipped: {type(e).__name__}: {e}")
        return None
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    con.execute("SET enable_progress_bar = false")
    con.execute(f"CREATE TABLE t AS SELECT i AS x FROM range({rows}) r(i)")
    con.create_function("score_duckdb", udf_score, [duckdb.sqltypes.BIGINT],
                        duckdb.sqltypes.BIGINT)
    mgdb.create_function(con, "score_manygil", udf_score, ["BIGINT"], "BIGINT")
    con.execute("SELECT sum(score_manygil(x)) FROM t WHERE x < 300000").fetchone()  # warm
    out = []
    expected = None
    for name, fn in (("DuckDB's own Python UDF", "score_duckdb"),
                     ("manygil.duckdb UDF", "score_manygil")):
        print(f"duckdb: {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        got = con.execute(f"SELECT sum({fn}(x)) FROM t").fetchone()[0]
        out.append((name, time.perf_counter() - t0))
        if expected is None:
            expected = got
        elif got != expected:
            raise SystemExit(f"{name}: sum {got}, DuckDB's own UDF gave {expected}")
    con.close()
    print(f"\nDuckDB {duckdb.__version__}: SELECT sum(score(x)) over {rows:,} stored rows, "
          f"a ~1 us pure-Python UDF, threads={threads}\n")
    print("| UDF | time | ns/row | speedup |")
    print("|---|---:|---:|---:|")
    for name, elapsed in out:
        print(f"| {name} | {elapsed:.2f} s | {elapsed / rows * 1e9:,.0f} | "
              f"{out[0][1] / elapsed:.2f}x |")
    return out


def main(limit: int = 1_500_000, workers: int | None = None, duckdb: bool = True,
         duckdb_rows: int = 2_000_000) -> list[tuple[str, float, int | None]]:
    """Run the four ways, print the table; return its rows (name, seconds,
    peak bytes or None).  Then the DuckDB query (duckdb_demo) if `duckdb`."""
    cpus = os.cpu_count() or 1
    workers = workers or cpus
    work = chunks(limit, workers * 8)
    v = sys.version_info
    print(f"manygil demo: count primes below {limit:,} by trial division, {len(work)} chunks, "
          f"{workers} worker(s), CPython {v.major}.{v.minor}.{v.micro}, {cpus} CPU(s)", flush=True)
    if hasattr(os, "getloadavg"):
        # Other work on the machine skews every row (threads and processes alike).
        print(f"load average before the runs: {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    expected = None
    for name, run in RUNS:
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            got = run(work, workers)
            elapsed = time.perf_counter() - t0
        if expected is None:
            expected = got
        elif got != expected:
            raise SystemExit(f"{name}: {got:,} primes, sequential found {expected:,}")
        rows.append((name if run is run_sequential else f"{name}({workers})", elapsed, mem.peak))
    t_seq = rows[0][1]
    print(f"\n{expected:,} primes below {limit:,}; time from creating the executor to its "
          f"shutdown; peak RSS of this process + the child processes started during the run "
          f"(sampled every 20 ms)\n")
    print("| run | time | speedup | peak memory |")
    print("|---|---:|---:|---:|")
    for name, elapsed, peak in rows:
        print(f"| {name} | {elapsed:.2f} s | {t_seq / elapsed:.2f}x | {_mb(peak)} |")
    if duckdb:
        duckdb_demo(duckdb_rows)
    return rows
