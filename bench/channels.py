"""Channel figures, side by side in one run, printed as Markdown tables.

    .venv-3.13/bin/python bench/channels.py

(scripts/test.sh creates .venv-3.12 / .venv-3.13 with manygil installed; after
changing the sources, reinstall with
``.venv-3.13/bin/pip install -q --no-build-isolation --force-reinstall --no-deps .``.)
Under Python 3.14 without manygil (``py314 run python3.14 bench/channels.py``)
the manygil rows read "not installed" and the stdlib ``concurrent.interpreters``
rows are measured. manygil builds there too, into a venv inside the root:
``py314 run python3.14 -m venv /tmp/v314``, install meson-python, meson and
ninja into it (from PyPI, or offline from wheels put under the root's /tmp),
then ``py314 run env PATH=/tmp/v314/bin:/usr/bin:/bin /tmp/v314/bin/pip
install --no-build-isolation .`` and ``py314 run /tmp/v314/bin/python
bench/channels.py``. ``BENCH_TRACEBACK=1`` prints the traceback of a row
that fails.

1. Round trip latency of a small int, main -> other side -> main, median,
   p90 and mean over 2,000 timed round trips after 200 warm-up ones, each timed with
   ``time.perf_counter_ns``:

   - the floor: ``bench/pingpong_floor.c``, a bare pthread mutex + condition
     variable ping-pong between two threads (compiled here with
     ``gcc -O2 -pthread`` into a temporary folder, run as a subprocess; run
     before and after the other rows, the lower median is the divisor of the
     "x floor" column);
   - ``multiprocessing.Pipe`` to a child process (fork and spawn), measured by
     ``bench/channels_mp.py`` in a subprocess of its own that never imports
     manygil (on 3.13.0 a fork() while a subinterpreter is alive kills the
     child);
   - ``queue.SimpleQueue`` ping-pong between two threads of this process;
   - Python >= 3.14 only: ``concurrent.interpreters`` queues to an echo loop in
     a stdlib interpreter (``Interpreter.call`` in a thread). Its
     ``Queue.get`` polls with ``time.sleep(10 ms)`` while empty, so this row
     stops early on a time budget (1 s warm-up, 5 s timed) and says so;
   - manygil: two channels (``create_channel()``) to an echo loop in a manygil
     interpreter run by ``interp.call`` in a thread, and the same with two
     ``create_queue()`` queues;
   - again the C floor, SimpleQueue and manygil channels with both sides
     pinned to one CPU (``os.sched_setaffinity``, inherited by the threads and
     processes started): a loaded machine does that to a ping-pong now and
     then, and a waiter that spins keeps its peer off the CPU meanwhile.

   The target: a manygil channel round trip <= 1.5x the C floor of the same run.

2. One-way throughput, main -> an interpreter that counts until a sentinel,
   of 100,000 messages of 1 KiB ``bytes`` and of ``(i, "x", 1.5)`` tuples:
   a manygil channel (unbounded, and bounded at maxsize=1000) vs
   ``multiprocessing.Queue`` to a forked child (in a subprocess, as above),
   and on 3.14 a ``concurrent.interpreters`` queue.
   Timed from the first send (after the receiver said it is ready) until the
   receiver's count is back in main; best of 3 runs per cell.

Each row is measured on its own: a failure prints ``error: ...`` in that row.
"""
from __future__ import annotations

import faulthandler
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

BENCH = os.path.dirname(os.path.abspath(__file__))
if BENCH not in sys.path:  # so interpreters created below can import channels_echo
    sys.path.insert(0, BENCH)

from channels_echo import count_channel, count_queue, echo_channel, echo_queue  # noqa: E402

try:
    import manygil
except ImportError as e:  # e.g. under 3.14, where manygil is not built
    manygil = None
    MANYGIL_MISSING = f"not installed ({e})"

