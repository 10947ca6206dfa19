"""Run Python snippets/scripts in a child process (never imported in subinterpreters)."""
import os
import subprocess
import sys
import textwrap

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Debug builds and sanitizers are slower: child timeouts scale (conftest.py).
TIMEOUT_SCALE = float(os.environ.get("MANYGIL_TIMEOUT_SCALE", "1"))


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
