"""Shared machinery of the fault suite (tests/stress): run a child script
with ``sys.executable`` under a hard timeout and judge how it ended.

Every race and every exit case runs in a child process, so a crash, an abort
or a hang kills a child, never the test run, and each child is judged the
same way (:func:`check`):

* its exit code is the one the program asked for (0, or e.g. 3 for
  ``sys.exit(3)``); a signal death shows as a negative code;
* its stderr holds none of :data:`BAD_MARKERS` (CPython's fatal errors,
  unraisable exceptions, sanitizer reports);
* it ended within its time bound (``max_seconds``), and did not have to be
  killed at the hard ``timeout``.

Repetitions scale with the environment variable ``MANYGIL_STRESS`` (a
positive number, default 1): :func:`reps` multiplies every repetition count
by it and :func:`budget` every pytest timeout, so ``MANYGIL_STRESS=10
scripts/test.sh tests/stress`` runs ten times as many loops and child runs.

Child scripts live in tests/stress/scripts/; they import ``_child`` (next to
them) for the common prelude.  Run one by hand, e.g.
``.venv-3.13/bin/python tests/stress/scripts/race_interrupt_call.py 20000``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from helpers.proc import xfail_known_debug_exit_assert

STRESS_DIR = os.path.dirname(os.path.abspath(__file__))
SCRIPTS_DIR = os.path.join(STRESS_DIR, "scripts")

# Text that must never appear on a child's stderr.
BAD_MARKERS = (
    "Fatal",                # "Fatal Python error: ..." (aborts, segfaults via faulthandler)
    "Exception ignored",    # unraisable exceptions (in __del__, atexit, threads at exit)
    "Segmentation",
    "AddressSanitizer",
    "runtime error:",       # UBSan
    "ThreadSanitizer",
    # Every child script catches the exceptions it expects: a traceback on
    # stderr is an uncaught or logged one (e.g. a pool thread that failed).
    "Traceback (most recent call last)",
)


def _read_scale() -> float:
    raw = os.environ.get("MANYGIL_STRESS", "").strip()
    if not raw:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        raise RuntimeError(f"MANYGIL_STRESS must be a positive number, not {raw!r}") from None
    if not value > 0:
        raise RuntimeError(f"MANYGIL_STRESS must be a positive number, not {raw!r}")
    return value


SCALE = _read_scale()
# Debug builds and sanitizers run everything slower (scripts/root-job.sh
# sets this there): hard timeouts and time bounds stretch by it.
SLOW = float(os.environ.get("MANYGIL_TIMEOUT_SCALE", "1") or 1)


def reps(n: int) -> int:
    """A repetition count: ``n`` times MANYGIL_STRESS (at least 1)."""
    return max(1, int(round(n * SCALE)))


def budget(seconds: float) -> int:
    """A pytest timeout for a test whose default run takes about
    ``seconds``/3 (room for a slow, shared VM), scaled like the work."""
    return int(seconds * max(1.0, SCALE)) + 30


def script(name: str) -> str:
    """The path of a child script in tests/stress/scripts/."""
    path = os.path.join(SCRIPTS_DIR, name)
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    return path


def child_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.pop("PYTHONDEVMODE", None)
    env["PYTHONFAULTHANDLER"] = "1"          # a crash prints its stacks
    env["PYTHONUNBUFFERED"] = "1"            # stdout lines arrive as written
    if extra:
        env.update({k: str(v) for k, v in extra.items()})
    return env


@dataclass
class Run:
    """How one child run ended."""
    cmd: list
    rc: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    notes: list = field(default_factory=list)

    def describe(self) -> str:
        tail = lambda s: s if len(s) < 6000 else "...\n" + s[-6000:]   # noqa: E731
        how = "KILLED at the hard timeout (hang)" if self.timed_out else f"rc={self.rc}"
        notes = "".join(f"\n{n}" for n in self.notes)
        return (f"{' '.join(map(str, self.cmd))}\n{how}, {self.seconds:.2f} s{notes}"
                f"\n--- stdout ---\n{tail(self.stdout)}\n--- stderr ---\n{tail(self.stderr)}")

    @property
    def lines(self) -> list:
        return self.stdout.splitlines()


def _text(data) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data


def run_child(name: str, *args, timeout: float, env: dict | None = None,
              cwd: str | None = None) -> Run:
    """Run ``sys.executable scripts/<name> *args``; kill it (and report a
    hang) after ``timeout`` seconds."""
    cmd = [sys.executable, script(name), *map(str, args)]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=child_env(env), cwd=cwd)
    try:
        out, err = proc.communicate(timeout=timeout * SLOW)
        timed_out = False
    except subprocess.TimeoutExpired:
        out, err = kill_and_collect(proc)
        timed_out = True
    return Run(cmd, proc.returncode, _text(out), _text(err), time.monotonic() - t0, timed_out)


def kill_and_collect(proc: subprocess.Popen):
    """Kill a hung child, first asking for its Python stacks (faulthandler
    is enabled in every child, SIGABRT makes it dump them)."""
    try:
        proc.send_signal(signal.SIGABRT)
        return proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


def problems(run: Run, *, rc: int = 0, max_seconds: float | None = None,
             expect_lines: tuple = ()) -> list:
    """Why ``run`` is not a clean run (empty list: it is)."""
    found = []
    if run.timed_out:
        found.append("hung: killed at the hard timeout")
    elif run.rc != rc:
        found.append(f"exit code {run.rc}, expected {rc}")
    for marker in BAD_MARKERS:
        if marker in run.stderr:
            found.append(f"stderr contains {marker!r}")
    if max_seconds is not None and run.seconds > max_seconds * SLOW and not run.timed_out:
        found.append(f"took {run.seconds:.2f} s, bound {max_seconds:g} s")
    for line in expect_lines:
        if line not in run.lines:
            found.append(f"stdout lacks the line {line!r}")
    return found


def check(run: Run, *, rc: int = 0, max_seconds: float | None = None,
          expect_lines: tuple = (), what: str = "") -> None:
    """Fail the test, with the child's output, unless ``run`` is clean."""
    found = problems(run, rc=rc, max_seconds=max_seconds, expect_lines=expect_lines)
    if found:
        xfail_known_debug_exit_assert(run.rc, run.stderr)
        raise AssertionError(f"{what}: " + "; ".join(found) + "\n" + run.describe())


def run_many(name: str, *args, runs: int, timeout: float, rc: int = 0,
             max_seconds: float | None = None, expect_lines: tuple = (),
             env: dict | None = None, what: str = "") -> list:
    """Run the same child ``runs`` times; stop at the first bad run and fail
    with it (and how many runs were clean before it)."""
    done = []
    for n in range(runs):
        run = run_child(name, *args, timeout=timeout, env=env)
        found = problems(run, rc=rc, max_seconds=max_seconds, expect_lines=expect_lines)
        if found:
            xfail_known_debug_exit_assert(run.rc, run.stderr)
            raise AssertionError(
                f"{what or name}: run {n + 1} of {runs} bad ({n} clean before it): "
                + "; ".join(found) + "\n" + run.describe())
        done.append(run)
    return done
