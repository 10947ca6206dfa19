"""Values crossing interpreter boundaries: codec round trips, pickle fallback,
deep/cyclic structures and unshareable objects."""
import collections
import datetime
import decimal
import fractions
import threading

import pytest

pytest.importorskip("hypothesis", reason="hypothesis is not installable for this Python")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import manygil
from manygil import _core
from helpers import remote
from helpers.compare import same
from helpers.proc import describe, run_python


def nested_list(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


EXAMPLES = [
    None, True, False,
    0, 1, -1, 255, 2**31, 2**63 - 1, 2**63, 2**64, -2**64, 2**1000, -2**200,
    0.0, -0.0, 1.5, -2.25, 1e308, 5e-324, float("inf"), float("-inf"), float("nan"),
    0j, complex(1, -2), complex(-0.0, 0.0), complex(float("inf"), float("nan")),
    "", "abc", "héllo wörld", "日本語", "\U0001F600 astral", "\ud800", "a\udfffb",
    "nul\x00inside", "x" * 100_000,
    b"", b"\x00\xff\x80", bytes(range(256)) * 100,
    bytearray(), bytearray(b"abc\x00"),
    (), (1,), (1, "a", None, 2.5), [], [1, [2, [3, []]]], {}, {"a": 1, 2: "b", (1, 2): [3]},
    dict([(1, 1), (True, "t")]),  # one key: the int 1 (type must survive)
    set(), {1, "a", (2, 3), b"z"}, frozenset(), frozenset({1, frozenset({2, 3})}),
    [{"nested": ({1, 2}, frozenset({"x"}), [b"y", bytearray(b"z")])}],
    [1, 1.0, True, 1 + 0j],  # equal values, different types
]

PICKLABLE = [
    datetime.datetime(2024, 1, 2, 3, 4, 5, 678),
    datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone.utc),
    datetime.date(1999, 12, 31),
    datetime.timedelta(days=3, microseconds=7),
    decimal.Decimal("3.14159265358979323846264338327950288"),
    fractions.Fraction(22, 7),
    remote.Pair(1, ("x", [2])),
    collections.OrderedDict([("b", 1), ("a", 2)]),
    collections.Counter("abracadabra"),
    collections.deque([1, 2, 3]),
    remote.Color.GREEN,
    range(1, 10, 3),
]


def ids_of(values):
    return [f"{type(v).__name__}-{i}" for i, v in enumerate(values)]


@pytest.fixture(scope="module")
def shared_interp():
    it = manygil.create()
    yield it
    it.close()


# --- explicit examples ------------------------------------------------------

@pytest.mark.parametrize("value", EXAMPLES, ids=ids_of(EXAMPLES))
def test_round_trip_through_call(shared_interp, value):
    assert same(value, shared_interp.call(remote.identity, value))


@pytest.mark.parametrize("value", EXAMPLES, ids=ids_of(EXAMPLES))
def test_round_trip_through_prepare_main(shared_interp, value):
    shared_interp.prepare_main(v=value)
    assert same(value, shared_interp.call(remote.get_main, "v"))


@pytest.mark.parametrize("value", EXAMPLES, ids=ids_of(EXAMPLES))
def test_codec_round_trip(value):
    data = _core.encode(value)
    assert type(data) is bytes
    assert same(value, _core.decode(data))


@pytest.mark.parametrize("value", [True, 1, 1.0, 1j, "s", b"b", bytearray(b"ba"),
                                   (), [], {}, set(), frozenset(), None])
def test_types_are_exact_inside_the_interpreter(shared_interp, value):
    """The type is right on the other side, not only after coming back."""
    expected = f"builtins.{type(value).__qualname__}"
    assert shared_interp.call(remote.type_name, value) == expected


def test_huge_and_negative_ints_exact(shared_interp):
    for value in (2**1000, -2**200, -(2**100_000) + 12345):
        result = shared_interp.call(remote.identity, value)
        assert type(result) is int and result == value


def test_float_specials(shared_interp):
    import math
    nan, inf, negzero = shared_interp.call(remote.identity, (float("nan"), float("inf"), -0.0))
    assert math.isnan(nan)
    assert inf == float("inf")
    assert negzero == 0.0 and math.copysign(1.0, negzero) == -1.0


