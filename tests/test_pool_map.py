"""InterpreterPoolExecutor.map and manygil.map: order, laziness, chunks,
timeouts, exceptions, bounded memory.

Functions that run in workers come from helpers.pool_funcs.
"""
import concurrent.futures as cf
import itertools
import os

import pytest

import manygil
from helpers import pool_funcs as pf
from helpers.pool_util import make_pool, rss_bytes


@pytest.fixture
def pool():
    with make_pool(2) as p:
        yield p


class CountingIter:
    """An iterator over range(n) that records how many items were taken."""

    def __init__(self, n):
        self.it = iter(range(n))
        self.taken = 0

    def __iter__(self):
        return self

    def __next__(self):
        x = next(self.it)
        self.taken += 1
        return x


# --- basics -------------------------------------------------------------------

def test_map_results_in_order(pool):
    assert list(pool.map(pf.square, range(100))) == [i * i for i in range(100)]


def test_map_returns_iterator(pool):
    it = pool.map(pf.inc, [1, 2, 3])
    assert iter(it) is it
    assert next(it) == 2
    assert list(it) == [3, 4]


def test_map_order_kept_with_uneven_durations(pool):
    delays = [0.2, 0.0, 0.1, 0.0, 0.15, 0.0]
    out = list(pool.map(pf.sleep_return, delays, range(len(delays)), chunksize=1))
    assert out == list(range(len(delays)))


def test_map_empty_iterable(pool):
    assert list(pool.map(pf.inc, [])) == []
    assert list(pool.map(pf.inc, iter([]))) == []
    assert list(pool.map(pf.add, [], [1, 2])) == []


def test_map_multiple_iterables_stops_at_shortest(pool):
    assert list(pool.map(pf.add, range(10), range(100, 105))) == [100, 102, 104, 106, 108]
    assert list(pool.map(pf.add3, [1, 2, 3], (10, 20), iter([100, 200, 300]))) == [111, 222]


def test_map_multiple_generators_stops_at_shortest(pool):
    a = (i for i in range(1000))
    b = (i * 10 for i in range(7))
    assert list(pool.map(pf.add, a, b)) == [i + i * 10 for i in range(7)]


def test_map_multiple_iterables_with_infinite_one(pool):
    assert list(pool.map(pf.add, itertools.count(), [10, 20, 30])) == [10, 21, 32]


def test_map_with_no_iterable_yields_nothing(pool):
    # As concurrent.futures' Executor.map: zip() of nothing.
    assert list(pool.map(pf.inc)) == []


@pytest.mark.parametrize("chunksize", [1, 2, 3, 7, 64, 1000, 10_000])
def test_map_with_chunksize(pool, chunksize):
    n = 503
    assert list(pool.map(pf.square, range(n), chunksize=chunksize)) == [i * i for i in range(n)]
    gen = (i for i in range(n))
    assert list(pool.map(pf.inc, gen, chunksize=chunksize)) == list(range(1, n + 1))


@pytest.mark.parametrize("bad", [0, -1])
def test_map_bad_chunksize(pool, bad):
    with pytest.raises(ValueError):
        pool.map(pf.inc, range(3), chunksize=bad)


def test_map_with_lambda(pool):
    assert list(pool.map(lambda x: x * 3, range(20))) == [x * 3 for x in range(20)]


def test_map_with_builtin(pool):
    words = ["a", "bb", "ccc"] * 10
    assert list(pool.map(len, words)) == [len(w) for w in words]


def test_map_with_buffersize(pool):
    out = list(pool.map(pf.inc, range(1000), buffersize=1, chunksize=3))
    assert out == list(range(1, 1001))


@pytest.mark.timeout(300)
def test_map_100k_tiny_tasks_all_checked():
    n = 100_000
    with make_pool(2) as pool:
        results = list(pool.map(pf.inc, range(n), timeout=240))
    assert len(results) == n
    bad = [(i, r) for i, r in enumerate(results) if r != i + 1]
    assert not bad, bad[:10]


@pytest.mark.timeout(300)
def test_map_100k_from_generator_all_checked():
    n = 100_000
    with make_pool(2) as pool:
        results = list(pool.map(pf.square, (i for i in range(n)), timeout=240))
    assert results == [i * i for i in range(n)]


# --- exceptions ---------------------------------------------------------------

@pytest.mark.parametrize("chunksize", [None, 1, 4, 100])
def test_map_exception_raised_at_its_item(pool, chunksize):
    bad = 37
    it = pool.map(pf.fail_on, range(100), itertools.repeat(bad), chunksize=chunksize)
    got = []
    with pytest.raises(ValueError, match=f"bad item {bad}") as ei:
        for value in it:
            got.append(value)
    assert got == [2 * i for i in range(bad)]
    assert "fail_on" in str(ei.value.__cause__)


def test_map_exception_in_first_item(pool):
    it = pool.map(pf.fail_on, range(10), [0] * 10)
    with pytest.raises(ValueError):
        next(it)


