"""map(..., progress=True) on a pool and manygil.map: a progress bar --
tqdm when it imports (here a recording stand-in put in sys.modules), else a
plain bar on stderr -- whose total comes from len() when there is one and
which advances as results arrive in the workers, not as tasks are queued
nor as the caller consumes them.  tqdm itself is not installed for the
tests."""
import sys
import threading
import types

import pytest

import manygil
from helpers import pool_funcs as pf
from helpers.pool_util import make_pool, wait_until


class _FakeTqdm:
    """Records how it is driven; checks it is never used after close()."""
    made = []

    def __init__(self, iterable=None, total=None, desc=None, **kwargs):
        self.total = total
        self.desc = desc
        self.kwargs = kwargs
        self.updates = []
        self.closed = 0
        self.lock = threading.Lock()
        _FakeTqdm.made.append(self)

    def update(self, n=1):
        with self.lock:
            assert not self.closed, "update after close"
            self.updates.append(n)

    @property
    def n(self):
        with self.lock:
            return sum(self.updates)

    def close(self):
        self.closed += 1


@pytest.fixture
def fake_tqdm(monkeypatch):
    mod = types.ModuleType("tqdm")
    mod.tqdm = _FakeTqdm
    _FakeTqdm.made = []
    monkeypatch.setitem(sys.modules, "tqdm", mod)
    return _FakeTqdm


@pytest.fixture
def no_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)     # import tqdm -> ImportError


@pytest.fixture
def pool():
    with make_pool(2) as p:
        yield p


# --- with tqdm ----------------------------------------------------------------

@pytest.mark.timeout(60)
def test_tqdm_driven_with_total_from_len(pool, fake_tqdm):
    assert list(pool.map(pf.square, range(100), progress=True)) == [i * i for i in range(100)]
    (bar,) = fake_tqdm.made
    assert bar.total == 100
    assert bar.n == 100 and all(n > 0 for n in bar.updates)
    assert bar.closed == 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize("chunksize", [1, 7])
def test_tqdm_without_len_has_no_total(pool, fake_tqdm, chunksize):
    gen = (i for i in range(30))
    assert list(pool.map(pf.inc, gen, chunksize=chunksize, progress=True)) == list(range(1, 31))
    (bar,) = fake_tqdm.made
    assert bar.total is None and bar.n == 30 and bar.closed == 1


@pytest.mark.timeout(60)
def test_tqdm_total_of_several_iterables_is_the_shortest(pool, fake_tqdm):
    assert list(pool.map(pf.add, range(10), range(4), progress=True)) == [0, 2, 4, 6]
    (bar,) = fake_tqdm.made
    assert bar.total == 4 and bar.n == 4


@pytest.mark.timeout(60)
def test_bar_advances_as_results_arrive_not_as_queued_or_consumed(pool, fake_tqdm, tmp_path):
    gate = str(tmp_path / "go")
    it = pool.map(pf.wait_for_file, [gate] * 6, [30] * 6, chunksize=1, progress=True)
    (bar,) = fake_tqdm.made
    assert bar.total == 6
    # All six are queued (map starts the work at once), none has finished.
    assert wait_until(lambda: len(pool._core.running()) == 2, 30)
    assert bar.n == 0
    pf.touch(gate)
    # Nothing consumed yet: the bar follows the workers.
    assert wait_until(lambda: bar.n == 6, 30), bar.updates
    assert bar.closed == 0
    assert list(it) == [True] * 6
    assert bar.closed == 1


@pytest.mark.timeout(60)
def test_bar_closed_when_a_task_raises(pool, fake_tqdm):
    it = pool.map(pf.fail_on, range(20), [5] * 20, chunksize=1, progress=True)
    with pytest.raises(ValueError):
        list(it)
    (bar,) = fake_tqdm.made
    assert bar.closed == 1 and 6 <= bar.n <= 20


@pytest.mark.timeout(60)
def test_bar_closed_when_the_consumer_stops_early(pool, fake_tqdm):
    it = pool.map(pf.inc, range(1000), chunksize=1, progress=True)
    assert next(it) == 1
    it.close()
    (bar,) = fake_tqdm.made
    assert bar.closed == 1 and bar.n >= 1


