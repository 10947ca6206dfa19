"""Test-side helpers for actors: seeing an actor's method run."""
import time

import manygil


def method_runs(ref):
    """The activity records of ref's methods running now."""
    return [r for r in manygil._core._activity()
            if r[0] == "run" and r[4] == "actor" and r[5] == ref._uid]


def wait_running(ref, timeout=30):
    """Wait until one of ref's methods runs."""
    deadline = time.monotonic() + timeout
    while not method_runs(ref):
        assert time.monotonic() < deadline, f"{ref} never started its method"
        time.sleep(0.005)
