"""Functions run inside interpreters by the SharedBuffer tests."""
import manygil


def fill(buf, lo, hi, value):
    """Write `value` into bytes [lo, hi) of buf; return how many."""
    m = memoryview(buf)
    m[lo:hi] = bytes([value]) * (hi - lo)
    m.release()
    return hi - lo


def checksum(buf, lo=0, hi=None):
    return sum(memoryview(buf)[lo:hi])


def first_bytes(buf, n):
    return bytes(memoryview(buf)[:n])


def echo(x):
    return x


def make_buffer(n, value):
    buf = manygil.SharedBuffer(n)
    fill(buf, 0, n, value)
    return buf


def scale_doubles(buf, factor):
    """The numpy pattern's worker side: typed access with memoryview.cast."""
    m = memoryview(buf).cast("d")
    for i in range(len(m)):
        m[i] = m[i] * factor
    m.release()
    return True


_kept = []


def keep(buf):
    """Hold a view of buf in this interpreter after the caller dropped it."""
    _kept.append(memoryview(buf))
    return len(_kept)


def kept_sum():
    return sum(sum(m) for m in _kept)


def drop_kept():
    for m in _kept:
        m.release()
    _kept.clear()


def blob_info(blob):
    """What a Blob (see blob.py) was rebuilt on: the object behind its data."""
    return type(blob.data.obj).__name__, len(blob.data), bytes(blob.data[:4])
