"""Dask workers that run their tasks in own-GIL interpreters.

A preload module and a worker plugin; either makes a ``distributed`` worker
run its tasks on a manygil pool of N interpreters (N: the worker's
``nthreads``, or ``interpreters=``; dask config ``manygil.interpreters``)::

    dask worker tcp://scheduler:8786 --nthreads 8 --preload manygil.dask
    LocalCluster(n_workers=1, threads_per_worker=8, preload=["manygil.dask"])
    client.register_plugin(manygil.dask.ManygilPlugin())

Only the task's own call crosses: the worker turns Dask's ``Task`` into the
function, its arguments with the dependencies' data put in, and nested tasks
as plain nodes; the result dict, timings, ``sizeof`` and logging stay here.

A task runs on the worker's thread pool instead (executor ``"threads"``),
decided here before it is sent when possible and remembered per function:
its function cannot cross, or its module (or a module it uses) refuses
own-GIL interpreters (numpy, pandas); its arguments cannot cross (numpy
arrays: decided per task).  A task that fails in an interpreter only because
an import refused to load, or whose result cannot cross back, is run again
on threads once, and its function is remembered.  ``dask.annotate(executor=
"threads")`` forces threads; ``executor="interpreters"`` forces interpreters
(what cannot run there then fails with NotShareableError).  Each decision is
logged once per function (logger ``distributed.worker.manygil``); ``stats(client)``
gives the counts per worker.

Exceptions reach the client as the same type with the remote traceback.
``Future.cancel()`` / ``client.cancel`` interrupt a task running in an
interpreter.  ``task_timeout`` / ``warn_after`` (config ``manygil.task-
timeout``, ``manygil.warn-after``) are the pool's time limit and watchdog.
The worker's close (also on SIGTERM) ends the interpreters.
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import sys
import threading
import types
from concurrent.futures import CancelledError, Executor, Future

import dask
from dask._task_spec import Alias, DataNode, Dict, GraphNode, List, Set, Task, TaskRef, Tuple
from dask.sizeof import sizeof
from distributed import WorkerPlugin
from distributed.core import error_message
from distributed.worker import _run_task, _run_task_simple

from . import _dask_run, _owngil, _pickle
from ._errors import NotShareableError
from ._pool import InterpreterPoolExecutor
from ._watch import check_number

__all__ = ["ManygilPlugin", "InterpreterExecutor", "dask_setup", "stats"]

logger = logging.getLogger("distributed.worker.manygil")

_CONTAINERS = {List: "list", Tuple: "tuple", Set: "set", Dict: "dict"}
_MAX_FUNCS = 4096


class ManygilPlugin(WorkerPlugin):
    """Makes the worker run its tasks in own-GIL interpreters (see the module
    docstring).  ``interpreters``: pool size (default: the worker's
    nthreads); ``task_timeout``, ``warn_after``: the pool's time limit and
    watchdog, in seconds (default: none)."""

    name = "manygil"

    def __init__(self, interpreters: int | None = None, task_timeout: float | None = None,
                 warn_after: float | None = None) -> None:
        if interpreters is not None and (not isinstance(interpreters, int)
                                         or isinstance(interpreters, bool) or interpreters < 1):
            raise ValueError(f"interpreters must be a positive int or None, not {interpreters!r}")
        self.interpreters = interpreters
        self.task_timeout = check_number("task_timeout", task_timeout, allow_none=True)
        self.warn_after = check_number("warn_after", warn_after, allow_none=True)
        self._runner: _Runner | None = None

    def __getstate__(self):
        return {"interpreters": self.interpreters, "task_timeout": self.task_timeout,
                "warn_after": self.warn_after, "_runner": None}

    async def setup(self, worker) -> None:
        current = worker.executors.get("default")
        if isinstance(current, InterpreterExecutor):
            if not current._runner.closed:
                self._runner = current._runner    # already set up (preload and plugin)
                return
            current = current._runner.threads
        n = self.interpreters or dask.config.get("manygil.interpreters", None) or worker.state.nthreads
        timeout = self.task_timeout or dask.config.get("manygil.task-timeout", None)
        warn = self.warn_after or dask.config.get("manygil.warn-after", None)
        # No interpreter may run while a profiler samples every interpreter's
        # frames: wait for them to end (within a profiler cycle).
        samplers = _stop_frame_sampling(worker)
        while any(t.is_alive() for t in samplers):
            await asyncio.sleep(0.02)
        pool = InterpreterPoolExecutor(int(n), thread_name_prefix="manygil-dask",
                                       task_timeout=timeout, warn_after=warn, on_hang=_log_hang)
        runner = self._runner = _Runner(worker, pool, current)
        worker.executors["threads"] = current
        worker.executors["interpreters"] = InterpreterExecutor(runner, forced=True)
        worker.executors["default"] = InterpreterExecutor(runner, forced=False)
        logger.info("manygil.dask: worker %s runs its tasks in %d own-GIL interpreters",
                    worker.address, n)

    def teardown(self, worker) -> None:
        # The plugin removed or the worker closing: its tasks go back to its
        # thread pool, and its interpreters end.
        runner = self._runner
        if runner is not None and worker.executors.get("default") is not None and \
                getattr(worker.executors["default"], "_runner", None) is runner:
            worker.executors["default"] = runner.threads
            worker.executors.pop("interpreters", None)
        if runner is not None:
            runner.close()

    def transition(self, key, start, finish, *args, **kwargs) -> None:
        # A running task the scheduler no longer wants (Future.cancel,
        # client.cancel) becomes "cancelled": interrupt it in its interpreter.
        if start in ("executing", "long-running") and self._runner is not None:
            ts = self._runner.worker.state.tasks.get(key)
            if ts is not None and ts.state == "cancelled":
                self._runner.cancel(key)


def _log_hang(report) -> None:
    """The pool's watchdog reports go to the worker's log (and its logs
    view): a task past warn_after, a stuck task abandoned."""
    logger.warning("manygil.dask: %s", report)


async def dask_setup(worker) -> None:
    """The preload hook: ``dask worker ... --preload manygil.dask``."""
    await worker.plugin_add(ManygilPlugin(), name=ManygilPlugin.name)


def stats(client) -> dict:
    """Per worker address: tasks run in interpreters and on threads, tasks
    re-run on threads after an interpreter refused them, and where each
    function went and why."""
    return client.run(_worker_stats)


def _worker_stats(dask_worker) -> dict:
    ex = dask_worker.executors.get("default")
    if not isinstance(ex, InterpreterExecutor):
        return {"manygil": False}
    return ex._runner.stats()


class InterpreterExecutor(Executor):
    """The worker's executor ``"default"`` (auto) or ``"interpreters"``
    (forced): Dask's ``_run_task_simple`` calls run as described in the
    module docstring; anything else the worker submits runs on its threads."""

    def __init__(self, runner: "_Runner", forced: bool) -> None:
        self._runner = runner
        self._forced = forced

    def submit(self, fn, /, *args, **kwargs) -> Future:
        if fn is _run_task_simple and len(args) == 3 and not kwargs:
            return self._runner.submit(*args, forced=self._forced)
        return self._runner.threads.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._runner.close(wait)

    def __repr__(self) -> str:
        c = self._runner.counts
        mode = "interpreters only" if self._forced else "auto"
        return (f"<manygil.dask.InterpreterExecutor {mode}: {self._runner.pool._max_workers} "
                f"interpreters; tasks: {c['interpreters']} in interpreters, {c['threads']} on "
                f"threads, {c['rerun']} re-run on threads>")


class _Job:
    __slots__ = ("task", "data", "delay", "ctx", "outer", "forced", "fkey", "name", "inner")

    def __init__(self, task, data, delay, forced) -> None:
        self.task = task
        self.data = data
        self.delay = delay
        self.ctx = contextvars.copy_context()
        self.outer: Future = Future()
        self.outer.set_running_or_notify_cancel()
        self.forced = forced
        self.inner: Future | None = None


class _Untranslatable(Exception):
    pass


class _Runner:
    """The state one worker's two executors share: the pool, the worker's
    thread pool, the per-function verdicts and the counts."""

    def __init__(self, worker, pool: InterpreterPoolExecutor, threads: Executor) -> None:
        self.worker = worker
        self.pool = pool
        self.threads = threads
        self.counts = {"interpreters": 0, "threads": 0, "rerun": 0}
        self.lock = threading.Lock()
        self.verdicts: dict = {}            # function key -> (where, why, name)
        self.payloads: dict = {}            # function key -> (fn, pickle, buffers)
        self.running: dict = {}             # task key -> _Job in an interpreter
        self.closed = False

    # ---- the worker's calls ---------------------------------------------

    def submit(self, task, data: dict, delay: float, forced: bool) -> Future:
        job = _Job(task, data, delay, forced)
        try:
            self._start(job)
        except BaseException as exc:         # noqa: BLE001 - reported as the task's failure
            self._fail(job, exc)
        return job.outer

    def cancel(self, key) -> None:
        job = self.running.get(key)
        if job is not None and job.inner is not None:
            job.inner.cancel()

    def close(self, wait: bool = True) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for job in list(self.running.values()):
            if job.inner is not None:
                job.inner.cancel()          # interrupts running tasks
        self.pool.shutdown(wait=wait, cancel_futures=True)

    def stats(self) -> dict:
        with self.lock:
            functions = {name: {"where": where, "why": why}
                         for where, why, name in self.verdicts.values()}
            return {"manygil": True, "interpreters": self.pool._max_workers,
                    "tasks": dict(self.counts), "functions": functions}

    # ---- where a task goes ----------------------------------------------

    def _start(self, job: _Job) -> None:
        task = job.task
        if type(task) is not Task:
            # An alias, a data node, a container: nothing to compute there.
            return self._elsewhere(job, None, f"it is a {type(task).__name__}, not a call", False)
        fn = task.func
        job.fkey = _func_key(fn)
        job.name = _func_name(fn)
        verdict = self.verdicts.get(job.fkey)
        if verdict is not None and verdict[0] == "threads" and not job.forced:
            return self._to_threads(job)
        try:
            payload = self._payload(job, fn)
        except NotShareableError as exc:
            return self._elsewhere(job, exc, f"its function cannot cross: {exc}", True)
        if verdict is None:
            refusal = _function_refusal(fn)
            if refusal is not None:
                return self._elsewhere(job, None, refusal, True)
        try:
            args = tuple(_translate(a, job.data) for a in task.args)
            kwargs = {k: _translate(v, job.data) for k, v in task.kwargs.items()} or None
        except _Untranslatable as exc:
            return self._elsewhere(job, None, str(exc), False)
        fut = self.pool.submit(_dask_run.run, job.name, payload[1], payload[2], args, kwargs)
        if getattr(fut, "unshareable", False):
            exc = fut.exception()
            return self._elsewhere(job, exc, f"its arguments cannot cross: {exc}", False)
        if verdict is None:
            self._decide(job, "interpreters", "its function and arguments cross")
        job.inner = fut
        self.running[task.key] = job
        fut.add_done_callback(lambda f, job=job: self._done(job, f))

    def _payload(self, job: _Job, fn) -> tuple:
        """(fn, pickle, buffers) of the task's function, pickled once per
        function object (the main script's functions by value: a worker's
        __main__ is not the client's)."""
        entry = self.payloads.get(job.fkey)
        if entry is not None and entry[0] is fn:
            return entry
        data = _pickle.dumps(fn, True)
        if isinstance(data, tuple):
            entry = (fn, data[0], [pb.raw() for pb in data[1]])
        else:
            entry = (fn, data, None)
        if len(self.payloads) >= _MAX_FUNCS:
            self.payloads.clear()
        self.payloads[job.fkey] = entry
        return entry

    def _elsewhere(self, job: _Job, exc, why: str, per_function: bool) -> None:
        """The task cannot run in an interpreter: on threads, or (forced)
        fail with NotShareableError."""
        if job.forced:
            err = NotShareableError(
                f"task {job.task.key!r} is annotated executor='interpreters' but cannot run "
                f"in an own-GIL interpreter: {why}")
            if isinstance(exc, BaseException):
                err.__cause__ = exc
            return self._fail(job, err)
        if per_function:
            self._decide(job, "threads", why)
        else:
            self._note(job, why)
        self._to_threads(job)

    def _decide(self, job: _Job, where: str, why: str) -> None:
        """Remember (and log, once) where the task's function goes."""
        fkey = getattr(job, "fkey", None)
        if fkey is None:
            return
        with self.lock:
            old = self.verdicts.get(fkey)
            if old is not None and (old[0] == where or where == "interpreters"):
                return
            if len(self.verdicts) >= _MAX_FUNCS:
                self.verdicts.clear()
            self.verdicts[fkey] = (where, why, job.name)
        logger.info("manygil.dask: %s runs %s: %s", job.name,
                    "in interpreters" if where == "interpreters" else "on threads", why)

    def _note(self, job: _Job, why: str) -> None:
        """A per-task reason (its arguments): logged once per function."""
        fkey = getattr(job, "fkey", None)
        with self.lock:
            key = ("args", fkey)
            if key in self.verdicts or fkey is None:
                return
            self.verdicts[key] = ("threads (some tasks)", why, job.name + " (arguments)")
        logger.info("manygil.dask: %s runs on threads for tasks whose %s", job.name,
                    why.removeprefix("its "))

    # ---- running and results ---------------------------------------------

    def _to_threads(self, job: _Job) -> None:
        w = self.worker
        with self.lock:
            self.counts["threads"] += 1
        tf = self.threads.submit(job.ctx.run, _run_task, job.task, job.data, w.execution_state,
                                 job.task.key, w.active_threads, w.active_threads_lock, job.delay)
        tf.add_done_callback(lambda f: _chain(f, job.outer))

    def _done(self, job: _Job, fut: Future) -> None:
        if self.running.get(job.task.key) is job:
            del self.running[job.task.key]
        try:
            try:
                exc = fut.exception()       # (not result(): a raise would give it a traceback)
            except CancelledError:
                return self._cancelled(job)
            if exc is None:
                result, start, stop, ident = fut.result()
                with self.lock:
                    self.counts["interpreters"] += 1
                job.outer.set_result({
                    "op": "task-finished", "status": "OK", "result": result,
                    "nbytes": sizeof(result), "type": type(result) if result is not None else None,
                    "start": start + job.delay, "stop": stop + job.delay, "thread": ident})
                return
            if not job.forced and not self.closed:
                why = None
                if isinstance(exc, ImportError) and _dask_run._refused(exc):
                    why = str(exc) if isinstance(exc, _dask_run.ImportRefused) else \
                        f"an import refused to load: {_dask_run._first_line(exc)}"
                elif isinstance(exc, NotShareableError) and _result_did_not_cross(exc):
                    why = f"its result cannot cross back: {exc}"
                if why is not None:
                    with self.lock:
                        self.counts["rerun"] += 1
                    self._decide(job, "threads", why)
                    return self._to_threads(job)
            self._fail(job, exc)
        except BaseException as exc:         # noqa: BLE001 - the task must end
            self._fail(job, exc)

    def _cancelled(self, job: _Job) -> None:
        ts = self.worker.state.tasks.get(job.task.key)
        if ts is not None and ts.state in ("executing", "resumed") and not self.closed:
            self._start(job)                # wanted again meanwhile: run it again
        else:
            self._fail(job, CancelledError(f"task {job.task.key!r} was cancelled"))

    def _fail(self, job: _Job, exc: BaseException) -> None:
        """Resolve the task as failed with exc, as _run_task_simple reports a
        task's exception (with the remote traceback as its traceback)."""
        if job.outer.done():
            return
        _attach_remote_traceback(exc)
        import time
        now = time.time() + job.delay
        try:
            raise exc
        except BaseException:
            msg = error_message(exc)
        msg["op"] = "task-erred"
        msg["actual_exception"] = exc
        msg.update(start=now, stop=now, thread=threading.get_ident())
        job.outer.set_result(msg)


def _chain(src: Future, dst: Future) -> None:
    exc = src.exception()
    if exc is not None:
        dst.set_exception(exc)
    else:
        dst.set_result(src.result())


# ---- turning a Task into plain values ---------------------------------------

def _translate(a, data: dict):
    """A task argument as the interpreter gets it: references replaced by
    their data, nested tasks and containers as _dask_run.Node."""
    if isinstance(a, TaskRef):
        return data[a.key]
    if not isinstance(a, GraphNode):
        return a
    t = type(a)
    if t is Alias:
        return data[a.target]
    if t is DataNode:
        return a.value
    args = tuple(_translate(x, data) for x in a.args)
    kind = _CONTAINERS.get(t)
    if kind is not None:
        return _dask_run.Node(None, args, {"kind": kind})
    if t is Task:
        kwargs = {k: _translate(v, data) for k, v in a.kwargs.items()}
        return _dask_run.Node(a.func, args, kwargs)
    raise _Untranslatable(f"it has an argument of Dask node type {t.__name__}")


def _unwrap(fn):
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn


def _func_key(fn):
    fn = _unwrap(fn)
    code = getattr(fn, "__code__", None)
    if isinstance(code, types.CodeType):
        return (getattr(fn, "__module__", None), getattr(fn, "__qualname__", None),
                code.co_filename, code.co_firstlineno)
    try:
        hash(fn)
        return fn
    except TypeError:
        return (type(fn).__module__, type(fn).__qualname__)


def _func_name(fn) -> str:
    fn = _unwrap(fn)
    if not isinstance(fn, (types.FunctionType, types.BuiltinFunctionType, type)):
        fn = type(fn)
    return f"{getattr(fn, '__module__', None) or '?'}.{getattr(fn, '__qualname__', '?')}"


# ---- modules that refuse own-GIL interpreters -------------------------------

_package_verdicts: dict[str, tuple[int, str | None]] = {}


def _package_refusal(pkg: str) -> str | None:
    """'numpy (its extension module numpy._core._multiarray_umath)' if a
    loaded extension module of package pkg refuses own-GIL interpreters."""
    seen = len(sys.modules)
    cached = _package_verdicts.get(pkg)
    if cached is not None and (cached[1] is not None or cached[0] == seen):
        return cached[1]
    verdict = None
    prefix = pkg + "."
    for name, mod in list(sys.modules.items()):
        if (name == pkg or name.startswith(prefix)) and isinstance(mod, types.ModuleType):
            refusal = _owngil._module_refusal(mod, mod)
            if refusal is not None:
                verdict = pkg if refusal[1] == pkg else f"{pkg} (its extension module {refusal[1]})"
                break
    _package_verdicts[pkg] = (seen, verdict)
    return verdict


def _top(obj) -> str | None:
    if isinstance(obj, types.ModuleType):
        name = obj.__name__
    elif isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)):
        name = getattr(obj, "__module__", None)
    else:
        name = type(obj).__module__
    return name.partition(".")[0] if isinstance(name, str) else None


