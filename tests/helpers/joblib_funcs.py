"""Task functions for test_joblib (imported in worker interpreters; never
imports joblib: it cannot load there)."""
import manygil


def square(x):
    return x * x


def where(x):
    """(x, id of the interpreter that ran the call)."""
    return x, manygil.get_current()


def fail_on(x, bad):
    if x == bad:
        raise ValueError(f"task {x} failed")
    return x


def nested_parallel(n):
    import joblib
    return sum(joblib.Parallel(n_jobs=2)(joblib.delayed(square)(i) for i in range(n)))


def spin(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total