# --- pickle fallback --------------------------------------------------------

@pytest.mark.parametrize("value", PICKLABLE, ids=ids_of(PICKLABLE))
def test_picklable_objects_cross(shared_interp, value):
    result = shared_interp.call(remote.identity, value)
    assert type(result) is type(value)
    assert result == value
    assert manygil.is_shareable(value)


@pytest.mark.parametrize("value", PICKLABLE, ids=ids_of(PICKLABLE))
def test_codec_round_trip_picklable(value):
    result = _core.decode(_core.encode(value))
    assert type(result) is type(value)
    assert result == value


def test_picklable_types_are_real_inside(shared_interp):
    assert shared_interp.call(remote.type_name, decimal.Decimal("1")) == "decimal.Decimal"
    assert shared_interp.call(remote.type_name, remote.Pair(1, 2)) == "helpers.remote.Pair"


def test_ordered_dict_keeps_order(shared_interp):
    value = collections.OrderedDict([("z", 1), ("a", 2), ("m", 3)])
    assert list(shared_interp.call(remote.identity, value).items()) == list(value.items())


def test_enum_member_identity(shared_interp):
    assert shared_interp.call(remote.identity, remote.Color.RED) is remote.Color.RED


# --- hypothesis -------------------------------------------------------------

text = st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=20)
hashable_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(),
    st.integers(min_value=-2**2000, max_value=2**2000),
    st.floats(allow_nan=False), st.complex_numbers(allow_nan=False),
    text, st.binary(max_size=20),
)
hashables = st.recursive(
    hashable_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4).map(tuple),
                            st.frozensets(inner, max_size=4)),
    max_leaves=8,
)
scalars = st.one_of(hashable_scalars, st.floats(), st.complex_numbers(),
                    st.binary(max_size=20).map(bytearray))
values = st.recursive(
    st.one_of(scalars, hashables),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=5).map(tuple),
        st.dictionaries(hashables, inner, max_size=5),
        st.sets(hashables, max_size=5),
        st.frozensets(hashables, max_size=5),
    ),
    max_leaves=25,
)


@settings(max_examples=1000, deadline=None)
@given(values)
def test_codec_round_trip_hypothesis(value):
    assert same(value, _core.decode(_core.encode(value)))


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(value=values)
def test_call_round_trip_hypothesis(shared_interp, value):
    assert same(value, shared_interp.call(remote.identity, value))
    assert manygil.is_shareable(value)


# --- deep and cyclic structures ----------------------------------------------

def test_nested_100_levels_round_trips(shared_interp):
    value = nested_list(100)
    result = shared_interp.call(remote.identity, value)
    assert remote.nesting_depth(result) == 100
    assert shared_interp.call(remote.nesting_depth, value) == 100


def _check_too_deep_error(excinfo):
    message = str(excinfo.value).lower()
    assert any(word in message for word in ("deep", "nest", "recursion")), message


def test_nested_100000_levels_fails_cleanly(shared_interp):
    value = nested_list(100_000)
    with pytest.raises((manygil.NotShareableError, ValueError)) as excinfo:
        shared_interp.call(remote.identity, value)
    _check_too_deep_error(excinfo)
    # the interpreter is unharmed
    assert shared_interp.call(remote.identity, [1]) == [1]


def test_nested_100000_levels_codec_fails_cleanly():
    with pytest.raises((manygil.NotShareableError, ValueError)) as excinfo:
        _core.encode(nested_list(100_000))
    _check_too_deep_error(excinfo)


def test_nested_100000_levels_never_crashes_process():
    """Same as above in a child process, so a C stack overflow shows up as a
    failed return code instead of killing the test run."""
    proc = run_python(["-c", (
        "import manygil\n"
        "from helpers import remote\n"
        "v = []\n"
        "for _ in range(100_000): v = [v]\n"
        "try:\n"
        "    manygil._core.encode(v)\n"
        "except (manygil.NotShareableError, ValueError):\n"
        "    pass\n"
        "with manygil.create() as it:\n"
        "    try:\n"
        "        it.call(remote.identity, v)\n"
        "    except (manygil.NotShareableError, ValueError):\n"
        "        pass\n"
        "print('survived')\n"
    )], timeout=120)
    assert proc.returncode == 0 and "survived" in proc.stdout, describe(proc)


