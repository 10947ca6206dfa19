"""numpy tasks for tests/test_dask.py: this module imports numpy at its top,
so it cannot be imported in an own-GIL interpreter (its tasks run on the
worker's threads)."""
import numpy as np


def make_array(n):
    return np.arange(n, dtype=np.int64)


def array_sum(a):
    return int(np.asarray(a).sum())


def to_list(a):
    return a.tolist()


def from_list(xs):
    return np.array(xs, dtype=np.int64) * 2

