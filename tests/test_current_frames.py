"""sys._current_frames() and sys._current_exceptions() are refused with
InterpreterError while manygil interpreters are alive (src/py/fork.c: CPython
3.12-3.15 make frame objects for other interpreters' frames in the caller's
memory, and the process aborts when their owner frees them).  Each case runs
in a child process: without the refusal the child aborts."""
import pytest

from helpers.proc import describe, run_script


def run(tmp_path, source):
    proc = run_script(tmp_path, source, timeout=60)
    assert proc.returncode == 0, describe(proc)
    return proc.stdout


@pytest.mark.timeout(90)
def test_refused_while_an_interpreter_runs_and_allowed_after_close(tmp_path):
    out = run(tmp_path, """
        import sys, threading, time
        import manygil
        print("before", len(sys._current_frames()) >= 1)
        it = manygil.create()
        def spin():
            it.exec("import time\\nt = time.time()\\nwhile time.time() - t < 1.5: pass")
        th = threading.Thread(target=spin)
        th.start()
        time.sleep(0.3)
        for name in ("_current_frames", "_current_exceptions"):
            for _ in range(50):
                try:
                    getattr(sys, name)()
                except manygil.InterpreterError as e:
                    msg = str(e)
                else:
                    msg = "allowed"
            print(name, msg)
        th.join()
        it.close()
        print("after", len(sys._current_frames()) >= 1)
    """)
    assert "before True" in out and "after True" in out, out
    assert ("_current_frames sys._current_frames() is refused while 1 manygil "
            "interpreter is alive") in out, out
    assert "manygil.dump_stacks()" in out, out
    assert "_current_exceptions sys._current_exceptions() is refused" in out, out


@pytest.mark.timeout(90)
def test_refused_inside_an_interpreter(tmp_path):
    out = run(tmp_path, """
        import manygil
        it = manygil.create()
        try:
            it.exec("import sys\\nsys._current_frames()")
        except manygil.ExecutionFailed as e:
            print("failed", e)
        it.close()
    """)
    assert "failed" in out and "is refused while 1 manygil interpreter is alive" in out, out
