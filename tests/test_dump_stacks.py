"""Issue #5, stacks across interpreters: ``manygil.dump_stacks(file=None)``
and ``manygil.format_stacks()`` show every thread of every interpreter
manygil knows, per interpreter (``Interpreter <id>``), with what each
thread waits on; safe from signal handlers and other threads."""
import io
import os
import threading
import time

import pytest

import manygil
from helpers import wd_funcs as wf
from helpers.pool_util import make_pool
from helpers.proc import describe, run_script
from helpers.wd_util import call_in_thread, mentions_number, sections, wait_for

MARKER = "wd_spin_forever_marker"


class Spinner:
    """An interpreter running wd_spin_forever_marker (or another looping
    helper) in a thread until stop(); at most ``limit`` seconds."""

    def __init__(self, interp, fn=wf.wd_spin_forever_marker, limit=20.0):
        self.interp = interp
        self.buf = manygil.SharedBuffer(8)
        self.flags = memoryview(self.buf)
        self.thread = call_in_thread(interp, fn, self.buf, limit)
        assert wait_for(lambda: self.flags[1] == 1, 20), "the loop never started"

    def stop(self):
        self.flags[0] = 1
        self.thread.join(30)
        assert not self.thread.is_alive()
        assert self.thread.error is None, self.thread.error
        self.flags.release()


@pytest.fixture
def spinning(interp):
    sp = Spinner(interp)
    try:
        yield sp
    finally:
        sp.stop()


def dump_until(interp_id, *needles, timeout=10.0):
    """format_stacks() until interpreter ``interp_id``'s section shows all
    ``needles`` (str, or int: a whole number) -- the thread may not be
    blocked yet on the first look; returns the last text."""
    last = [""]

    def ok():
        last[0] = text = manygil.format_stacks()
        sec = sections(text).get(interp_id, "")
        return all(mentions_number(sec, n) if isinstance(n, int) else n in sec
                   for n in needles)
    wait_for(ok, timeout, interval=0.05)
    return last[0]


def assert_marker_in_section(text, interp_id, marker=MARKER):
    secs = sections(text)
    assert interp_id in secs, f"no 'Interpreter {interp_id}' section:\n{text}"
    assert marker in secs[interp_id], f"{marker} not in interpreter {interp_id}'s section:\n{text}"


# ============================================================================
# format_stacks / dump_stacks targets
# ============================================================================

@pytest.mark.timeout(60)
def test_format_stacks_shows_loop_in_other_interpreter(spinning):
    text = manygil.format_stacks()
    assert isinstance(text, str)
    assert f"Interpreter {spinning.interp.id}" in text
    assert MARKER in text
    assert_marker_in_section(text, spinning.interp.id)


@pytest.mark.timeout(60)
def test_format_stacks_shows_main_interpreter_and_this_test(spinning):
    text = manygil.format_stacks()
    main_id = manygil.get_main().id
    secs = sections(text)
    assert main_id in secs, text
    # This thread is in the main interpreter, running this test function.
    assert "test_format_stacks_shows_main_interpreter_and_this_test" in secs[main_id], text
    # The spinning loop is not attributed to main.
    assert MARKER not in secs[main_id], text


@pytest.mark.timeout(60)
def test_dump_stacks_to_stringio(spinning):
    buf = io.StringIO()
    assert manygil.dump_stacks(file=buf) is None
    text = buf.getvalue()
    assert f"Interpreter {spinning.interp.id}" in text
    assert_marker_in_section(text, spinning.interp.id)
    assert manygil.get_main().id in sections(text)


@pytest.mark.timeout(60)
def test_dump_stacks_positional_file(spinning):
    buf = io.StringIO()
    manygil.dump_stacks(buf)
    assert MARKER in buf.getvalue()


@pytest.mark.timeout(60)
def test_dump_stacks_to_real_file(spinning, tmp_path):
    path = tmp_path / "stacks.txt"
    with open(path, "w") as f:
        manygil.dump_stacks(file=f)
    text = path.read_text()
    assert f"Interpreter {spinning.interp.id}" in text
    assert_marker_in_section(text, spinning.interp.id)


class FilenoOnly:
    """An object with fileno() and no write(): the contract accepts it."""

    def __init__(self, fd):
        self._fd = fd

    def fileno(self):
        return self._fd


@pytest.mark.timeout(60)
def test_dump_stacks_to_object_with_only_fileno(spinning, tmp_path):
    path = tmp_path / "stacks_fd.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        manygil.dump_stacks(file=FilenoOnly(fd))
    finally:
        os.close(fd)
    text = path.read_text()
    assert f"Interpreter {spinning.interp.id}" in text
    assert MARKER in text


@pytest.mark.timeout(60)
def test_dump_stacks_defaults_to_stderr(spinning, capfd):
    manygil.dump_stacks()
    out, err = capfd.readouterr()
    assert MARKER in err, err
    assert f"Interpreter {spinning.interp.id}" in err
    assert MARKER not in out


