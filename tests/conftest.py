"""Shared fixtures for the manygil test suite.

The tests directory is put on ``sys.path`` at import time - before any
interpreter is created - so ``helpers.remote`` is importable (by reference)
inside every subinterpreter, which starts with a copy of main's ``sys.path``.
"""
import os
import signal
import sys

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

DEFAULT_TIMEOUT = 60
# Debug builds and sanitizers run the same code several times slower:
# scripts/root-job.sh sets MANYGIL_TIMEOUT_SCALE there (timeouts only; no
# test asserts an absolute time).
TIMEOUT_SCALE = float(os.environ.get("MANYGIL_TIMEOUT_SCALE", "1"))
# Set by scripts/root-job.sh when the extension is built with sanitizers.
SANITIZER = os.environ.get("MANYGIL_SANITIZER", "")


# A test run started in the background by a non-interactive shell inherits
# SIGINT ignored, and so would every child process the tests start (ignored
# dispositions survive exec): the Ctrl-C tests would test nothing, or hang.
# A handler (unlike SIG_IGN) is reset to the default at exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _timeout_stacks(terminal):
    """pytest-timeout's stack dump, through manygil.dump_stacks(): its own
    reads sys._current_frames(), which manygil refuses while interpreters are
    alive (src/py/fork.c); this shows every interpreter's threads."""
    import manygil
    terminal.sep("~", title="Stacks (manygil.dump_stacks)")
    manygil.dump_stacks(file=terminal)


try:
    import pytest_timeout
except ImportError:                     # pragma: no cover - it is a test dependency
    pass
else:
    pytest_timeout.dump_stacks = _timeout_stacks


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "timeout(seconds): per-test timeout (pytest-timeout)")
    config.addinivalue_line(
        "markers", "rss_bound: asserts resident memory; deselected under ASan "
        "(its quarantine and shadow memory keep freed blocks resident)")


def pytest_collection_modifyitems(config, items):
    # Every test gets a timeout; explicit @pytest.mark.timeout(...) wins.
    for item in items:
        marker = item.get_closest_marker("timeout")
        seconds = marker.args[0] if marker is not None and marker.args else \
            marker.kwargs.get("timeout", DEFAULT_TIMEOUT) if marker is not None else DEFAULT_TIMEOUT
        if marker is None or TIMEOUT_SCALE != 1:
            item.add_marker(pytest.mark.timeout(seconds * TIMEOUT_SCALE), append=False)
        if SANITIZER and item.get_closest_marker("rss_bound") is not None:
            item.add_marker(pytest.mark.skip(
                reason=f"asserts RSS; not meaningful under the {SANITIZER} sanitizer "
                       "(freed memory stays resident in its quarantine)"))


@pytest.fixture
def interp():
    """A fresh isolated interpreter, closed after the test."""
    import manygil as mod
    it = mod.create()
    try:
        yield it
    finally:
        it.close()


@pytest.fixture
def interp2():
    import manygil as mod
    it = mod.create()
    try:
        yield it
    finally:
        it.close()


@pytest.fixture(scope="module")
def one_worker_system():
    """An actor system whose actors all share one worker interpreter (a
    module's tests share it)."""
    import manygil as mod
    with mod.ActorSystem(workers=1) as s:
        yield s


# scripts/test.sh runs its jobs side by side, each in this checkout (the
# Debian root's jobs see it at the same path): the timing tests of two jobs
# measure one at a time, through a lock file in the logs folder.
_TIMING_LOCK = os.path.join(os.path.dirname(TESTS_DIR), ".test-logs", "timing.lock")


@pytest.fixture
def two_cores(request):
    """For tests that measure parallel speed-up: skip on single-core
    machines; under scripts/test.sh, wait until no other job is measuring
    (two jobs measuring at once take each other's second core and both see
    one core's worth).  The wait is bounded by half the test's timeout, and
    the test measures anyway after it (its control then sees the same load)."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs at least 2 CPU cores")
    if not os.path.isdir(os.path.dirname(_TIMING_LOCK)):
        yield
        return
    import fcntl
    import time
    marker = request.node.get_closest_marker("timeout")
    limit = marker.args[0] if marker and marker.args else DEFAULT_TIMEOUT * TIMEOUT_SCALE
    with open(_TIMING_LOCK, "a") as f:
        deadline = time.monotonic() + min(300.0, limit / 2)
        held = False
        while not held:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        try:
            yield
        finally:
            if held:
                fcntl.flock(f, fcntl.LOCK_UN)