N_RT = 2000          # timed round trips per latency row
WARMUP = 200         # untimed round trips before them
WARMUP_BUDGET_S = 1.0   # at most this long for the warm-up of one row
TIMED_BUDGET_S = 5.0    # and this long for its timed round trips
N_MSG = 100_000      # messages per throughput cell
TP_REPEAT = 3        # throughput cells: best of this many runs
BOUNDED = 1000       # maxsize of the bounded manygil channel column
SUBPROCESS_TIMEOUT = 60
WATCHDOG_S = 300     # the whole run, at most
HAS_STDLIB = sys.version_info >= (3, 14)


class Skip(Exception):
    """A row that does not apply here; its message is printed in the row."""


def stats(times_ns: list[int]) -> dict:
    t = sorted(times_ns)
    return {"median_us": t[len(t) // 2] / 1e3, "p90_us": t[len(t) * 9 // 10] / 1e3,
            "mean_us": sum(t) / len(t) / 1e3}


def time_round_trips(rt, check_first=None) -> dict:
    """rt(i) does one round trip and returns what came back.

    Stops early (keeping what it timed) when WARMUP_BUDGET_S / TIMED_BUDGET_S
    run out, so a mechanism that polls with sleeps cannot eat the run."""
    first = rt(0) if check_first is None else check_first(0)
    if first != 0:
        raise RuntimeError(f"echo sent back {first!r}, expected 0")
    clock = time.perf_counter_ns
    end = clock() + int(WARMUP_BUDGET_S * 1e9)
    for i in range(1, WARMUP):
        rt(i)
        if clock() > end:
            break
    times = []
    append = times.append
    end = clock() + int(TIMED_BUDGET_S * 1e9)
    for i in range(N_RT):
        t0 = clock()
        rt(i)
        t1 = clock()
        append(t1 - t0)
        if t1 > end:
            break
    out = stats(times)
    out["n"] = len(times)
    return out


def best_rate(fn, *args) -> float:
    """The best of TP_REPEAT runs of a throughput cell (the VM is shared and noisy)."""
    return max(fn(*args) for _ in range(TP_REPEAT))


def guarded(fn, *args):
    try:
        return fn(*args)
    except Skip as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 - one row must not kill the table
        if os.environ.get("BENCH_TRACEBACK"):
            traceback.print_exc()
        msg = f"{type(e).__name__}: {e}".replace("|", "/").replace("\n", " ")
        return f"error: {msg[:200]}"


def on_one_cpu(fn, *args):
    """fn(*args) with this thread pinned to one CPU: the threads and processes
    it starts inherit that, so both sides of a ping-pong share the CPU (what
    happens anyway, now and then, on a loaded machine)."""
    if not hasattr(os, "sched_setaffinity"):
        raise Skip("no os.sched_setaffinity here")
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(old)})
    try:
        return fn(*args)
    finally:
        os.sched_setaffinity(0, old)


