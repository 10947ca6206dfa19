"""manygil.InterpreterPoolExecutor against the stdlib executors, side by side,
printed as Markdown tables with a verdict line per target.

    .venv-3.13/bin/python bench/pool.py            # or .venv-3.12/bin/python

and under 3.14/3.15, in the Debian root of scripts/debian-root.sh, with the
venv that `MANYGIL_JOBS=3.15 scripts/test.sh` made there:

    scripts/debian-root.sh run .venv-3.15/bin/python bench/pool.py

Under 3.14 the stdlib ``concurrent.futures.InterpreterPoolExecutor`` is
measured too; where manygil is not installed for that Python its rows read
"not installed" (the other rows are still measured).  Linux only (PSS comes
from /proc).  About 1.5-2 minutes; run it on a quiet machine: the CPU-bound
rows mean nothing when other processes compete for the cores.

Executors: manygil.InterpreterPoolExecutor, ThreadPoolExecutor,
ProcessPoolExecutor with the fork, forkserver and spawn start methods, and on
3.14 the stdlib InterpreterPoolExecutor.  Workloads:

1. tiny tasks: ``x + 1`` over 20,000 ints, 2 workers, by ``map`` (each
   executor's default chunksize) and by ``submit`` all then ``result()`` all;
   warm pools, best of up to 3 runs (fewer for the slow executors);
2. CPU-bound pure Python: 8 tasks of ~0.15 s (a loop count calibrated at the
   start of the run), 2 workers: speedup over running the 8 sequentially in
   the main thread (3 rounds, the executors taking turns, best of each);
3. cold start: construct -> first result of a trivial task, 2 workers (best
   of 5 after the first, which is shown apart), against one bare interpreter
   create (+ close);
4. memory: proportional set size (PSS) per idle worker, 4 workers: the
   growth of this process plus the PSS of every new child process, / 4;
5. scaling: the CPU-bound workload's speedup on 1, 2 and 4 workers.

Each (executor, workload) runs in its own fresh process (bench/pool_run.py,
tasks in bench/pool_funcs.py): on CPython 3.13.0 a fork() while a
subinterpreter is alive kills the child, so the process pools must run in
processes where manygil never created an interpreter.  This process only
calibrates, runs the sequential baseline and prints.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pool_funcs import spin  # noqa: E402

RUN = os.path.join(HERE, "pool_run.py")
TASK_SECONDS = 0.15
CPU_TASKS = 8
CPU_ROUNDS = 3
TIMEOUT = 120

EXECUTORS = [
    ("manygil", "manygil.InterpreterPoolExecutor"),
    ("thread", "ThreadPoolExecutor"),
    ("fork", "ProcessPoolExecutor(fork)"),
    ("forkserver", "ProcessPoolExecutor(forkserver)"),
    ("spawn", "ProcessPoolExecutor(spawn)"),
]
if sys.version_info >= (3, 14):
    EXECUTORS.append(("stdlib", "stdlib InterpreterPoolExecutor"))
PROCESS_POOLS = ("fork", "forkserver", "spawn")
NAMES = dict(EXECUTORS)
HAVE_MANYGIL = importlib.util.find_spec("manygil") is not None


class Failed(Exception):
    """A measurement that did not produce a figure; str() goes in its row."""


def measure(executor: str, workload: str, *args: object) -> dict:
    """Run bench/pool_run.py EXECUTOR WORKLOAD ARGS in a fresh process; its
    JSON result, or Failed."""
    if executor == "manygil" and not HAVE_MANYGIL:
        raise Failed("not installed")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (HERE, env.get("PYTHONPATH")) if p)
    # Its own session, so that a timeout also ends the pool's worker processes.
    proc = subprocess.Popen([sys.executable, RUN, executor, workload, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise Failed(f"error: timed out after {TIMEOUT} s") from None
    lines = stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        err = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
        fatal = [ln for ln in err if ln.startswith("Fatal Python error")]
        why = (fatal or err or [""])[-1]
        status = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
                  else f"exit status {proc.returncode}")
        raise Failed(f"error: {why} ({status})".replace("|", "\\|"))
    return json.loads(lines[-1])


def attempt(fn, *args):
    """fn(*args), or the Failed / other exception it raised."""
    try:
        return fn(*args)
    except Failed as e:
        return e
    except Exception as e:      # a bug in the harness: still print the rest
        return Failed(f"error: {type(e).__name__}: {e}".replace("|", "\\|"))


def ok(x) -> bool:
    return not isinstance(x, Exception)


# ---- formatting ------------------------------------------------------------

def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def fmt_rate(r: float) -> str:
    return f"{r:,.0f}"


def fmt_mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def vs(manygil_adv: float | None, better: str = "faster", worse: str = "slower") -> str:
    """The 'vs manygil' cell: how many times better manygil does here."""
    if manygil_adv is None:
        return ""
    if manygil_adv == 1.0:
        return "—"
    if manygil_adv >= 1:
        return f"manygil {manygil_adv:.2f}× {better}"
    return f"manygil {1 / manygil_adv:.2f}× {worse}"


VERDICTS: list[str] = []


def verdict(label: str, got: float | None, target: float, at_least: bool = True, unit: str = "×") -> None:
    """One target line: PASS / MISS (and by how much) / n/a."""
    sign = "≥" if at_least else "≤"
    if got is None:
        VERDICTS.append(f"- n/a  {label}: no figure (target {sign} {target:g}{unit})")
        return
    passed = got >= target if at_least else got <= target
    line = f"- {'PASS' if passed else 'MISS'} {label}: {got:.2f}{unit} (target {sign} {target:g}{unit}"
    if not passed:
        short = (1 - got / target) if at_least else (got / target - 1)
        line += f"; {'short' if at_least else 'over'} by {short:.0%}" if short >= 0.005 else "; short by <1%"
    VERDICTS.append(line + ")")


# ---- this process: calibration and the sequential baseline -----------------

def calibrate() -> int:
    """A loop count for which spin() takes about TASK_SECONDS here."""
    n = 200_000
    for _ in range(3):
        t = min(_timed(spin, n) for _ in range(3))
        n = max(1000, int(n * TASK_SECONDS / t))
        if abs(t / TASK_SECONDS - 1) < 0.1 and n > 200_000:
            break
    return n


def _timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def sequential(loops: int) -> float:
    """The CPU_TASKS tasks one after the other in this (main) thread."""
    def run():
        for _ in range(CPU_TASKS):
            spin(loops)
    return _timed(run)


def cpu_measure(loops: int) -> tuple[float, dict]:
    """CPU_ROUNDS rounds of: the sequential baseline, then each executor's
    1/2/4-worker runs in turn.  Returns the best sequential time and, per
    executor, {workers: [times]} (or Failed)."""
    seqs: list[float] = []
    res: dict = {key: {} for key, _ in EXECUTORS}
    for _ in range(CPU_ROUNDS):
        seqs.append(sequential(loops))
        for key, _ in EXECUTORS:
            if not ok(res[key]):
                continue
            got = attempt(measure, key, "cpu", loops)
            if not ok(got):
                res[key] = got
                continue
            for w, times in got.items():
                res[key].setdefault(w, []).extend(times)
    return min(seqs), res


# ---- tables ----------------------------------------------------------------

def table(title: str, header: list[str]) -> None:
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))


def row(*cells: object) -> None:
    print("| " + " | ".join(str(c) for c in cells) + " |")


def tiny_section() -> None:
    res = {key: attempt(measure, key, "tiny") for key, _ in EXECUTORS}
    rate = {}
    for key in res:
        if ok(res[key]):
            n = res[key]["n"]
            rate[key] = {m: n / min(res[key][m]) for m in ("map", "submit")}
    table("1. Tiny tasks: `x + 1` over 20,000 ints, 2 workers (best of up to 3)",
          ["workload", "executor", "time", "tasks/s", "vs manygil"])
    for mode, label in (("map", "map"), ("submit", "submit all, then result() all")):
        for key, name in EXECUTORS:
            r = res[key]
            if not ok(r):
                row(label, name, r, "", "")
                continue
            mine = rate.get("manygil", {}).get(mode)
            row(label, name, fmt_time(min(r[mode])) + (f" ({len(r[mode])} run{'s' * (len(r[mode]) > 1)})"),
                fmt_rate(rate[key][mode]), vs(mine / rate[key][mode] if mine else None))
    mg = rate.get("manygil")

    def ratio(mode, other):
        return mg[mode] / rate[other][mode] if mg and other in rate else None
    verdict("tiny: manygil map ÷ ThreadPoolExecutor map", ratio("map", "thread"), 2)
    verdict("tiny: manygil submit+result ÷ ThreadPoolExecutor's", ratio("submit", "thread"), 0.5)
    for key in (*PROCESS_POOLS, "stdlib"):
        if key in NAMES:
            for mode in ("map", "submit"):
                verdict(f"tiny: manygil {mode} ÷ {NAMES[key]} {mode}", ratio(mode, key), 10)


def cpu_section(loops: int):
    """Table 2 now; returns the function that prints table 5 (same runs)."""
    seq, res = cpu_measure(loops)
    speed = {key: {w: seq / min(t) for w, t in r.items()} for key, r in res.items() if ok(r)}
    table(f"2. CPU-bound pure Python: {CPU_TASKS} tasks of `spin({loops:,})` "
          f"({fmt_time(seq / CPU_TASKS)} each, sequentially), 2 workers "
          f"(best of {CPU_ROUNDS} rounds, executors taking turns)",
          ["workload", "executor", "time", "speedup", "vs manygil"])
    row("CPU-bound", "sequential, main thread", fmt_time(seq), "1.00×", "")
    mine = speed.get("manygil", {}).get("2")
    for key, name in EXECUTORS:
        r = res[key]
        if not ok(r):
            row("CPU-bound", name, r, "", "")
            continue
        s = speed[key]["2"]
        row("CPU-bound", name, fmt_time(min(r["2"])), f"{s:.2f}×",
            vs(mine / s if mine else None))
    fork = speed.get("fork", {}).get("2")
    verdict("CPU-bound: manygil speedup ÷ ProcessPoolExecutor(fork)'s",
            mine / fork if mine and fork else None, 1.0)
    verdict("CPU-bound: manygil speedup over sequential, 2 workers", mine, 1.8)
    return lambda: scaling_section(res, speed)


def scaling_section(res: dict, speed: dict) -> None:
    table(f"5. Scaling: speedup on the CPU-bound workload by worker count ({os.cpu_count()} CPUs)",
          ["executor", "1 worker", "2 workers", "4 workers"])
    for key, name in EXECUTORS:
        r = res[key]
        if not ok(r):
            row(name, r, "", "")
            continue
        row(name, *(f"{speed[key][w]:.2f}× ({fmt_time(min(r[w]))})" for w in ("1", "2", "4")))
    s = speed.get("manygil")
    cores = os.cpu_count() or 1
    if cores <= 2:
        verdict("scaling: manygil speedup at 4 workers ÷ at 2 (flattens, must not fall; 5% noise allowed)",
                s["4"] / s["2"] if s else None, 0.95)
    else:
        verdict("scaling: manygil speedup at 4 workers ÷ at 2 (more than 2 CPUs: should rise)",
                s["4"] / s["2"] if s else None, 1.0)


def cold_section() -> None:
    res = {key: attempt(measure, key, "cold") for key, _ in EXECUTORS}
    bare_mg = attempt(measure, "manygil", "bare")
    bare_raw = bare_mg if ok(bare_mg) else attempt(measure, "thread", "bare")
    best = {key: min(r["rest"]) for key, r in res.items() if ok(r)}
    mine = best.get("manygil")
    table("3. Cold start: construct -> first result of a trivial task, 2 workers "
          "(best of 5 after the first)",
          ["workload", "executor", "time", "first in its process", "vs manygil"])
    for key, name in EXECUTORS:
        r = res[key]
        if not ok(r):
            row("cold start", name, r, "", "")
            continue
        row("cold start", name, fmt_time(best[key]), fmt_time(r["first"]),
            vs(best[key] / mine if mine else None))
    bare = {}
    for label, src, field in (("`manygil.create()` + `close()`", bare_mg, "manygil_create_close"),
                              ("`manygil.create()` alone", bare_mg, "manygil_create"),
                              ("CPython `_interpreters` create + destroy (isolated)", bare_raw,
                               "raw_create_destroy")):
        if not ok(src):
            row("one bare interpreter", label, src, "", "")
        elif field not in src:
            row("one bare interpreter", label, "not available", "", "")
        else:
            bare[field] = min(src[field])
            row("one bare interpreter", label, fmt_time(bare[field]), "",
                vs(bare[field] / mine if mine else None))
    fork = best.get("fork")
    verdict("cold start: manygil ÷ ProcessPoolExecutor(fork)", mine / fork if mine and fork else None,
            1.0, at_least=False)
    ref = bare.get("manygil_create_close")
    verdict("cold start: manygil ÷ one bare `manygil.create()` + `close()`",
            mine / ref if mine and ref else None, 1.3, at_least=False)
    if mine and "manygil_create" in bare:
        VERDICTS.append(f"  (for reference: manygil cold start ÷ `manygil.create()` alone = "
                        f"{mine / bare['manygil_create']:.2f}×)")


def memory_section() -> None:
    res = {key: attempt(measure, key, "memory") for key, _ in EXECUTORS}
    per = {key: (r["parent_growth_kib"] + r["children_kib"]) / r["workers"]
           for key, r in res.items() if ok(r)}
    mine = per.get("manygil")
    n = next((r["workers"] for r in res.values() if ok(r)), 4)
    table(f"4. Memory: PSS per idle worker, {n} workers (this process's growth + new "
          "child processes, / workers)",
          ["workload", "executor", "PSS per worker", "detail", "vs manygil"])
    for key, name in EXECUTORS:
        r = res[key]
        if not ok(r):
            row("idle worker", name, r, "", "")
            continue
        detail = f"parent {r['parent_growth_kib'] / 1024:+.1f} MiB"
        if r["n_children"]:
            w = r["worker_procs_kib"]
            detail += (f"; {r['n_children']} new processes, {fmt_mib(r['children_kib'])} in all"
                       + (f" (a worker: {fmt_mib(statistics.mean(w))})" if w else ""))
            if r["helper_procs_kib"]:
                detail += (f"; includes {len(r['helper_procs_kib'])} helper process(es): "
                           + ", ".join(fmt_mib(k) for k in r["helper_procs_kib"]))
        row("idle worker", name, fmt_mib(per[key]), detail,
            vs(per[key] / mine if mine and per[key] > 0 else None, "smaller", "larger"))


def main() -> None:
    t_start = time.perf_counter()
    try:
        version = importlib.metadata.version("manygil") if HAVE_MANYGIL else "not installed"
    except importlib.metadata.PackageNotFoundError:
        version = "unknown version"
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"manygil {version}, Python {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')} (load average {load} at start)")

    loops = calibrate()

    tiny_section()
    print_scaling = cpu_section(loops)
    cold_section()
    memory_section()
    print_scaling()

    print("\n### Targets\n")
    print("\n".join(VERDICTS))
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nRun took {time.perf_counter() - t_start:.0f} s (load average {load} at the end).")


if __name__ == "__main__":
    sys.exit(main())
