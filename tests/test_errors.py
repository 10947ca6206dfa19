"""Exceptions: the hierarchy, ExecutionFailed details, SystemExit, bad inputs."""
import pytest

import manygil
from helpers import remote
from helpers.proc import describe, run_python, run_script


def test_exception_hierarchy():
    assert issubclass(manygil.InterpreterError, Exception)
    assert issubclass(manygil.InterpreterNotFoundError, manygil.InterpreterError)
    assert issubclass(manygil.ExecutionFailed, manygil.InterpreterError)
    assert issubclass(manygil.NotShareableError, TypeError)


def test_exec_exception_becomes_execution_failed(interp):
    with pytest.raises(manygil.ExecutionFailed) as excinfo:
        interp.exec("raise ValueError('boom')")
    exc = excinfo.value
    assert isinstance(exc, manygil.InterpreterError)
    info = exc.excinfo
    assert info.type.__name__ == "ValueError"
    assert info.type.__qualname__ == "ValueError"
    assert info.type.__module__ == "builtins"
    assert info.msg == "boom"
    assert "ValueError" in str(exc) and "boom" in str(exc)
    assert "ValueError" in info.formatted


def test_call_exception_has_traceback_text(interp):
    with pytest.raises(manygil.ExecutionFailed) as excinfo:
        interp.call(remote.fail_deep, "deep trouble")
    info = excinfo.value.excinfo
    assert info.type.__name__ == "ValueError"
    assert info.msg == "deep trouble"
    assert "raise_inner" in info.formatted
    assert "fail_deep" in info.formatted


def test_excinfo_qualname_and_module(interp):
    with pytest.raises(manygil.ExecutionFailed) as excinfo:
        interp.call(remote.raise_inner_error, "x")
    t = excinfo.value.excinfo.type
    assert t.__name__ == "InnerError"
    assert t.__qualname__ == "Outer.InnerError"
    assert t.__module__ == "helpers.remote"


def test_exception_message_non_ascii(interp):
    with pytest.raises(manygil.ExecutionFailed) as excinfo:
        interp.exec("raise KeyError('clé ключ 🔑')")
    assert excinfo.value.excinfo.type.__name__ == "KeyError"
    assert "clé ключ 🔑" in excinfo.value.excinfo.msg


BROKEN_STR_SCRIPT = '''
import manygil
code = (
    "class Broken(Exception):\\n"
    "    def __str__(self):\\n"
    "        raise RuntimeError('no str for you')\\n"
    "raise Broken()\\n"
)
with manygil.create() as it:
    try:
        it.exec(code)
    except manygil.ExecutionFailed as e:
        print(e.excinfo.type.__name__, type(e.excinfo.msg).__name__)
    it.exec("ok = 1")
print("alive")
'''


def test_exception_with_broken_str(tmp_path):
    """An exception whose __str__ itself raises still yields ExecutionFailed.
    Runs in a child process: CPython 3.13.0's own _interpreters.exec
    segfaults on this, so a naive implementation would kill the test run."""
    proc = run_script(tmp_path, BROKEN_STR_SCRIPT)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.split() == ["Broken", "str", "alive"], describe(proc)


def test_state_survives_failure(interp):
    interp.exec("kept = 'yes'")
    with pytest.raises(manygil.ExecutionFailed):
        interp.exec("partial = 1\nraise RuntimeError('midway')")
    assert interp.call(remote.get_main, "kept") == "yes"
    assert interp.call(remote.get_main, "partial") == 1


def test_syntax_error(interp):
    """Source that does not compile fails as SyntaxError (wrapped or not)."""
    try:
        interp.exec("def broken(:\n")
    except manygil.ExecutionFailed as exc:
        assert exc.excinfo.type.__name__ == "SyntaxError"
    except SyntaxError:
        pass
    else:
        pytest.fail("no error for invalid source")
    interp.exec("fine = True")


def test_system_exit_in_exec_is_execution_failed(interp):
    with pytest.raises(manygil.ExecutionFailed) as excinfo:
        interp.exec("raise SystemExit(3)")
    assert excinfo.value.excinfo.type.__name__ == "SystemExit"
    with pytest.raises(manygil.ExecutionFailed) as excinfo:
        interp.exec("import sys; sys.exit()")
    assert excinfo.value.excinfo.type.__name__ == "SystemExit"
    with pytest.raises(manygil.ExecutionFailed) as excinfo:
        interp.call(remote.exit_with, 4)
    assert excinfo.value.excinfo.type.__name__ == "SystemExit"
    interp.exec("after = 1")
    assert interp.call(remote.get_main, "after") == 1


def test_system_exit_does_not_exit_process():
    """In a child process so that a regression can't kill the test run."""
    proc = run_python(["-c", (
        "import sys, manygil\n"
        "it = manygil.create()\n"
        "for code in ('raise SystemExit(3)', 'import sys; sys.exit()', 'import sys; sys.exit(\"bye\")'):\n"
        "    try:\n"
        "        it.exec(code)\n"
        "    except manygil.ExecutionFailed as e:\n"
        "        print('caught', e.excinfo.type.__name__)\n"
        "it.exec('x = 5')\n"
        "it.close()\n"
        "print('alive')\n"
    )])
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.splitlines() == ["caught SystemExit"] * 3 + ["alive"], describe(proc)


@pytest.mark.parametrize("code", [123, None, b"x = 1", ["x = 1"]])
def test_exec_rejects_non_str(interp, code):
    with pytest.raises(TypeError):
        interp.exec(code)


def test_call_non_callable(interp):
    try:
        interp.call(42)
    except manygil.ExecutionFailed as exc:
        assert exc.excinfo.type.__name__ == "TypeError"
        assert "callable" in exc.excinfo.msg
    except TypeError as exc:
        assert "callable" in str(exc)
    else:
        pytest.fail("calling 42 did not fail")
    assert interp.call(remote.identity, 1) == 1


def test_call_with_wrong_arguments(interp):
    with pytest.raises(manygil.ExecutionFailed) as excinfo:
        interp.call(remote.identity)
    assert excinfo.value.excinfo.type.__name__ == "TypeError"
