"""One public operation, repeated for a while, with SIGINT from the parent.

usage: sigint_op.py OP [REPEAT=1.0]

Protocol with the parent (tests/stress/test_stress_sigint.py):
  the child sets the operation up and prints ``READY``; then runs the
  operation's phase (the parent sends one SIGINT at a chosen moment of it, or
  none to measure it) and prints ``DONE <seconds>`` if the phase ends; then
  it reads one line from stdin, which the parent writes only after it has
  sent its signal -- so the signal always lands inside the ``try`` below,
  and ``KI`` is printed when KeyboardInterrupt came out of it.  Any other
  exception is a failure (a traceback, exit code 1).  Then it cleans up,
  checks that the interrupted setup still works (``AGAIN``), that a fresh
  interpreter works (``OK``), and prints ``END``.
"""
import signal
import sys
import threading
import time

# Python's own KeyboardInterrupt handler, whatever this process inherited
# (a shell's background job ignores SIGINT, and Python then installs none:
# the sweep would test nothing).  Set here, not by the parent's preexec_fn:
# a fork that runs Python in the child dies while the parent (pytest) has
# subinterpreters alive.
signal.signal(signal.SIGINT, signal.default_int_handler)

import manygil      # noqa: E402
from _child import (Echo, buffer_touch, echo_channel, echo_queue, fail, ident, short, spin)

OPS = {}


def op(cls):
    OPS[cls.__name__] = cls
    return cls


class Op:
    reps = 1

    def setup(self):
        pass

    def phase(self):
        raise NotImplementedError

    def again(self):
        """After the phase (interrupted or not): the same setup still works."""

    def cleanup(self):
        pass


@op
class create(Op):
    reps = 6

    def setup(self):
        self.made = []

    def phase(self):
        for _ in range(self.reps):
            self.made.append(manygil.create())

    def again(self):
        if self.made and self.made[-1].call(ident, 5) != 5:
            fail("the last interpreter created does not work")

    def cleanup(self):
        for interp in self.made:
            interp.close()


@op
class close(Op):
    reps = 12

    def setup(self):
        self.interps = [manygil.create() for _ in range(self.reps)]

    def phase(self):
        for interp in self.interps:
            interp.close()

    def cleanup(self):
        for interp in self.interps:
            interp.close()          # harmless twice


class _OneInterp(Op):
    def setup(self):
        self.interp = manygil.create()
        self.interp.call(ident, 0)          # warm: thread state, modules

    def again(self):
        if self.interp.call(ident, 5) != 5:
            fail("the interpreter used by the phase does not work any more")

    def cleanup(self):
        end = time.monotonic() + 10
        while True:
            try:
                self.interp.close()
                return
            except manygil.InterpreterError:
                if time.monotonic() > end:
                    fail("the interpreter still runs code 10 s after the phase")
                time.sleep(0.01)


@op
class exec_short(_OneInterp):
    reps = 1500

    def phase(self):
        for _ in range(self.reps):
            self.interp.exec("x = sum(range(500))")


@op
class exec_long(_OneInterp):
    def phase(self):
        self.interp.exec("import time\n"
                         "end = time.perf_counter() + 0.25\n"
                         "while time.perf_counter() < end:\n"
                         "    pass\n")


@op
class call_short(_OneInterp):
    reps = 12000

    def phase(self):
        for k in range(self.reps):
            if self.interp.call(short, k % 100) != sum(range(k % 100)):
                fail("wrong result")


@op
class call_long(_OneInterp):
    def phase(self):
        self.interp.call(spin, 0.25)


@op
class channel(_OneInterp):
    reps = 6000

    def setup(self):
        super().setup()
        self.req_r, self.req_s = manygil.create_channel()
        self.rep_r, self.rep_s = manygil.create_channel()
        self.echo = threading.Thread(target=self.interp.call,
                                     args=(echo_channel, self.req_r, self.rep_s))
        self.echo.start()

    def phase(self):
        for k in range(self.reps):
            self.req_s.send(k)
            if self.rep_r.recv() != k:
                fail("channel echo out of order")

    def again(self):
        r, s = manygil.create_channel()
        s.send("again")
        if r.recv(timeout=10) != "again":
            fail("a fresh channel does not work")

    def cleanup(self):
        self.req_s.close()
        self.echo.join(10)
        if self.echo.is_alive():
            fail("the echo interpreter did not see its request channel close")
        super().cleanup()


