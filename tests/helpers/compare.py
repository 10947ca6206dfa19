"""Exact structural comparison for round-trip tests (main interpreter only)."""
import math


def _same_float(a, b):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def same(a, b):
    """True when ``b`` is an exact copy of ``a``: equal values, identical
    types at every level (so ``1``/``True``/``1.0`` are told apart), NaN equal
    to NaN, the sign of zero kept, dict order kept."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return _same_float(a, b)
    if type(a) is complex:
        return _same_float(a.real, b.real) and _same_float(a.imag, b.imag)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items()))
    if type(a) in (set, frozenset):
        if len(a) != len(b) or a != b:
            return False
        # Map each element of b to itself so equal-but-differently-typed
        # elements (1 vs 1.0 vs True) can be compared exactly.
        stored = {y: y for y in b}
        return all(x in stored and same(x, stored[x]) for x in a)
    return a == b
