"""InterpreterPoolExecutor in child processes: main-script functions and
lambdas (multiprocessing-spawn style), and interpreter exit with live pools.

Each script runs with ``sys.executable`` and a 60 s timeout: a hang fails the
test with subprocess.TimeoutExpired instead of blocking the suite.
"""
import pytest

from helpers.proc import describe, run_script


def _assert_clean(proc, rc=0):
    assert proc.returncode == rc, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)
    assert "Fatal Python error" not in proc.stderr, describe(proc)


# --- main-script functions and lambdas ----------------------------------------

MAIN_SCRIPT = """
import manygil

OFFSET = 1000

def square(x):
    return x * x

def square_plus(x):
    return square(x) + OFFSET

class Box:
    def __init__(self, v):
        self.v = v

def unbox(b):
    return b.v * 2

triple = lambda x: x * 3

if __name__ == "__main__":
    with manygil.InterpreterPoolExecutor(2) as pool:
        print("submit", pool.submit(square, 7).result(60))
        print("lambda", pool.submit(lambda x: x + 1, 41).result(60))
        print("named-lambda", pool.submit(triple, 5).result(60))
        print("globals", pool.submit(square_plus, 3).result(60))
        print("class", pool.submit(unbox, Box(21)).result(60))
        print("map", list(pool.map(square, range(6))))
        print("map-lambda", list(pool.map(lambda x: -x, range(4))))
        k = 10
        print("closure", list(pool.map(lambda x: x + k, [1, 2])))
        print("manygil.map", list(manygil.map(square, [2, 3], workers=2)))
    print("done")
"""


def test_main_script_functions_and_lambdas(tmp_path):
    proc = run_script(tmp_path, MAIN_SCRIPT, timeout=60)
    _assert_clean(proc)
    assert proc.stderr == "", describe(proc)
    assert proc.stdout.splitlines() == [
        "submit 49",
        "lambda 42",
        "named-lambda 15",
        "globals 1009",
        "class 42",
        "map [0, 1, 4, 9, 16, 25]",
        "map-lambda [0, -1, -2, -3]",
        "closure [11, 12]",
        "manygil.map [4, 9]",
        "done",
    ], describe(proc)


def test_main_script_exception_class_rebuilt(tmp_path):
    proc = run_script(tmp_path, """
        import manygil

        class ScriptError(Exception):
            pass

        def fail(x):
            raise ScriptError(f"script-fail {x}")

        if __name__ == "__main__":
            with manygil.InterpreterPoolExecutor(1) as pool:
                try:
                    pool.submit(fail, 3).result(60)
                except ScriptError as exc:
                    print("caught", type(exc).__name__, exc)
                    print("cause-has-fn", "fail" in str(exc.__cause__))
                except Exception as exc:
                    print("wrong", type(exc).__name__, exc)
        """)
    _assert_clean(proc)
    assert proc.stdout.splitlines() == ["caught ScriptError script-fail 3",
                                        "cause-has-fn True"], describe(proc)


# --- interpreter exit with a live pool ----------------------------------------

def test_exit_with_live_pool_without_shutdown(tmp_path):
    proc = run_script(tmp_path, """
        import manygil
        from helpers import pool_funcs as pf

        if __name__ == "__main__":
            pool = manygil.InterpreterPoolExecutor(2)
            print("result", pool.submit(pf.inc, 41).result(60))
            futs = [pool.submit(pf.square, i) for i in range(100)]
            print("queued", len(futs))
            # no shutdown, no waiting
        """, timeout=60)
    _assert_clean(proc)
    assert proc.stderr == "", describe(proc)
    assert proc.stdout.splitlines() == ["result 42", "queued 100"], describe(proc)


def test_exit_finishes_queued_tasks(tmp_path):
    """Like concurrent.futures executors, tasks queued at exit still run."""
    proc = run_script(tmp_path, """
        import manygil
        from helpers import pool_funcs as pf

        if __name__ == "__main__":
            pool = manygil.InterpreterPoolExecutor(1)
            for i in range(5):
                pool.submit(pf.touch_then_sleep, f"done{i}", 0.1)
            print("exiting")
        """, timeout=60)
    _assert_clean(proc)
    assert proc.stdout.splitlines() == ["exiting"], describe(proc)
    assert sorted(p.name for p in tmp_path.glob("done*")) == [f"done{i}" for i in range(5)]


def test_exit_with_running_tasks_and_unused_pool(tmp_path):
    proc = run_script(tmp_path, """
        import manygil
        from helpers import pool_funcs as pf

        if __name__ == "__main__":
            busy = manygil.InterpreterPoolExecutor(2)
            idle = manygil.InterpreterPoolExecutor(2)
            futs = [busy.submit(pf.sleep_return, 0.3, i) for i in range(2)]
            print("started")
        """, timeout=60)
    _assert_clean(proc)
    assert proc.stdout.splitlines() == ["started"], describe(proc)