@op
class queue(_OneInterp):
    reps = 3000

    def setup(self):
        super().setup()
        self.req = manygil.create_queue()
        self.rep = manygil.create_queue()
        self.echo = threading.Thread(target=self.interp.call, args=(echo_queue, self.req, self.rep))
        self.echo.start()

    def phase(self):
        for k in range(self.reps):
            self.req.put(k)
            if self.rep.get() != k:
                fail("queue echo out of order")

    def again(self):
        q = manygil.create_queue()
        q.put("again")
        if q.get(timeout=10) != "again":
            fail("a fresh queue does not work")

    def cleanup(self):
        self.req.put(None)
        self.echo.join(10)
        if self.echo.is_alive():
            fail("the echo interpreter did not get its stop message")
        super().cleanup()


class _Pool(Op):
    def setup(self):
        self.pool = manygil.InterpreterPoolExecutor(2)
        self.pool.submit(ident, 0).result(timeout=30)

    def again(self):
        if self.pool.submit(ident, 5).result(timeout=30) != 5:
            fail("the pool does not work any more")

    def cleanup(self):
        self.pool.shutdown(wait=True)


@op
class pool_submit(_Pool):
    reps = 2000

    def phase(self):
        for k in range(self.reps):
            if self.pool.submit(ident, k).result(timeout=30) != k:
                fail("wrong pool result")


@op
class pool_map(_Pool):
    reps = 60

    def phase(self):
        for _ in range(self.reps):
            got = list(self.pool.map(short, [30] * 5000))
            if got != [sum(range(30))] * 5000:
                fail("wrong map result")


@op
class shared_buffer(_OneInterp):
    reps = 2500

    def phase(self):
        for k in range(self.reps):
            buf = manygil.SharedBuffer(4096)
            v = k % 256
            if self.interp.call(buffer_touch, buf, v) != 4096 * v:
                fail("wrong sum from the interpreter")
            m = memoryview(buf)
            if m[0] != v or m[-1] != v:
                fail("the buffer does not hold what the interpreter wrote")
            m.release()
            buf.release()


@op
class actor_submit(Op):
    """submit() (a future, the reply collector's thread started and ended
    again and again) and call() on a dedicated actor."""
    reps = 800

    def setup(self):
        # No linger: the reply thread ends after every future, so each
        # submit() starts it again -- the start is what a SIGINT must not break.
        from manygil import _actors
        _actors._get_collector().linger = 0.0
        self.ref = manygil.spawn(Echo, dedicated=True)
        if self.ref.echo(0) != 0:
            fail("the actor does not answer")

    def phase(self):
        for k in range(self.reps):
            if self.ref.echo.submit(k).result(timeout=30) != k:
                fail("wrong actor result from submit()")
            if self.ref.echo(k) != k:
                fail("wrong actor result from a call")

    def again(self):
        futs = [self.ref.echo.submit(k) for k in range(5)]
        if [f.result(timeout=30) for f in futs] != list(range(5)):
            fail("the actor's replies do not come any more")

    def cleanup(self):
        self.ref.stop()


def _tick():
    """A Python call: its entry checks for a pending signal handler."""


def say(line):
    """Write one protocol line with its newline in one write() call:
    print() writes the text and the newline separately, and a SIGINT landing
    between the two glued ``DONE 0.1333`` and ``KI`` into one line."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main():
    name = sys.argv[1]
    repeat = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    if name not in OPS:
        fail(f"unknown op {name!r}; known: {sorted(OPS)}")
    the_op = OPS[name]()
    the_op.reps = max(1, int(the_op.reps * repeat))
    the_op.setup()
    try:
        # READY inside the try: the signal may come as soon as it is written.
        say("READY")
        t0 = time.perf_counter()
        the_op.phase()
        say(f"DONE {time.perf_counter() - t0:.4f}")
        sys.stdin.readline()
        _tick()
    except KeyboardInterrupt:
        say("KI")
        sys.stdin.readline()
    the_op.again()
    print("AGAIN", flush=True)
    the_op.cleanup()
    fresh = manygil.create()
    if fresh.call(ident, 7) != 7:
        fail("a fresh interpreter does not work after the signal")
    fresh.close()
    print("OK", flush=True)
    print("END", flush=True)


if __name__ == "__main__":
    main()
