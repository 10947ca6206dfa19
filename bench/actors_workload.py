"""Actor classes for bench/actors.py, importable by reference in every
interpreter (bench/ is on their sys.path), and the two baselines' actor
machinery: Pykka-style thread actors (a thread and a queue.Queue each) and
one process per actor (multiprocessing)."""
import queue
import threading
import time


def spin(n):
    x = 0
    for i in range(n):
        x += i * i
    return x


class Bench:
    """The actor every row uses."""

    def __init__(self, peer=None):
        self.n = 0
        self.peer = peer

    def echo(self, x):
        return x

    def add(self, x):
        self.n += 1

    def count(self):
        return self.n

    def spin(self, n):
        return spin(n)

    def call_peer(self, rounds):
        """Median ns of rounds calls peer.echo(i) (this actor -> another)."""
        peer, clock, times = self.peer, time.perf_counter_ns, []
        for i in range(rounds):
            t0 = clock()
            peer.echo(i)
            times.append(clock() - t0)
        times.sort()
        return times[len(times) // 2]


# ---- Pykka-style thread actors ----------------------------------------------

class ThreadRef:
    """An actor on a thread of its own with a queue.Queue inbox; a call
    waits on a one-slot queue.Queue (Pykka's ThreadingFuture does)."""

    def __init__(self, cls, *args):
        self.inbox = queue.Queue()
        self.obj = cls(*args)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        get, obj = self.inbox.get, self.obj
        while True:
            msg = get()
            if msg is None:
                return
            name, args, reply = msg
            value = getattr(obj, name)(*args)
            if reply is not None:
                reply.put(value)

    def call(self, name, *args):
        reply = queue.Queue(1)
        self.inbox.put((name, args, reply))
        return reply.get()

    def tell(self, name, *args):
        self.inbox.put((name, args, None))

    def echo(self, x):                      # what Bench.call_peer calls
        return self.call("echo", x)

    def stop(self):
        self.inbox.put(None)
        self.thread.join()


# ---- one process per actor ---------------------------------------------------

def _process_loop(cls, args, inbox, outbox):
    obj = cls(*args)
    while True:
        msg = inbox.get()
        if msg is None:
            return
        name, args_, want = msg
        value = getattr(obj, name)(*args_)
        if want:
            outbox.put(value)


class ProcessRef:
    """An actor in a process of its own: a multiprocessing.Queue each way."""

    def __init__(self, ctx, cls, *args):
        self.inbox, self.outbox = ctx.Queue(), ctx.Queue()
        self.proc = ctx.Process(target=_process_loop, args=(cls, args, self.inbox, self.outbox),
                                daemon=True)
        self.proc.start()

    def call(self, name, *args):
        self.inbox.put((name, args, True))
        return self.outbox.get()

    def tell(self, name, *args):
        self.inbox.put((name, args, False))

    def echo(self, x):
        return self.call("echo", x)

    def stop(self):
        self.inbox.put(None)
        self.proc.join()
