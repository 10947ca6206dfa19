"""The fault suite's long run, by hand: every race child and every exit case
of tests/stress, run many times with several children at once, judged by the
same rules as the tests (_harness.problems), ending with one table of counts.

    python tests/stress/long_run.py [--exit-runs 200] [--race-loops 1000]
                                    [--jobs 4] [--only NAME...] [--log FILE]

--exit-runs    child processes per exit case and ending (the issue asks 200)
--race-loops   at least this many loops of each race (children of the
               tests' default loop count are added until it is reached)
--jobs         children run at once (they mostly wait: more than the cores)

Exit status 0 when every run was clean; the bad runs' descriptions go to
--log (default: stress-long.log in the current folder).  pytest does not
collect this file (no test_ prefix); scripts/test.sh does not run it.
"""
import argparse
import math
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _harness import problems, run_child                      # noqa: E402
from helpers.proc import DEBUG_BUILD                           # noqa: E402
from test_stress_exit import (ABANDON_BOUND, ENDS, HARD, PLAIN_CASES,   # noqa: E402
                              QUICK)
from test_stress_races import RACES                            # noqa: E402

KNOWN_DEBUG_ASSERT = "unbind_gilstate_tstate: Assertion"


def _known_debug_assert(run) -> bool:
    """CPython's own debug assertion at exit (debug builds before 3.15),
    which the tests xfail (helpers.proc.xfail_known_debug_exit_assert)."""
    return (DEBUG_BUILD and sys.version_info < (3, 15) and run.rc in (134, -6)
            and KNOWN_DEBUG_ASSERT in run.stderr)


def _plain(case, end):
    run = run_child("exit_case.py", case, end, timeout=HARD)
    return run, problems(run, rc=ENDS[end], max_seconds=QUICK, expect_lines=("READY",))


def _abandoned(case, end):
    run = run_child("exit_case.py", case, end, timeout=HARD)
    return run, problems(run, rc=ENDS[end], max_seconds=ABANDON_BOUND, expect_lines=("READY",))


def _files(end):
    with tempfile.TemporaryDirectory() as out:
        run = run_child("exit_case.py", "pool_nowait_files", end, out, timeout=HARD)
        found = problems(run, rc=ENDS[end], max_seconds=QUICK, expect_lines=("READY",))
        written = sorted(os.listdir(out))
    expected = [f"task-{k}.txt" for k in range(6)]
    if written != expected:
        found.append(f"queued tasks lost at exit: files {written}")
    return run, found


def _race(name):
    script, loops, max_seconds, hard = RACES[name]
    run = run_child(script, loops, timeout=hard)
    return run, problems(run, max_seconds=max_seconds, expect_lines=("DONE",))


def plan(exit_runs: int, race_loops: int):
    """(case name, repetitions counted per child, [callables])."""
    cases = []
    for name, (_, loops, _, _) in RACES.items():
        children = max(1, math.ceil(race_loops / loops))
        cases.append((f"race {name}", loops, [lambda n=name: _race(n)] * children))
    for end in sorted(ENDS):
        for case in PLAIN_CASES:
            cases.append((f"exit {case} ({end})", 1,
                          [lambda c=case, e=end: _plain(c, e)] * exit_runs))
        cases.append((f"exit pool_nowait_files ({end})", 1,
                      [lambda e=end: _files(e)] * exit_runs))
        for case in ("pool_abandoned_worker", "pool_abandoned_worker_running"):
            cases.append((f"exit {case} ({end})", 1,
                          [lambda c=case, e=end: _abandoned(c, e)] * exit_runs))
    return cases


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--exit-runs", type=int, default=200)
    ap.add_argument("--race-loops", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--only", nargs="*", default=None,
                    help="run only cases whose name contains one of these words")
    ap.add_argument("--log", default="stress-long.log")
    args = ap.parse_args()
    if args.exit_runs < 1 or args.race_loops < 1 or args.jobs < 1:
        ap.error("--exit-runs, --race-loops and --jobs must be positive")
    cases = plan(args.exit_runs, args.race_loops)
    if args.only:
        cases = [c for c in cases if any(w in c[0] for w in args.only)]
    t0 = time.monotonic()
    rows = []
    bad_total = 0
    with open(args.log, "w") as log, ThreadPoolExecutor(args.jobs) as ex:
        for name, per_child, calls in cases:
            c0 = time.monotonic()
            clean = bad = known = 0
            for fut in as_completed([ex.submit(f) for f in calls]):
                run, found = fut.result()
                if not found:
                    clean += 1
                elif _known_debug_assert(run):
                    known += 1
                else:
                    bad += 1
                    log.write(f"=== {name}: " + "; ".join(found) + "\n" + run.describe() + "\n")
                    log.flush()
            bad_total += bad
            rows.append((name, len(calls) * per_child, clean * per_child, known * per_child,
                         bad, time.monotonic() - c0))
            print(f"{name:58} {rows[-1][1]:7d} reps  clean {rows[-1][2]:7d}  "
                  f"known-assert {rows[-1][3]:4d}  bad {bad:3d}  {rows[-1][5]:6.0f} s", flush=True)
    print(f"=== {sys.version.split()[0]}{' (debug build)' if DEBUG_BUILD else ''}: "
          f"{sum(r[1] for r in rows)} repetitions, {bad_total} bad child run(s), "
          f"{(time.monotonic() - t0) / 60:.1f} min; bad runs in {args.log}")
    return 1 if bad_total else 0


if __name__ == "__main__":
    sys.exit(main())