@pytest.mark.timeout(60)
def test_dump_stacks_shows_caller_frames_too(interp):
    sp = Spinner(interp, fn=wf.wd_outer_frame_marker)
    try:
        text = manygil.format_stacks()
    finally:
        sp.stop()
    assert_marker_in_section(text, interp.id, "wd_outer_frame_marker")
    assert_marker_in_section(text, interp.id, MARKER)


@pytest.mark.timeout(60)
def test_format_stacks_with_only_main():
    text = manygil.format_stacks()
    assert manygil.get_main().id in sections(text), text
    assert "test_format_stacks_with_only_main" in text


@pytest.mark.timeout(60)
def test_format_stacks_and_dump_stacks_agree(spinning):
    buf = io.StringIO()
    manygil.dump_stacks(file=buf)
    a, b = sections(buf.getvalue()), sections(manygil.format_stacks())
    assert set(a) == set(b)
    assert MARKER in a[spinning.interp.id] and MARKER in b[spinning.interp.id]


# ============================================================================
# every interpreter and every thread
# ============================================================================

@pytest.mark.timeout(60)
def test_two_interpreters_each_in_its_section(interp, interp2):
    a = Spinner(interp)
    b = Spinner(interp2, fn=wf.wd_outer_frame_marker)
    try:
        text = manygil.format_stacks()
    finally:
        a.stop()
        b.stop()
    secs = sections(text)
    assert MARKER in secs[interp.id] and "wd_outer_frame_marker" not in secs[interp.id], text
    assert "wd_outer_frame_marker" in secs[interp2.id], text


@pytest.mark.timeout(60)
def test_thread_started_inside_subinterpreter_is_shown(interp):
    buf = manygil.SharedBuffer(8)
    flags = memoryview(buf)
    interp.prepare_main(buf=buf)
    interp.exec(
        "import threading\n"
        "from helpers import wd_funcs\n"
        "t = threading.Thread(target=wd_funcs.wd_spin_forever_marker, args=(buf, 20.0))\n"
        "t.start()\n")
    try:
        assert wait_for(lambda: flags[1] == 1, 20)
        text = manygil.format_stacks()
    finally:
        flags[0] = 1
        interp.exec("t.join()\nbuf = None\nt = None")
        flags.release()
    assert_marker_in_section(text, interp.id)


@pytest.mark.timeout(60)
def test_pool_workers_are_shown():
    buf = manygil.SharedBuffer(8)
    flags = memoryview(buf)
    with make_pool(max_workers=1) as pool:
        worker = pool.submit(wf.wd_interp_id).result(30)
        fut = pool.submit(wf.wd_spin_forever_marker, buf, 20.0)
        try:
            assert wait_for(lambda: flags[1] == 1, 20)
            text = manygil.format_stacks()
        finally:
            flags[0] = 1
        fut.result(30)
    flags.release()
    assert_marker_in_section(text, worker)


