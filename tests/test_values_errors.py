"""What cannot cross is named: a value captured by a function sent by value
(closure variable, global, default); memoryviews captured cross as they do
on their own; prepare_main refuses names that would break __main__."""
import array
import threading
import types

import pytest

import manygil

LOCK = threading.Lock()
MV = memoryview(b"abcdef")


def test_captured_memoryview_crosses(interp):
    mv = memoryview(b"abcdef")
    assert interp.call(lambda: bytes(mv)) == b"abcdef"
    assert interp.call(lambda: bytes(MV[1:3])) == b"bc"


def test_captured_memoryview_keeps_format_shape_readonly(interp):
    ints = memoryview(array.array("i", [1, 2, 3]))
    assert interp.call(lambda: (ints.tolist(), ints.format, ints.shape, ints.readonly)) \
        == ([1, 2, 3], "i", (3,), False)
    ro = memoryview(b"xyz")
    assert interp.call(lambda: ro.readonly) is True
    grid = memoryview(bytearray(range(6))).cast("B", (2, 3))
    assert interp.call(lambda: (grid.shape, grid.tolist())) == ((2, 3), [[0, 1, 2], [3, 4, 5]])
    strided = memoryview(bytes(range(10)))[::2]
    assert interp.call(lambda: bytes(strided)) == bytes(range(0, 10, 2))


def test_big_captured_memoryview_crosses(interp):
    big = memoryview(bytearray(range(256)) * 1024)
    assert interp.call(lambda: (len(big), big[300], big.readonly)) == (256 * 1024, 300 % 256, False)


def test_memoryview_inside_a_pickled_value(interp):
    # SimpleNamespace is not a codec type: it and its attribute go through
    # pickle (before: "cannot pickle 'memoryview' object").
    ns = types.SimpleNamespace(mv=memoryview(b"ab"))
    assert interp.call(lambda n: bytes(n.mv), ns) == b"ab"


def test_closure_variable_that_cannot_cross_is_named(interp):
    def make():
        gen = (x for x in [1])
        return lambda: gen
    with pytest.raises(manygil.NotShareableError) as err:
        interp.call(make())
    msg = str(err.value)
    assert "closure variable 'gen' of function 'test_closure_variable_that_cannot_cross_is_named." \
        "<locals>.make.<locals>.<lambda>': cannot share 'generator' object" in msg, msg


def test_global_that_cannot_cross_is_named(interp):
    with pytest.raises(manygil.NotShareableError) as err:
        interp.call(lambda: LOCK.locked())
    msg = str(err.value)
    assert "global 'LOCK' of function" in msg, msg
    assert "cannot share '_thread.lock' object" in msg, msg


def test_default_that_cannot_cross_is_named(interp):
    lock = threading.Lock()

    def f(*, x=lock):
        return x
    with pytest.raises(manygil.NotShareableError) as err:
        interp.call(f)
    assert "default of 'x' of function" in str(err.value), str(err.value)


def test_nested_function_names_innermost_capture(interp):
    lock = threading.Lock()

    def inner():
        return lock

    def outer():
        return inner()
    with pytest.raises(manygil.NotShareableError) as err:
        interp.call(outer)
    msg = str(err.value)
    assert "closure variable 'lock' of function" in msg and "inner'" in msg, msg


def test_uncapturable_argument_message_unchanged(interp):
    with pytest.raises(manygil.NotShareableError) as err:
        interp.call(len, threading.Lock())
    assert "cannot pickle" in str(err.value)


# ---- prepare_main: names that would break __main__ -------------------------

@pytest.mark.parametrize("name", ["__builtins__", "__spec__", "__loader__", "__path__"])
def test_prepare_main_refuses_runtime_names(interp, name):
    with pytest.raises(ValueError, match=f"cannot bind {name}"):
        interp.prepare_main(**{name: 1})
    with pytest.raises(ValueError, match=f"cannot bind {name}"):
        interp.prepare_main({name: None, "ok": 1})
    # Nothing was bound (not even the valid name), and __main__ still works.
    interp.exec("import json; assert 'ok' not in globals()")
    assert interp.call(len, [1, 2]) == 2


@pytest.mark.parametrize("name", ["__name__", "__qualname__", "__package__", "__file__"])
def test_prepare_main_wants_str_for_module_names(interp, name):
    with pytest.raises(TypeError, match=f"{name} must be a str, not int"):
        interp.prepare_main(**{name: 5})
    interp.exec("def f():\n    pass\nassert isinstance(f.__module__, str)")


def test_prepare_main_str_values_for_module_names_are_allowed(interp):
    interp.prepare_main(__file__="/tmp/x.py", answer=42)
    interp.exec("assert __file__ == '/tmp/x.py' and answer == 42")

