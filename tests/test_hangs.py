"""Issue #5: deadlock detection, the watchdog, stacks across interpreters,
interrupts, pool time limits and cancellation, Ctrl-C."""
import concurrent.futures as cf
import gc
import io
import logging
import statistics
import threading
import time

import pytest

import manygil
from helpers import hang_funcs as hf
from helpers.proc import describe, run_script


def waits():
    return manygil._core._waits()


def wait_for(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.002)
    return False


class Runner(threading.Thread):
    """Run interp.exec(code) in a thread; keep the outcome and when it came."""

    def __init__(self, interp, code):
        super().__init__(daemon=True)
        self.interp, self.code = interp, code
        self.error = None
        self.done_at = None

    def run(self):
        try:
            self.interp.exec(self.code)
        except Exception as e:          # noqa: BLE001 - examined by the test
            self.error = e
        self.done_at = time.monotonic()


def remote_type(exc):
    assert isinstance(exc, manygil.ExecutionFailed), repr(exc)
    return exc.excinfo.type.__name__


def cross(a, b, *, keep_s1=False):
    """Channels 1 and 2: A gets `r` = recv1 and `s` = send2, B gets `r` =
    recv2 and `s` = send1.  Main drops its handles (all but send1 with
    keep_s1, which is returned).  Returns (recv1 id, recv2 id, send1 or None)."""
    r1, s1 = manygil.create_channel()
    r2, s2 = manygil.create_channel()
    a.prepare_main(r=r1, s=s2)
    b.prepare_main(r=r2, s=s1)
    ids = (r1.id, r2.id)
    kept = s1 if keep_s1 else None
    del r1, s1, r2, s2
    gc.collect()
    return ids[0], ids[1], kept


def cycle(a, b, *, queue=False):
    """A holds recv1/send2, B holds recv2/send1; main keeps nothing.
    Returns the code each runs to wait."""
    if not queue:
        cross(a, b)
        return "r.recv()"
    q1, q2 = manygil.create_queue(), manygil.create_queue()
    a.prepare_main(r=q1, s=q2)
    b.prepare_main(r=q2, s=q1)
    del q1, q2
    gc.collect()
    return "r.get()"


@pytest.fixture
def pair():
    a, b = manygil.create(), manygil.create()
    yield a, b
    for i in (a, b):
        i.exec("r = s = None")
        i.close()


# --- deadlock detection ------------------------------------------------------

def run_cycle(a, b, *, queue=False):
    code = cycle(a, b, queue=queue)
    ta, tb = Runner(a, code), Runner(b, code)
    ta.start()
    assert wait_for(lambda: len(waits()) >= 1)
    tb.start()
    assert wait_for(lambda: len(waits()) >= 2 or tb.done_at is not None)
    blocked = time.monotonic()
    ta.join(10)
    tb.join(10)
    assert not ta.is_alive() and not tb.is_alive(), "a deadlocked wait was never broken"
    return ta, tb, max(ta.done_at, tb.done_at) - blocked


@pytest.mark.timeout(60)
@pytest.mark.parametrize("queue", [False, True], ids=["channels", "queues"])
def test_receive_cycle_raises_deadlock_error_in_both(pair, queue):
    a, b = pair
    latencies = []
    for _ in range(3):
        ta, tb, latency = run_cycle(a, b, queue=queue)
        latencies.append(latency)
        for t in (ta, tb):
            assert remote_type(t.error) == "DeadlockError"
            msg = str(t.error)
            assert f"interpreter {a.id}" in msg and f"interpreter {b.id}" in msg
            assert ("queue" if queue else "channel") in msg
    # The bound: within 100 ms of the cycle closing (median of 3).
    assert statistics.median(latencies) < 0.1, latencies


@pytest.mark.timeout(60)
def test_deadlock_message_names_channels(pair):
    a, b = pair
    ids = cross(a, b)[:2]
    ta, tb = Runner(a, "r.recv()"), Runner(b, "r.recv()")
    ta.start(), tb.start()
    ta.join(10), tb.join(10)
    msg = str(ta.error)
    assert all(f"RecvChannel id {i}" in msg for i in ids), msg
    assert "receive on" in msg


