"""Issue #5, the watchdog: ``manygil.watchdog(warn_after, on_hang)`` and the
pool's ``warn_after``/``on_hang`` options report a wait, exec/call or pool
task in progress for too long -- once per hang -- as a ``HangReport``."""
import gc
import logging
import threading
import time

import pytest

import manygil
from helpers import wd_funcs as wf
from helpers.pool_util import make_pool
from helpers.wd_util import call_in_thread, exec_in_thread, mentions_number, wait_for

KINDS = ("wait", "exec", "call", "task", "abandoned")


class Collector:
    """A thread-safe on_hang callback that keeps the reports."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reports = []

    def __call__(self, report):
        with self.lock:
            self.reports.append(report)

    def about(self, marker):
        """Reports whose full text mentions ``marker`` (other tests may
        leave stuck workers behind that get reported too)."""
        with self.lock:
            return [r for r in self.reports if marker in str(r)]

    def for_interp(self, interp_id):
        with self.lock:
            return [r for r in self.reports if r.interp_id == interp_id]


def check_report_shape(rep):
    assert isinstance(rep, manygil.HangReport), type(rep)
    assert rep.kind in KINDS, rep.kind
    assert isinstance(rep.interp_id, int) and not isinstance(rep.interp_id, bool)
    assert isinstance(rep.thread_id, int)
    assert isinstance(rep.seconds, float)
    assert isinstance(rep.description, str) and rep.description.strip()
    assert "\n" not in rep.description.strip(), repr(rep.description)
    assert isinstance(rep.graph, str)
    assert isinstance(rep.stacks, str)
    full = str(rep)
    assert rep.description.strip() in full


# ============================================================================
# one report per hang
# ============================================================================

@pytest.mark.timeout(60)
def test_call_hang_reported_exactly_once():
    got = Collector()
    with manygil.create() as it:
        with manygil.watchdog(warn_after=0.5, on_hang=got):
            t = call_in_thread(it, wf.wd_stuck_in_here, 2.0)
            t.join(30)
            assert t.error is None and t.result == "woke", t.error
            time.sleep(0.3)             # a tick or two after the hang ended
        mine = got.about("wd_stuck_in_here")
    assert len(mine) == 1, [repr(r) for r in mine]
    rep = mine[0]
    check_report_shape(rep)
    assert rep.kind in ("call", "wait"), rep.kind
    assert rep.interp_id == it.id
    assert rep.seconds >= 0.5
    assert "wd_stuck_in_here" in rep.stacks


@pytest.mark.timeout(60)
def test_call_blocked_in_channel_recv_reported_exactly_once():
    got = Collector()
    r, s = manygil.create_channel()
    with manygil.create() as it:
        with manygil.watchdog(warn_after=0.5, on_hang=got):
            t = call_in_thread(it, wf.wd_stuck_in_recv_here, r, 2.0)
            t.join(30)
            assert t.result == ("error", "ChannelTimeoutError"), (t.result, t.error)
            time.sleep(0.3)
        mine = got.about("wd_stuck_in_recv_here")
    assert len(mine) == 1, [repr(r) for r in mine]
    rep = mine[0]
    check_report_shape(rep)
    assert rep.kind in ("call", "wait"), rep.kind
    assert rep.interp_id == it.id
    assert rep.seconds >= 0.5
    assert "wd_stuck_in_recv_here" in rep.stacks


@pytest.mark.timeout(60)
def test_one_stuck_call_is_one_report_even_after_its_wait_ends():
    # One call: blocked 1.5 s in a receive, then busy 1.0 s more in Python.
    # It is one hang of one thread: reported once, not once for the wait and
    # again for the call when the wait ends.
    got = Collector()
    r, s = manygil.create_channel()
    with manygil.create() as it:
        with manygil.watchdog(warn_after=0.4, on_hang=got):
            t = call_in_thread(it, wf.wd_stuck_then_busy, r, 1.5, 1.0)
            t.join(30)
            assert t.result == "done", t.error
            time.sleep(0.3)
        mine = got.about("wd_stuck_then_busy")
    assert len(mine) == 1, [repr(r) for r in mine]


@pytest.mark.timeout(60)
def test_exec_hang_reported_with_kind_exec():
    got = Collector()
    with manygil.create() as it:
        with manygil.watchdog(warn_after=0.4, on_hang=got):
            t = exec_in_thread(it, "import time\ndef wd_exec_marker():\n    time.sleep(1.5)\n"
                                   "wd_exec_marker()\n")
            t.join(30)
            assert t.error is None, t.error
            time.sleep(0.3)
        mine = got.for_interp(it.id)
    assert len(mine) == 1, [repr(r) for r in mine]
    assert mine[0].kind == "exec"
    assert mine[0].seconds >= 0.4
    assert "wd_exec_marker" in mine[0].stacks


@pytest.mark.timeout(60)
def test_short_calls_are_not_reported():
    got = Collector()
    with manygil.create() as it:
        with manygil.watchdog(warn_after=3.0, on_hang=got):
            for _ in range(3):
                assert it.call(wf.wd_stuck_in_here, 0.2) == "woke"
        assert got.for_interp(it.id) == []


@pytest.mark.timeout(60)
def test_two_separate_hangs_give_two_reports():
    got = Collector()
    with manygil.create() as it:
        with manygil.watchdog(warn_after=0.4, on_hang=got):
            for _ in range(2):
                t = call_in_thread(it, wf.wd_stuck_in_here, 1.2)
                t.join(30)
                assert t.result == "woke"
            time.sleep(0.3)
        mine = got.about("wd_stuck_in_here")
    assert len([r for r in mine if r.interp_id == it.id]) == 2, [repr(r) for r in mine]


@pytest.mark.timeout(60)
def test_hangs_in_two_interpreters_reported_each():
    got = Collector()
    with manygil.create() as a, manygil.create() as b:
        with manygil.watchdog(warn_after=0.4, on_hang=got):
            ta = call_in_thread(a, wf.wd_stuck_in_here, 1.5)
            tb = call_in_thread(b, wf.wd_stuck_in_here, 1.5)
            ta.join(30)
            tb.join(30)
            time.sleep(0.3)
        assert len(got.for_interp(a.id)) == 1, got.reports
        assert len(got.for_interp(b.id)) == 1, got.reports


# ============================================================================
# channel waits and the wait-for graph
# ============================================================================

@pytest.mark.timeout(60)
def test_channel_wait_reported_as_wait_with_channel_in_graph():
    got = Collector()
    r, s = manygil.create_channel()
    with manygil.create() as it:
        # Import the test functions there first: on a slow (debug, sanitizer)
        # build that takes longer than warn_after, and the call is reported
        # before it reaches the wait.
        assert it.call(wf.wd_add, 1, 2) == 3
        with manygil.watchdog(warn_after=0.5, on_hang=got):
            t = call_in_thread(it, wf.wd_recv_marker, r)
            # Nobody sends for a while: the receive is reported.
            assert wait_for(lambda: got.for_interp(it.id), 10), got.reports
            s.send("late")
            t.join(10)
            assert t.error is None and t.result == "late", t.error
            time.sleep(0.3)
        mine = got.for_interp(it.id)
    assert len(mine) == 1, [repr(x) for x in mine]
    rep = mine[0]
    check_report_shape(rep)
    assert rep.kind == "wait"
    assert rep.seconds >= 0.5
    assert mentions_number(rep.graph, r.id), rep.graph
    assert "wd_recv_marker" in rep.stacks


@pytest.mark.timeout(60)
def test_wait_graph_names_who_holds_the_other_end():
    # A receives; only B holds the send end (and B runs nothing).  The
    # graph says who waits on which end and who holds the other end: B.
    got = Collector()
    r, s = manygil.create_channel()
    with manygil.create() as a, manygil.create() as b:
        b.prepare_main(s=s)
        del s
        gc.collect()
        assert a.call(wf.wd_add, 1, 2) == 3          # imported before the watchdog starts
        with manygil.watchdog(warn_after=0.5, on_hang=got):
            t = call_in_thread(a, wf.wd_recv_timeout_marker, r, 20.0)
            assert wait_for(lambda: got.for_interp(a.id), 10), got.reports
            b.exec("s.send('from b')")
            t.join(10)
            assert t.result == ("value", "from b"), (t.result, t.error)
        b.exec("s = None")
        rep = got.for_interp(a.id)[0]
    assert rep.kind == "wait"
    assert mentions_number(rep.graph, r.id), rep.graph
    assert mentions_number(rep.graph, b.id), (
        f"graph does not name interpreter {b.id}, the holder of the send end:\n{rep.graph}")


@pytest.mark.timeout(60)
def test_queue_wait_reported():
    got = Collector()
    q = manygil.create_queue()
    with manygil.create() as it:
        assert it.call(wf.wd_add, 1, 2) == 3         # imported before the watchdog starts
        with manygil.watchdog(warn_after=0.4, on_hang=got):
            t = call_in_thread(it, wf.wd_queue_get_marker, q, 20.0)
            assert wait_for(lambda: got.for_interp(it.id), 10), got.reports
            q.put(5)
            t.join(10)
            assert t.result == ("value", 5)
    rep = got.for_interp(it.id)[0]
    assert rep.kind == "wait"
    assert "wd_queue_get_marker" in rep.stacks


# ============================================================================
# the logger, stop(), the context manager, arguments
# ============================================================================

@pytest.mark.timeout(60)
def test_without_on_hang_logs_warning(caplog):
    caplog.set_level(logging.WARNING, logger="manygil")
    with manygil.create() as it:
        with manygil.watchdog(warn_after=0.4):
            t = call_in_thread(it, wf.wd_stuck_in_here, 1.5)
            t.join(30)
            time.sleep(0.3)
    recs = [rec for rec in caplog.records if "wd_stuck_in_here" in rec.getMessage()]
    assert len(recs) == 1, [rec.getMessage() for rec in caplog.records]
    rec = recs[0]
    assert rec.levelno == logging.WARNING
    assert rec.name == "manygil"


@pytest.mark.timeout(60)
def test_stop_stops_reporting_and_is_idempotent():
    got = Collector()
    with manygil.create() as it:
        wd = manygil.watchdog(warn_after=0.3, on_hang=got)
        t0 = time.monotonic()
        wd.stop()
        assert time.monotonic() - t0 < 10
        wd.stop()                       # idempotent
        t = call_in_thread(it, wf.wd_stuck_in_here, 1.2)
        t.join(30)
        assert got.about("wd_stuck_in_here") == []
        wd.stop()


@pytest.mark.timeout(60)
def test_stop_during_a_hang_prevents_later_reports():
    got = Collector()
    with manygil.create() as it:
        wd = manygil.watchdog(warn_after=0.5, on_hang=got)
        t = call_in_thread(it, wf.wd_stuck_in_here, 0.8)
        t.join(30)
        wd.stop()
        # Reported while running (0.8 s > 0.5 s); a later hang is not.
        before = len(got.about("wd_stuck_in_here"))
        t = call_in_thread(it, wf.wd_stuck_in_here, 1.2)
        t.join(30)
        time.sleep(0.2)
        assert len(got.about("wd_stuck_in_here")) == before


@pytest.mark.timeout(60)
def test_context_manager_form():
    got = Collector()
    with manygil.create() as it:
        with manygil.watchdog(warn_after=0.4, on_hang=got) as wd:
            assert wd is not None and hasattr(wd, "stop")
            t = call_in_thread(it, wf.wd_stuck_in_here, 1.2)
            t.join(30)
            time.sleep(0.2)
        assert len(got.about("wd_stuck_in_here")) == 1
        # Stopped on exit: a later hang goes unreported.
        t = call_in_thread(it, wf.wd_stuck_in_here, 1.2)
        t.join(30)
        time.sleep(0.2)
        assert len(got.about("wd_stuck_in_here")) == 1
        wd.stop()                       # still idempotent after the with block


def test_watchdog_object_types():
    wd = manygil.watchdog(warn_after=30)
    try:
        assert isinstance(wd, manygil.Watchdog)
    finally:
        wd.stop()


@pytest.mark.parametrize("bad", [0, -1, -0.25])
def test_bad_warn_after(bad):
    with pytest.raises(ValueError):
        manygil.watchdog(warn_after=bad)


def test_bad_warn_after_type():
    with pytest.raises((TypeError, ValueError)):
        manygil.watchdog(warn_after="soon")


@pytest.mark.parametrize("bad", [42, "print", [1]])
def test_bad_on_hang(bad):
    with pytest.raises(TypeError):
        manygil.watchdog(warn_after=1, on_hang=bad)


def test_on_hang_none_is_accepted():
    manygil.watchdog(warn_after=5, on_hang=None).stop()


# ============================================================================
# the pool option
# ============================================================================

@pytest.mark.timeout(60)
def test_pool_warn_after_reports_long_task_once():
    got = Collector()
    with make_pool(max_workers=1, warn_after=0.5, on_hang=got) as pool:
        quick = [pool.submit(wf.wd_add, i, i) for i in range(10)]
        assert [f.result(30) for f in quick] == [2 * i for i in range(10)]
        assert pool.submit(wf.wd_task_runs_long, 2.0).result(30) == "ran"
        time.sleep(0.3)
        reports = list(got.reports)
    assert len(reports) == 1, [repr(r) for r in reports]
    rep = reports[0]
    check_report_shape(rep)
    assert rep.kind == "task"
    assert rep.seconds >= 0.5
    assert "wd_task_runs_long" in rep.stacks


@pytest.mark.timeout(60)
def test_pool_warn_after_without_on_hang_logs(caplog):
    caplog.set_level(logging.WARNING, logger="manygil")
    with make_pool(max_workers=1, warn_after=0.4) as pool:
        assert pool.submit(wf.wd_task_runs_long, 1.5).result(30) == "ran"
        time.sleep(0.2)
    recs = [rec for rec in caplog.records if "wd_task_runs_long" in rec.getMessage()]
    assert len(recs) == 1, [rec.getMessage() for rec in caplog.records]
    assert recs[0].levelno == logging.WARNING


@pytest.mark.timeout(60)
def test_global_watchdog_reports_pool_task():
    got = Collector()
    with make_pool(max_workers=1) as pool:
        pool.submit(wf.wd_add, 1, 1).result(30)
        with manygil.watchdog(warn_after=0.4, on_hang=got):
            assert pool.submit(wf.wd_task_runs_long, 1.5).result(30) == "ran"
            time.sleep(0.3)
    mine = got.about("wd_task_runs_long")
    assert len(mine) == 1, [repr(r) for r in mine]
    assert mine[0].kind == "task"


@pytest.mark.parametrize("kwargs,exc", [
    ({"warn_after": 0}, ValueError),
    ({"warn_after": -1}, ValueError),
    ({"on_hang": 42}, TypeError),
])
def test_pool_bad_watchdog_options(kwargs, exc):
    with pytest.raises(exc):
        manygil.InterpreterPoolExecutor(1, **kwargs)
