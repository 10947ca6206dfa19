"""Functions run in interpreters and pool workers by bench/hangs.py."""
import time


def add(a, b):
    return a + b


def spin_forever():
    while True:
        pass


def sleep_forever():
    time.sleep(3600)


def spin_for(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
