"""Shared fixtures for the manygil test suite.

The tests directory is put on ``sys.path`` at import time - before any
interpreter is created - so ``helpers.remote`` is importable (by reference)
inside every subinterpreter, which starts with a copy of main's ``sys.path``.
"""
import os
import sys

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

DEFAULT_TIMEOUT = 60


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "timeout(seconds): per-test timeout (pytest-timeout)")


def pytest_collection_modifyitems(config, items):
    # Every test gets a timeout; explicit @pytest.mark.timeout(...) wins.
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT))


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


@pytest.fixture
def two_cores():
    """Skip timing-ratio tests on single-core machines."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs at least 2 CPU cores")