def run_json(cmd: list[str]) -> dict:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        raise RuntimeError(f"exit {p.returncode}: {tail}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# -- the floor ----------------------------------------------------------------

_floor_bin: str | None = None


def build_floor(tmpdir: str) -> str:
    global _floor_bin
    if _floor_bin is None:
        gcc = shutil.which("gcc")
        if gcc is None:
            raise RuntimeError("gcc not found")
        out = os.path.join(tmpdir, "pingpong_floor")
        p = subprocess.run([gcc, "-O2", "-pthread", os.path.join(BENCH, "pingpong_floor.c"), "-o", out],
                           capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
        if p.returncode != 0:
            raise RuntimeError(f"gcc failed: {p.stderr.strip()[-200:]}")
        _floor_bin = out
    return _floor_bin


def floor_latency(tmpdir: str) -> dict:
    exe = build_floor(tmpdir)
    p = subprocess.run([exe, str(N_RT), str(WARMUP)], capture_output=True, text=True,
                       timeout=SUBPROCESS_TIMEOUT)
    if p.returncode != 0:
        raise RuntimeError(f"floor exit {p.returncode}")
    fields = dict(kv.split("=") for kv in p.stdout.split()[1:])
    return {k: float(fields[k]) for k in ("median_us", "p90_us", "mean_us")}


# -- multiprocessing, in a subprocess -------------------------------------------

def mp_latency(method: str) -> dict:
    return run_json([sys.executable, os.path.join(BENCH, "channels_mp.py"), "latency", method, str(N_RT)])


def mp_throughput(kind: str) -> float:
    out = run_json([sys.executable, os.path.join(BENCH, "channels_mp.py"), "throughput", "fork",
                    str(N_MSG), kind])
    return out["msgs_per_s"]


# -- threads of this process ------------------------------------------------------

def simplequeue_latency() -> dict:
    import queue
    q1, q2 = queue.SimpleQueue(), queue.SimpleQueue()
    t = threading.Thread(target=echo_queue, args=(q1, q2), daemon=True)
    t.start()
    try:
        def rt(i):
            q1.put(i)
            return q2.get()
        return time_round_trips(rt, check_first=lambda i: (q1.put(i), q2.get(timeout=10))[1])
    finally:
        q1.put(None)
        t.join(10)


class InterpThread:
    """Run fn(*args) in an interpreter on a thread; keep its result or error."""

    def __init__(self, call, fn, *args):
        self.result = self.error = None

        def target():
            try:
                self.result = call(fn, *args)
            except BaseException as e:  # noqa: BLE001
                self.error = e
        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def join(self, timeout=30):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise RuntimeError("the interpreter's loop did not finish")
        if self.error is not None:
            raise RuntimeError(f"in the interpreter: {type(self.error).__name__}: {self.error}")
        return self.result


# -- manygil ---------------------------------------------------------------------

_interp = None


def mg_interp():
    global _interp
    if manygil is None:
        raise Skip(MANYGIL_MISSING)
    if _interp is None:
        _interp = manygil.create()
    return _interp


def mg_latency(make_pair, echo) -> dict:
    """Round trips to an echo loop in a manygil interpreter: make_pair()
    gives ((send, recv) for main, (in, out) for the loop)."""
    interp = mg_interp()
    (send, recv), loop_ends = make_pair()
    th = InterpThread(interp.call, echo, *loop_ends)
    try:
        def rt(i):
            send(i)
            return recv()
        return time_round_trips(rt, check_first=lambda i: (send(i), recv(timeout=10))[1])
    finally:
        send(None)
        th.join()


def mg_channel_latency() -> dict:
    def pair():
        r1, s1 = manygil.create_channel()
        r2, s2 = manygil.create_channel()
        return (s1.send, r2.recv), (r1, s2)
    return mg_latency(pair, echo_channel)


def mg_queue_latency() -> dict:
    def pair():
        q1, q2 = manygil.create_queue(), manygil.create_queue()
        return (q1.put, q2.get), (q1, q2)
    return mg_latency(pair, echo_queue)


def send_all(send, kind: str) -> None:
    if kind == "bytes":
        blob = b"x" * 1024
        for _ in range(N_MSG):
            send(blob)
    else:
        for i in range(N_MSG):
            send((i, "x", 1.5))
    send(None)


def mg_throughput(kind: str, maxsize: int = 0) -> float:
    interp = mg_interp()
    r, s = manygil.create_channel(maxsize)
    ready_r, ready_s = manygil.create_channel()
    th = InterpThread(interp.call, count_channel, r, ready_s)
    ready_r.recv(timeout=10)
    t0 = time.perf_counter_ns()
    send_all(s.send, kind)
    got = th.join(60)
    dt = time.perf_counter_ns() - t0
    if got != N_MSG:
        raise RuntimeError(f"receiver counted {got}, expected {N_MSG}")
    return N_MSG / (dt / 1e9)


# -- Python 3.14's concurrent.interpreters ----------------------------------------

_std_interp = None


def std_interp():
    global _std_interp
    if not HAS_STDLIB:
        raise Skip(f"needs Python 3.14 (this is {platform.python_version()})")
    import concurrent.interpreters as ci
    if _std_interp is None:
        _std_interp = ci.create()
        _std_interp.exec(f"import sys; sys.path.insert(0, {BENCH!r})")
    return ci, _std_interp


def std_call(interp):
    def call(fn, *args):
        return interp.call(fn, *args)
    return call


def std_latency() -> dict:
    ci, interp = std_interp()
    q1, q2 = ci.create_queue(), ci.create_queue()
    th = InterpThread(std_call(interp), echo_queue, q1, q2)
    try:
        def rt(i):
            q1.put(i)
            return q2.get()
        return time_round_trips(rt, check_first=lambda i: (q1.put(i), q2.get(timeout=10))[1])
    finally:
        q1.put(None)
        th.join()


def std_throughput(kind: str) -> float:
    ci, interp = std_interp()
    q, ready = ci.create_queue(), ci.create_queue()
    th = InterpThread(std_call(interp), count_queue, q, ready)
    ready.get(timeout=10)
    t0 = time.perf_counter_ns()
    send_all(q.put, kind)
    got = th.join(60)
    dt = time.perf_counter_ns() - t0
    if got != N_MSG:
        raise RuntimeError(f"receiver counted {got}, expected {N_MSG}")
    return N_MSG / (dt / 1e9)


# -- output -----------------------------------------------------------------------

def fmt_us(v) -> str:
    return f"{v:.1f}" if isinstance(v, (int, float)) else str(v)


def fmt_rate(v) -> str:
    return f"{v:,.0f}" if isinstance(v, (int, float)) else str(v)


def gcc_version() -> str:
    gcc = shutil.which("gcc")
    if not gcc:
        return "no gcc"
    try:
        line = subprocess.run([gcc, "--version"], capture_output=True, text=True, timeout=10).stdout.splitlines()[0]
        return "gcc " + line.split()[-1]
    except Exception:  # noqa: BLE001
        return "gcc ?"


def main() -> int:
    t_start = time.perf_counter()
    # A wedged echo loop must not hang the run for ever: dump the stacks and exit.
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    mg = f"manygil {manygil.__version__}" if manygil else "manygil not installed"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{mg}, Python {platform.python_version()}, {gcc_version()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, load {load}, {time.strftime('%Y-%m-%d %H:%M')}\n")

    with tempfile.TemporaryDirectory(prefix="manygil-bench-") as tmp:
        # Subprocess rows first, before any interpreter exists in this process.
        lat: list[tuple[str, object]] = []
        floor1 = guarded(floor_latency, tmp)
        lat.append(("C floor: pthread mutex + condvar ping-pong (before)", floor1))
        lat.append(("`multiprocessing.Pipe`, fork (child process)", guarded(mp_latency, "fork")))
        lat.append(("`multiprocessing.Pipe`, spawn (child process)", guarded(mp_latency, "spawn")))
        tp_mp = {kind: guarded(best_rate, mp_throughput, kind) for kind in ("bytes", "tuple")}

        lat.append(("`queue.SimpleQueue` ping-pong, two threads", guarded(simplequeue_latency)))
        lat.append(("`concurrent.interpreters` queues (3.14 stdlib)", guarded(std_latency)))
        mg_ch = guarded(mg_channel_latency)
        lat.append(("**manygil channels** (`create_channel`)", mg_ch))
        lat.append(("manygil queues (`create_queue`)", guarded(mg_queue_latency)))
        floor2 = guarded(floor_latency, tmp)
        lat.append(("C floor again (after)", floor2))
        # Both sides on one CPU: a spinning waiter now keeps its peer off the CPU.
        lat.append(("one CPU: C floor", guarded(on_one_cpu, floor_latency, tmp)))
        lat.append(("one CPU: `queue.SimpleQueue`", guarded(on_one_cpu, simplequeue_latency)))
        mg_ch1 = guarded(on_one_cpu, mg_channel_latency)
        lat.append(("one CPU: **manygil channels**", mg_ch1))

        tp_mg = {kind: guarded(best_rate, mg_throughput, kind) for kind in ("bytes", "tuple")}
        tp_mgb = {kind: guarded(best_rate, mg_throughput, kind, BOUNDED) for kind in ("bytes", "tuple")}
        tp_std = {kind: guarded(best_rate, std_throughput, kind) for kind in ("bytes", "tuple")}

    floors = [f["median_us"] for f in (floor1, floor2) if isinstance(f, dict)]
    floor = min(floors) if floors else None

    print(f"Round trip of a small int, main -> other side -> main: {N_RT:,} timed round trips "
          f"after {WARMUP} warm-up ones.\n")
    print("| mechanism | median µs | p90 µs | mean µs | × floor (median) |")
    print("|---|---|---|---|---|")
    for name, r in lat:
        if isinstance(r, dict):
            x = f"{r['median_us'] / floor:.2f}×" if floor else "no floor"
            if r.get("n", N_RT) < N_RT:
                name += f" (only {r['n']:,} round trips: time budget)"
            print(f"| {name} | {fmt_us(r['median_us'])} | {fmt_us(r['p90_us'])} | "
                  f"{fmt_us(r['mean_us'])} | {x} |")
        else:
            print(f"| {name} | {r} | | | |")
    print()
    if isinstance(mg_ch, dict) and floor:
        ratio = mg_ch["median_us"] / floor
        verdict = "met" if ratio <= 1.5 else "NOT met"
        print(f"Target (manygil channel round trip ≤ 1.5× the C floor of the same run, "
              f"lower floor median {floor:.1f} µs): {ratio:.2f}× → **{verdict}**\n")
        one = lat[-3][1]
        if isinstance(mg_ch1, dict) and isinstance(one, dict):
            print(f"With both sides pinned to one CPU: manygil channel {mg_ch1['median_us']:.1f} µs "
                  f"vs C floor {one['median_us']:.1f} µs = {mg_ch1['median_us'] / one['median_us']:.2f}×\n")
    else:
        print(f"Target (manygil channel round trip ≤ 1.5× the C floor): not measured "
              f"(manygil: {mg_ch if not isinstance(mg_ch, dict) else 'ok'}; "
              f"floor: {'ok' if floor else floor1})\n")

    print(f"One-way throughput, main -> an interpreter (or child process) counting until a "
          f"sentinel, {N_MSG:,} messages per run, best of {TP_REPEAT} runs per cell.\n")
    print("| payload | manygil msgs/s | multiprocessing.Queue msgs/s (fork) | ratio | "
          f"manygil, maxsize={BOUNDED} msgs/s | concurrent.interpreters queue msgs/s (3.14) |")
    print("|---|---|---|---|---|---|")
    for kind, label in (("bytes", "1 KiB `bytes`"), ("tuple", '`(i, "x", 1.5)`')):
        a, b, c, d = tp_mg[kind], tp_mp[kind], tp_std[kind], tp_mgb[kind]
        ratio = f"{a / b:.2f}×" if isinstance(a, float) and isinstance(b, float) else ""
        print(f"| {label} | {fmt_rate(a)} | {fmt_rate(b)} | {ratio} | {fmt_rate(d)} | {fmt_rate(c)} |")
    print("\nmanygil and multiprocessing.Queue columns: unbounded (maxsize 0); ratio = manygil / "
          "multiprocessing. An unbounded channel whose sender outruns its receiver holds up to "
          "100 MB of fresh copies (1 KiB case); the bounded column reuses memory.")

    if HAS_STDLIB:
        print("\nconcurrent.interpreters: `Queue.get()` sleeps 10 ms between polls while the queue is "
              "empty (`_delay=10 / 1000` in concurrent/interpreters/_queues.py), hence its round trip; "
              "its `put` of `bytes` keeps a reference to the sender's object and copies only on `get`.")
    print(f"\n(whole run {time.perf_counter() - t_start:.1f} s)")
    if _interp is not None:
        _interp.close()
    if _std_interp is not None:
        _std_interp.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