def _function_refusal(fn) -> str | None:
    """Why fn cannot run in an own-GIL interpreter, when this process can
    tell: its module, or a module it (or its module, if it is imported by
    name there) uses, refuses them."""
    fn = _unwrap(fn)
    packages = []
    module_name = getattr(fn, "__module__", None)
    if isinstance(fn, types.FunctionType):
        g = fn.__globals__
        packages += [_top(g[n]) for n in _pickle._global_names(fn.__code__, set()) if n in g]
    module = sys.modules.get(module_name) if isinstance(module_name, str) else None
    if module is not None and module_name not in ("__main__", "__mp_main__"):
        packages.append(module_name.partition(".")[0])
        packages += [_top(v) for v in list(vars(module).values()) if isinstance(v, types.ModuleType)]
    elif not isinstance(fn, types.FunctionType):
        packages.append(_top(fn))
    for pkg in dict.fromkeys(p for p in packages if p):
        refusal = _package_refusal(pkg)
        if refusal is not None:
            return (f"it uses {refusal}, which does not support own-GIL interpreters "
                    f"(cannot be imported there)")
    return None


# ---- frame sampling ------------------------------------------------------------
#
# sys._current_frames() (CPython 3.12 to 3.15) walks the threads of every
# interpreter and makes frame objects, in the calling interpreter's memory, for
# frames of other interpreters; an own-GIL interpreter later frees them with its
# own allocator and the process aborts ("free(): invalid pointer").  Dask calls
# it from the worker's sampling profiler (every 10 ms), from the event loop's
# profiler thread (once a cycle) and for the dashboard's call stacks: on a
# manygil worker those are turned off.

