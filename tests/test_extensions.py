"""Extension modules that cannot load in own-GIL interpreters, and
``python -m manygil check``."""
import importlib.util
import re
import sys

import pytest

import manygil
from helpers import remote
from helpers.proc import describe, run_python, run_script

needs_singlephase = pytest.mark.skipif(
    importlib.util.find_spec("_testsinglephase") is None,
    reason="_testsinglephase is not available in this Python",
)

# CPython 3.12.1 bug (independent of manygil): a *second* failed import of a
# single-phase extension in a fresh isolated interpreter of the same process
# aborts with "double free or corruption".  So the test process attempts that
# import at most once in-process; further attempts run in child processes.


@needs_singlephase
def test_single_phase_import_fails_with_hint(interp):
    with pytest.raises(manygil.ExecutionFailed) as excinfo:
        interp.exec("import _testsinglephase")
    info = excinfo.value.excinfo
    assert info.type.__name__ == "ImportError"
    assert "_testsinglephase" in info.msg
    assert "manygil" in info.msg, f"no hint in: {info.msg!r}"
    # the interpreter is still usable, and multi-phase modules still import
    interp.exec("import json, math\nv = json.dumps([math.pi > 3])")
    assert interp.call(remote.get_main, "v") == "[true]"


@needs_singlephase
def test_single_phase_import_via_call_fails(tmp_path):
    """Import through ``call(importlib.import_module, ...)`` fails the same
    way; the process then exits cleanly."""
    proc = run_script(tmp_path, """
        import importlib
        import manygil
        with manygil.create() as it:
            try:
                it.call(importlib.import_module, "_testsinglephase")
            except manygil.ExecutionFailed as exc:
                print(exc.excinfo.type.__name__, "manygil" in exc.excinfo.msg)
            it.exec("import json")
        print("done")
    """)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.split() == ["ImportError", "True", "done"], describe(proc)


def _line_for(output, module):
    for line in output.splitlines():
        if re.search(rf"(?<![\w.]){re.escape(module)}(?![\w.])", line):
            return line
    return None


@needs_singlephase
@pytest.mark.timeout(120)
def test_check_command_mixed():
    proc = run_python(["-m", "manygil", "check", "json", "_testsinglephase"], timeout=100)
    assert proc.returncode != 0, describe(proc)
    json_line = _line_for(proc.stdout, "json")
    bad_line = _line_for(proc.stdout, "_testsinglephase")
    assert json_line is not None and bad_line is not None, describe(proc)
    assert re.search(r"\byes\b", json_line, re.I), json_line
    assert re.search(r"\bno\b", bad_line, re.I), bad_line
    assert not re.search(r"\byes\b", bad_line, re.I), bad_line
    # a reason follows the verdict
    words = re.findall(r"\w+", bad_line)
    assert len(words) >= 4, f"no reason given: {bad_line!r}"


@pytest.mark.timeout(120)
def test_check_command_ok():
    proc = run_python(["-m", "manygil", "check", "json"], timeout=100)
    assert proc.returncode == 0, describe(proc)
    json_line = _line_for(proc.stdout, "json")
    assert json_line is not None and re.search(r"\byes\b", json_line, re.I), describe(proc)


@pytest.mark.xfail(sys.version_info < (3, 13),
                   reason="CPython 3.12.1 runtime bug: hashlib in isolated "
                          "subinterpreter aborts at exit",
                   strict=False)
def test_hashlib_in_subinterpreter(tmp_path):
    proc = run_script(tmp_path, """
        import manygil
        from helpers import remote
        with manygil.create() as it:
            it.exec("import hashlib\\nh = hashlib.sha256(b'abc').hexdigest()")
            print(it.call(remote.get_main, "h")[:8])
        print("done")
    """)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.split() == ["ba7816bf", "done"], describe(proc)


def test_numpy_in_an_interpreter_fails_with_the_hint(interp):
    """numpy cannot load in own-GIL interpreters: the ImportError chain names
    the extension and carries manygil's hint; `check` reports the cause."""
    pytest.importorskip("numpy")
    with pytest.raises(manygil.ExecutionFailed) as info:
        interp.exec("import numpy")
    assert info.value.excinfo.type.__name__ == "ImportError"
    formatted = info.value.excinfo.formatted
    assert "numpy" in formatted and "manygil" in formatted
    proc = run_python(["-m", "manygil", "check", "numpy"], timeout=60)
    assert proc.returncode == 1, describe(proc)
    assert "numpy: no (ImportError: module numpy" in proc.stdout
