"""fork() and manygil (src/py/fork.c has the rule): refused with a clear
InterpreterError while interpreters are alive (CPython's child would die at
once); with none alive it works, manygil starts no thread at import (fork
does not warn), and a child gets fresh state: inherited channels raise,
new channels, interpreters and deadlock detection work."""
import sys
import textwrap

import pytest

from helpers.proc import describe, run_script

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no fork")


def run(tmp_path, source, timeout=90):
    proc = run_script(tmp_path, source, timeout=timeout)
    assert proc.returncode == 0, describe(proc)
    return proc.stdout


@pytest.mark.timeout(60)
def test_import_starts_no_thread_and_fork_does_not_warn(tmp_path):
    proc = run_script(tmp_path, """
        import os, warnings
        import manygil
        print("threads", len(os.listdir("/proc/self/task")))
        r, s = manygil.create_channel()
        s.send(1); r.recv(timeout=1)           # waits with a deadline: no detector
        print("threads", len(os.listdir("/proc/self/task")))
        warnings.simplefilter("always")         # 3.12+: DeprecationWarning if multi-threaded
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        print("child", os.waitpid(pid, 0)[1])
    """, timeout=50)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.count("threads 1") == 2, describe(proc)
    assert "child 0" in proc.stdout, describe(proc)
    assert "multi-threaded" not in proc.stderr, describe(proc)


@pytest.mark.timeout(60)
def test_detector_thread_starts_with_first_forever_wait(tmp_path):
    out = run(tmp_path, """
        import os, threading, time
        import manygil
        r, s = manygil.create_channel()
        t = threading.Thread(target=r.recv)     # no deadline: the detector starts
        t.start()
        time.sleep(0.3)
        names = sorted(open(f"/proc/self/task/{t}/comm").read().strip()
                       for t in os.listdir("/proc/self/task"))
        print("detector", "manygil-deadlk" in names)
        s.send(None)
        t.join()
    """)
    assert "detector True" in out, out


@pytest.mark.timeout(60)
def test_fork_refused_while_interpreter_alive(tmp_path):
    out = run(tmp_path, """
        import os
        import manygil
        interp = manygil.create()
        interp.exec("x = 1")
        try:
            os.fork()
        except manygil.InterpreterError as exc:
            print("refused:", exc)
        try:
            os.forkpty()
        except manygil.InterpreterError as exc:
            print("forkpty refused")
        print("parent still works", interp.call(len, [1, 2]))
        interp.close()
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        print("after close, child exit", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    """)
    assert "refused: cannot fork() while 1 manygil interpreter is alive" in out, out
    assert "interpreters do not survive fork()" in out, out
    assert "forkpty refused" in out, out
    assert "parent still works 2" in out, out
    assert "after close, child exit 7" in out, out


@pytest.mark.timeout(90)
def test_multiprocessing_fork_refused_while_pool_alive(tmp_path):
    out = run(tmp_path, """
        import multiprocessing as mp
        import manygil

        def square(x):
            return x * x

        if __name__ == "__main__":
            with manygil.InterpreterPoolExecutor(1) as pool:
                assert pool.submit(square, 3).result() == 9
                ctx = mp.get_context("fork")
                try:
                    p = ctx.Process(target=square, args=(2,))
                    p.start()
                    p.join()
                    print("started, exit", p.exitcode)
                except manygil.InterpreterError as exc:
                    print("refused:", str(exc)[:60])
            with ctx.Pool(2) as mpool:                # pool shut down: fine
                print("mp", mpool.map(square, range(4)))
    """)
    assert "refused: cannot fork() while 1 manygil interpreter is alive" in out, out
    assert "mp [0, 1, 4, 9]" in out, out


@pytest.mark.timeout(90)
@pytest.mark.parametrize("made_one", [False, True])
def test_multiprocessing_fork_without_interpreters(tmp_path, made_one):
    out = run(tmp_path, textwrap.dedent("""
        import multiprocessing as mp
        import manygil

        def work(x):
            # The child can use manygil from scratch.
            with manygil.create() as interp:
                return interp.call(pow, x, 2)

        if __name__ == "__main__":
            if MADE_ONE:
                with manygil.create() as interp:  # made and closed before forking
                    interp.exec("y = 2")
            with mp.get_context("fork").Pool(2) as pool:
                print("mp", pool.map(work, range(5)))
    """).replace("MADE_ONE", str(made_one)))
    assert "mp [0, 1, 4, 9, 16]" in out, out


@pytest.mark.timeout(90)
def test_child_state_is_fresh(tmp_path):
    out = run(tmp_path, """
        import os, sys
        import manygil
        r, s = manygil.create_channel()
        q = manygil.create_queue()
        s.send("from parent")
        pid = os.fork()
        if pid == 0:
            code = 0
            for name, op in [("recv", r.recv), ("send", lambda: s.send(1)),
                             ("queue put", lambda: q.put(1)), ("qsize", q.qsize),
                             ("close", s.close)]:
                try:
                    op()
                    print("child", name, "worked", flush=True)
                    code = 1
                except manygil.InterpreterError as exc:
                    if "created before fork()" not in str(exc):
                        print("child", name, exc, flush=True)
                        code = 1
            try:
                with manygil.create() as interp:
                    interp.call(len, [s])           # an inherited end cannot cross
                print("child: inherited end crossed", flush=True)
                code = 1
            except manygil.InterpreterError:
                pass
            # New things work: channels, interpreters, deadlock detection.
            r2, s2 = manygil.create_channel()
            with manygil.create() as interp:
                interp.call(lambda ch: ch.send(41), s2)
                if r2.recv(timeout=10) != 41:
                    print("child: new channel failed", flush=True)
                    code = 1
            r3, s3 = manygil.create_channel()
            try:
                r3.recv()                           # only we hold the send end
                print("child: no deadlock error", flush=True)
                code = 1
            except manygil.DeadlockError:
                pass
            del r, s, q                             # leave the inherited ones alone
            os._exit(code)
        print("child exit", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        print("parent recv", r.recv(timeout=5))
    """)
    assert "child exit 0" in out, out
    assert "parent recv from parent" in out, out