def test_self_referencing_list(shared_interp):
    """Either the cycle is preserved or a clean error - never a crash/hang."""
    a = []
    a.append(a)
    try:
        result = shared_interp.call(remote.identity, a)
    except (manygil.NotShareableError, ValueError):
        return
    assert isinstance(result, list) and len(result) == 1 and result[0] is result


def test_self_referencing_list_in_child_process():
    proc = run_python(["-c", (
        "import manygil\n"
        "from helpers import remote\n"
        "a = []; a.append(a)\n"
        "d = {}; d['self'] = d\n"
        "with manygil.create() as it:\n"
        "    for v in (a, d):\n"
        "        try:\n"
        "            r = it.call(remote.identity, v)\n"
        "        except (manygil.NotShareableError, ValueError):\n"
        "            continue\n"
        "        assert (r[0] if isinstance(r, list) else r['self']) is r\n"
        "print('survived')\n"
    )], timeout=60)
    assert proc.returncode == 0 and "survived" in proc.stdout, describe(proc)


# --- unshareable objects ----------------------------------------------------

def _generator():
    yield 1


def unshareables():
    f = open(__file__, encoding="utf-8")
    return [threading.Lock(), _generator(), f]


def test_is_shareable_true_for_plain_values():
    for value in EXAMPLES:
        assert manygil.is_shareable(value) is True, repr(value)[:80]


def test_is_shareable_false_for_unshareable():
    objs = unshareables()
    try:
        for obj in objs:
            assert manygil.is_shareable(obj) is False, obj
    finally:
        objs[2].close()


def test_not_shareable_error_is_type_error():
    assert issubclass(manygil.NotShareableError, TypeError)


@pytest.mark.parametrize("index", [0, 1, 2], ids=["lock", "generator", "file"])
def test_unshareable_argument_raises(shared_interp, index):
    objs = unshareables()
    obj = objs[index]
    try:
        with pytest.raises(manygil.NotShareableError) as excinfo:
            shared_interp.call(remote.identity, obj)
        assert type(obj).__name__ in str(excinfo.value)
        with pytest.raises(manygil.NotShareableError):
            shared_interp.call(remote.identity, [1, {"k": obj}])
        with pytest.raises(manygil.NotShareableError):
            shared_interp.prepare_main(x=obj)
    finally:
        objs[2].close()
    assert shared_interp.call(remote.identity, "ok") == "ok"


def test_lock_message_names_lock(shared_interp):
    with pytest.raises(manygil.NotShareableError, match="(?i)lock"):
        shared_interp.call(remote.identity, threading.Lock())


def test_unshareable_result_raises_cleanly(shared_interp):
    """A result that cannot cross back (a lock) is an error in the caller,
    either NotShareableError directly or ExecutionFailed wrapping it."""
    try:
        shared_interp.call(remote.make_lock)
    except manygil.NotShareableError:
        pass
    except manygil.ExecutionFailed as exc:
        assert exc.excinfo.type.__name__ in ("NotShareableError", "TypeError", "PicklingError")
    else:
        pytest.fail("a lock crossed back into main")
    assert shared_interp.call(remote.identity, 5) == 5


def test_decode_of_truncated_data_raises():
    """Truncated encodings raise an exception; they never crash the process."""
    proc = run_python(["-c", (
        "import manygil, decimal\n"
        "from manygil import _core\n"
        "vals = [[1, 'ab', b'cd', 2**100, 1.5, (None, True), {'k': {1, 2}}],\n"
        "        decimal.Decimal('1.5'), 'x' * 300, [[[[[]]]]]]\n"
        "for v in vals:\n"
        "    data = _core.encode(v)\n"
        "    for n in range(len(data)):\n"
        "        try:\n"
        "            _core.decode(data[:n])\n"
        "        except Exception:\n"
        "            pass\n"
        "        else:\n"
        "            raise SystemExit(f'decoded a {n}-byte prefix of {v!r}')\n"
        "print('ok')\n"
    )], timeout=60)
    assert proc.returncode == 0 and "ok" in proc.stdout, describe(proc)
