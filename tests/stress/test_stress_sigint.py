"""Fault suite, Ctrl-C (issue 11): a systematic SIGINT sweep.

For each public operation (tests/stress/scripts/sigint_op.py: create, close,
exec, call, channel send/recv, queue put/get, pool submit+result, pool map,
SharedBuffer round trip), a first child run measures how long the
operation's phase takes; then K children (K = 8 x MANYGIL_STRESS) each get
one SIGINT at moment (k + 0.5) / K of that duration.  Each must either
finish the phase or raise KeyboardInterrupt out of it -- and, since the
signal always lands before the child leaves its ``try`` (see the protocol in
sigint_op.py), the KeyboardInterrupt must come (a lost Ctrl-C fails) -- then
still use what it set up (AGAIN) and a fresh interpreter (OK), and exit 0
with a clean stderr, in bounded time.
"""
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from _harness import (SCALE, Run, budget, check, child_env, kill_and_collect, problems, reps,
                      run_child, script)

OPS = ["create", "close", "exec_short", "exec_long", "call_short", "call_long", "channel",
       "queue", "pool_submit", "pool_map", "shared_buffer", "actor_submit"]
K = reps(8)
HARD = 30.0             # seconds a child may live at most


def _read_line(proc, deadline):
    """One line of the child's stdout (unbuffered, so that what follows it
    is left for communicate()); b"" at EOF or past the deadline."""
    fd = proc.stdout.fileno()
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return b""
        ch = os.read(fd, 1)
        if not ch:
            return line
        line += ch
    return line


def run_with_sigint(op, delay):
    """Run sigint_op.py OP; send SIGINT ``delay`` s after READY (None: no
    signal).  Returns the Run (stdout includes the READY line)."""
    cmd = [sys.executable, script("sigint_op.py"), op]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=child_env(), bufsize=0)
    notes = []
    ready = _read_line(proc, t0 + HARD)
    if ready == b"READY\n" and delay is not None:
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        notes.append(f"SIGINT sent {delay * 1000:.1f} ms after READY")
    elif ready != b"READY\n":
        notes.append("no READY line: no signal sent")
    try:
        out, err = proc.communicate(b"\n", timeout=max(1.0, HARD - (time.monotonic() - t0)))
        timed_out = False
    except subprocess.TimeoutExpired:
        out, err = kill_and_collect(proc)
        timed_out = True
    text = (ready + (out or b"")).decode("utf-8", "replace")
    return Run(cmd, proc.returncode, text, (err or b"").decode("utf-8", "replace"),
               time.monotonic() - t0, timed_out, notes)


def _phase_seconds(run):
    for line in run.lines:
        if line.startswith("DONE "):
            return float(line.split()[1])
    return None


@pytest.mark.parametrize("op", OPS)
@pytest.mark.timeout(budget(60 + 8 * 3))          # budget() scales it like K
def test_sigint_sweep(op):
    calib = run_with_sigint(op, None)
    found = problems(calib, max_seconds=HARD, expect_lines=("READY", "AGAIN", "OK", "END"))
    duration = _phase_seconds(calib)
    if duration is None:
        found.append("no DONE line")
    if found:
        raise AssertionError(f"{op}, measuring run (no signal): " + "; ".join(found)
                             + "\n" + calib.describe())
    bound = calib.seconds + 10.0
    outcomes = {"interrupted": 0, "finished first": 0}
    for k in range(K):
        delay = (k + 0.5) / K * duration
        run = run_with_sigint(op, delay)
        what = (f"{op}: SIGINT at {k + 1}/{K} of the {duration * 1000:.0f} ms phase "
                f"({delay * 1000:.1f} ms)")
        found = problems(run, max_seconds=bound, expect_lines=("READY", "AGAIN", "OK", "END"))
        ki = "KI" in run.lines
        done = _phase_seconds(run) is not None
        if not ki and not run.timed_out and run.rc == 0:
            found.append("the Ctrl-C was lost: no KeyboardInterrupt came out of the phase "
                         "or the wait after it")
        if found:
            raise AssertionError(f"{what}: " + "; ".join(found)
                                 + f"\n(before: {outcomes})\n" + run.describe())
        outcomes["finished first" if done else "interrupted"] += 1


@pytest.mark.timeout(budget(3 * 60))
def test_sigint_storm_on_pool_futures():
    """SIGINT every few ms for 3 s x MANYGIL_STRESS into a thread waiting on
    pool futures: every future still resolves to its value, the pool still
    runs tasks and shuts down (an interrupted ``with`` on a future's lock
    used to leave it held, and the collector thread blocked on it for good)."""
    seconds = 3.0 * max(1.0, SCALE)
    run = run_child("sigint_pool_repeat.py", seconds, timeout=seconds + 90)
    check(run, max_seconds=seconds + 60, expect_lines=("DONE",),
          what="Ctrl-C storm on pool futures")
    counts = dict(line.split() for line in run.lines if line[:2] in ("KI", "TA", "SE"))
    assert int(counts["KI"]) >= 20, f"too few interrupts landed to test anything\n{run.describe()}"