class _NoOtherFrames:
    """Stands for ``sys`` in distributed.profile: _current_frames() finds no
    thread, so its event-loop profiler thread ends at its next sample."""

    def __init__(self, real) -> None:
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)

    @staticmethod
    def _current_frames() -> dict:
        return {}


def _stop_frame_sampling(worker) -> list[threading.Thread]:
    """Turn off what calls sys._current_frames() in this worker process;
    returns the profiler threads still running (each ends at its next
    sample, within a profiler cycle)."""
    for name in ("profile", "profile-cycle"):
        pc = worker.periodic_callbacks.pop(name, None)
        if pc is not None:
            pc.stop()
    worker.handlers["call_stack"] = _no_call_stack
    import distributed.profile as dask_profile
    if not isinstance(dask_profile.sys, _NoOtherFrames):
        dask_profile.sys = _NoOtherFrames(dask_profile.sys)
    return [t for t in threading.enumerate()
            if t.name == "Profile" and getattr(t, "_target", None) is dask_profile._watch]


def _no_call_stack(keys=None) -> dict:
    return {}


# ---- exceptions from interpreters -------------------------------------------

def _remote_text(exc: BaseException) -> str | None:
    tb = getattr(exc.__cause__, "tb", None)
    if isinstance(tb, str):
        return tb.strip().strip('"').strip()
    return None


def _result_did_not_cross(exc: NotShareableError) -> bool:
    """True if exc was raised encoding the task's result (after the call
    returned): its remote traceback never passes through _dask_run."""
    text = _remote_text(exc)
    return text is not None and "_dask_run.py" not in text


def _attach_remote_traceback(exc: BaseException) -> None:
    """Give an exception rebuilt from an interpreter the remote frames as its
    traceback (tblib, which distributed uses), so the client shows them."""
    text = _remote_text(exc)
    if not text or exc.__traceback__ is not None:
        return
    try:
        from tblib import Traceback
        tb = Traceback.from_string(text).as_traceback()
    except Exception:                        # noqa: BLE001 - keep the text in __cause__
        return
    while tb is not None and tb.tb_frame.f_code.co_filename.endswith("_dask_run.py"):
        tb = tb.tb_next
    if tb is not None:
        exc.__traceback__ = tb
