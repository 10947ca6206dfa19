"""Functions run *inside* subinterpreters by tests/test_deadlock.py.

Imported by reference in subinterpreters: keep imports light (no pytest, no
numpy, no hashlib; see helpers/__init__.py).

The channel ends / queues a test works on are bound as globals of the
interpreter's ``__main__`` with ``prepare_main`` (so the main interpreter can
drop every handle of its own); these functions look them up by name.

Every blocking helper reports what happened instead of raising, as a dict:
``{"kind": "value" | "deadlock" | "error", ..., "t0": before, "t1": after}``
where ``t0``/``t1`` are ``time.monotonic()`` readings (one clock for the
whole process, so the main interpreter can compare them with its own).
"""
import gc
import threading
import time

import manygil


def _g(name):
    import __main__
    return getattr(__main__, name)


def _outcome(op):
    t0 = time.monotonic()
    try:
        value = op()
    except manygil.DeadlockError as exc:
        return {"kind": "deadlock", "msg": str(exc), "type": type(exc).__name__,
                "runtime_error": isinstance(exc, RuntimeError),
                "t0": t0, "t1": time.monotonic()}
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return {"kind": "error", "type": type(exc).__name__, "msg": str(exc),
                "timeout_error": isinstance(exc, TimeoutError),
                "t0": t0, "t1": time.monotonic()}
    return {"kind": "value", "value": value, "t0": t0, "t1": time.monotonic()}


# --- single blocking operations on a __main__ global ---------------------------

def recv(name="r", timeout=None):
    end = _g(name)
    return _outcome(lambda: end.recv(timeout=timeout))


def send(name="s", value=None, timeout=None):
    end = _g(name)

    def op():
        end.send(value, timeout=timeout)
        return "sent"
    return _outcome(op)


def get(name="r", timeout=None):
    q = _g(name)
    return _outcome(lambda: q.get(timeout=timeout))


def put(name="s", value=None, timeout=None):
    q = _g(name)

    def op():
        q.put(value, timeout=timeout)
        return "put"
    return _outcome(op)


def seed_recv(recv_id, timeout=None):
    from manygil import interpreters
    return _outcome(lambda: interpreters.channel_recv(recv_id, timeout=timeout))


# --- look-alike scenarios ---------------------------------------------------------

def recv_then_send(rname="r", sname="s", suffix="!"):
    """Receive (no timeout), then send back the value + suffix."""
    end, out = _g(rname), _g(sname)

    def op():
        v = end.recv()
        out.send(v + suffix)
        return v
    return _outcome(op)


def get_then_put(rname="r", sname="s", suffix="!"):
    q, out = _g(rname), _g(sname)

    def op():
        v = q.get()
        out.put(v + suffix)
        return v
    return _outcome(op)


def sleep_send_recv(delay, value, sname="s", rname="r"):
    """Sleep (outside manygil), send, then receive without timeout."""
    out, end = _g(sname), _g(rname)

    def op():
        time.sleep(delay)
        out.send(value)
        return end.recv()
    return _outcome(op)


def thread_sends_later_then_recv(delay, value, sname="s", rname="r"):
    """A second thread of this interpreter (started with threading) sends
    ``value`` on ``sname`` after ``delay``; this thread receives on ``rname``
    without timeout meanwhile."""
    out, end = _g(sname), _g(rname)

    def later():
        time.sleep(delay)
        out.send(value)

    t = threading.Thread(target=later)
    t.start()
    try:
        return _outcome(lambda: end.recv())
    finally:
        t.join()


def send_now(sname="s", value=None):
    _g(sname).send(value, timeout=5)
    return True


def put_now(sname="s", value=None):
    _g(sname).put(value, timeout=5)
    return True


def recv_now(rname="r", timeout=5):
    return _g(rname).recv(timeout=timeout)


def get_now(rname="r", timeout=5):
    return _g(rname).get(timeout=timeout)


def ping_pong(rname, sname, n, first):
    """Exchange ``n`` messages over the given ends (with timeouts)."""
    end, out = _g(rname), _g(sname)
    got = []
    if first:
        out.send(0, timeout=10)
    for _ in range(n):
        v = end.recv(timeout=10)
        got.append(v)
        out.send(v + 1, timeout=10)
    return got


def interp_id():
    from manygil import interpreters
    return interpreters.get_current()


def compute(n):
    return sum(i * i for i in range(n))


# --- cleanup -------------------------------------------------------------------

def _manygil_globals():
    import __main__
    kinds = (manygil.RecvChannel, manygil.SendChannel, type(manygil.create_queue()))
    return [(k, v) for k, v in list(vars(__main__).items()) if isinstance(v, kinds)]


def rescue():
    """Wake whatever may still be blocked on this interpreter's ends: close
    channel ends, feed/drain queues.  Only used when a test already failed."""
    for _name, obj in _manygil_globals():
        try:
            if isinstance(obj, (manygil.RecvChannel, manygil.SendChannel)):
                obj.close()
            else:
                if obj.full():
                    obj.get_nowait()
                else:
                    obj.put_nowait(None)
        except Exception:  # noqa: BLE001 - best effort
            pass
    return True


def clear():
    """Drop every channel end / queue bound in ``__main__``."""
    import __main__
    for name, _obj in _manygil_globals():
        delattr(__main__, name)
    gc.collect()
    return True