@pytest.mark.timeout(60)
def test_send_cycle_on_full_bounded_channels(pair):
    a, b = pair
    r1, s1 = manygil.create_channel(maxsize=1)
    r2, s2 = manygil.create_channel(maxsize=1)
    s1.send(0)
    s2.send(0)                     # both full
    a.prepare_main(s=s1, r=r2)     # A sends on 1; only A can receive 2
    b.prepare_main(s=s2, r=r1)
    del r1, s1, r2, s2
    gc.collect()
    ta, tb = Runner(a, "s.send(1)"), Runner(b, "s.send(1)")
    ta.start(), tb.start()
    ta.join(10), tb.join(10)
    assert remote_type(ta.error) == "DeadlockError"
    assert remote_type(tb.error) == "DeadlockError"
    assert "send on" in str(ta.error)


@pytest.mark.timeout(60)
def test_interpreters_usable_after_deadlock(pair):
    a, b = pair
    run_cycle(a, b)
    assert a.call(hf.add, 1, 2) == 3
    b.exec("x = 1")


@pytest.mark.timeout(60)
def test_self_deadlock_single_interpreter():
    # A thread receiving on a channel whose only sender is its own interpreter.
    with manygil.create() as a:
        r, s = manygil.create_channel()
        a.prepare_main(r=r, s=s)
        del r, s
        gc.collect()
        t = Runner(a, "r.recv()")
        t.start()
        t.join(10)
        assert remote_type(t.error) == "DeadlockError"
        a.exec("r = s = None")


@pytest.mark.timeout(60)
def test_nobody_can_send_wakes_receiver():
    # The seed's "both sides receiving with nobody able to send": with the
    # object API no one holding the send end means it is closed, and the
    # receiver wakes with ChannelClosedError at once.
    with manygil.create() as a:
        r, s = manygil.create_channel()
        a.prepare_main(r=r)
        del r, s
        gc.collect()
        t = Runner(a, "r.recv()")
        t.start()
        t.join(10)
        assert remote_type(t.error) == "ChannelClosedError"
        a.exec("r = None")


MAIN_THREAD_CYCLE = r"""
import gc, threading, time, manygil
a = manygil.create()
r1, s1 = manygil.create_channel()
r2, s2 = manygil.create_channel()
a.prepare_main(r=r2, s=s1)      # A waits on 2 and could send on 1
del r2, s1
gc.collect()
got = []
def run():
    try:
        a.exec("r.recv()")
    except manygil.ExecutionFailed as e:
        got.append(e.excinfo.type.__name__)
t = threading.Thread(target=run)
t.start()
t0 = time.monotonic()
try:
    r1.recv()                   # main waits on 1; main alone holds 2's send end
except manygil.DeadlockError as e:
    print("MAIN: DeadlockError", round(time.monotonic() - t0, 3))
    print("MSG:", e)
t.join()
print("A:", *got)
"""


@pytest.mark.timeout(60)
def test_main_thread_in_cycle_with_subinterpreter(tmp_path):
    # The seed's production story: the main thread waits for a message from
    # interpreter A while A waits for one only main could send.
    proc = run_script(tmp_path, MAIN_THREAD_CYCLE, timeout=40)
    assert proc.returncode == 0, describe(proc)
    assert "A: DeadlockError" in proc.stdout and "MAIN: DeadlockError" in proc.stdout, describe(proc)
    assert "interpreter 0" in proc.stdout


# --- look-alikes that are not deadlocks ---------------------------------------

@pytest.mark.timeout(60)
def test_slow_sender_is_not_broken(pair):
    a, b = pair
    cross(a, b)
    ta = Runner(a, "v = r.recv(); s.send(v + 1)")
    tb = Runner(b, "import time; time.sleep(0.6); s.send(41); w = r.recv()")
    ta.start(), tb.start()
    ta.join(10), tb.join(10)
    assert ta.error is None and tb.error is None
    b.exec("assert w == 42, w")


@pytest.mark.timeout(60)
def test_main_interpreter_holding_send_end_keeps_waits(pair):
    a, b = pair
    s1 = cross(a, b, keep_s1=True)[2]
    # Main keeps s1 (the send end A waits on) and its main thread is free.
    ta = Runner(a, "v = r.recv(); s.send(v)")
    tb = Runner(b, "w = r.recv()")
    ta.start(), tb.start()
    assert wait_for(lambda: len(waits()) >= 2)
    time.sleep(0.5)                # well past detection time
    assert ta.is_alive() and tb.is_alive(), "a wait main could satisfy was broken"
    s1.send(7)
    ta.join(10), tb.join(10)
    assert ta.error is None and tb.error is None
    b.exec("assert w == 7")
    del s1


