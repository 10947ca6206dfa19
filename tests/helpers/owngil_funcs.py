"""Helpers for test_owngil_values (importable in every interpreter)."""


class Box:
    """A plain object: pickled by reference to this class."""

    def __init__(self, value):
        self.value = value


def describe_view(obj):
    """(format, shape, tolist()) of a memoryview of obj, in the target."""
    m = memoryview(obj)
    return (m.format, m.shape, m.tolist())
