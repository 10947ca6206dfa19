"""Where taking the sender's block over pays (src/py/codec.c MG_ADOPT_MIN).

Build two copies of manygil, one that always takes blocks over and one that
never does, and time a bytes / bytearray value sent and received through a
channel (same thread: no wake-ups), best of many, per size, alone and as lists of
many such values:

    for t in 1024 1073741824; do
      python -m venv /tmp/vadopt$t && /tmp/vadopt$t/bin/pip install meson-python meson ninja
      /tmp/vadopt$t/bin/pip install --no-build-isolation --force-reinstall --no-deps \\
          -Csetup-args=-Dc_args=-DMG_ADOPT_MIN=$t .
    done
    python bench/adopt_threshold.py /tmp/vadopt1024/bin/python /tmp/vadopt1073741824/bin/python
"""
import subprocess
import sys

CHILD = r"""
import sys, time, manygil
r, s = manygil.create_channel()
kind, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
# Not bytes(n): CPython callocs that, and a big calloc is fresh mmap'd pages
# all mapping the kernel's one zero page, so every copy from it reads one hot
# 4 KiB page (1 MiB: 11 vs 17 µs to send on 3.15; bytearray(n) is memset, so
# the bytes and bytearray rows differed for that alone).  Real data is in
# memory of its own.
data = b"\x5a" * n
v = {"bytes": data, "bytearray": bytearray(data), "list": [data] * k}[kind]
del data
best = float("inf")
for _ in range(max(20, min(2000, (64 << 20) // (n * k)))):
    t0 = time.perf_counter(); s.send(v); r.recv(); best = min(best, time.perf_counter() - t0)
s.send(v); got = r.recv()     # untimed: what came out is what went in, as the same type
assert type(got) is type(v) and got == v, (type(got), len(got))
st = manygil._core._codec_stats()
print(best, st["blocks_adopted"], st["blocks_copied"])
"""

# Each case in a fresh process: glibc's malloc adapts its thresholds to what
# the process freed before, and the cases would steer each other.
CASES = [("bytes", 4 << 10, 1), ("bytearray", 4 << 10, 1), ("bytes", 64 << 10, 1),
         ("bytes", 256 << 10, 1), ("bytes", 1 << 20, 1), ("bytearray", 1 << 20, 1),
         ("bytes", 8 << 20, 1), ("list", 16 << 10, 1000), ("list", 64 << 10, 100),
         ("list", 256 << 10, 50), ("list", 1 << 20, 20), ("list", 4 << 20, 5)]


def run(py, case, adopt):
    """Best time of `case` under interpreter `py`; checks that this build took
    the blocks over (adopt=True) or never did (adopt=False: below its
    threshold the value is copied into the message and out again, and no
    block is counted either way): a build that silently did the other would
    make the comparison meaningless."""
    kind, n, k = case
    out = subprocess.run([py, "-c", CHILD, kind, str(n), str(k)], capture_output=True, text=True,
                         check=True, timeout=300)
    best, adopted, copied = out.stdout.split()
    if (int(adopted) > 0 and int(copied) == 0) != adopt:
        sys.exit(f"{py}: {label(case)}: {adopted} blocks taken over, {copied} copied from; "
                 f"expected {'only taken over' if adopt else 'none taken over'}")
    return float(best)


def label(case):
    kind, n, k = case
    size = f"{n // 1024:,} KiB"
    return f"list of {k} bytes of {size}" if kind == "list" else f"{kind} of {size}"


def main():
    adopt_py, copy_py = sys.argv[1], sys.argv[2]
    print("| value (fresh process each) | take the block over | copy again | ratio |")
    print("|---|---|---|---|")
    for case in CASES:
        # Twice, interleaved; keep the best of each.
        ta = min(run(adopt_py, case, True), run(adopt_py, case, True))
        tc = min(run(copy_py, case, False), run(copy_py, case, False))
        print(f"| {label(case)} | {ta * 1e6:,.1f} µs | {tc * 1e6:,.1f} µs | {ta / tc:.2f} |")


if __name__ == "__main__":
    main()
