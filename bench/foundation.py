"""Foundation figures, side by side, printed as a Markdown table.

    .venv-3.13/bin/python bench/foundation.py

- codec vs pickle (protocol 5) on the same values: encode, decode and the
  round trip, per value;
- create + close time per interpreter;
- a call round trip (main -> interpreter -> main) vs a plain function call
  and vs a ThreadPoolExecutor submit/result;
- the parallel ratio: the same CPU-bound loop in 2 interpreters on 2
  threads vs 1 (1.0 = perfect, 2.0 = serial);
- RSS growth over 200 create/close cycles.
"""
from __future__ import annotations

import concurrent.futures
import os
import pickle
import platform
import sys
import threading
import time

import manygil
from manygil import _core

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import raw_create_close  # noqa: E402


def best_of(fn, repeat=5, number=1):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def spin(n: int) -> int:
    x = 0
    for i in range(n):
        x += i
    return x


def rss_growth(cycle, warmup=20, cycles=200) -> float:
    for _ in range(warmup):
        cycle()
    before = rss_mib()
    for _ in range(cycles):
        cycle()
    return rss_mib() - before


def identity(x):
    return x


def codec_rows():
    values = {
        "dict: 1,000 str -> list of 10 ints": {f"key{i}": list(range(i, i + 10)) for i in range(1000)},
        "list of 100,000 floats": [i * 0.5 for i in range(100_000)],
    }
    rows = []
    for name, v in values.items():
        enc = best_of(lambda: _core.encode(v), number=20)
        data = _core.encode(v)
        dec = best_of(lambda: _core.decode(data), number=20)
        penc = best_of(lambda: pickle.dumps(v, 5), number=20)
        pdata = pickle.dumps(v, 5)
        pdec = best_of(lambda: pickle.loads(pdata), number=20)
        assert _core.decode(data) == v
        rows.append((name, enc, dec, penc, pdec, len(data), len(pdata)))
    return rows


def main() -> None:
    print(f"manygil {manygil.__version__}, Python {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}\n")

    print("| value | codec encode | codec decode | pickle dumps | pickle loads | codec / pickle (round trip) | size codec / pickle |")
    print("|---|---|---|---|---|---|---|")
    for name, enc, dec, penc, pdec, n, pn in codec_rows():
        print(f"| {name} | {enc*1e3:.2f} ms | {dec*1e3:.2f} ms | {penc*1e3:.2f} ms | "
              f"{pdec*1e3:.2f} ms | {(enc+dec)/(penc+pdec):.2f}x | {n:,} / {pn:,} B |")

    def create_close():
        manygil.create().close()
    create_close()
    t_create = best_of(create_close, repeat=5, number=5)

    interp = manygil.create()
    interp.call(identity, 1)
    t_call = best_of(lambda: interp.call(identity, 1), repeat=5, number=2000)
    t_plain = best_of(lambda: identity(1), repeat=5, number=2000)
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        ex.submit(identity, 1).result()
        t_thread = best_of(lambda: ex.submit(identity, 1).result(), repeat=5, number=2000)

    other = manygil.create()
    n = 3_000_000
    other.call(spin, 10)
    ratios = []
    for _ in range(3):
        t0 = time.perf_counter()
        interp.call(spin, n)
        t_one = time.perf_counter() - t0
        threads = [threading.Thread(target=it.call, args=(spin, n)) for it in (interp, other)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ratios.append((time.perf_counter() - t0) / t_one)
    interp.close()
    other.close()

    growth = rss_growth(create_close)
    raw = raw_create_close()
    raw_growth = rss_growth(raw) if raw else float("nan")

    print()
    print("| measure | manygil | for comparison |")
    print("|---|---|---|")
    print(f"| create + close one interpreter | {t_create*1e3:.1f} ms | |")
    print(f"| call round trip `interp.call(identity, 1)` | {t_call*1e6:.1f} µs | "
          f"plain call {t_plain*1e6:.2f} µs; ThreadPoolExecutor submit+result {t_thread*1e6:.1f} µs |")
    print(f"| 2 interpreters / 1, same CPU-bound loop (best of 3) | {min(ratios):.2f} | "
          f"1.00 = perfectly parallel, 2.00 = serial |")
    print(f"| RSS growth over 200 create/close cycles | {growth:+.1f} MiB | "
          f"CPython's own isolated interpreters, same run: {raw_growth:+.1f} MiB |")


if __name__ == "__main__":
    sys.exit(main())
