"""Fault suite, exits (issue 11): the program ends in each lifecycle state,
each run its own child process (tests/stress/scripts/exit_case.py), ending
either by falling off the end (exit code 0) or with sys.exit(3) (exit code
3: the code the program asked for).  Each run must exit with that code,
with a clean stderr (_harness.BAD_MARKERS), and quickly.

Default: 2 runs per case and ending; MANYGIL_STRESS=100 makes it 200.
"""
import os

import pytest

from _harness import budget, check, problems, reps, run_child, run_many
from helpers.proc import xfail_known_debug_exit_assert

QUICK = 10.0            # seconds: a clean exit takes well under 1 s here
HARD = QUICK + 5        # killed (and reported as a hang) after this

ENDS = {"return": 0, "exit3": 3}

# Cases whose only check is the exit itself (see exit_case.py for each).
PLAIN_CASES = [
    "daemon_exec_sleep",            # daemon thread inside exec("import time; time.sleep(100)")
    "daemon_call_spin",             # daemon thread inside call(spin_forever)
    "daemon_recv_block",            # daemon thread blocked in a channel recv() inside the interpreter
    "watchdog_daemon_exec_sleep",   # the same three with manygil.watchdog(...) running
    "watchdog_daemon_call_spin",
    "watchdog_daemon_recv_block",
    "pool_starting",                # InterpreterPoolExecutor(4), workers still starting
    "pool_starting_task",           # ... with a task submitted
    "pool_starting_nowait",         # ... and shutdown(wait=False)
    "watchdog_on_hang_blocks",      # on_hang = lambda r: time.sleep(100), then .stop()
    "actors_busy",                  # an actor system open: a method running, tells queued, a submit pending
    "actors_interrupted",           # ref.interrupt() just sent: one actor spinning in Python, one asleep in C
]

RUNS = reps(2)


@pytest.mark.parametrize("end", sorted(ENDS))
@pytest.mark.parametrize("case", PLAIN_CASES)
@pytest.mark.timeout(budget(HARD + 10))          # budget() scales it like RUNS
def test_exit(case, end):
    run_many("exit_case.py", case, end, runs=RUNS, timeout=HARD, rc=ENDS[end],
             max_seconds=QUICK, expect_lines=("READY",), what=f"exit in state {case}, {end}")


@pytest.mark.parametrize("end", sorted(ENDS))
@pytest.mark.timeout(budget(HARD + 10))          # budget() scales it like RUNS
def test_exit_pool_shutdown_nowait_runs_queued_tasks(end, tmp_path):
    """shutdown(wait=False) with 6 queued tasks that each write a file, then
    the program ends: as with ThreadPoolExecutor, all 6 tasks run."""
    for n in range(RUNS):
        out = tmp_path / f"run-{n}"
        out.mkdir()
        run = run_child("exit_case.py", "pool_nowait_files", end, out, timeout=HARD)
        what = f"pool_nowait_files, {end}, run {n + 1} of {RUNS}"
        check(run, rc=ENDS[end], max_seconds=QUICK, expect_lines=("READY",), what=what)
        written = sorted(os.listdir(out))
        expected = [f"task-{k}.txt" for k in range(6)]
        assert written == expected, (
            f"{what}: queued tasks lost at exit: files {written}, expected {expected}\n"
            + run.describe())


# task_timeout=0.5 + interrupt_grace=0.5, plus slack for the worker's start
# and the exit itself: a pool whose only worker sleeps for an hour must not
# hold the exit longer than that.
ABANDON_BOUND = 0.5 + 0.5 + 4.0


@pytest.mark.parametrize("case", ["pool_abandoned_worker", "pool_abandoned_worker_running"])
@pytest.mark.parametrize("end", sorted(ENDS))
@pytest.mark.timeout(budget(HARD + 10))          # budget() scales it like RUNS
def test_exit_abandoned_worker(case, end):
    """InterpreterPoolExecutor(1, task_timeout=0.5, interrupt_grace=0.5)
    .submit(time.sleep, 3600), then the program ends (right after submit, or
    once the task runs): within task_timeout + grace + slack, never a hang."""
    for n in range(RUNS):
        run = run_child("exit_case.py", case, end, timeout=HARD)
        found = problems(run, rc=ENDS[end], max_seconds=ABANDON_BOUND, expect_lines=("READY",))
        if found:
            xfail_known_debug_exit_assert(run.rc, run.stderr)
            raise AssertionError(f"{case}, {end}, run {n + 1} of {RUNS}: " + "; ".join(found)
                                 + "\n" + run.describe())
