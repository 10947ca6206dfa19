"""manygil.dask: Dask workers that run their tasks in own-GIL interpreters.

Real Dask: clusters of worker processes on loopback TCP, started and shut
down by the tests (nothing is left running: see the last test)."""
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("distributed", reason="dask/distributed do not install for this Python build")
# manygil.dask is Python over the pool: the release jobs (3.12-3.15) test it.  On the
# debug and sanitizer builds its clusters of worker processes take minutes of a CI run
# bounded in time, for no C of its own to check.
pytestmark = pytest.mark.skipif(
    hasattr(sys, "gettotalrefcount") or bool(os.environ.get("MANYGIL_SANITIZER")),
    reason="manygil.dask is tested on the release builds (no C of its own; its "
           "clusters take minutes on debug and sanitizer builds)")

import dask  # noqa: E402
import dask.bag as db  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

import manygil  # noqa: E402
import manygil.dask  # noqa: E402
from helpers import dask_funcs as df  # noqa: E402
from helpers.proc import TIMEOUT_SCALE, child_env, run_script  # noqa: E402

_THREADS_BEFORE = {t.ident for t in threading.enumerate()}


def _cluster(**kw):
    kw.setdefault("n_workers", 1)
    kw.setdefault("threads_per_worker", 2)
    return LocalCluster(processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                        silence_logs=logging.INFO, **kw)


@pytest.fixture(scope="module")
def client():
    with _cluster(preload=["manygil.dask"]) as cluster, Client(cluster) as c:
        yield c


def _worker_stats(client):
    (stats,) = manygil.dask.stats(client).values()
    assert stats["manygil"]
    return stats


def _logs(client) -> str:
    (records,) = client.get_worker_logs().values()
    return "\n".join(msg for _level, msg in records)


@pytest.mark.timeout(120)
def test_graph_of_cpu_bound_tasks_with_dependencies(client):
    """64 tasks: 32 leaves, then a reduction tree; every leaf ran in an
    interpreter, the results are right, and the decision was logged once."""
    leaves = [dask.delayed(df.spin_where)(20_000 + i) for i in range(32)]
    layer = leaves
    while len(layer) > 1:
        layer = [dask.delayed(df.combine)(a, b) for a, b in zip(layer[::2], layer[1::2])]
    results = dask.compute(leaves, layer[0])
    assert [r for r, _ in results[0]] == [df.spin(20_000 + i) for i in range(32)]
    assert all(where for _, where in results[0])
    expect = [df.spin(20_000 + i) for i in range(32)]
    while len(expect) > 1:
        expect = [df.combine(a, b) for a, b in zip(expect[::2], expect[1::2])]
    assert results[1] == expect[0]
    stats = _worker_stats(client)
    assert stats["interpreters"] == 2
    assert stats["functions"]["helpers.dask_funcs.spin_where"]["where"] == "interpreters"
    assert stats["functions"]["helpers.dask_funcs.combine"]["where"] == "interpreters"
    assert _logs(client).count("helpers.dask_funcs.spin_where runs in interpreters") == 1
    reprs = client.run(lambda dask_worker: repr(dask_worker.executors["default"]))
    assert "InterpreterExecutor auto: 2 interpreters" in next(iter(reprs.values()))


@pytest.mark.timeout(120)
def test_map_over_ten_thousand_tiny_tasks(client):
    before = _worker_stats(client)["tasks"]["interpreters"]
    futures = client.map(df.inc, range(10_000))
    assert sum(client.gather(futures)) == sum(range(1, 10_001))
    del futures
    assert _worker_stats(client)["tasks"]["interpreters"] - before >= 10_000


@pytest.mark.timeout(120)
def test_bag_pipeline(client):
    bag = db.from_sequence(range(2_000), npartitions=8)
    out = bag.map(lambda x: x * 3).filter(lambda x: x % 2 == 0).map(df.inc).fold(
        lambda a, b: a + b, initial=0).compute()
    assert out == sum(x * 3 + 1 for x in range(2_000) if (x * 3) % 2 == 0)
    # dask.bag's tasks call dask's own functions: they import dask there,
    # which CPython 3.12 refuses (its _ctypes cannot load in subinterpreters).
    verdict = _worker_stats(client)["functions"]["dask._task_spec._execute_subgraph"]
    if sys.version_info >= (3, 13):
        assert verdict["where"] == "interpreters", verdict
    else:
        assert verdict["where"] == "threads", verdict
        assert verdict["why"].startswith("an import refused to load: ImportError: module "), verdict