@pytest.mark.timeout(60)
def test_second_thread_in_same_interpreter_is_not_broken(pair):
    a, b = pair
    cross(a, b)
    # A starts a thread that sends on s2 after 0.6 s, then waits on r1.
    ta = Runner(a, "from helpers import hang_funcs as hf\n"
                   "hf.send_later_in_thread(s, 'from-thread', 0.6)\n"
                   "v = r.recv()")
    tb = Runner(b, "w = r.recv(); s.send(w + '!')")
    ta.start(), tb.start()
    ta.join(15), tb.join(15)
    assert ta.error is None, ta.error
    assert tb.error is None, tb.error
    a.exec("assert v == 'from-thread!', v")


@pytest.mark.timeout(60)
def test_waits_with_timeout_are_never_broken(pair):
    a, b = pair
    code = cycle(a, b)
    code = code.replace("r.recv()", "r.recv(timeout=0.6)")
    ta, tb = Runner(a, code), Runner(b, code)
    ta.start(), tb.start()
    ta.join(10), tb.join(10)
    assert remote_type(ta.error) == "ChannelTimeoutError"
    assert remote_type(tb.error) == "ChannelTimeoutError"


@pytest.mark.timeout(60)
def test_seed_channels_are_never_broken(pair):
    a, b = pair
    from manygil import interpreters as seed
    c1, c2 = seed.create_channel(), seed.create_channel()
    code_a = f"from manygil import interpreters as seed\nseed.channel_recv({c1}, timeout=0.6)"
    code_b = f"from manygil import interpreters as seed\nseed.channel_recv({c2}, timeout=0.6)"
    ta, tb = Runner(a, code_a), Runner(b, code_b)
    ta.start(), tb.start()
    ta.join(10), tb.join(10)
    for t in (ta, tb):
        assert t.error is not None and remote_type(t.error) != "DeadlockError"


@pytest.mark.timeout(60)
def test_detection_can_be_turned_off(pair):
    a, b = pair
    assert manygil.configure() == {"deadlock_detection": True}
    assert manygil.configure(deadlock_detection=False) == {"deadlock_detection": False}
    try:
        code = cycle(a, b)
        ta, tb = Runner(a, code), Runner(b, code)
        ta.start(), tb.start()
        assert wait_for(lambda: len(waits()) >= 2)
        time.sleep(0.4)
        assert ta.is_alive() and tb.is_alive(), "detection is off: the waits stay"
        manygil.configure(deadlock_detection=True)   # back on: found now
        ta.join(10), tb.join(10)
        assert remote_type(ta.error) == "DeadlockError"
        assert remote_type(tb.error) == "DeadlockError"
    finally:
        manygil.configure(deadlock_detection=True)
    with pytest.raises(TypeError):
        manygil.configure(deadlock_detection="yes")


@pytest.mark.timeout(60)
def test_deadlock_between_pool_tasks():
    with manygil.InterpreterPoolExecutor(2) as pool:
        r1, s1 = manygil.create_channel()
        f1 = pool.submit(hf.recv_forever, r1)
        assert wait_for(lambda: len(waits()) >= 1)
        # The worker holds r1 (its argument); main holds s1: no deadlock.
        time.sleep(0.3)
        assert not f1.done()
        s1.send("ok")
        assert f1.result(10) == ("value", "ok")


# --- interrupts ----------------------------------------------------------------

@pytest.mark.timeout(60)
def test_interpreter_interrupt():
    with manygil.create() as it:
        assert it.interrupt() == 0          # nothing running
        t = Runner(it, "while True: pass")
        t.start()
        assert wait_for(lambda: it.is_running())
        time.sleep(0.05)
        assert it.interrupt() == 1
        t.join(10)
        assert remote_type(t.error) == "KeyboardInterrupt"
        t = Runner(it, "while True: pass")
        t.start()
        assert wait_for(lambda: it.is_running())
        time.sleep(0.05)
        assert it.interrupt(TimeoutError) == 1
        t.join(10)
        assert remote_type(t.error) == "TimeoutError"
        it.exec("x = 1")                    # usable; no interrupt left pending
        it.exec("for i in range(100000): pass")


def test_interrupt_rejects_non_builtin_classes():
    class Mine(Exception):
        pass
    with manygil.create() as it:
        for bad in (Mine, 42, "KeyboardInterrupt", ValueError("x")):
            with pytest.raises(TypeError):
                it.interrupt(bad)


