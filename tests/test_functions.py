"""Functions crossing into interpreters: by reference (importable) and by
value (lambdas, closures, main-script functions).

Note: this module deliberately passes no module-level function of its own to
an interpreter (that could make the interpreter import this test module, and
with it pytest -> hashlib, which breaks CPython 3.12.1 at exit).
"""
import math
import operator

import pytest

import manygil
from helpers import remote
from helpers.proc import describe, run_script


# --- by reference -------------------------------------------------------------

def test_builtin_and_stdlib_functions(interp):
    assert interp.call(math.factorial, 20) == math.factorial(20)
    assert interp.call(operator.add, 2, 3) == 5
    assert interp.call(len, [1, 2, 3]) == 3
    assert interp.call(sorted, [3, 1, 2], reverse=True) == [3, 2, 1]


def test_importable_function_uses_interpreter_module_state(interp):
    """helpers.remote.append_state mutates module state of the copy of
    helpers.remote imported *inside* the interpreter, not main's."""
    before = list(remote.STATE)
    assert interp.call(remote.append_state, "a") == 1
    assert interp.call(remote.append_state, "b") == 2
    assert remote.STATE == before


def test_function_as_argument(interp):
    assert interp.call(remote.apply, operator.mul, 6, 7) == 42
    assert interp.call(remote.apply, lambda x, y=1: x + y, 41) == 42


# --- by value -----------------------------------------------------------------

def test_lambda(interp):
    assert interp.call(lambda x: x * 2, 21) == 42


def test_closure_over_local(interp):
    k = 10

    def add_k(x):
        return x + k

    assert interp.call(add_k, 5) == 15


def test_closure_is_copied_not_shared(interp):
    acc = []

    def push(x):
        acc.append(x)
        return len(acc)

    assert interp.call(push, "a") == 1
    assert acc == []


def test_nested_function_uses_module_level_import(interp):
    def hypot(a, b):
        return math.sqrt(a * a + b * b)

    assert interp.call(hypot, 3, 4) == 5.0


def test_defaults_and_kwonly_defaults(interp):
    def f(a, b=2, *args, c=3, **kw):
        return (a, b, args, c, kw)

    assert interp.call(f, 1) == (1, 2, (), 3, {})
    assert interp.call(f, 1, 5, 6, c=7, d=8) == (1, 5, (6,), 7, {"d": 8})


def test_recursive_nested_function(interp):
    def fact(n):
        return 1 if n <= 1 else n * fact(n - 1)

    assert interp.call(fact, 10) == 3628800


def test_nested_function_with_annotations_and_docstring(interp):
    def f(x: int) -> int:
        """doc"""
        return x + 1

    assert interp.call(f, 1) == 2


def test_lambda_via_call_in_thread(interp):
    t = interp.call_in_thread(lambda: remote.set_main("from_lambda", 7))
    t.join(timeout=30)
    assert interp.call(remote.get_main, "from_lambda") == 7


def test_closure_returned_from_interpreter(interp):
    """A closure created inside the interpreter crosses back by value."""
    add5 = interp.call(remote.make_adder, 5)
    assert callable(add5)
    assert add5(3) == 8


def test_lambda_result_error_is_execution_failed(interp):
    with pytest.raises(manygil.ExecutionFailed) as excinfo:
        interp.call(lambda: 1 / 0)
    assert excinfo.value.excinfo.type.__name__ == "ZeroDivisionError"


# --- functions defined in a main script ---------------------------------------

MAIN_SCRIPT = """
import manygil


def square(x):
    return x * x


double = lambda x: x * 2


class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    def __repr__(self):
        return f"Point({self.x}, {self.y})"


def move(p, dx):
    return Point(p.x + dx, p.y)


if __name__ == "__main__":
    with manygil.create() as interp:
        print("square", interp.call(square, 7))
        print("double", interp.call(double, 21))
        p = interp.call(move, Point(1, 2), 3)
        print("point", p, isinstance(p, Point), p == Point(4, 2))
        print("identity", interp.call(lambda q: q, Point(5, 6)) == Point(5, 6))
    print("done")
"""


@pytest.mark.timeout(120)
def test_main_script_functions_and_classes(tmp_path):
    proc = run_script(tmp_path, MAIN_SCRIPT, timeout=100)
    assert proc.returncode == 0, describe(proc)
    lines = proc.stdout.splitlines()
    assert lines == [
        "square 49",
        "double 42",
        "point Point(4, 2) True True",
        "identity True",
        "done",
    ], describe(proc)
