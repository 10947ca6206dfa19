"""Progress bars for ``map(..., progress=True)``: tqdm when it imports,
else a plain bar on stderr.  Both are advanced from whichever thread
resolves a future (the pool's collector, or a waiting thread), so every
bar here is driven under a lock of its own."""
from __future__ import annotations

import sys
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from concurrent.futures import Future
    from typing import Any

# The plain bar redraws at most this often (and always at the end).
_REDRAW_S = 0.1
_WIDTH = 24


class _Plain:
    """``desc: 42%|#########          | 42/100 [1.3s, 32.1/s]`` on stderr,
    redrawn in place with a carriage return; without a total,
    ``desc: 42 [1.3s, 32.1/s]``.  close() draws the last state and ends
    the line."""

    def __init__(self, total: int | None, desc: str) -> None:
        self.total = total
        self.desc = desc
        self.n = 0
        self.start = time.monotonic()
        self.drawn = 0.0
        self.closed = False
        self._draw()

    def update(self, n: int) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.drawn >= _REDRAW_S or self.n == self.total:
            self._draw(now)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._draw()
            self._write("\n")

    def _draw(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.drawn = now
        elapsed = now - self.start
        rate = f"{self.n / elapsed:.1f}/s" if elapsed > 0 else "?/s"
        head = f"{self.desc}: " if self.desc else ""
        if self.total:
            frac = min(1.0, self.n / self.total)
            full = int(frac * _WIDTH)
            bar = "#" * full + " " * (_WIDTH - full)
            line = f"{head}{frac * 100:3.0f}%|{bar}| {self.n}/{self.total} [{elapsed:.1f}s, {rate}]"
        else:
            line = f"{head}{self.n} [{elapsed:.1f}s, {rate}]"
        self._write("\r" + line)

    @staticmethod
    def _write(text: str) -> None:
        stream = sys.stderr            # looked up each time: redirections apply
        if stream is None:
            return
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):
            pass                        # a closed stderr: no bar


class Bar:
    """A progress bar safe to drive from several threads: update(n) adds n
    finished items; close() (idempotent) ends it."""

    def __init__(self, total: int | None, desc: str = "") -> None:
        self._lock = threading.Lock()
        self._closed = False
        try:
            import tqdm
        except ImportError:
            self._bar: Any = _Plain(total, desc)
        else:
            self._bar = tqdm.tqdm(total=total, desc=desc or None)

    def update(self, n: int = 1) -> None:
        if n <= 0:
            return
        with self._lock:
            if not self._closed:
                self._bar.update(n)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._bar.close()


def make(total: int | None, desc: str = "") -> Bar:
    return Bar(total, desc)


def _chunk_count(fut: Future) -> int:
    """Items a finished map() chunk accounts for: its results, plus the
    item that raised; 0 for a cancelled chunk or one that failed whole."""
    if fut.cancelled() or fut.exception() is not None:
        return 0
    values, info = fut.result()
    return len(values) + (info is not None)


def track(bar: Bar, fut: Future) -> None:
    """Advance bar when the map() chunk fut finishes (at once if it has)."""
    fut.add_done_callback(lambda f: bar.update(_chunk_count(f)))
