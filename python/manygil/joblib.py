"""joblib parallel backend "manygil": joblib's calls in own-GIL interpreters.

``import manygil.joblib`` registers it::

    import joblib, manygil.joblib
    with joblib.parallel_config(backend="manygil", n_jobs=4):
        squares = joblib.Parallel()(joblib.delayed(pow)(x, 2) for x in range(100))

Batches (joblib's ``BatchedCalls``) run on a manygil InterpreterPoolExecutor
kept per worker count and reused by later ``Parallel`` calls, as loky keeps
its executor.  ``batch_size="auto"`` sizes batches by their measured
duration (joblib's AutoBatchingMixin).  A task's exception is re-raised with
the worker's traceback as its ``__cause__``.  ``n_jobs=1`` runs the calls
in the caller, one after another (as loky does).

A task cannot call joblib: joblib cannot be imported in an own-GIL
interpreter at all (joblib's loky imports faulthandler, which CPython refuses
in subinterpreters, 3.12 to 3.15), so a ``Parallel`` inside a task fails
with a NotShareableError that says so -- never a new pool in a worker.

The main script's functions cross by value (code, defaults, closure cells,
the globals they use), as cloudpickle sends them for loky: a script that
imports joblib cannot be imported in a worker.  Other functions cross by
reference and are imported there.

A batch is checked here, before it is sent, so values that cannot cross --
numpy arrays, anything from an extension that refuses own-GIL interpreters
-- raise NotShareableError at dispatch; a batch whose functions cannot be
imported in the worker (their module imports numpy, say) fails with a
NotShareableError naming them.
"""
from __future__ import annotations

import threading

import joblib
from joblib._parallel_backends import (AutoBatchingMixin, FallbackToBackend,
                                       ParallelBackendBase, SequentialBackend)

from . import _batch, _pickle

__all__ = ["ManygilBackend"]

_pools: dict = {}                           # n_jobs -> InterpreterPoolExecutor
_pools_lock = threading.Lock()


def _pool(n: int):
    from ._pool import InterpreterPoolExecutor
    with _pools_lock:
        pool = _pools.get(n)
        if pool is None or pool._shutdown:
            pool = _pools[n] = InterpreterPoolExecutor(n, thread_name_prefix="manygil-joblib")
        return pool


class ManygilBackend(AutoBatchingMixin, ParallelBackendBase):
    """Runs joblib's batches on a pool of own-GIL interpreters."""

    supports_retrieve_callback = True
    supports_inner_max_num_threads = False
    supports_sharedmem = False              # require="sharedmem": joblib picks threads
    uses_threads = False

    _workers = None

    def effective_n_jobs(self, n_jobs):
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs is None:
            return 1
        if n_jobs < 0:
            n_jobs = max(joblib.cpu_count() + 1 + n_jobs, 1)
        return n_jobs

    def configure(self, n_jobs=1, parallel=None, prefer=None, require=None, **backend_kwargs):
        n = self.effective_n_jobs(n_jobs)
        if n == 1:
            raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
        self.parallel = parallel
        self._workers = _pool(n)
        self._pending: set = set()
        self._pending_lock = threading.Lock()
        return n

    def get_nested_backend(self):
        # Used by joblib only for BatchedCalls run in this process (they are
        # never sent: see submit); a worker cannot import joblib.
        return SequentialBackend(nesting_level=(self.nesting_level or 0) + 1), None

    def submit(self, func, callback=None):
        # func is joblib's BatchedCalls; its calls are sent, not the object
        # (joblib cannot be imported in a worker, see _batch): the batch's
        # distinct functions pickled here -- so a function that cannot load
        # there is reported by name -- and the arguments as manygil values.
        funcs: list = []
        index: dict[int, int] = {}
        calls = []
        for fn, args, kwargs in func.items:
            i = index.get(id(fn))
            if i is None:
                i = index[id(fn)] = len(funcs)
                funcs.append(fn)
            calls.append((i, args, kwargs) if kwargs else (i, args))
        # The main script's functions by value: a script that imports joblib
        # cannot be imported in a worker.  NotShareableError: nothing sent.
        payload = _pickle.dumps(funcs, True)
        if isinstance(payload, tuple):
            data, buffers = payload[0], [pb.raw() for pb in payload[1]]
        else:
            data, buffers = payload, None
        # A value that cannot cross raises NotShareableError here, unsent.
        fut = self._workers.submit(_batch.run, _task_names(funcs), data, buffers, calls)
        with self._pending_lock:
            self._pending.add(fut)
        fut.add_done_callback(self._forget)
        if callback is not None:
            fut.add_done_callback(callback)
        return fut

    def _forget(self, fut) -> None:
        with self._pending_lock:
            self._pending.discard(fut)

    def retrieve_result_callback(self, future):
        return future.result()

    def abort_everything(self, ensure_ready=True):
        # Queued batches are taken off the queue; running ones finish.
        with self._pending_lock:
            pending = list(self._pending)
        for fut in pending:
            fut.cancel()
        if not ensure_ready:
            self._workers = None

    def terminate(self):
        self._workers = None                # the pool stays, for the next call
        self.reset_batch_stats()


def _task_names(funcs: list) -> str:
    names: list[str] = []
    for fn in funcs[:64]:
        name = f"{getattr(fn, '__module__', None) or '?'}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"
        if name not in names:
            names.append(name)
    return ", ".join(repr(n) for n in names[:3]) + (", ..." if len(names) > 3 else "")


joblib.register_parallel_backend("manygil", ManygilBackend)