CTRL_C = r"""
import os, signal, threading, time, manygil
it = manygil.create()
threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
t0 = time.monotonic()
try:
    it.exec("while True: pass")
    print("NOT-INTERRUPTED")
except KeyboardInterrupt:
    print("OK-KI", round(time.monotonic() - t0, 2))
it.exec("x = 41")
it.exec("for i in range(200000): pass")
print("USABLE")
from manygil import interpreters as seed
sid = seed.create()
threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
try:
    seed.run_string(sid, "while True: pass")
except KeyboardInterrupt:
    print("SEED-KI")
"""


@pytest.mark.timeout(60)
def test_ctrl_c_interrupts_exec_in_main_thread(tmp_path):
    proc = run_script(tmp_path, CTRL_C, timeout=40)
    assert proc.returncode == 0, describe(proc)
    assert "OK-KI" in proc.stdout and "USABLE" in proc.stdout and "SEED-KI" in proc.stdout, \
        describe(proc)


# --- the pool: time limits, cancel, abandoned workers -----------------------------

@pytest.mark.timeout(60)
def test_task_timeout_stops_spinning_task_and_worker_goes_on():
    with manygil.InterpreterPoolExecutor(1, task_timeout=0.5) as pool:
        fut = pool.submit(hf.spin_forever)
        with pytest.raises(manygil.TaskTimeout) as info:
            fut.result(20)
        assert isinstance(info.value, TimeoutError)
        assert pool.submit(hf.add, 2, 3).result(20) == 5
        # Tasks under the limit are untouched.
        assert pool.submit(hf.hang_marker_spin, 0.1).result(20) == "spun"


@pytest.mark.timeout(60)
def test_cancel_running_task():
    with manygil.InterpreterPoolExecutor(1) as pool:
        fut = pool.submit(hf.spin_forever)
        assert wait_for(fut.running)
        assert fut.cancel() is True
        assert fut.cancelled()
        with pytest.raises(cf.CancelledError):
            fut.result(1)
        assert pool.submit(hf.add, 1, 1).result(20) == 2


@pytest.mark.timeout(60)
def test_stuck_in_c_worker_abandoned_and_replaced():
    reports = []
    with manygil.InterpreterPoolExecutor(1, task_timeout=0.3, interrupt_grace=0.5,
                                         on_hang=reports.append) as pool:
        t0 = time.monotonic()
        fut = pool.submit(hf.sleep_forever)
        with pytest.raises(manygil.TaskTimeout):
            fut.result(20)
        assert time.monotonic() - t0 < 15
        # The pool keeps its capacity: one worker, and it serves.
        assert pool.submit(hf.add, 4, 5).result(30) == 9
        assert pool.submit(hf.hang_marker_spin, 0.05).result(30) == "spun"
    assert len(reports) == 1, reports
    rep = reports[0]
    assert rep.kind == "abandoned"
    assert "abandoned and replaced" in str(rep)
    assert "sleep_forever" in rep.stacks


