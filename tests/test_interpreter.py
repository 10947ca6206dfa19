"""Interpreter lifecycle, exec/call, threads, isolation and parallelism."""
import sys
import threading
import time
import types

import pytest

import manygil
from helpers import remote
from helpers.timing import assert_parallel, calibrate_busy, max_gap_while, parallel_ratio


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def ids(interps):
    return {i.id for i in interps}


# --- creation, identity, listing -------------------------------------------

def test_create_returns_interpreter_with_new_int_id(interp, interp2):
    assert isinstance(interp, manygil.Interpreter)
    assert type(interp.id) is int
    assert interp.id != 0
    assert interp.id != interp2.id


def test_main_and_current_in_main():
    main = manygil.get_main()
    assert main.id == 0
    assert manygil.get_current().id == 0
    assert manygil.get_current() == main


def test_equality_and_hash_by_id(interp, interp2):
    again = [i for i in manygil.list_all() if i.id == interp.id]
    assert len(again) == 1
    assert again[0] == interp
    assert hash(again[0]) == hash(interp)
    assert interp != interp2
    assert interp != manygil.get_main()
    assert len({interp, again[0], interp2}) == 2


def test_list_all_includes_main_and_open_interpreters(interp):
    other = manygil.create()
    try:
        listed = manygil.list_all()
        assert all(isinstance(i, manygil.Interpreter) for i in listed)
        assert {0, interp.id, other.id} <= ids(listed)
    finally:
        other.close()
    listed = ids(manygil.list_all())
    assert other.id not in listed
    assert {0, interp.id} <= listed


# --- exec / call / prepare_main ---------------------------------------------

def test_exec_runs_in_interpreter_main_namespace(interp):
    interp.exec("x = 40 + 2")
    assert interp.call(remote.get_main, "x") == 42
    interp.exec("def twice(v):\n    return 2 * v\ny = twice(x)")
    assert interp.call(remote.get_main, "y") == 84
    assert interp.call(remote.get_main, "__name__") == "__main__"


def test_exec_returns_none(interp):
    assert interp.exec("1 + 1") is None


def test_call_passes_args_and_kwargs(interp):
    assert interp.call(remote.pack, 1, "two", three=3) == ((1, "two"), {"three": 3})
    assert interp.call(remote.pack) == ((), {})


def test_call_fn_parameter_is_positional_only(interp):
    """``call(fn, /, *args, **kwargs)``: a keyword named ``fn`` goes to the callee."""
    assert interp.call(remote.pack, fn=5) == ((), {"fn": 5})


def test_call_returns_a_copy(interp):
    value = [1, [2, 3], {"k": [4]}]
    result = interp.call(remote.identity, value)
    assert result == value
    assert result is not value
    assert result[1] is not value[1]


def test_call_arguments_are_copies(interp):
    """Mutating an argument inside the interpreter does not touch main's object."""
    value = [1, 2]
    assert interp.call(remote.append_and_return, value, 3) == [1, 2, 3]
    assert value == [1, 2]
    interp.prepare_main(v=value)
    interp.exec("v.append(99)")
    assert interp.call(remote.get_main, "v") == [1, 2, 99]
    assert value == [1, 2]


def test_prepare_main_binds_copies(interp):
    interp.prepare_main({"x": 1, "name": "héllo"}, y=2)
    interp.exec("z = x + y\nupper = name.upper()")
    assert interp.call(remote.get_main, "z") == 3
    assert interp.call(remote.get_main, "upper") == "HÉLLO"


def test_prepare_main_without_arguments_is_value_error(interp):
    # As concurrent.interpreters: nothing to bind is a mistake.
    for args in ((), (None,), ({},)):
        with pytest.raises(ValueError):
            interp.prepare_main(*args)
    interp.exec("ok = True")
    assert interp.call(remote.get_main, "ok") is True