@pytest.mark.timeout(60)
def test_nested_tasks_and_containers_in_arguments(client):
    """Dask's task spec: tasks and containers nested in a task's arguments
    are evaluated in the interpreter as Task.__call__ would."""
    from dask._task_spec import DataNode, Dict, List, Task, TaskRef
    graph = {
        "a": DataNode("a", 3),
        "b": Task("b", df.inc, 4),
        "c": Task("c", df.nested_args, Task(None, df.inc, TaskRef("a")),
                  List(TaskRef("b"), Task(None, df.inc, 10)),
                  kw=Dict(x=TaskRef("a"), y=[1, 2])),
    }
    assert client.get(graph, "c") == (4, [5, 11], {"x": 3, "y": [1, 2]}, True)
    assert graph["c"]({"a": 3, "b": 5})[:3] == (4, [5, 11], {"x": 3, "y": [1, 2]})


@pytest.mark.timeout(120)
def test_exception_reaches_the_client_with_the_remote_traceback(client):
    future = client.submit(df.fail_on, 7, 7)
    with pytest.raises(ValueError, match="task 7 failed") as info:
        future.result()
    import traceback
    text = "".join(traceback.format_tb(info.value.__traceback__))
    assert "dask_funcs.py" in text and "fail_on" in text
    assert future.status == "error"
    # ...and the worker goes on.
    assert client.submit(df.inc, 1).result() == 2


@pytest.mark.timeout(120)
def test_cancel_interrupts_a_running_task(client):
    def running_tasks(dask_worker):
        return len(dask_worker.executors["default"]._runner.pool._core.running())

    future = client.submit(df.spin_for, 120.0, pure=False)
    deadline = time.monotonic() + 30 * TIMEOUT_SCALE
    while sum(client.run(running_tasks).values()) == 0:
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.05)
    t0 = time.monotonic()
    future.cancel()
    while sum(client.run(running_tasks).values()) != 0:
        assert time.monotonic() - t0 < 20 * TIMEOUT_SCALE, "the cancelled task kept running"
        time.sleep(0.05)
    assert future.cancelled()
    assert client.submit(df.spin_where, 10, pure=False).result() == (df.spin(10), True)


@pytest.mark.timeout(120)
def test_annotations_force_threads_or_interpreters(client):
    with dask.annotate(executor="threads"):
        on_threads = dask.delayed(df.spin_where)(5).compute()
    with dask.annotate(executor="interpreters"):
        forced = dask.delayed(df.spin_where)(6).compute()
        gen = dask.delayed(df.make_generator)(3)
        with pytest.raises(manygil.NotShareableError, match="cannot share 'generator'"):
            gen.compute()
    assert on_threads == (df.spin(5), False) and forced == (df.spin(6), True)


@pytest.mark.timeout(120)
def test_result_that_cannot_cross_is_rerun_on_threads(client):
    gen = client.submit(df.make_generator, 4)
    assert client.submit(list, gen).result() == [0, 1, 2, 3]
    stats = _worker_stats(client)
    verdict = stats["functions"]["helpers.dask_funcs.make_generator"]
    assert verdict["where"] == "threads" and "result cannot cross back" in verdict["why"]
    assert stats["tasks"]["rerun"] >= 1


