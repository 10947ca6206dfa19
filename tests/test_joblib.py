"""manygil.joblib: joblib's "manygil" backend runs calls in own-GIL
interpreters."""
import pytest

joblib = pytest.importorskip("joblib")

import manygil  # noqa: E402
import manygil.joblib  # noqa: E402,F401
from manygil import NotShareableError  # noqa: E402
from joblib import Parallel, delayed  # noqa: E402

from helpers import joblib_funcs as jf  # noqa: E402


@pytest.mark.timeout(60)
def test_backend_is_registered_and_runs_calls_in_interpreters():
    main = manygil.get_main()
    with joblib.parallel_config(backend="manygil", n_jobs=2):
        out = Parallel()(delayed(jf.where)(x) for x in range(40))
    assert [x for x, _ in out] == list(range(40))
    ids = {i for _, i in out}
    assert main not in ids and ids
    pool = manygil.joblib._pools[2]
    with joblib.parallel_config(backend="manygil", n_jobs=2):
        again = {i for _, i in Parallel()(delayed(jf.where)(x) for x in range(40))}
    assert manygil.joblib._pools[2] is pool and main not in again   # the pool is kept


@pytest.mark.timeout(60)
def test_n_jobs_minus_one_and_explicit_batch_sizes():
    with joblib.parallel_config(backend="manygil", n_jobs=-1):
        assert joblib.effective_n_jobs() == joblib.cpu_count()
        assert Parallel()(delayed(jf.square)(x) for x in range(100)) == [x * x for x in range(100)]
    with joblib.parallel_config(backend="manygil", n_jobs=2):
        assert Parallel(batch_size=7)(delayed(jf.square)(x) for x in range(50)) == \
            [x * x for x in range(50)]


@pytest.mark.timeout(120)
def test_auto_batching_grows_batches_for_tiny_tasks():
    sizes = []
    backend = manygil.joblib.ManygilBackend()
    real = backend.compute_batch_size
    backend.compute_batch_size = lambda: sizes.append(real()) or sizes[-1]
    with joblib.parallel_config(backend=backend, n_jobs=2):
        out = Parallel(batch_size="auto")(delayed(jf.square)(x) for x in range(20000))
    assert out == [x * x for x in range(20000)]
    assert max(sizes) > 1                   # joblib's auto-batching took effect


@pytest.mark.timeout(60)
def test_return_as_generator():
    with joblib.parallel_config(backend="manygil", n_jobs=2):
        gen = Parallel(return_as="generator")(delayed(jf.square)(x) for x in range(30))
        assert not isinstance(gen, list)
        assert list(gen) == [x * x for x in range(30)]
        unordered = Parallel(return_as="generator_unordered")(
            delayed(jf.square)(x) for x in range(30))
        assert sorted(unordered) == [x * x for x in range(30)]


@pytest.mark.timeout(60)
def test_exception_is_reraised_with_the_remote_traceback():
    with joblib.parallel_config(backend="manygil", n_jobs=2):
        with pytest.raises(ValueError, match="task 5 failed") as info:
            Parallel()(delayed(jf.fail_on)(x, 5) for x in range(20))
    cause = str(info.value.__cause__)
    assert "joblib_funcs.py" in cause and "fail_on" in cause and "Traceback" in cause


@pytest.mark.timeout(60)
def test_lambdas_and_closures_cross_by_value():
    k = 3
    with joblib.parallel_config(backend="manygil", n_jobs=2):
        assert Parallel()(delayed(lambda x: x * k)(x) for x in range(5)) == [0, 3, 6, 9, 12]


@pytest.mark.timeout(60)
def test_n_jobs_one_runs_in_the_caller():
    with joblib.parallel_config(backend="manygil", n_jobs=1):
        out = Parallel()(delayed(jf.where)(x) for x in range(3))
    assert {i for _, i in out} == {manygil.get_main()}


@pytest.mark.timeout(60)
def test_parallel_inside_a_task_fails_clearly():
    """joblib cannot be imported in an own-GIL interpreter (its loky imports
    faulthandler): a nested Parallel says so, and starts no pool."""
    with joblib.parallel_config(backend="manygil", n_jobs=2):
        with pytest.raises(NotShareableError, match="cannot call joblib") as info:
            Parallel()(delayed(jf.nested_parallel)(4) for _ in range(2))
    assert "nested_parallel" in str(info.value) and "faulthandler" in str(info.value)


@pytest.mark.timeout(60)
def test_function_whose_module_cannot_load_fails_clearly():
    pytest.importorskip("numpy")
    from helpers import joblib_np
    with joblib.parallel_config(backend="manygil", n_jobs=2):
        with pytest.raises(NotShareableError) as info:
            Parallel()(delayed(joblib_np.plus_one)(x) for x in range(4))
    text = str(info.value)
    assert "'helpers.joblib_np.plus_one' cannot be loaded in an own-GIL interpreter" in text
    assert "numpy._core._multiarray_umath" in text


@pytest.mark.timeout(60)
def test_array_arguments_are_refused_at_dispatch():
    np = pytest.importorskip("numpy")
    with joblib.parallel_config(backend="manygil", n_jobs=2):
        with pytest.raises(NotShareableError, match="does not support own-GIL interpreters"):
            Parallel()(delayed(jf.square)(np.arange(3)) for _ in range(4))
        # memoryview(arr) is the way that works
        out = Parallel()(delayed(sum)(memoryview(np.arange(4.0))) for _ in range(2))
    assert out == [6.0, 6.0]


@pytest.mark.timeout(120)
def test_bad_n_jobs():
    with pytest.raises(ValueError, match="n_jobs == 0"):
        with joblib.parallel_config(backend="manygil", n_jobs=0):
            Parallel()(delayed(jf.square)(1) for _ in range(2))


@pytest.mark.timeout(120)
def test_functions_of_a_script_that_imports_joblib(tmp_path):
    """The usual script imports joblib at its top, so workers cannot import
    it: its functions (and the helpers they call) cross by value, as
    cloudpickle sends them for loky."""
    from helpers.proc import describe, run_script
    proc = run_script(tmp_path, '''
        import joblib, manygil, manygil.joblib
        from joblib import Parallel, delayed

        def helper(n):
            return n * 10

        def task(n):
            return helper(n) + 1, manygil.get_current() != manygil.get_main()

        if __name__ == "__main__":
            with joblib.parallel_config(backend="manygil", n_jobs=2):
                out = Parallel()(delayed(task)(n) for n in range(6))
                gen = Parallel(return_as="generator")(delayed(lambda n: -n)(n) for n in range(3))
                print(out, list(gen))
        ''', timeout=100)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.strip() == str([(n * 10 + 1, True) for n in range(6)]) + " [0, -1, -2]"
