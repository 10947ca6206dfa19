"""Fault suite, races (issue 11): each race's loop runs in a child process
(tests/stress/scripts/race_*.py), judged by _harness.check: exit code 0,
stderr free of fatal errors / unraisable exceptions / sanitizer reports /
tracebacks, the last line DONE, and a time bound.

MANYGIL_STRESS=N runs N times as many children (each with the default
loop), so both the races inside one process and the exits after them are
repeated N times.
"""
import pytest

from _harness import budget, check, reps, run_child

# (script, loop count, seconds one child may take, hard timeout)
RACES = {
    # 1. Interpreter.interrupt() in a loop vs the end of i.call(short, k % 200).
    "interrupt_vs_call_end": ("race_interrupt_call.py", 20000, 60, 90),
    # 2. task_timeout's interrupt vs the end of tasks straddling the limit.
    "task_timeout_vs_task_end": ("race_task_timeout.py", 120, 60, 90),
    # 3. Future.cancel() vs completion.
    "cancel_vs_completion": ("race_cancel.py", 16000, 60, 90),
    # 4. Interpreter.close() vs calls from other threads.
    "close_vs_call": ("race_close_call.py", 100, 60, 90),
    # 5. Concurrent first calls into a fresh interpreter (main script import).
    "concurrent_first_calls": ("race_first_calls.py", 30, 60, 90),
    # 6. Pool start vs shutdown(wait=False), and exit with such pools.
    "pool_start_vs_shutdown": ("race_pool_start_shutdown.py", 40, 60, 90),
}


def _run_race(name):
    script, loops, max_seconds, hard = RACES[name]
    runs = reps(1)
    for n in range(runs):
        run = run_child(script, loops, timeout=hard)
        check(run, max_seconds=max_seconds, expect_lines=("DONE",),
              what=f"{name} (child {n + 1} of {runs}, {loops} loops)")


@pytest.mark.timeout(budget(90))
def test_interrupt_vs_call_end():
    _run_race("interrupt_vs_call_end")


@pytest.mark.timeout(budget(90))
def test_task_timeout_vs_task_end():
    _run_race("task_timeout_vs_task_end")


@pytest.mark.timeout(budget(90))
def test_cancel_vs_completion():
    _run_race("cancel_vs_completion")


@pytest.mark.timeout(budget(90))
def test_close_vs_call():
    _run_race("close_vs_call")


@pytest.mark.timeout(budget(90))
def test_concurrent_first_calls():
    _run_race("concurrent_first_calls")


@pytest.mark.timeout(budget(90))
def test_pool_start_vs_shutdown():
    _run_race("pool_start_vs_shutdown")
