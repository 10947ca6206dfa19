"""Actor figures, one run, one Markdown table: manygil actors beside
Pykka-style thread actors (a thread and a queue.Queue per actor) and one
process per actor (multiprocessing, fork).

    .venv-3.13/bin/python bench/actors.py

Rows (each column measured in this run; the process column in a subprocess
that never imports manygil, because on 3.13.0 a fork() while a
subinterpreter is alive kills the child):

1. call round trip main -> actor -> main: median of 2,000 calls of
   ``echo(i)`` after 200 warm-up calls; in the manygil column also a channel
   round trip to an echo loop in an interpreter (two channels), timed in
   batches of 200 taking turns with the actor calls, and the ratio (target:
   actor <= 1.5x channel);
2. actor -> actor call: an actor times 2,000 calls ``peer.echo(i)`` to an
   actor on another worker (thread, process); median (target <= 2x the
   channel round trip);
3. tell throughput into one actor: 200,000 ``add((i, "x", 1.5))`` one-way
   messages (50,000 for processes), timed from the first send until a call
   after them returns (target >= 1,000,000/s);
4. CPU-bound messages: 8 messages of ``spin(N)`` (about 0.1 s each) to 2
   actors, 2 workers vs 1 worker for manygil (threads: 2 thread actors vs 1;
   processes: 2 vs 1), speedup: best of 3 rounds each, the two taking turns
   (other load on the machine shifts while a row runs) (target >= 1.7x);
5. 10,000 actors on a 2-worker system: time to spawn them all, RSS growth
   beyond the system with its 2 interpreters already running, and one call
   to each (all must answer).  Thread actors: 10,000 threads; processes: 100
   processes only (10,000 would not fit this machine), spawn time and
   memory (the children's PSS) scaled to 10,000 and marked so.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
if BENCH not in sys.path:
    sys.path.insert(0, BENCH)

import actors_workload as aw  # noqa: E402

N_RT, WARMUP = 2000, 200
N_TELL, N_TELL_PROC = 200_000, 50_000
N_ACTORS, N_PROC_ACTORS = 10_000, 100
N_CPU_MSGS = 8
CPU_ROUNDS = 3


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def median_rt(call) -> float:
    for i in range(WARMUP):
        call(i)
    clock, times = time.perf_counter_ns, []
    for i in range(N_RT):
        t0 = clock()
        call(i)
        times.append(clock() - t0)
    times.sort()
    return times[len(times) // 2] / 1e3


def median_rt_pair(call_a, call_b, batches: int = 10) -> tuple[float, float]:
    """Medians (us) of N_RT round trips each of call_a and call_b, timed in
    batches that take turns, so that both see the same load."""
    for i in range(WARMUP):
        call_a(i)
        call_b(i)
    clock, ta, tb = time.perf_counter_ns, [], []
    per = N_RT // batches
    for _ in range(batches):
        for call, times in ((call_a, ta), (call_b, tb)):
            for i in range(per):
                t0 = clock()
                call(i)
                times.append(clock() - t0)
    ta.sort()
    tb.sort()
    return ta[len(ta) // 2] / 1e3, tb[len(tb) // 2] / 1e3


def spin_n() -> int:
    """Iterations of aw.spin that take about 0.1 s here."""
    n = 200_000
    t0 = time.perf_counter()
    aw.spin(n)
    return max(1, int(n * 0.1 / (time.perf_counter() - t0)))


def cpu_speedup(cpu) -> float:
    """cpu(n) times the messages on n workers; best of CPU_ROUNDS rounds,
    1 and 2 taking turns."""
    t1, t2 = [], []
    for _ in range(CPU_ROUNDS):
        t1.append(cpu(1))
        t2.append(cpu(2))
    return min(t1) / min(t2)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ---- manygil --------------------------------------------------------------

def manygil_column(n_spin: int) -> dict:
    import manygil
    import channels_echo
    out = {}
    with manygil.ActorSystem(workers=2) as system:
        a = manygil.spawn(aw.Bench, system=system)
        b = manygil.spawn(aw.Bench, a, system=system)        # on the other worker
        # The channel round trip, same run: two channels to an echo loop in
        # an interpreter; batches of it and of the actor call take turns.
        with manygil.create() as interp:
            r1, s1 = manygil.create_channel()
            r2, s2 = manygil.create_channel()
            import threading
            t = threading.Thread(target=interp.call, args=(channels_echo.echo_channel, r1, s2))
            t.start()

            def chan_rt(i):
                s1.send(i)
                return r2.recv()
            out["rt"], out["chan_rt"] = median_rt_pair(a.echo, chan_rt)
            s1.send(None)
            t.join()
        # actor -> actor: the median of 5 batches' medians.
        a2a = sorted(b.call_peer(N_RT // 5) / 1e3 for _ in range(5))
        out["a2a"] = a2a[2]
        tell = a.add.tell
        item = (1, "x", 1.5)
        t0 = time.perf_counter()
        for _ in range(N_TELL):
            tell(item)
        a.count()
        out["tell"] = N_TELL / (time.perf_counter() - t0)
    # CPU-bound: 2 actors on 2 workers vs 2 actors on 1 worker.
    def cpu(workers):
        with manygil.ActorSystem(workers=workers) as s:
            xs = [manygil.spawn(aw.Bench, system=s) for _ in range(2)]
            for x in xs:
                x.spin(1000)                                # warm
            return timed(lambda: [f.result() for f in
                                  [xs[i % 2].spin.submit(n_spin) for i in range(N_CPU_MSGS)]])
    out["cpu"] = cpu_speedup(cpu)
    with manygil.ActorSystem(workers=2) as s:
        warm = [manygil.spawn(aw.Bench, system=s) for _ in range(2)]
        [w.count() for w in warm]
        before = rss_bytes()
        t0 = time.perf_counter()
        refs = [manygil.spawn(aw.Bench, system=s) for _ in range(N_ACTORS)]
        out["spawn"] = time.perf_counter() - t0
        futs = [r.echo.submit(i) for i, r in enumerate(refs)]
        out["answering"] = sum(f.result() == i for i, f in enumerate(futs))
        out["rss"] = (rss_bytes() - before) / 2**20
    return out


# ---- threads ----------------------------------------------------------------

def thread_column(n_spin: int) -> dict:
    out = {}
    a = aw.ThreadRef(aw.Bench)
    b = aw.ThreadRef(aw.Bench, a)
    out["rt"] = median_rt(a.echo)
    out["a2a"] = b.call("call_peer", N_RT) / 1e3
    item = (1, "x", 1.5)
    t0 = time.perf_counter()
    for _ in range(N_TELL):
        a.tell("add", item)
    a.call("count")
    out["tell"] = N_TELL / (time.perf_counter() - t0)
    a.stop()
    b.stop()

    def cpu(n):
        xs = [aw.ThreadRef(aw.Bench) for _ in range(n)]
        def run():
            replies = []
            import queue
            for i in range(N_CPU_MSGS):
                q = queue.Queue(1)
                xs[i % n].inbox.put(("spin", (n_spin,), q))
                replies.append(q)
            [q.get() for q in replies]
        t = timed(run)
        for x in xs:
            x.stop()
        return t
    out["cpu"] = cpu_speedup(cpu)
    before = rss_bytes()
    t0 = time.perf_counter()
    refs = [aw.ThreadRef(aw.Bench) for _ in range(N_ACTORS)]
    out["spawn"] = time.perf_counter() - t0
    out["answering"] = sum(r.echo(i) == i for i, r in enumerate(refs))
    out["rss"] = (rss_bytes() - before) / 2**20
    for r in refs:
        r.inbox.put(None)
    return out


# ---- processes (run in a subprocess: python bench/actors.py --processes N) ----

def process_column(n_spin: int) -> dict:
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    out = {}
    a = aw.ProcessRef(ctx, aw.Bench)
    b = aw.ProcessRef(ctx, aw.Bench, a)
    out["rt"] = median_rt(a.echo)
    out["a2a"] = b.call("call_peer", N_RT) / 1e3
    item = (1, "x", 1.5)
    t0 = time.perf_counter()
    for _ in range(N_TELL_PROC):
        a.tell("add", item)
    a.call("count")
    out["tell"] = N_TELL_PROC / (time.perf_counter() - t0)
    a.stop()
    b.stop()

    def cpu(n):
        xs = [aw.ProcessRef(ctx, aw.Bench) for _ in range(n)]
        for x in xs:
            x.call("echo", 0)
        def run():
            for i in range(N_CPU_MSGS):
                xs[i % n].inbox.put(("spin", (n_spin,), True))
            for i in range(N_CPU_MSGS):
                xs[i % n].outbox.get()
        t = timed(run)
        for x in xs:
            x.stop()
        return t
    out["cpu"] = cpu_speedup(cpu)
    # Memory of the children: the sum of their PSS (proportional set size:
    # a page shared by k processes counts 1/k in each), so pages shared with
    # the parent after fork() are not counted 100 times.
    t0 = time.perf_counter()
    refs = [aw.ProcessRef(ctx, aw.Bench) for _ in range(N_PROC_ACTORS)]
    answering = sum(r.echo(i) == i for i, r in enumerate(refs))
    spawn = time.perf_counter() - t0
    rss = 0
    for r in refs:
        with open(f"/proc/{r.proc.pid}/smaps_rollup") as f:
            rss += next(int(line.split()[1]) * 1024 for line in f if line.startswith("Pss:"))
    for r in refs:
        r.stop()
    scale = N_ACTORS / N_PROC_ACTORS
    out["spawn"] = spawn * scale
    out["rss"] = rss / 2**20 * scale
    out["answering"] = answering
    out["scaled"] = True
    return out


def fmt_row(name, cells):
    return "| " + name + " | " + " | ".join(cells) + " |"


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--processes":
        print(json.dumps(process_column(int(sys.argv[2]))))
        return
    n_spin = spin_n()
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--processes", str(n_spin)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        sys.exit(f"process column failed:\n{proc.stderr}")
    p = json.loads(proc.stdout.strip().splitlines()[-1])
    t = thread_column(n_spin)
    m = manygil_column(n_spin)
    load = os.getloadavg()[0]
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.machine()} {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, load average {load:.2f} at the end")
    print()
    print("| | manygil actors | thread actors (Pykka-style) | process per actor |")
    print("|---|---:|---:|---:|")
    print(fmt_row("call round trip main -> actor -> main", [
        f"{m['rt']:.1f} µs ({m['rt'] / m['chan_rt']:.2f}x the channel round trip, "
        f"{m['chan_rt']:.1f} µs)", f"{t['rt']:.1f} µs", f"{p['rt']:.1f} µs"]))
    print(fmt_row("actor -> actor call (another worker)", [
        f"{m['a2a']:.1f} µs ({m['a2a'] / m['chan_rt']:.2f}x)", f"{t['a2a']:.1f} µs",
        f"{p['a2a']:.1f} µs"]))
    print(fmt_row("tell into one actor, small tuples", [
        f"{m['tell']:,.0f} msg/s", f"{t['tell']:,.0f} msg/s", f"{p['tell']:,.0f} msg/s"]))
    print(fmt_row(f"CPU-bound: {N_CPU_MSGS} x 0.1 s messages to 2 actors, 2 workers vs 1", [
        f"{m['cpu']:.2f}x", f"{t['cpu']:.2f}x (2 threads vs 1)",
        f"{p['cpu']:.2f}x (2 processes vs 1)"]))
    print(fmt_row(f"{N_ACTORS:,} actors: spawn", [
        f"{m['spawn']:.2f} s (2 workers)", f"{t['spawn']:.2f} s ({N_ACTORS:,} threads)",
        f"{p['spawn']:.1f} s (scaled from {N_PROC_ACTORS})"]))
    print(fmt_row(f"{N_ACTORS:,} actors: RSS growth", [
        f"{m['rss']:.0f} MiB", f"{t['rss']:.0f} MiB",
        f"{p['rss']:,.0f} MiB (children's PSS, scaled)"]))
    print(fmt_row(f"{N_ACTORS:,} actors: answering one call each", [
        f"{m['answering']:,}", f"{t['answering']:,}",
        f"{p['answering']} of {N_PROC_ACTORS}"]))


if __name__ == "__main__":
    main()