def test_map_exception_in_last_item(pool):
    got = []
    with pytest.raises(ValueError):
        for v in pool.map(pf.fail_on, range(20), [19] * 20, chunksize=6):
            got.append(v)
    assert got == [2 * i for i in range(19)]


def test_map_custom_exception_rebuilt(pool):
    it = pool.map(pf.raise_pool_error, ["m"], [5])
    with pytest.raises(pf.PoolError) as ei:
        next(it)
    assert ei.value.code == 5


def test_pool_usable_after_map_exception(pool):
    with pytest.raises(ValueError):
        list(pool.map(pf.fail_on, range(50), [3] * 50))
    assert list(pool.map(pf.inc, range(50))) == list(range(1, 51))


def test_map_input_iterator_error_propagates(pool):
    def src():
        for i in range(10):
            yield i
        raise RuntimeError("source broke")

    got = []
    with pytest.raises(RuntimeError, match="source broke"):
        for v in pool.map(pf.inc, src()):
            got.append(v)
    assert got == list(range(1, len(got) + 1))
    assert list(pool.map(pf.inc, range(5))) == [1, 2, 3, 4, 5]


def test_map_unshareable_function_is_not_shareable_error(pool):
    import threading
    lock = threading.Lock()
    with pytest.raises(manygil.NotShareableError):
        list(pool.map(lambda x: (lock, x), [1, 2]))


def test_map_unshareable_item(pool):
    import threading
    with pytest.raises(manygil.NotShareableError):
        list(pool.map(pf.identity, [1, threading.Lock(), 3]))
    assert list(pool.map(pf.inc, [1])) == [2]


# --- timeout ------------------------------------------------------------------

def test_map_timeout_on_slow_task(pool):
    it = pool.map(pf.sleep_return, [3], ["slow"], timeout=0.2)
    with pytest.raises(cf.TimeoutError):
        next(it)


def test_map_timeout_after_fast_results(pool):
    it = pool.map(pf.sleep_return, [0, 0, 3], [1, 2, 3], timeout=1.0, chunksize=1)
    got = []
    with pytest.raises(cf.TimeoutError):
        for v in it:
            got.append(v)
    assert got == [1, 2]


def test_map_generous_timeout_does_not_fire(pool):
    assert list(pool.map(pf.inc, range(200), timeout=120)) == list(range(1, 201))


# --- laziness and memory ------------------------------------------------------

def test_map_is_lazy_over_its_input(pool):
    src = CountingIter(10**9)
    it = pool.map(pf.inc, src)
    assert [next(it) for _ in range(10)] == list(range(1, 11))
    # Window: a few chunks per worker, chunks at most ~1024 items.
    assert src.taken < 100_000, src.taken
    it.close()


def test_map_lazy_with_small_buffer(pool):
    src = CountingIter(10**9)
    it = pool.map(pf.inc, src, chunksize=1, buffersize=2)
    assert [next(it) for _ in range(5)] == [1, 2, 3, 4, 5]
    # 5 consumed, at most buffersize chunks of 1 ahead (+1 for the probe).
    assert src.taken <= 5 + 2 + 1, src.taken
    it.close()


def test_map_abandoned_iterator_leaves_pool_usable(pool):
    it = pool.map(pf.sleep_return, [0.05] * 200, range(200), chunksize=1)
    assert next(it) == 0
    it.close()
    del it
    assert list(pool.map(pf.inc, range(10))) == list(range(1, 11))


@pytest.mark.timeout(400)
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc (Linux)")
@pytest.mark.rss_bound
def test_map_ten_million_items_bounded_memory():
    """10M items from an endless generator: the sum is right and RSS grows
    by less than 100 MiB (the whole input/output would be ~GBs)."""
    n = 10_000_000
    with make_pool(2) as pool:
        assert list(pool.map(pf.inc, range(1000))) == list(range(1, 1001))  # warm-up
        before = rss_bytes()
        peak = [before]

        def src():
            for i, x in enumerate(itertools.count()):
                if i % 200_000 == 0:
                    peak[0] = max(peak[0], rss_bytes())
                yield x

        total = sum(pool.map(pf.inc, itertools.islice(src(), n), timeout=360))
        peak[0] = max(peak[0], rss_bytes())
    assert total == n * (n - 1) // 2 + n
    growth = peak[0] - before
    assert growth < 100 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB"


# --- manygil.map --------------------------------------------------------------

def test_module_map_function():
    assert list(manygil.map(pf.square, range(50), workers=2)) == [i * i for i in range(50)]
    assert list(manygil.map(pf.inc, iter(range(10)), workers=2, chunksize=3)) == list(range(1, 11))


def test_module_map_default_workers():
    assert list(manygil.map(pf.inc, range(5))) == [1, 2, 3, 4, 5]


def test_module_map_exception_at_its_item():
    got = []
    with pytest.raises(ZeroDivisionError):
        for v in manygil.map(lambda x: 10 // (x - 4), range(10), workers=2):
            got.append(v)
    assert got == [10 // (x - 4) for x in range(4)]


def test_module_map_empty():
    assert list(manygil.map(pf.inc, [], workers=2)) == []
