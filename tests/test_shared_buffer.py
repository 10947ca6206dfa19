"""SharedBuffer: memory shared by every interpreter, sent by reference."""
import gc
import threading
import time

import pytest

import manygil
from helpers import shbuf_funcs as sf
from helpers.blob import Blob
from helpers.proc import describe, run_python

MIB = 1 << 20


def test_new_is_zero_filled_writable_and_sized():
    buf = manygil.SharedBuffer(1000)
    assert len(buf) == buf.nbytes == 1000
    m = memoryview(buf)
    assert not m.readonly and m.nbytes == 1000 and bytes(m) == bytes(1000)
    m[10:13] = b"abc"
    assert bytes(memoryview(buf)[10:13]) == b"abc"


def test_typed_views_and_slicing():
    buf = manygil.SharedBuffer(8 * 4)
    d = memoryview(buf).cast("d")
    d[2] = 1.5
    assert memoryview(buf).cast("d")[2] == 1.5
    assert len(memoryview(buf)[8:16]) == 8


def test_frombytes_copies_any_bytes_like_once():
    src = bytearray(b"hello world")
    buf = manygil.SharedBuffer.frombytes(src)
    src[0] = ord("J")
    assert bytes(buf) == b"hello world"
    import array
    arr = array.array("i", [1, 2, 3])
    assert bytes(manygil.SharedBuffer.frombytes(arr)) == arr.tobytes()
    assert bytes(manygil.SharedBuffer.frombytes(memoryview(b"abcdef")[::2])) == b"ace"
    assert len(manygil.SharedBuffer.frombytes(b"")) == 0


@pytest.mark.parametrize("bad, exc", [(-1, ValueError), (-(2**70), ValueError),
                                      (2**70, MemoryError), (2**50, MemoryError),
                                      ("10", TypeError), (1.5, TypeError), (None, TypeError)])
def test_bad_sizes(bad, exc):
    with pytest.raises(exc):
        manygil.SharedBuffer(bad)


@pytest.mark.parametrize("bad", [3, "text", None, object()])
def test_frombytes_rejects_non_bytes_like(bad):
    with pytest.raises(TypeError):
        manygil.SharedBuffer.frombytes(bad)


def test_readonly_view_shares_memory_and_refuses_writes(interp):
    buf = manygil.SharedBuffer(16)
    ro = buf.readonly()
    assert memoryview(ro).readonly
    with pytest.raises(TypeError):
        memoryview(ro)[0] = 1
    memoryview(buf)[0] = 7
    assert memoryview(ro)[0] == 7
    with pytest.raises(manygil.ExecutionFailed) as info:
        interp.call(sf.fill, ro, 0, 1, 1)
    assert info.value.excinfo.type.__name__ == "TypeError"
    assert interp.call(sf.first_bytes, ro, 1) == b"\x07"


def test_release_refuses_while_views_exist_then_invalidates():
    buf = manygil.SharedBuffer(10)
    m = memoryview(buf)
    with pytest.raises(BufferError):
        buf.release()
    m.release()
    buf.release()
    buf.release()                       # twice is harmless
    with pytest.raises(ValueError):
        memoryview(buf)
    with pytest.raises(ValueError):
        len(buf)
    with pytest.raises(ValueError):
        manygil.create_queue().put(buf)
    assert "released" in repr(buf)


def test_crosses_by_reference_everywhere(interp):
    """Call arguments and results, prepare_main, channels, queues, the pool:
    every side sees the same bytes."""
    buf = manygil.SharedBuffer(64)
    assert interp.call(sf.fill, buf, 0, 8, 1) == 8
    assert bytes(buf)[:8] == b"\x01" * 8
    back = interp.call(sf.echo, buf)
    memoryview(back)[8] = 2
    assert memoryview(buf)[8] == 2
    interp.prepare_main(shared=buf)
    interp.exec("memoryview(shared)[9] = 3")
    assert memoryview(buf)[9] == 3
    r, s = manygil.create_channel()
    s.send(buf)
    got = r.recv()
    memoryview(got)[10] = 4
    assert memoryview(buf)[10] == 4
    q = manygil.create_queue()
    q.put(buf)
    interp.call(sf.fill, q.get(), 11, 12, 5)
    assert memoryview(buf)[11] == 5
    with manygil.InterpreterPoolExecutor(1) as pool:
        assert pool.submit(sf.fill, buf, 12, 13, 6).result(60) == 1
    assert memoryview(buf)[12] == 6


def test_buffer_outlives_the_interpreter_that_made_it():
    with manygil.create() as maker:
        buf = maker.call(sf.make_buffer, 1000, 9)
    assert bytes(buf) == b"\x09" * 1000
    with manygil.create() as other:
        assert other.call(sf.checksum, buf) == 9000


def test_view_held_in_a_worker_after_main_dropped_every_reference(interp):
    buf = manygil.SharedBuffer(100)
    memoryview(buf)[:] = b"\x02" * 100
    interp.call(sf.keep, buf)
    del buf
    gc.collect()
    # Churn the allocator a little: freed memory would be reused.
    junk = [bytearray(100) for _ in range(1000)]
    del junk
    assert interp.call(sf.kept_sum) == 200
    interp.call(sf.drop_kept)


