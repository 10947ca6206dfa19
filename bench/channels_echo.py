"""Loops that bench/channels.py runs inside subinterpreters (and threads).

Module-level, so they cross by reference: bench/ must be on the target
interpreter's sys.path (manygil interpreters copy main's sys.path when they
are created; bench/channels.py puts bench/ there first).
"""


def echo_channel(r, s):
    """Send back every value received on r, until None."""
    while True:
        x = r.recv()
        if x is None:
            break
        s.send(x)


def echo_queue(q_in, q_out):
    """Put back every value got from q_in, until None."""
    while True:
        x = q_in.get()
        if x is None:
            break
        q_out.put(x)


def count_channel(r, ready):
    """Say ready, then count the values received on r until None."""
    ready.send(1)
    n = 0
    while True:
        x = r.recv()
        if x is None:
            return n
        n += 1


def count_queue(q, ready):
    """Say ready, then count the values got from q until None."""
    ready.put(1)
    n = 0
    while True:
        x = q.get()
        if x is None:
            return n
        n += 1
