"""Run Python snippets/scripts in a child process (never imported in subinterpreters)."""
import os
import subprocess
import sys
import textwrap

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Debug builds and sanitizers are slower: child timeouts scale (conftest.py).
TIMEOUT_SCALE = float(os.environ.get("MANYGIL_TIMEOUT_SCALE", "1"))


DEBUG_BUILD = hasattr(sys, "gettotalrefcount")
# CPython's debug builds before 3.15 assert (pystate.c: unbind_gilstate_tstate,
# tstate_activate) when manygil, at exit, ends an interpreter in which a
# thread is still blocked in C (time.sleep, a channel wait): that thread's
# state is bound to the blocked thread, and only that thread could delete it
# as the debug checks want; no public API can unbind it from elsewhere.
# Release builds do not check and exit cleanly (the same tests pass there);
# from 3.15 on Py_EndInterpreter removes such thread states itself (compat.h,
# MG__END_INTERP_REMOVES_THREADS).  Only this assertion is tolerated, and
# only there: anything else still fails.
KNOWN_DEBUG_EXIT_ASSERTS = ("unbind_gilstate_tstate: Assertion", "tstate_activate: Assertion")


def xfail_known_debug_exit_assert(returncode, stderr):
    """pytest.xfail when a child ended with that known debug-build assertion."""
    if (DEBUG_BUILD and sys.version_info < (3, 15) and returncode in (-6, 134)
            and any(m in stderr for m in KNOWN_DEBUG_EXIT_ASSERTS)):
        import pytest
        pytest.xfail("CPython < 3.15 debug build: a thread state bound to a thread blocked "
                     "in C cannot be deleted from another thread at exit (see helpers/proc.py)")


def child_env():
    env = dict(os.environ)
    parts = [TESTS_DIR]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def run_python(args, *, timeout=60, cwd=None):
    """Run ``sys.executable *args``; return the CompletedProcess (text mode)."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout * TIMEOUT_SCALE,
        cwd=cwd,
        env=child_env(),
    )


def run_script(tmp_path, source, *, name="script.py", timeout=60, args=()):
    """Write ``source`` (dedented) to ``tmp_path/name`` and run it."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return run_python([str(path), *args], timeout=timeout, cwd=str(tmp_path))


def describe(proc):
    """Text for assertion messages."""
    return (f"rc={proc.returncode}\n--- stdout ---\n{proc.stdout}"
            f"\n--- stderr ---\n{proc.stderr}")