def test_views_released_in_any_order():
    with manygil.create() as a, manygil.create() as b:
        buf = manygil.SharedBuffer(4096)
        a.call(sf.keep, buf)
        b.call(sf.keep, buf)
        del buf
        gc.collect()
        a.call(sf.drop_kept)
        assert b.call(sf.kept_sum) == 0
        b.call(sf.drop_kept)


@pytest.mark.timeout(120)
def test_four_interpreters_write_disjoint_slices_concurrently():
    n = 4 * MIB
    buf = manygil.SharedBuffer(n)
    interps = [manygil.create() for _ in range(4)]
    try:
        quarter = n // 4
        errors = []

        def work(k, it):
            try:
                for _ in range(3):
                    it.call(sf.fill, buf, k * quarter, (k + 1) * quarter, k + 1)
            except BaseException as exc:     # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(k, it)) for k, it in enumerate(interps)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        data = bytes(buf)
        for k in range(4):
            assert data[k * quarter:(k + 1) * quarter] == bytes([k + 1]) * quarter
    finally:
        for it in interps:
            it.close()


def test_sending_costs_the_same_whatever_the_size(interp):
    """O(1): a 256 MiB buffer crosses about as fast as a 1 KiB one (same-run
    ratio, generous bound)."""
    small, big = manygil.SharedBuffer(1024), manygil.SharedBuffer(256 * MIB)

    def best(buf):
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            interp.call(sf.echo, buf)
            times.append(time.perf_counter() - t0)
        return min(times)

    best(small)
    assert best(big) < 20 * best(small) + 50e-6


def test_out_of_band_pickle_buffers_are_not_copied_on_arrival(interp):
    """An object carrying a big out-of-band buffer is rebuilt on the shared
    block itself (one copy in all: into shared memory); small ones go
    in-band."""
    payload = bytes(range(256)) * 1024              # 256 KiB
    kind, size, head = interp.call(sf.blob_info, Blob(bytearray(payload)))
    assert kind == "SharedBuffer" and size == len(payload) and head == payload[:4]
    kind, size, head = interp.call(sf.blob_info, Blob(bytearray(b"tiny")))
    assert kind != "SharedBuffer" and size == 4


def test_numpy_pattern_in_the_main_interpreter(interp):
    """numpy views a SharedBuffer without copying; a worker computes on it
    with memoryview.cast; main sees the results in place."""
    np = pytest.importorskip("numpy")
    buf = manygil.SharedBuffer(8 * 1000)
    arr = np.frombuffer(buf, dtype=np.float64)
    arr[:] = np.arange(1000)
    assert interp.call(sf.scale_doubles, buf, 2.0)
    assert arr[999] == 1998.0 and arr.sum() == 2 * np.arange(1000).sum()


@pytest.mark.timeout(120)
@pytest.mark.rss_bound
def test_memory_returns_to_the_os_after_a_1gib_buffer_is_released():
    code = r'''
import gc, manygil
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
base = rss()
buf = manygil.SharedBuffer(1 << 30)
m = memoryview(buf)
m[::4096] = b"\x01" * len(range(0, 1 << 30, 4096))   # touch every page
m.release()
peak = rss()
with manygil.create() as it:
    it.exec("pass")
    del buf
    gc.collect()
after = rss()
print(peak - base, after - base)
'''
    proc = run_python(["-c", code], timeout=110)
    assert proc.returncode == 0, describe(proc)
    grew, left = map(int, proc.stdout.split())
    assert grew > 900 * MIB
    assert left < 100 * MIB


def test_big_bytes_values_cross_intact_by_every_path(interp):
    """Big bytes/bytearray are lent to Interpreter.call and prepare_main
    (one copy), and copied into channels (the sender may drop them)."""
    import gc
    big = bytes(range(256)) * 1024                  # 256 KiB
    assert interp.call(sf.echo, big) == big
    back = interp.call(sf.echo, bytearray(big))
    assert type(back) is bytearray and back == big
    interp.prepare_main(data=big)
    interp.exec("assert data[:3] == bytes([0, 1, 2]) and len(data) == 262144")
    r, s = manygil.create_channel()
    payload = bytearray(big)
    s.send(payload)
    payload[:] = b""                                 # the sender changes it at once
    del payload
    gc.collect()
    assert r.recv() == big


def test_memoryviews_cross_with_format_shape_and_readonly(interp):
    import array
    m = memoryview(array.array("d", [1.5, 2.5, 3.5]))
    got = interp.call(sf.echo, m)
    assert isinstance(got, memoryview) and got.format == "d" and got.tolist() == [1.5, 2.5, 3.5]
    grid = memoryview(bytearray(24)).cast("i", (2, 3))
    got = interp.call(sf.echo, grid)
    assert got.shape == (2, 3) and got.format == "i"
    ro = interp.call(sf.echo, memoryview(b"abcdef"))
    assert ro.readonly and bytes(ro) == b"abcdef"
    r, s = manygil.create_channel()
    s.send(memoryview(b"xyz")[::2])                  # not contiguous: copied in order
    assert bytes(r.recv()) == b"xz"
