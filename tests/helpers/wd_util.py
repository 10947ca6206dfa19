"""Main-interpreter helpers for test_interrupts/test_watchdog/test_dump_stacks
(never imported in subinterpreters)."""
import re
import threading
import time


def wait_for(pred, timeout=10.0, interval=0.005):
    """Poll ``pred`` until true; return its final truthiness."""
    end = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() > end:
            return False
        time.sleep(interval)


class Outcome(threading.Thread):
    """Run ``fn(*args)`` in a daemon thread; keep its result or exception
    and when it finished."""

    def __init__(self, fn, *args):
        super().__init__(daemon=True)
        self.fn, self.args = fn, args
        self.result = None
        self.error = None
        self.done_at = None

    def run(self):
        try:
            self.result = self.fn(*self.args)
        except BaseException as e:      # noqa: BLE001 - examined by the test
            self.error = e
        self.done_at = time.monotonic()


def exec_in_thread(interp, code):
    t = Outcome(interp.exec, code)
    t.start()
    return t


def call_in_thread(interp, fn, *args):
    t = Outcome(interp.call, fn, *args)
    t.start()
    return t


def remote_type_name(exc):
    """The remote exception type's name of an ExecutionFailed."""
    import manygil
    assert isinstance(exc, manygil.ExecutionFailed), repr(exc)
    return exc.excinfo.type.__name__


_HEAD = re.compile(r"^Interpreter (\d+)\b.*$", re.MULTILINE)


def sections(text):
    """Split a stack dump into {interpreter id: its section's text}."""
    heads = list(_HEAD.finditer(text))
    out = {}
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        out[int(m.group(1))] = out.get(int(m.group(1)), "") + text[m.start():end]
    return out


def mentions_number(text, n):
    """Whether the integer ``n`` appears in ``text`` as a whole number."""
    # Not part of a longer word/number (hex thread ids, "0.6 s", ...).
    return re.search(rf"(?<![\w.]){n}(?!\w|\.\d)", text) is not None
