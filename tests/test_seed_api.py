"""The low-level functional API: ``manygil.interpreters``."""
import pytest

import manygil
from manygil import interpreters
from helpers.timing import assert_parallel, calibrate_busy, max_gap_while, parallel_ratio


@pytest.fixture
def iid():
    i = interpreters.create()
    try:
        yield i
    finally:
        try:
            interpreters.destroy(i)
        except manygil.InterpreterNotFoundError:
            pass


def busy_source(n):
    return f"t = 0\nfor i in range({n}):\n    t += i\n"


def test_main_and_current():
    assert interpreters.get_main() == 0
    assert interpreters.get_current() == 0


def test_create_list_destroy():
    a = interpreters.create()
    b = interpreters.create()
    assert type(a) is int and type(b) is int
    assert a != b and 0 not in (a, b)
    listed = interpreters.list_all()
    assert all(type(i) is int for i in listed)
    assert {0, a, b} <= set(listed)
    interpreters.destroy(a)
    assert a not in interpreters.list_all()
    assert b in interpreters.list_all()
    interpreters.destroy(b)
    assert b not in interpreters.list_all()


def test_run_string_executes(iid, tmp_path):
    """The result is written to a file, independent of the object API."""
    out = tmp_path / "out.txt"
    interpreters.run_string(iid, "x = 6 * 7")
    interpreters.run_string(iid, f"open({str(out)!r}, 'w').write(str(x))")
    assert out.read_text() == "42"


def test_get_current_inside(iid, tmp_path):
    out = tmp_path / "cur.txt"
    interpreters.run_string(iid, (
        "from manygil import interpreters as mi\n"
        f"open({str(out)!r}, 'w').write(f'{{mi.get_current()}} {{mi.get_main()}}')\n"
    ))
    assert out.read_text() == f"{iid} 0"


def test_run_string_error_is_execution_failed(iid):
    with pytest.raises(manygil.ExecutionFailed) as excinfo:
        interpreters.run_string(iid, "raise LookupError('nope')")
    assert excinfo.value.excinfo.type.__name__ == "LookupError"
    assert excinfo.value.excinfo.msg == "nope"
    interpreters.run_string(iid, "still_ok = 1")


def test_run_string_rejects_non_str(iid):
    with pytest.raises(TypeError):
        interpreters.run_string(iid, 123)


def test_destroy_unknown_id_raises_not_found():
    with pytest.raises(manygil.InterpreterNotFoundError):
        interpreters.destroy(10**6)


def test_destroy_wrong_type_raises_type_error():
    with pytest.raises(TypeError):
        interpreters.destroy("x")


def test_destroy_main_is_refused():
    with pytest.raises(manygil.InterpreterError) as excinfo:
        interpreters.destroy(0)
    assert not isinstance(excinfo.value, manygil.InterpreterNotFoundError)
    assert 0 in interpreters.list_all()
    assert interpreters.get_main() == 0


def test_destroy_twice():
    """The second destroy either does nothing or says the id is unknown."""
    i = interpreters.create()
    interpreters.destroy(i)
    try:
        interpreters.destroy(i)
    except manygil.InterpreterNotFoundError:
        pass
    assert i not in interpreters.list_all()


def test_run_string_on_destroyed_raises_not_found():
    i = interpreters.create()
    interpreters.destroy(i)
    with pytest.raises(manygil.InterpreterNotFoundError):
        interpreters.run_string(i, "x = 1")


def test_run_string_unknown_id_raises_not_found():
    with pytest.raises(manygil.InterpreterNotFoundError):
        interpreters.run_string(10**6, "x = 1")


def test_run_string_blocks_only_calling_thread(iid):
    """While run_string runs a CPU-bound loop, another main-interpreter thread
    keeps making progress (run_string releases the caller's GIL)."""
    n = calibrate_busy(0.6)
    interpreters.run_string(iid, busy_source(1000))  # warm up
    gap, iterations, duration = max_gap_while(
        lambda: interpreters.run_string(iid, busy_source(n)))
    assert iterations > 1000
    assert gap < duration / 2, f"main thread stalled {gap:.3f}s of {duration:.3f}s"


@pytest.mark.timeout(120)
def test_run_string_parallel(two_cores):
    n = calibrate_busy(0.3)
    a = interpreters.create()
    b = interpreters.create()
    code = busy_source(n)

    def measure():
        return parallel_ratio(lambda: interpreters.run_string(a, code),
                              lambda: interpreters.run_string(b, code))
    try:
        best, samples = measure()
        assert_parallel(best, samples, n, retry=measure)
    finally:
        interpreters.destroy(a)
        interpreters.destroy(b)
