"""Values from extensions that refuse own-GIL interpreters (numpy): they
never cross; the NotShareableError names the module and what works, and
is raised before anything is sent, decided once per type."""
import datetime
import decimal
import time

import pytest

import manygil
from manygil import NotShareableError, _core, _owngil, _pickle

from helpers import owngil_funcs as of
from helpers import remote


def _np():
    return pytest.importorskip("numpy")


def _assert_numpy_message(text, *, buffer_hints=True):
    assert "numpy" in text and "numpy._core._multiarray_umath" in text
    assert "does not support own-GIL interpreters" in text
    if buffer_hints:
        assert "memoryview(x)" in text and "manygil.SharedBuffer" in text and "x.tolist()" in text


@pytest.mark.timeout(60)
def test_pool_submit_of_an_array_raises_not_shareable():
    np = _np()
    with manygil.InterpreterPoolExecutor(1) as pool:
        with pytest.raises(NotShareableError) as info:
            pool.submit(len, np.arange(3)).result(timeout=30)
        _assert_numpy_message(str(info.value))
        assert "PLEASE READ THIS" not in str(info.value)
        assert pool.submit(len, [1, 2, 3]).result(timeout=30) == 3


@pytest.mark.timeout(60)
def test_call_channel_and_queue_refuse_before_sending(interp):
    np = _np()
    arr = np.arange(4.0)
    with pytest.raises(NotShareableError) as info:
        interp.call(len, arr)
    _assert_numpy_message(str(info.value))
    recv, send = manygil.create_channel()
    with pytest.raises(NotShareableError):
        send.send({"data": [1, arr]})
    assert recv.recv_nowait(default="nothing") == "nothing"
    q = manygil.create_queue()
    with pytest.raises(NotShareableError):
        q.put((arr,))
    assert q.empty()


@pytest.mark.timeout(60)
def test_scalars_classes_ufuncs_and_nested_values_are_refused(interp):
    np = _np()
    cases = [np.float64(1.5), np.int64(3), np.dtype("f8"), np.ndarray, np.sqrt,
             [1, (2, {"k": np.arange(2)})], of.Box(np.arange(2))]
    for value in cases:
        with pytest.raises(NotShareableError, match="does not support own-GIL interpreters"):
            interp.call(id, value)
    arr = np.arange(2)
    with pytest.raises(NotShareableError, match="numpy"):
        interp.call(id, lambda: arr)        # captured by a function sent by value
    with pytest.raises(NotShareableError) as info:
        interp.call(id, np.ndarray)
    assert "'numpy.ndarray' class" in str(info.value)


@pytest.mark.timeout(60)
def test_memoryview_of_an_array_crosses_with_its_format_and_shape(interp):
    """What the message promises: memoryview(arr) arrives as a copy with the
    same format and shape (native formats), else as its bytes; SharedBuffer
    and tolist() cross."""
    np = _np()
    arr = np.arange(12.0).reshape(3, 4)
    assert interp.call(of.describe_view, memoryview(arr)) == ("d", (3, 4), arr.tolist())
    strided = np.arange(10, dtype=np.int32)[::2]
    assert interp.call(of.describe_view, memoryview(strided)) == (
        "i", (5,), [0, 2, 4, 6, 8])
    big_endian = np.arange(3, dtype=">i4")
    with pytest.raises(NotShareableError) as info:
        interp.call(id, big_endian)
    assert "memoryview(x) crosses as a copy of its bytes" in str(info.value)
    fmt, shape, _ = interp.call(of.describe_view, memoryview(big_endian))
    assert (fmt, shape) == ("B", (12,))
    assert interp.call(sum, arr.ravel().tolist()) == 66.0
    buf = manygil.SharedBuffer(8 * 4)
    np.frombuffer(buf, dtype=np.float64)[:] = [1, 2, 3, 4]
    assert interp.call(of.describe_view, buf)[1] == (32,)


@pytest.mark.timeout(60)
def test_detection_is_cached_per_type(monkeypatch):
    np = _np()
    arr = np.arange(3)
    _owngil.refusals.pop(type(arr), None)
    t0 = time.perf_counter()
    with pytest.raises(NotShareableError):
        _pickle.dumps(arr)
    first = time.perf_counter() - t0
    assert _owngil.refusals[type(arr)][1] == "numpy._core._multiarray_umath"
    calls = []
    real = _owngil.find_refusal
    monkeypatch.setattr(_owngil, "find_refusal", lambda tp: calls.append(tp) or real(tp))
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        try:
            _pickle.dumps(arr)
        except NotShareableError:
            pass
    cached = (time.perf_counter() - t0) / n
    assert calls == []                      # decided once, looked up since
    # A pickled value of the same size that crosses, for scale.
    ok = of.Box(list(range(3)))
    t0 = time.perf_counter()
    for _ in range(n):
        _pickle.dumps(ok)
    plain = (time.perf_counter() - t0) / n
    print(f"\nrefusal: first {first * 1e6:.0f} us (type's module looked up), then "
          f"{cached * 1e6:.1f} us per value (error message included); "
          f"pickling a small object that crosses: {plain * 1e6:.1f} us")


def test_module_defs_are_read_not_guessed():
    np = _np()
    import numpy._core._multiarray_umath as ext
    assert _core._module_gil_support(_core) == "per-interpreter-gil"
    assert _core._module_gil_support(ext) in ("main-only", "shared-gil-only", "single-phase")
    assert _core._module_gil_support(decimal) is None     # a Python module
    assert _core._type_home(np.ndarray).endswith(tuple(_owngil._SUFFIXES))
    assert _core._type_home(int) is None                  # CPython's own
    with pytest.raises(TypeError):
        _core._type_home(3)
    with pytest.raises(TypeError):
        _core._module_gil_support("numpy")


@pytest.mark.timeout(60)
def test_stdlib_and_own_gil_extensions_still_cross(interp):
    """The stdlib's extensions are never refused (its pure fallbacks load in
    any interpreter), nor an extension that supports own-GIL interpreters
    (manygil's own types)."""
    values = [decimal.Decimal("1.25"), datetime.date(2024, 5, 1), datetime.timedelta(3)]
    assert interp.call(remote.identity, values) == values
    buf = manygil.SharedBuffer(16)
    assert interp.call(len, buf) == 16
    assert interp.call(remote.identity, of.Box(5)).value == 5
