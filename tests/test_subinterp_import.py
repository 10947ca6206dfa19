"""``import manygil`` inside a subinterpreter, and nested interpreters."""
import manygil
from helpers import remote


def test_import_manygil_inside(interp):
    interp.exec("import manygil\nimport manygil._core\nimport manygil.interpreters")


def test_get_current_inside_is_that_interpreter(interp, interp2):
    assert interp.call(remote.current_id) == interp.id
    assert interp2.call(remote.current_id) == interp2.id
    assert interp.call(remote.main_id) == 0


def test_list_all_inside_sees_main_and_itself(interp):
    ids = interp.call(remote.all_ids)
    assert 0 in ids and interp.id in ids


def test_exceptions_inside_are_usable(interp):
    interp.exec(
        "import manygil\n"
        "assert issubclass(manygil.ExecutionFailed, manygil.InterpreterError)\n"
    )


NESTED = """
import manygil
from helpers import remote
b = manygil.create()
b.exec("x = 6 * 7")
result = b.call(remote.get_main, "x")
b_id = b.id
b_current = b.call(remote.current_id)
try:
    b.exec("raise ValueError('inner')")
except manygil.ExecutionFailed as exc:
    inner_error = exc.excinfo.type.__name__
b.close()
b_gone = b_id not in [i.id for i in manygil.list_all()]
"""


def test_nested_interpreter(interp):
    """Interpreter A creates interpreter B, runs code in it, closes it."""
    interp.exec(NESTED)
    get = lambda name: interp.call(remote.get_main, name)  # noqa: E731
    b_id = get("b_id")
    assert get("result") == 42
    assert b_id not in (0, interp.id)
    assert get("b_current") == b_id
    assert get("inner_error") == "ValueError"
    assert get("b_gone") is True
    assert b_id not in {i.id for i in manygil.list_all()}


def test_codec_inside(interp):
    interp.exec(
        "from manygil import _core\n"
        "rt = _core.decode(_core.encode([1, 'a', {2: (3.5, b'x')}]))\n"
    )
    assert interp.call(remote.get_main, "rt") == [1, "a", {2: (3.5, b"x")}]