def test_sys_path_copied_from_main_at_create(tmp_path, monkeypatch):
    """A module in a directory added to main's sys.path before create() imports there."""
    (tmp_path / "mg_tmp_module_ab12.py").write_text("VALUE = 123\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with manygil.create() as it:
        it.exec("import mg_tmp_module_ab12\nv = mg_tmp_module_ab12.VALUE")
        assert it.call(remote.get_main, "v") == 123


# --- isolation --------------------------------------------------------------

def test_globals_are_isolated_between_interpreters(interp, interp2):
    interp.exec("only_in_first = 1")
    assert interp.call(remote.has_main, "only_in_first") is True
    assert interp2.call(remote.has_main, "only_in_first") is False
    assert not hasattr(sys.modules["__main__"], "only_in_first")


def test_sys_modules_are_isolated(interp, monkeypatch):
    marker = "_manygil_test_marker_module"
    monkeypatch.setitem(sys.modules, marker, types.ModuleType(marker))
    assert interp.call(remote.has_module, marker) is False
    interp.exec("import sys, types\nsys.modules['_only_in_sub'] = types.ModuleType('x')")
    assert interp.call(remote.has_module, "_only_in_sub") is True
    assert "_only_in_sub" not in sys.modules


# --- close, context manager, closed interpreters ---------------------------

def test_close_twice_is_harmless():
    it = manygil.create()
    it.close()
    it.close()


def test_closed_interpreter_raises_not_found():
    it = manygil.create()
    it.close()
    with pytest.raises(manygil.InterpreterNotFoundError):
        it.exec("x = 1")
    with pytest.raises(manygil.InterpreterNotFoundError):
        it.call(remote.identity, 1)
    with pytest.raises(manygil.InterpreterNotFoundError):
        it.prepare_main(x=1)
    with pytest.raises(manygil.InterpreterNotFoundError):
        it.is_running()
    assert it.id not in ids(manygil.list_all())


def test_context_manager_closes():
    with manygil.create() as it:
        assert isinstance(it, manygil.Interpreter)
        it.exec("x = 1")
        assert it.id in ids(manygil.list_all())
    assert it.id not in ids(manygil.list_all())
    with pytest.raises(manygil.InterpreterNotFoundError):
        it.exec("x = 2")


def test_context_manager_closes_on_exception():
    with pytest.raises(KeyError):
        with manygil.create() as it:
            raise KeyError("boom")
    assert it.id not in ids(manygil.list_all())


# --- running state, threads -------------------------------------------------

def test_is_running_reflects_activity(interp):
    assert interp.is_running() is False
    t = interp.call_in_thread(remote.sleep, 0.5)
    try:
        assert wait_until(interp.is_running), "is_running() never became True"
    finally:
        t.join()
    assert interp.is_running() is False


def test_close_while_running_raises_and_interpreter_stays_usable(interp):
    """Closing an interpreter that another thread is running code in fails
    with InterpreterError (not InterpreterNotFoundError); nothing is torn down."""
    t = interp.call_in_thread(remote.sleep, 1.0)
    try:
        assert wait_until(interp.is_running)
        with pytest.raises(manygil.InterpreterError) as excinfo:
            interp.close()
        assert not isinstance(excinfo.value, manygil.InterpreterNotFoundError)
        message = str(excinfo.value).lower()
        assert any(word in message for word in ("running", "busy", "in use")), message
    finally:
        t.join()
    interp.exec("after = 'still alive'")
    assert interp.call(remote.get_main, "after") == "still alive"
    assert interp.id in ids(manygil.list_all())


def test_call_in_thread_returns_started_thread(interp):
    t = interp.call_in_thread(remote.sleep_then_set, 0.05, "answer", 42)
    assert isinstance(t, threading.Thread)
    # Already started: a Thread that was never started raises on join().
    t.join(timeout=30)
    assert not t.is_alive()
    assert interp.call(remote.get_main, "answer") == 42


def test_call_in_thread_passes_kwargs(interp):
    t = interp.call_in_thread(remote.set_main, name="kw", value=[1, 2])
    t.join(timeout=30)
    assert interp.call(remote.get_main, "kw") == [1, 2]


def test_exec_and_call_from_other_threads(interp):
    """Threads other than the one that created the interpreter can use it
    (one after another here; concurrent use is in test_resources.py)."""
    results = {}

    def worker(i):
        interp.exec(f"v{i} = {i} * 10")
        results[i] = interp.call(remote.get_main, f"v{i}")

    for i in range(4):
        t = threading.Thread(target=worker, args=(i,))
        t.start()
        t.join()
    assert results == {i: i * 10 for i in range(4)}


# --- parallelism / GIL release ---------------------------------------------

def test_call_releases_callers_gil(interp):
    """While a call runs CPU-bound code in the subinterpreter, other threads of
    the main interpreter keep running (the caller's GIL is released)."""
    n = calibrate_busy(0.6)
    interp.call(remote.busy, 1000)  # warm up
    gap, iterations, duration = max_gap_while(lambda: interp.call(remote.busy, n))
    assert iterations > 1000
    assert gap < duration / 2, f"main thread stalled {gap:.3f}s of {duration:.3f}s"


@pytest.mark.timeout(120)
def test_two_interpreters_run_in_parallel(interp, interp2, two_cores):
    """Two threads, each driving its own interpreter with the same CPU-bound
    loop, take about as long as one (own GIL per interpreter)."""
    n = calibrate_busy(0.3)
    def measure():
        return parallel_ratio(lambda: interp.call(remote.busy, n),
                              lambda: interp2.call(remote.busy, n))
    best, samples = measure()
    assert_parallel(best, samples, n, retry=measure)


@pytest.mark.timeout(120)
def test_two_interpreters_exec_in_parallel(interp, interp2, two_cores):
    n = calibrate_busy(0.3)
    code = f"t = 0\nfor i in range({n}):\n    t += i\n"
    def measure():
        return parallel_ratio(lambda: interp.exec(code), lambda: interp2.exec(code))
    best, samples = measure()
    assert_parallel(best, samples, n, retry=measure)