@pytest.mark.timeout(60)
def test_manygil_map_progress(fake_tqdm):
    assert list(manygil.map(pf.square, list(range(25)), workers=2, progress=True)) == \
        [i * i for i in range(25)]
    (bar,) = fake_tqdm.made
    assert bar.total == 25 and bar.n == 25 and bar.closed == 1


@pytest.mark.timeout(60)
def test_no_progress_no_bar(pool, fake_tqdm, capsys):
    assert list(pool.map(pf.inc, range(10))) == list(range(1, 11))
    assert list(manygil.map(pf.inc, range(10), workers=2)) == list(range(1, 11))
    assert fake_tqdm.made == []
    assert capsys.readouterr().err == ""


# --- without tqdm: a plain bar on stderr ---------------------------------------

@pytest.mark.timeout(60)
def test_plain_bar_on_stderr(pool, no_tqdm, capsys):
    assert list(pool.map(pf.square, range(50), progress=True)) == [i * i for i in range(50)]
    err = capsys.readouterr().err
    assert err.startswith("\r") and err.endswith("\n")
    last = err.rstrip("\n").split("\r")[-1]
    assert "100%|" in last and "| 50/50 [" in last, err
    assert err.count("\n") == 1                          # drawn in place, one line
    first = err.split("\r")[1]
    assert "0/50" in first                               # drawn at once, before results


@pytest.mark.timeout(60)
def test_plain_bar_without_total(pool, no_tqdm, capsys):
    assert list(pool.map(pf.inc, iter(range(40)), progress=True)) == list(range(1, 41))
    err = capsys.readouterr().err
    last = err.rstrip("\n").split("\r")[-1]
    assert last.startswith("40 [") and "%" not in err, err


@pytest.mark.timeout(60)
def test_plain_bar_advances_before_consumption(pool, no_tqdm, capsys, tmp_path):
    gate = str(tmp_path / "go")
    it = pool.map(pf.wait_for_file, [gate] * 4, [30] * 4, chunksize=1, progress=True)
    pf.touch(gate)
    assert wait_until(lambda: "4/4" in capsys.readouterr().err, 30)
    assert list(it) == [True] * 4


@pytest.mark.timeout(60)
def test_manygil_map_plain_bar(no_tqdm, capsys):
    assert list(manygil.map(pf.inc, range(8), workers=2, progress=True)) == list(range(1, 9))
    assert "8/8" in capsys.readouterr().err


@pytest.mark.timeout(60)
def test_a_str_is_the_label(pool, fake_tqdm):
    assert list(pool.map(pf.inc, range(3), progress="squares")) == [1, 2, 3]
    (bar,) = fake_tqdm.made
    assert bar.desc == "squares" and bar.n == 3


@pytest.mark.timeout(60)
def test_plain_bar_label(pool, no_tqdm, capsys):
    assert list(pool.map(pf.inc, range(3), progress="squares")) == [1, 2, 3]
    assert capsys.readouterr().err.split("\r")[-1].startswith("squares: 100%|")


# --- the main job's demo: four runs, each with a bar, one table ----------------

@pytest.mark.timeout(180)
def test_demo_runs_four_ways_with_bars(no_tqdm, capsys):
    from manygil import _demo
    rows = _demo.main(limit=60_000, workers=2, duckdb=False)   # DuckDB: test_duckdb_udf.py
    out, err = capsys.readouterr()
    assert [r[0] for r in rows] == ["sequential (one thread)", "ThreadPoolExecutor(2)",
                                    "ProcessPoolExecutor(2)", "manygil InterpreterPoolExecutor(2)"]
    for label in ("sequential", "threads", "processes", "manygil"):
        assert f"{label}: 100%|" in err, err
    assert out.count("\n| ") == 4 + 1                    # header + one row per run
    assert "6,057 primes below 60,000" in out
    if rows[0][2] is not None:
        # The worker processes' memory is counted: each is a whole interpreter.
        assert rows[2][2] > rows[0][2] + 10 * 2**20, rows
