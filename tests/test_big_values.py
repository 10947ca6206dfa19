"""Big bytes and bytearray values through channels, queues, call results and
the pool: one copy in all (issue #4).  The sender copies the value once into
a block laid out as CPython lays out such an object; the receiver takes the
block over (counted by _core._codec_stats()).  With allocators where that is
not safe (debug hooks, -X dev, a debug build, a CPython whose layout
src/py/compat.h does not vouch for) the receiver copies instead: the tests
expect one or the other according to _codec_stats()["adopts"], and that
flag itself is checked against the build (test_adopts_where_expected)."""
import gc
import os
import subprocess
import sys

import pytest

import manygil
from helpers import pool_funcs as pf
from helpers.proc import child_env

MIB = 1 << 20
BIG = manygil._core.ADOPT_MIN     # the threshold (codec.c MG_ADOPT_MIN)
ADOPTS = manygil._core._codec_stats()["adopts"]
DEBUG_BUILD = hasattr(sys, "gettotalrefcount")
# Whether this build and CPython version take blocks over at all (then the
# allocators decide): release builds of the versions compat.h vouches for.
BUILD_ADOPTS = not DEBUG_BUILD and (3, 12) <= sys.version_info[:2] <= (3, 15)


def stats():
    return manygil._core._codec_stats()


def one_copy(k):
    """(adopted, copied) for k big values received: taken over where this
    build can, else copied by the receiver."""
    return (k, 0) if ADOPTS else (0, k)


def test_adopts_where_expected():
    # Release builds of 3.12-3.15 with the default allocators take blocks
    # over; debug builds never (their allocator hooks own every block).
    default_alloc = os.environ.get("PYTHONMALLOC", "") in ("", "pymalloc", "malloc")
    assert ADOPTS == (BUILD_ADOPTS and default_alloc and not sys.flags.dev_mode)


