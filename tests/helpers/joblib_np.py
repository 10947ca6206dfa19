"""A task module that imports numpy at its top: it cannot be imported in an
own-GIL interpreter."""
import numpy  # noqa: F401


def plus_one(x):
    return x + 1
