"""Actor classes and task functions for tests/test_actors.py (importable by
reference in every interpreter)."""
import threading
import time


class Counter:
    def __init__(self, start=0, step=1):
        self.n = start
        self.step = step

    def incr(self, k=None):
        self.n += self.step if k is None else k
        return self.n

    def get(self):
        return self.n

    def where(self):
        import manygil
        return manygil.get_current().id


class Log:
    """Keeps every message it got, in order."""

    def __init__(self):
        self.items = []

    def add(self, item):
        self.items.append(item)

    def add_slowly(self, item, delay):
        time.sleep(delay)
        self.items.append(item)
        return item

    def items_(self):
        return list(self.items)


class Faulty:
    def __init__(self, fail=False):
        if fail:
            raise ValueError("bad start")
        self.calls = 0

    def fail(self, msg):
        self.calls += 1
        raise KeyError(msg)

    def unpicklable_error(self):
        class Local(Exception):
            pass
        raise Local("local class")

    def unshareable_result(self):
        self.calls += 1
        return threading.Lock()

    def ok(self):
        self.calls += 1
        return self.calls


class Collector:
    """Runs the garbage collector of the interpreter it lives in."""

    def collect(self):
        import gc
        return gc.collect()


class Sleeper:
    def sleep(self, s):
        time.sleep(s)
        return s

    def block_on(self, recv_id):
        from manygil import _core
        return _core._channel_recv(recv_id)


class Forwarder:
    """Calls another actor: refs passed in as arguments."""

    def __init__(self, other=None):
        self.other = other

    def via(self, k):
        return self.other.incr(k)

    def via_ref(self, ref, k):
        return ref.incr(k)

    def submit_then_work(self, ref, k):
        fut = ref.incr.submit(k)
        local = sum(range(1000))
        return fut.result(timeout=30) + local - local

    def tell_many(self, ref, tag, n):
        for i in range(n):
            ref.add.tell((tag, i))
        return n

    def ref_back(self, ref):
        return ref


def ref_in_task(ref, k):
    """A pool task that calls an actor."""
    return ref.incr(k)


def send_many(ref, tag, n):
    """Run in another interpreter: n calls, in order."""
    for i in range(n):
        ref.add.tell((tag, i))
    ref.add((tag, "end"))
    return n


def recv_ref_and_call(recv, k):
    ref = recv.recv(timeout=30)
    return ref.incr(k)


class Peer:
    """For cycles: calls a peer (set later) and waits."""

    def __init__(self):
        self.peer = None
        self.me = None

    def set_peer(self, peer, me=None):
        self.peer = peer
        self.me = me

    def ping(self, hops, timeout=None):
        """Call peer.ping(hops - 1); at 0 return.  Waits on each call."""
        if hops == 0:
            return "done"
        return self.peer.ping(hops - 1)

    def ping_with_timeout(self, hops, t):
        if hops == 0:
            return "done"
        return self.peer.ping_with_timeout(hops - 1, t, timeout=t)

    def self_call(self):
        return self.me.get_n()

    def get_n(self):
        return 1

    def outcome_of_ping(self, hops):
        """Run ping and report the exception type and message (not raise)."""
        try:
            return ("ok", self.ping(hops))
        except BaseException as e:
            return (type(e).__name__, str(e))

    def tell_peer(self, hops):
        if hops:
            self.peer.tell_peer.tell(hops - 1)
        return "told"

    def slow(self, s):
        time.sleep(s)
        return "slow"

    def ask_slow(self, s):
        return self.peer.slow(s)


class Spinner:
    """Runs Python code until told otherwise (for interrupts and the watchdog)."""

    def __init__(self):
        self.started = 0
        self.finished = 0

    def spin(self, seconds):
        self.started += 1
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pass
        self.finished += 1
        return "spun"

    def counts(self):
        return (self.started, self.finished)


def interrupt_ref(ref):
    """From another interpreter: interrupt the actor's running method."""
    return ref.interrupt()


class Blocker:
    """For tests/test_actor_abandon.py: state set by __init__, and methods
    stuck in C code that an interrupt cannot stop."""

    def __init__(self, start=0, flag=None):
        # flag: a path; the first __init__ creates it, a second one (a
        # restart) raises -- a restart that fails.
        if flag is not None:
            import os
            if os.path.exists(flag):
                raise RuntimeError("no second __init__")
            open(flag, "w").close()
        self.n = start

    def incr(self):
        self.n += 1
        return self.n

    def read_fd(self, fd):
        """Blocks in os.read until the test writes to the pipe."""
        import os
        return os.read(fd, 1)

    def sleep(self, seconds):
        time.sleep(seconds)
        return "slept"


def incr_blocker(ref):
    return ref.incr()


def _refuse_rebuild():
    raise RuntimeError("an Unloadable cannot be rebuilt")


class Unloadable:
    """Crosses as a pickle whose loading raises: a value the receiving
    interpreter cannot load (as a class of a module that refuses to import
    there would be)."""

    def __reduce__(self):
        return (_refuse_rebuild, ())