def test_exit_with_half_consumed_map(tmp_path):
    proc = run_script(tmp_path, """
        import manygil
        from helpers import pool_funcs as pf

        if __name__ == "__main__":
            pool = manygil.InterpreterPoolExecutor(2)
            it = pool.map(pf.inc, range(10**9))
            print("first", [next(it) for _ in range(5)])
        """, timeout=60)
    _assert_clean(proc)
    assert proc.stdout.splitlines() == ["first [1, 2, 3, 4, 5]"], describe(proc)


def test_exit_with_default_map_pool(tmp_path):
    proc = run_script(tmp_path, """
        import manygil
        from helpers import pool_funcs as pf

        if __name__ == "__main__":
            print(sum(manygil.map(pf.inc, range(1000))))
            print(list(manygil.map(pf.square, range(4), workers=2)))
        """, timeout=60)
    _assert_clean(proc)
    assert proc.stderr == "", describe(proc)
    assert proc.stdout.splitlines() == [str(sum(range(1, 1001))), "[0, 1, 4, 9]"], describe(proc)


def test_exit_with_broken_pool(tmp_path):
    proc = run_script(tmp_path, """
        import manygil
        from helpers import pool_funcs as pf

        if __name__ == "__main__":
            pool = manygil.InterpreterPoolExecutor(2, initializer=pf.init_fail)
            try:
                pool.submit(pf.inc, 1).result(60)
            except manygil.BrokenInterpreterPool:
                print("broken")
        """, timeout=60)
    # The one traceback is the initializer's, logged as the stdlib pools log it.
    head, sep, logged = proc.stderr.partition("Exception in initializer:\n")
    assert sep and head == "", describe(proc)
    assert logged.count("Traceback (most recent call last)") == 1, describe(proc)
    assert logged.rstrip().endswith("InitError: initializer failed"), describe(proc)
    assert "Fatal Python error" not in proc.stderr and "Exception ignored" not in proc.stderr
    proc.stderr = ""
    _assert_clean(proc)
    assert proc.stdout.splitlines() == ["broken"], describe(proc)


def test_sys_exit_with_live_pool(tmp_path):
    proc = run_script(tmp_path, """
        import sys
        import manygil
        from helpers import pool_funcs as pf

        if __name__ == "__main__":
            pool = manygil.InterpreterPoolExecutor(2)
            pool.submit(pf.sleep_return, 0.2)
            print("bye")
            sys.exit(3)
        """, timeout=60)
    _assert_clean(proc, rc=3)
    assert proc.stdout.splitlines() == ["bye"], describe(proc)


def test_uncaught_error_with_live_pool(tmp_path):
    proc = run_script(tmp_path, """
        import manygil
        from helpers import pool_funcs as pf

        if __name__ == "__main__":
            pool = manygil.InterpreterPoolExecutor(2)
            pool.submit(pf.sleep_return, 0.2)
            raise LookupError("top-level failure")
        """, timeout=60)
    assert proc.returncode == 1, describe(proc)
    assert "LookupError: top-level failure" in proc.stderr, describe(proc)
    assert proc.stderr.count("Traceback") == 1, describe(proc)
    assert "Fatal Python error" not in proc.stderr, describe(proc)


def test_exit_with_pool_made_in_a_thread(tmp_path):
    proc = run_script(tmp_path, """
        import threading
        import manygil
        from helpers import pool_funcs as pf

        holder = []

        def make():
            pool = manygil.InterpreterPoolExecutor(2)
            holder.append(pool)
            print("in-thread", pool.submit(pf.inc, 1).result(60))

        if __name__ == "__main__":
            t = threading.Thread(target=make)
            t.start()
            t.join()
            holder[0].submit(pf.sleep_return, 0.2)
            print("main-done")
        """, timeout=60)
    _assert_clean(proc)
    assert proc.stdout.splitlines() == ["in-thread 2", "main-done"], describe(proc)


@pytest.mark.timeout(120)
def test_repeated_exit_with_live_pools(tmp_path):
    """Exit with a busy pool, several times (shutdown races are intermittent)."""
    script = """
        import manygil
        from helpers import pool_funcs as pf

        if __name__ == "__main__":
            pool = manygil.InterpreterPoolExecutor(2)
            futs = [pool.submit(pf.square, i) for i in range(500)]
            print(futs[0].result(60))
        """
    for i in range(5):
        proc = run_script(tmp_path, script, name=f"s{i}.py", timeout=60)
        _assert_clean(proc)
        assert proc.stdout.splitlines() == ["0"], describe(proc)