def pattern(n, typ=bytes):
    return typ((i * 7 + 3) % 256 for i in range(256)) * (n // 256) + typ(b"e" * (n % 256))


def adopted_delta(fn):
    """Run fn(); return (its result, blocks adopted, blocks copied meanwhile)."""
    before = stats()
    res = fn()
    after = stats()
    return (res, after["blocks_adopted"] - before["blocks_adopted"],
            after["blocks_copied"] - before["blocks_copied"])


@pytest.mark.parametrize("typ", [bytes, bytearray])
@pytest.mark.parametrize("n", [BIG, 2 * BIG + 1, 16 * MIB + 3])
def test_channel_takes_block_over(typ, n):
    r, s = manygil.create_channel()
    value = pattern(n, typ)

    def go():
        s.send(value)
        return r.recv()
    out, adopted, copied = adopted_delta(go)
    assert type(out) is typ and len(out) == n and out == value
    assert (adopted, copied) == one_copy(1), "one copy: the receiver takes the sender's block over"


def test_below_threshold_is_inline():
    r, s = manygil.create_channel()
    _, adopted, copied = adopted_delta(lambda: (s.send(b"x" * (BIG - 1)), r.recv()))
    assert (adopted, copied) == (0, 0)


def test_received_bytes_behave():
    r, s = manygil.create_channel()
    value = pattern(MIB)
    s.send(value)
    out = r.recv()
    assert hash(out) == hash(value)
    assert out[:10] == value[:10] and out[-5:] == value[-5:]
    assert out.upper().lower() == value.lower()
    assert memoryview(out).readonly
    assert {out: 1}[value] == 1
    del out
    gc.collect()


def test_received_bytearray_is_fully_usable():
    r, s = manygil.create_channel()
    value = pattern(MIB, bytearray)
    s.send(value)
    out = r.recv()
    out.extend(b"tail" * 100_000)          # grows (reallocates) the adopted buffer
    del out[:1000]                         # moves ob_start
    out[0:3] = b"abc"
    out.append(7)
    assert len(out) == MIB + 400_000 - 1000 + 1
    assert out[3:100] == value[1003:1100]
    out.clear()
    assert out == bytearray()


@pytest.mark.parametrize("n", [BIG, BIG + 1, 3 * BIG + 5])
def test_received_bytearray_is_laid_out_as_cpython_does(n):
    # The same allocated size as a bytearray CPython makes of that size
    # (3.12-3.14: data + NUL; 3.15: a bytes object of n), the NUL in place,
    # and every way of growing, shrinking, exporting and giving up its
    # storage works on it.
    r, s = manygil.create_channel()
    value = pattern(n, bytearray)
    s.send(value)
    out = r.recv()
    assert sys.getsizeof(out) == sys.getsizeof(bytearray(n))
    assert out == value and bytes(out) == bytes(value)
    with memoryview(out) as m:
        assert m.nbytes == n and m[-1] == value[-1]
        with pytest.raises(BufferError):
            out.append(1)                  # exported: cannot resize
    out += b"!"
    assert out[-2:] == value[-1:] + b"!"
    if hasattr(out, "take_bytes"):         # 3.15: hands its bytes storage out
        whole = out.take_bytes()
        assert type(whole) is bytes and whole == bytes(value) + b"!" and out == bytearray()
        out.extend(b"again")
        assert out == bytearray(b"again")
    else:
        del out[: n // 2]
        assert out == value[n // 2:] + b"!"
    del out
    gc.collect()


def test_queue_and_nested_values():
    q = manygil.create_queue()
    value = [pattern(BIG), {"k": pattern(BIG, bytearray)}, (1, pattern(2 * BIG))]

    def go():
        q.put(value)
        return q.get()
    out, adopted, copied = adopted_delta(go)
    assert out == value
    assert (adopted, copied) == one_copy(3)


def test_through_subinterpreter_and_back():
    r1, s1 = manygil.create_channel()
    r2, s2 = manygil.create_channel()
    value = pattern(4 * MIB)
    with manygil.create() as interp:
        interp.prepare_main(r=r1, s=s2)
        s1.send(value)
        interp.exec("v = r.recv(); s.send(v + b'!'); s.send(bytearray(v))")
        assert r2.recv() == value + b"!"
        back = r2.recv()
        assert type(back) is bytearray and back == value


def test_call_result_takes_block_over():
    with manygil.create() as interp:
        out, adopted, copied = adopted_delta(lambda: interp.call(pf.identity, pattern(MIB)))
    assert out == pattern(MIB)
    # The argument is lent (no copy on the way in); the result is copied once.
    assert (adopted, copied) == one_copy(1)


def test_pool_arguments_and_results():
    value = pattern(2 * MIB)
    with manygil.InterpreterPoolExecutor(1) as pool:
        pool.submit(pf.identity, 1).result(60)          # the worker is up
        out, adopted, copied = adopted_delta(lambda: pool.submit(pf.identity, value).result(60))
    assert out == value
    assert (adopted, copied) == one_copy(2), "argument and result: one copy each way"


def test_items_dropped_unreceived_are_freed():
    # Closing the receive end drops queued items: their blocks are freed
    # (the buffer releases them), nothing is taken over.
    r, s = manygil.create_channel()
    for _ in range(20):
        s.send(pattern(MIB))
    _, adopted, copied = adopted_delta(lambda: r.close())
    assert (adopted, copied) == (0, 0)       # neither: nobody received them


def test_sender_closed_before_receive():
    r, s = manygil.create_channel()
    interp = manygil.create()
    interp.prepare_main(s=s)
    interp.exec("s.send(b'z' * (1 << 20)); s.send(bytearray(b'y' * (1 << 20)))")
    interp.close()
    assert r.recv() == b"z" * MIB
    assert r.recv() == bytearray(b"y" * MIB)


CHILD = r"""
import sys, manygil
r, s = manygil.create_channel()
v = bytes(range(256)) * 4096
s.send(v); out = r.recv()
s.send(bytearray(v)); out2 = r.recv()
out2.extend(b"x" * 100000)
ok = out == v and out2[:len(v)] == v
st = manygil._core._codec_stats()
print(ok, st["blocks_adopted"], st["blocks_copied"])
"""


@pytest.mark.parametrize("env_extra,args,expect_adopt", [
    ({}, [], BUILD_ADOPTS),
    ({"PYTHONMALLOC": "malloc"}, [], BUILD_ADOPTS),
    ({"PYTHONMALLOC": "debug"}, [], False),
    ({"PYTHONMALLOC": "malloc_debug"}, [], False),
    ({}, ["-X", "dev"], False),
])
def test_allocators(env_extra, args, expect_adopt):
    env = child_env()
    env.pop("PYTHONMALLOC", None)
    env.update(env_extra)
    proc = subprocess.run([sys.executable, *args, "-c", CHILD], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    ok, adopted, copied = proc.stdout.split()
    assert ok == "True"
    if expect_adopt:
        assert (adopted, copied) == ("2", "0")
    else:
        assert (adopted, copied) == ("0", "2"), "with debug allocators (or builds) the receiver copies"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.rss_bound
def test_no_leak_over_many_transfers():
    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    r, s = manygil.create_channel()
    value = pattern(8 * MIB)
    for _ in range(5):
        s.send(value)
        r.recv()
    base = rss()
    for _ in range(100):               # 800 MiB through the channel
        s.send(value)
        s.send(bytearray(value))
        r.recv()
        r.recv()
    assert rss() - base < 64 * MIB
