"""SharedBuffer figures, side by side in one run, printed as Markdown tables.

    .venv-3.13/bin/python bench/shared_buffer.py

1. Round trip of a SharedBuffer main -> interpreter -> main (`Interpreter.call`
   of an echo function, and through two channels) for 1 MB, 100 MB and 1 GB:
   the time must not depend on the size.  Against, in the same run, the same
   data as `bytes` pickled through `multiprocessing.Pipe` to a child process
   (measured in a subprocess of its own: on 3.13.0 a fork() while a
   subinterpreter is alive kills the child) and, on 3.14, the stdlib's
   memoryview sharing (a memoryview through two `concurrent.interpreters`
   queues to an echo loop: shared, not copied; the queues poll, ~10 ms).
2. The one-copy path: `SharedBuffer.frombytes` of 100 MB in GB/s, against a
   bare `memcpy` (ctypes.memmove) of the same size into memory already mapped,
   and `bytes(bytearray)` (fresh memory + copy, as frombytes), same run.
"""
from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys
import time

SIZES = [(1 << 20, "1 MiB"), (100 << 20, "100 MiB"), (1 << 30, "1 GiB")]

MP_CHILD = r"""
import multiprocessing as mp, sys, time
def echo(conn):
    while True:
        x = conn.recv_bytes()
        if not x:
            return
        conn.send_bytes(x)
if __name__ == "__main__":
    mp.set_start_method("fork")
    size, reps = int(sys.argv[1]), int(sys.argv[2])
    a, b = mp.Pipe()
    p = mp.Process(target=echo, args=(b,)); p.start()
    data = bytes(size)
    a.send_bytes(data); a.recv_bytes()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter(); a.send_bytes(data); a.recv_bytes()
        best = min(best, time.perf_counter() - t0)
    a.send_bytes(b""); p.join()
    print(best)
"""


def echo(x):
    return x


def best_of(fn, reps):
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def fmt_time(t):
    return f"{t * 1e6:,.1f} µs" if t < 1e-3 else f"{t * 1e3:,.1f} ms"


def mp_pipe(size, reps):
    try:
        out = subprocess.run([sys.executable, "-c", MP_CHILD, str(size), str(reps)],
                             capture_output=True, text=True, timeout=300)
        return float(out.stdout.strip()) if out.returncode == 0 else None
    except Exception:
        return None


STDLIB_ECHO = "while True:\n    v = q1.get()\n    if v is None:\n        break\n    q2.put(v)\n"


def stdlib_memoryview_rt(sizes):
    """Round trip of a memoryview (shared, not copied, on 3.14) through two
    ``concurrent.interpreters`` queues to an echo loop in another interpreter:
    {size: best seconds}, or None before 3.14."""
    try:
        from concurrent import interpreters
    except ImportError:
        return None
    import threading
    interp = interpreters.create()
    q1, q2 = interpreters.create_queue(), interpreters.create_queue()
    interp.prepare_main(q1=q1, q2=q2)
    t = threading.Thread(target=interp.exec, args=(STDLIB_ECHO,))
    t.start()
    out = {}
    try:
        for size, _ in sizes:
            mv = memoryview(bytearray(size))

            def rt():
                q1.put(mv)
                q2.get()
            rt()
            out[size] = best_of(rt, 5)
    finally:
        q1.put(None)
        t.join()
        interp.close()
    return out


def main() -> None:
    print(f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{time.strftime('%Y-%m-%d')}\n")
    # The multiprocessing rows first: no interpreter may exist when they fork.
    mp_times = {size: mp_pipe(size, 5 if size < (1 << 30) else 2) for size, _ in SIZES}

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import manygil
    from channels_echo import echo_channel as loop_fn
    from shared_buffer import echo as echo_fn
    rows = []
    with manygil.create() as interp:
        r1, s1 = manygil.create_channel()
        r2, s2 = manygil.create_channel()
        t = interp.call_in_thread(loop_fn, r1, s2)
        for size, label in SIZES:
            buf = manygil.SharedBuffer(size)
            interp.call(echo_fn, buf)
            t_call = best_of(lambda: interp.call(echo_fn, buf), 200)

            def channel_rt():
                s1.send(buf)
                r2.recv()
            channel_rt()
            t_chan = best_of(channel_rt, 200)
            rows.append((label, t_call, t_chan, mp_times[size], size))
        buf = None                  # let the last (1 GiB) block go before the copy test
        s1.send(None)
        t.join()

    std = stdlib_memoryview_rt(SIZES)
    print("| size | SharedBuffer via `call` | SharedBuffer via channels | pickled `bytes` via "
          "`multiprocessing.Pipe` (fork) | memoryview via `concurrent.interpreters` queues (3.14+) |")
    print("|---|---|---|---|---|")
    for label, t_call, t_chan, t_mp, size in rows:
        mp_cell = fmt_time(t_mp) if t_mp is not None else "error"
        std_cell = (fmt_time(std[size]) if std is not None
                    else f"needs Python 3.14 (this is {platform.python_version()})")
        print(f"| {label} | {fmt_time(t_call)} | {fmt_time(t_chan)} | {mp_cell} | {std_cell} |")
    worst = max(max(r[1], r[2]) for r in rows)
    print(f"\nTarget: round trip independent of size, <= 100 µs: worst {worst * 1e6:.1f} µs -> "
          f"{'met' if worst <= 100e-6 else 'NOT met'}")

    n = 100 << 20
    src = bytearray(n)
    dst = (ctypes.c_char * n)()
    src_addr = ctypes.addressof((ctypes.c_char * n).from_buffer(src))
    ctypes.memmove(dst, src_addr, n)
    t_memcpy = best_of(lambda: ctypes.memmove(dst, src_addr, n), 5)
    manygil.SharedBuffer.frombytes(src)
    t_from = best_of(lambda: manygil.SharedBuffer.frombytes(src), 5)
    t_bytes = best_of(lambda: bytes(src), 5)
    r_ch, s_ch = manygil.create_channel()
    big = bytes(src)

    def through_channel(value):
        s_ch.send(value)
        r_ch.recv()
    st0 = manygil._core._codec_stats()
    t_ch_bytes = best_of(lambda: through_channel(big), 5)
    t_ch_array = best_of(lambda: through_channel(src), 5)
    st1 = manygil._core._codec_stats()
    # "one copy" only where the receiver took every block over (see codec.c):
    # a build or allocator where it copies again says so in the row.
    adopted = st1["blocks_adopted"] - st0["blocks_adopted"]
    copies = "one copy" if adopted == 10 and st1["blocks_copied"] == st0["blocks_copied"] else (
        f"two copies: {adopted} of 10 blocks taken over")
    print("\n| one-copy path, 100 MiB | GB/s |")
    print("|---|---|")
    print(f"| `SharedBuffer.frombytes` (fresh memory + copy) | {n / t_from / 1e9:.2f} |")
    print(f"| `bytes(bytearray)` (fresh memory + copy), same run | {n / t_bytes / 1e9:.2f} |")
    print(f"| `bytes` sent + received through a channel ({copies}) | {n / t_ch_bytes / 1e9:.2f} |")
    print(f"| `bytearray` sent + received through a channel ({copies}) | {n / t_ch_array / 1e9:.2f} |")
    print(f"| bare `memcpy` into memory already mapped, same run | {n / t_memcpy / 1e9:.2f} |")


if __name__ == "__main__":
    main()