@pytest.mark.timeout(60)
def test_concurrent_dumps_from_threads_while_interpreters_run(interp, interp2):
    a = Spinner(interp)
    b = Spinner(interp2, fn=wf.wd_outer_frame_marker)
    errors, texts = [], []

    def dumper():
        try:
            for _ in range(8):
                texts.append(manygil.format_stacks())
                s = io.StringIO()
                manygil.dump_stacks(file=s)
                texts.append(s.getvalue())
        except BaseException as e:      # noqa: BLE001
            errors.append(e)

    try:
        ts = [threading.Thread(target=dumper) for _ in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        assert not any(t.is_alive() for t in ts), "a stack dump hung"
    finally:
        a.stop()
        b.stop()
    assert errors == []
    assert len(texts) == 48
    for text in texts:
        secs = sections(text)
        assert MARKER in secs[interp.id], text
        assert "wd_outer_frame_marker" in secs[interp2.id], text
    # The interpreters still work afterwards.
    assert interp.call(wf.wd_add, 1, 2) == 3
    assert interp2.call(wf.wd_add, 3, 4) == 7


@pytest.mark.timeout(120)
def test_dump_does_not_hang_behind_interpreter_holding_its_gil_in_c(interp):
    # An interpreter whose GIL a thread keeps in C for many seconds: the
    # dump still comes back (while that C call is still running) and still
    # has that interpreter's heading and the other interpreters' stacks.
    t0 = time.perf_counter()
    wf.wd_hold_gil_in_c(2_000_000)
    per_item = (time.perf_counter() - t0) / 2_000_000
    n = int(8.0 / per_item)             # about 8 s of C here
    t = call_in_thread(interp, wf.wd_hold_gil_in_c, n)
    assert wait_for(interp.is_running, 10)
    time.sleep(0.3)
    text = manygil.format_stacks()
    still_in_c = t.is_alive()
    t.join(120)
    assert still_in_c, "the dump waited for the C call to end"
    assert interp.id in sections(text), text
    assert manygil.get_main().id in sections(text), text
    assert "test_dump_does_not_hang_behind_interpreter_holding_its_gil_in_c" in text


# ============================================================================
# what threads wait on
# ============================================================================

@pytest.mark.timeout(60)
def test_shows_channel_a_thread_waits_on(interp):
    r, s = manygil.create_channel()
    t = call_in_thread(interp, wf.wd_recv_timeout_marker, r, 20.0)
    try:
        text = dump_until(interp.id, "wd_recv_timeout_marker", r.id)
    finally:
        s.send("go")
        t.join(10)
    assert t.result == ("value", "go")
    sec = sections(text)[interp.id]
    assert "wd_recv_timeout_marker" in sec, text
    assert mentions_number(sec, r.id), f"channel id {r.id} not in:\n{sec}"


@pytest.mark.timeout(60)
def test_shows_channel_a_main_interpreter_thread_waits_on():
    r, s = manygil.create_channel()
    got = []
    t = threading.Thread(target=lambda: got.append(wf.wd_recv_timeout_marker(r, 20.0)))
    t.start()
    try:
        text = dump_until(manygil.get_main().id, "wd_recv_timeout_marker", r.id)
    finally:
        s.send("go")
        t.join(10)
    assert got == [("value", "go")]
    sec = sections(text)[manygil.get_main().id]
    assert "wd_recv_timeout_marker" in sec, text
    assert mentions_number(sec, r.id), f"channel id {r.id} not in:\n{sec}"


@pytest.mark.timeout(60)
def test_shows_queue_a_thread_waits_on(interp):
    q = manygil.create_queue()
    t = call_in_thread(interp, wf.wd_queue_get_marker, q, 20.0)
    try:
        text = dump_until(interp.id, "wd_queue_get_marker", q.id)
    finally:
        q.put(7)
        t.join(10)
    assert t.result == ("value", 7)
    sec = sections(text)[interp.id]
    assert "wd_queue_get_marker" in sec, text
    assert "queue" in sec.lower() and mentions_number(sec, q.id), sec


# ============================================================================
# from a signal handler (child process)
# ============================================================================

SIGUSR1_MAIN_SLEEPS = r"""
import os, signal, sys, threading, time
import manygil
from helpers import wd_funcs as wf

signal.signal(signal.SIGUSR1, lambda *a: manygil.dump_stacks())
buf = manygil.SharedBuffer(8)
flags = memoryview(buf)
it = manygil.create()
t = threading.Thread(target=it.call, args=(wf.wd_spin_forever_marker, buf, 20.0))
t.start()
while flags[1] == 0:
    time.sleep(0.01)
print("ID", it.id, flush=True)
os.kill(os.getpid(), signal.SIGUSR1)
time.sleep(0.5)
flags[0] = 1
t.join()
flags.release()
it.close()
print("DONE", flush=True)
"""


@pytest.mark.timeout(90)
def test_dump_stacks_from_sigusr1_handler(tmp_path):
    if not hasattr(__import__("signal"), "SIGUSR1"):
        pytest.skip("no SIGUSR1")
    proc = run_script(tmp_path, SIGUSR1_MAIN_SLEEPS, timeout=60)
    assert proc.returncode == 0, describe(proc)
    assert "DONE" in proc.stdout, describe(proc)
    iid = int(proc.stdout.split("ID ", 1)[1].split()[0])
    assert f"Interpreter {iid}" in proc.stderr, describe(proc)
    assert MARKER in proc.stderr, describe(proc)


SIGUSR1_MAIN_JOINS = r"""
import os, signal, sys, threading, time
import manygil
from helpers import wd_funcs as wf

signal.signal(signal.SIGUSR1, lambda *a: manygil.dump_stacks(file=sys.stdout))
buf = manygil.SharedBuffer(8)
flags = memoryview(buf)
it = manygil.create()
t = threading.Thread(target=it.call, args=(wf.wd_spin_forever_marker, buf, 20.0))
t.start()
while flags[1] == 0:
    time.sleep(0.01)

def poke():
    time.sleep(0.3)
    os.kill(os.getpid(), signal.SIGUSR1)      # main is blocked in t.join()
    time.sleep(1.0)
    flags[0] = 1

threading.Thread(target=poke, daemon=True).start()
t.join()
print("DONE", it.id, flush=True)
it.close()
"""


@pytest.mark.timeout(90)
def test_dump_stacks_from_signal_handler_while_main_blocked(tmp_path):
    if not hasattr(__import__("signal"), "SIGUSR1"):
        pytest.skip("no SIGUSR1")
    proc = run_script(tmp_path, SIGUSR1_MAIN_JOINS, timeout=60)
    assert proc.returncode == 0, describe(proc)
    assert "DONE" in proc.stdout, describe(proc)
    iid = int(proc.stdout.split("DONE ", 1)[1].split()[0])
    before_done = proc.stdout.split("DONE", 1)[0]
    assert f"Interpreter {iid}" in before_done, describe(proc)
    assert MARKER in before_done, describe(proc)