@pytest.mark.timeout(120)
def test_mixed_numpy_and_pure_python_graph():
    """numpy tasks (on threads) feed pure-Python tasks (in interpreters) and
    back: the same results as on a plain cluster; where each went is
    recorded per function."""
    pytest.importorskip("numpy")
    from helpers import dask_np

    def graph(c):
        """Futures (never fused: each call is a task of its own)."""
        arrays = [c.submit(dask_np.make_array, 100 + i) for i in range(4)]
        lists = [c.submit(dask_np.to_list, a) for a in arrays]
        scaled = [c.submit(df.scale_list, xs, 3) for xs in lists]      # interpreters
        sums = [c.submit(df.total, xs) for xs in scaled]               # interpreters
        back = [c.submit(dask_np.from_list, xs) for xs in scaled]      # threads
        on_arrays = [c.submit(df.total, a) for a in back]              # arrays: threads
        squares = [c.submit(df.lazy_numpy_square, i) for i in range(3)]
        array_sums = [c.submit(dask_np.array_sum, a) for a in back]
        return c.gather([sums, array_sums, on_arrays, squares])

    with _cluster() as plain, Client(plain) as c:
        expect = graph(c)
    with _cluster(preload=["manygil.dask"]) as cluster, Client(cluster) as c:
        got = graph(c)
        stats = _worker_stats(c)
        logs = _logs(c)
    assert [list(x) for x in got[:3]] == [list(x) for x in expect[:3]]
    assert [r for r, _ in got[3]] == [r for r, _ in expect[3]]
    assert not any(where for _, where in got[3])      # numpy refused: re-run on threads
    funcs = stats["functions"]
    for name in ("make_array", "to_list", "from_list", "array_sum"):
        verdict = funcs[f"helpers.dask_np.{name}"]
        assert verdict["where"] == "threads" and "numpy" in verdict["why"], verdict
    assert funcs["helpers.dask_funcs.scale_list"]["where"] == "interpreters"
    assert funcs["helpers.dask_funcs.total"]["where"] == "interpreters"
    assert "arguments cannot cross" in funcs["helpers.dask_funcs.total (arguments)"]["why"]
    lazy = funcs["helpers.dask_funcs.lazy_numpy_square"]
    assert lazy["where"] == "threads" and "does not support loading in subinterpreters" in lazy["why"]
    assert stats["tasks"]["rerun"] >= 1 and stats["tasks"]["interpreters"] >= 8
    assert logs.count("helpers.dask_np.make_array runs on threads") == 1


@pytest.mark.timeout(120)
def test_plugin_with_a_task_time_limit_and_the_watchdog():
    with _cluster() as cluster, Client(cluster) as c:
        c.register_plugin(manygil.dask.ManygilPlugin(interpreters=2, task_timeout=1.5,
                                                     warn_after=0.3))
        assert c.submit(df.spin_where, 100).result() == (df.spin(100), True)
        with pytest.raises(manygil.TaskTimeout):
            c.submit(df.spin_for, 60.0).result(timeout=30 * TIMEOUT_SCALE)
        assert c.submit(df.inc, 41).result() == 42
        assert "no progress: pool task" in _logs(c)       # the watchdog's report
        # Registered again (same name: the old one is torn down first), then removed.
        c.register_plugin(manygil.dask.ManygilPlugin(interpreters=1))
        assert c.submit(df.spin_where, 101).result() == (df.spin(101), True)
        assert _worker_stats(c)["interpreters"] == 1
        c.unregister_worker_plugin("manygil")
        assert c.submit(df.spin_where, 102).result() == (df.spin(102), False)
    with pytest.raises(ValueError, match="interpreters must be a positive int"):
        manygil.dask.ManygilPlugin(interpreters=0)
    with pytest.raises(ValueError, match="task_timeout must be > 0"):
        manygil.dask.ManygilPlugin(task_timeout=-1)


# Up to 4 rounds of ~6 s each on a quiet machine; CI's two jobs on two cores
# have made one round take a minute: the timeout is for a hang only.
@pytest.mark.timeout(400)
def test_speed_interpreters_against_the_same_worker_s_threads(client, two_cores):
    """Same run, same worker: 4 CPU-bound tasks in its 2 interpreters
    against the same tasks forced onto its 2 threads (one GIL)."""
    from helpers.timing import assert_parallel
    n = client.submit(df.calibrate, 0.5, pure=False).result()

    def run(executor):
        with dask.annotate(executor=executor):
            tasks = [dask.delayed(df.spin, pure=False)(n) for _ in range(4)]
            t0 = time.perf_counter()
            dask.compute(*tasks)
            return time.perf_counter() - t0

    samples = []

    def measure():
        new = []
        for _ in range(2):
            threads, interps = run("threads"), run("interpreters")
            new.append((round(threads, 3), round(interps, 3)))
        samples.extend(new)
        # 2 x interpreters / threads, each at its best so far (the load moves):
        # ~1 when both cores work, ~2 with one GIL
        best = 2 * min(i for _, i in samples) / min(t for t, _ in samples)
        return best, new

    run("interpreters")                     # warm: imports in both interpreters
    best, samples = measure()
    # One GIL gives 2.0 or more (the interpreters would do the threads' serialized
    # work plus dispatch).  The worker process's own threads (event loop,
    # heartbeats) compete with its interpreters, so under CI's load it stays
    # behind two plain processes: 1.68 against 1.2 in one run; hence 1.8 and 0.4.
    assert_parallel(best, samples, n * 2, retry=measure, limit=1.8, margin=0.4)