@pytest.mark.timeout(60)
def test_abandoned_worker_reported_on_logger(caplog):
    caplog.set_level(logging.WARNING, logger="manygil")
    with manygil.InterpreterPoolExecutor(1, task_timeout=0.2, interrupt_grace=0.3) as pool:
        with pytest.raises(manygil.TaskTimeout):
            pool.submit(hf.sleep_forever).result(20)
        assert pool.submit(hf.add, 1, 2).result(30) == 3
    assert any("abandoned" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("kwargs,exc", [
    ({"task_timeout": 0}, ValueError), ({"task_timeout": -1}, ValueError),
    ({"task_timeout": "x"}, TypeError), ({"interrupt_grace": 0}, ValueError),
    ({"warn_after": -2}, ValueError), ({"on_hang": 42}, TypeError),
])
def test_pool_bad_options(kwargs, exc):
    with pytest.raises(exc):
        manygil.InterpreterPoolExecutor(1, **kwargs)


@pytest.mark.timeout(60)
def test_future_running_reports_running_task():
    with manygil.InterpreterPoolExecutor(1) as pool:
        fut = pool.submit(hf.hang_marker_spin, 0.5)
        assert wait_for(fut.running)
        assert fut.result(20) == "spun"
        assert not fut.running()


# --- the watchdog and stacks -------------------------------------------------------

@pytest.mark.timeout(60)
def test_watchdog_reports_two_second_hang_once():
    reports = []
    with manygil.create() as it:
        with manygil.watchdog(warn_after=0.5, on_hang=reports.append):
            assert it.call(hf.hang_marker_sleep, 2.0) == "slept"
    reports = [r for r in reports if r.interp_id == it.id]    # other tests' leftovers aside
    assert len(reports) == 1, reports
    rep = reports[0]
    assert rep.kind == "call" and rep.interp_id == it.id and rep.seconds >= 0.5
    assert "hang_marker_sleep" in rep.stacks
    assert "hang_marker_sleep" in str(rep)


@pytest.mark.timeout(60)
def test_watchdog_reports_channel_wait_with_graph(caplog):
    caplog.set_level(logging.WARNING, logger="manygil")
    r, s = manygil.create_channel()
    with manygil.create() as it:
        it.prepare_main(r=r)
        t = Runner(it, "v = r.recv()")
        with manygil.watchdog(warn_after=0.3):
            t.start()
            assert wait_for(lambda: any("waits to receive" in rec.getMessage()
                                        for rec in caplog.records), 10)
            s.send(1)
            t.join(10)
        it.exec("r = None")
    msg = next(rec.getMessage() for rec in caplog.records if "waits to receive" in rec.getMessage())
    assert f"RecvChannel id {r.id}" in msg


def test_watchdog_bad_arguments():
    for bad in (0, -1):
        with pytest.raises(ValueError):
            manygil.watchdog(warn_after=bad)
    with pytest.raises(TypeError):
        manygil.watchdog(warn_after=1, on_hang=42)


def test_watchdog_stop_is_idempotent():
    wd = manygil.watchdog(warn_after=5)
    wd.stop()
    wd.stop()


@pytest.mark.timeout(60)
def test_pool_watchdog_option_reports_task():
    reports = []
    with manygil.InterpreterPoolExecutor(1, warn_after=0.3, on_hang=reports.append) as pool:
        assert pool.submit(hf.hang_marker_spin, 1.2).result(20) == "spun"
    assert len(reports) == 1 and reports[0].kind == "task"
    assert "hang_marker_spin" in reports[0].stacks


@pytest.mark.timeout(60)
def test_dump_stacks_shows_loop_in_other_interpreter(capfd):
    with manygil.create() as it:
        # Import the helper module first: on a sanitizer build the import alone can outlast a
        # short sleep, and the dump would show _find_and_load instead of the loop.
        assert it.call(hf.hang_marker_spin, 0) == "spun"
        t = threading.Thread(target=it.call, args=(hf.hang_marker_spin, 3))
        t.start()
        try:
            assert wait_for(lambda: it.is_running())
            deadline = time.monotonic() + 2.5
            while True:
                buf = io.StringIO()
                manygil.dump_stacks(buf)
                text = buf.getvalue()
                if "hang_marker_spin" in text or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert f"Interpreter {it.id}:" in text and "hang_marker_spin" in text, text
            assert "Interpreter 0 (main):" in text
            assert "test_dump_stacks_shows_loop_in_other_interpreter" in text
            manygil.dump_stacks()
            assert "hang_marker_spin" in capfd.readouterr().err
        finally:
            t.join(20)


@pytest.mark.timeout(60)
def test_dump_stacks_shows_what_threads_wait_on():
    r, s = manygil.create_channel()
    with manygil.create() as it:
        it.prepare_main(r=r)
        t = Runner(it, "v = r.recv(timeout=10)")
        t.start()
        # This interpreter's wait (an earlier test's actor workers wait on
        # their inboxes too).
        assert wait_for(lambda: any(w[0] == it.id for w in waits()))
        text = manygil.format_stacks()
        assert f"waits to receive on channel" in text and f"RecvChannel id {r.id}" in text
        s.send(1)
        t.join(10)
        it.exec("r = None")


SIGUSR1 = r"""
import os, signal, sys, threading, time, manygil
sys.path.insert(0, os.environ["TESTS_DIR"])
from helpers import hang_funcs as hf
signal.signal(signal.SIGUSR1, lambda *a: manygil.dump_stacks())
it = manygil.create()
it.call(hf.hang_marker_spin, 0)  # the import done first: slow on sanitizer builds
t = threading.Thread(target=it.call, args=(hf.hang_marker_spin, 1.5)); t.start()
time.sleep(0.3)
os.kill(os.getpid(), signal.SIGUSR1)
time.sleep(0.2)
t.join()
print("DONE")
"""


@pytest.mark.timeout(60)
def test_dump_stacks_from_signal_handler(tmp_path, monkeypatch):
    import os
    monkeypatch.setenv("TESTS_DIR", os.path.dirname(os.path.abspath(__file__)))
    proc = run_script(tmp_path, SIGUSR1, timeout=40)
    assert proc.returncode == 0, describe(proc)
    assert "hang_marker_spin" in proc.stderr and "DONE" in proc.stdout, describe(proc)