@pytest.mark.timeout(180)
def test_main_script_functions(tmp_path):
    """A client script's own functions, lambdas and closures (cloudpickled
    by Dask) run in the workers' interpreters."""
    proc = run_script(tmp_path, '''
        import logging, manygil
        from distributed import Client, LocalCluster

        def where():
            return manygil.get_current() != manygil.get_main()

        def square(x):
            return x * x, where()

        if __name__ == "__main__":
            k = 5
            with LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                              host="127.0.0.1", dashboard_address="127.0.0.1:0",
                              preload=["manygil.dask"]) as cluster, Client(cluster) as c:
                print(c.gather(c.map(square, range(4))))
                print(c.submit(lambda x: (x * k, where()), 3).result())
        ''', timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "[(0, True), (1, True), (4, True), (9, True)]"
    assert lines[1] == "(15, True)"


@pytest.mark.timeout(180)
def test_cli_scheduler_and_two_workers_with_the_preload(tmp_path):
    env = child_env()
    env["DASK_DISTRIBUTED__WORKER__DAEMON"] = "False"
    bindir = os.path.dirname(sys.executable)
    dask_cli = [sys.executable, os.path.join(bindir, "dask")]
    if not os.path.exists(dask_cli[1]):
        pytest.skip("no `dask` command next to this Python")
    sched_file = tmp_path / "scheduler.json"
    procs = []

    def start(*args, name):
        log = open(tmp_path / f"{name}.log", "w")
        p = subprocess.Popen([*dask_cli, *args], stdout=log, stderr=subprocess.STDOUT,
                             env=env, cwd=str(tmp_path))
        procs.append((p, name))
        return p

    try:
        start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
              "--scheduler-file", str(sched_file), name="scheduler")
        deadline = time.monotonic() + 60 * TIMEOUT_SCALE
        while not sched_file.exists():
            assert time.monotonic() < deadline, (tmp_path / "scheduler.log").read_text()
            time.sleep(0.1)
        for i in range(2):
            start("worker", "--scheduler-file", str(sched_file), "--nthreads", "2",
                  "--host", "127.0.0.1", "--no-dashboard", "--name", f"w{i}",
                  "--preload", "manygil.dask", name=f"worker{i}")
        with Client(scheduler_file=str(sched_file), timeout=60) as c:
            c.wait_for_workers(2, timeout=60 * TIMEOUT_SCALE)
            futures = c.map(df.spin_where, range(200, 240))
            assert c.gather(futures) == [(df.spin(n), True) for n in range(200, 240)]
            stats = manygil.dask.stats(c)
            assert len(stats) == 2 and all(s["manygil"] and s["interpreters"] == 2
                                           for s in stats.values())
            assert sum(s["tasks"]["interpreters"] for s in stats.values()) == 40
        # SIGTERM: the workers close (and end their interpreters) cleanly.
        for p, name in procs[1:]:
            p.send_signal(signal.SIGTERM)
        for p, name in procs[1:]:
            assert p.wait(timeout=60 * TIMEOUT_SCALE) == 0, (tmp_path / f"{name}.log").read_text()
            log = (tmp_path / f"{name}.log").read_text()
            assert "runs its tasks in 2 own-GIL interpreters" in log, log
            assert "Fatal Python error" not in log and "Traceback" not in log, log
        procs[0][0].send_signal(signal.SIGTERM)
        procs[0][0].wait(timeout=60 * TIMEOUT_SCALE)
    finally:
        for p, _ in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.mark.timeout(60)
def test_nothing_left_behind(client):
    """Runs last (file order): after the module's cluster closes, no child
    process and no thread the tests started are left."""
    client.close()
    client.cluster.close()
    deadline = time.monotonic() + 30 * TIMEOUT_SCALE
    while multiprocessing.active_children():
        assert time.monotonic() < deadline, multiprocessing.active_children()
        time.sleep(0.1)
    while True:
        left = [t for t in threading.enumerate()
                if t.ident not in _THREADS_BEFORE and t.is_alive()
                and not t.name.startswith(_PROCESS_WIDE)]
        if not left:
            break
        assert time.monotonic() < deadline, left
        time.sleep(0.1)


# Threads distributed keeps for the life of the process (its offload
# executor), not per cluster.
_PROCESS_WIDE = ("Dask-Offload",)
