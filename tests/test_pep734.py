"""The PEP 734 face: where manygil's interpreter and queue API overlaps
CPython 3.14's ``concurrent.interpreters``, it behaves the same way.

Where the stdlib is there (3.14+), tests hold manygil's answer against the
stdlib's in the same run; below 3.14 that comparison is skipped and the
answer is checked against what the stdlib is documented to give.
"""
import pickle
import queue
import sys

import pytest

import manygil
from helpers import pep734_funcs as funcs
from helpers import remote

try:
    from concurrent import interpreters as stdlib
    from concurrent.interpreters import _queues as stdlib_queues
except ImportError:             # CPython < 3.14
    stdlib = stdlib_queues = None

needs_stdlib = pytest.mark.skipif(stdlib is None, reason="concurrent.interpreters is 3.14+")


@pytest.fixture
def std():
    """A stdlib interpreter (3.14+), closed after the test."""
    if stdlib is None:
        pytest.skip("concurrent.interpreters is 3.14+")
    it = stdlib.create()
    try:
        yield it
    finally:
        it.close()


def outcome(fn, *args):
    """('ok', result) or (exception class name, message) of fn(*args)."""
    try:
        return ("ok", fn(*args))
    except Exception as exc:
        return (type(exc).__name__, str(exc))


# ---- Interpreter.whence ------------------------------------------------------

@pytest.mark.timeout(60)
def test_whence_names_where_interpreters_came_from(interp):
    assert manygil.get_main().whence == "runtime init"
    assert manygil.get_current().whence == "runtime init"
    assert interp.whence == "C-API"
    assert manygil.Interpreter(interp.id).whence == "C-API"
    # Seen from inside: its own current interpreter, and main.
    assert interp.call(funcs.whences) == ("C-API", "runtime init")



@pytest.mark.timeout(60)
def test_whence_survives_close():
    it = manygil.create()
    handle = manygil.Interpreter(it.id)
    it.close()
    assert handle.whence == "C-API"
    assert it.whence == "C-API"


@needs_stdlib
@pytest.mark.timeout(60)
def test_whence_matches_stdlib(interp):
    assert manygil.get_main().whence == stdlib.get_main().whence
    # What the stdlib itself says of an interpreter manygil made.
    assert interp.whence == stdlib.Interpreter(interp.id).whence


# ---- pickling Interpreter and Queue ------------------------------------------

@pytest.mark.timeout(60)
def test_interpreter_pickles_by_id(interp, interp2):
    again = pickle.loads(pickle.dumps(interp))
    assert type(again) is manygil.Interpreter and again == interp
    assert again.call(eval, "6 * 7") == 42
    assert type(interp).__reduce__(interp) == (manygil.Interpreter, (interp.id,))
    # Unpickled in another interpreter, the handle reaches the same one.
    assert interp2.call(funcs.call_through_pickle, pickle.dumps(interp), "6 * 7") == 42



@pytest.mark.timeout(60)
def test_interpreter_pickle_of_closed_one_fails_on_load():
    it = manygil.create()
    data = pickle.dumps(it)
    it.close()
    with pytest.raises(manygil.InterpreterNotFoundError):
        pickle.loads(data)


@needs_stdlib
@pytest.mark.timeout(60)
def test_interpreter_reduce_has_stdlib_shape(interp, std):
    cls, args = type(std).__reduce__(std)
    assert args == (std.id,)
    assert type(interp).__reduce__(interp)[1] == (interp.id,)


@pytest.mark.timeout(60)
def test_queue_pickles_by_id(interp):
    q = manygil.create_queue()
    again = pickle.loads(pickle.dumps(q))
    assert type(again) is manygil.Queue and again == q and again.id == q.id
    again.put("via copy")
    assert q.get(timeout=5) == "via copy"
    # Unpickled in another interpreter: the same queue.
    interp.call(funcs.put_through_pickle, pickle.dumps(q), 99)
    assert q.get(timeout=5) == 99



@pytest.mark.timeout(60)
def test_queue_pickle_of_gone_queue_fails_on_load():
    q = manygil.create_queue()
    data = pickle.dumps(q)
    del q
    with pytest.raises(manygil.QueueNotFoundError):
        pickle.loads(data)


@pytest.mark.timeout(60)
def test_channel_ends_still_refuse_pickle():
    recv, send = manygil.create_channel()
    for end in (recv, send):
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(end)


# ---- Interpreter.exec(fn) ----------------------------------------------------

def _script_body():
    global out
    out = base * 2              # noqa: F821 -- `base` is bound in the target's __main__
    local_only = 42             # noqa: F841 -- stays local, as in the stdlib


def _script_bare_return():
    if True:
        return
    return None


@pytest.mark.timeout(60)
def test_exec_runs_a_functions_body_in_main(interp):
    interp.prepare_main(base=21)
    interp.exec(_script_body)
    assert interp.call(eval, "out") == 42
    assert interp.call(eval, "'local_only' in dir()") is False
    interp.exec(_script_bare_return)
    interp.exec(lambda: None)
    interp.exec(_script_body.__code__)
    assert interp.call(eval, "out") == 42


@needs_stdlib
@pytest.mark.timeout(60)
def test_exec_function_matches_stdlib(interp, std):
    for it in (interp, std):
        it.prepare_main(base=21)
        it.exec(_script_body)
    assert interp.call(eval, "(out, 'local_only' in dir())") == std.call(
        eval, "(out, 'local_only' in dir())")


def _with_arg(a):
    pass


def _with_default(a=1):
    pass


def _with_kwonly(*, a=1):
    pass


def _with_varargs(*a):
    pass


def _with_varkw(**k):
    pass


def _returns_value():
    return 5


def _returns_value_sometimes(flag=None):
    if flag:
        return 1


def _returns_value_sometimes_noargs():
    if len(sys.argv) > 10_000:
        return 1


def _generator():
    yield 1


async def _coroutine():
    pass


def _make_closure():
    z = 1

    def inner():
        print(z)
    return inner


def _raises_only():
    raise ValueError("never run")


BAD_SCRIPTS = [
    _with_arg, _with_default, _with_kwonly, _with_varargs, _with_varkw,
    _returns_value, _returns_value_sometimes, _returns_value_sometimes_noargs,
    _generator, _coroutine, _make_closure(), lambda: 1, _returns_value.__code__,
    compile("1 + 2", "<eval>", "eval"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("script", BAD_SCRIPTS, ids=lambda s: getattr(s, "__name__", "code"))
def test_exec_refuses_what_is_not_a_script(interp, script):
    with pytest.raises(ValueError, match="not supported|not a script"):
        interp.exec(script)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("script", [5, len, None, object()])
def test_exec_refuses_other_objects_with_type_error(interp, script):
    with pytest.raises(TypeError):
        interp.exec(script)


@needs_stdlib
@pytest.mark.timeout(60)
def test_exec_refusals_match_stdlib(interp, std):
    for script in BAD_SCRIPTS + [_raises_only, 5, len]:
        mine, theirs = outcome(interp.exec, script), outcome(std.exec, script)
        if mine[0] == "ExecutionFailed":      # it ran: both raised inside
            assert theirs[0] == "ExecutionFailed", script
            continue
        assert mine[0] == theirs[0], (script, mine, theirs)
        if mine[0] == "ValueError":
            assert mine[1] == theirs[1], (script, mine, theirs)


# ---- builtins that use their caller's frame: call() and pool tasks --------------

@pytest.mark.timeout(60)
def test_call_frame_builtins_work_on_main(interp):
    assert interp.call(eval, "1 + 2") == 3
    assert interp.call(exec, "x = 1") is None
    assert interp.call(eval, "x") == 1
    names = interp.call(dir)
    assert "x" in names and "__name__" in names
    # dir() lists __main__ and nothing else (no helper names, not even now).
    assert sorted(names) == sorted(interp.call(funcs.main_names))
    g = interp.call(globals)
    assert g["__name__"] == "__main__" and g["x"] == 1
    assert interp.call(vars) == g and interp.call(locals) == g
    assert interp.call(eval, "__name__") == "__main__"
    # A by-reference function's frame keeps its own module's globals.
    assert interp.call(remote.get_main, "x") == 1



@pytest.mark.timeout(60)
def test_call_frame_leaves_no_trace_in_tracebacks(interp):
    with pytest.raises(manygil.ExecutionFailed) as info:
        interp.call(eval, "1 / 0")
    assert info.value.excinfo.type.__name__ == "ZeroDivisionError"
    assert "<manygil call>" not in info.value.excinfo.formatted
    with pytest.raises(manygil.ExecutionFailed) as info:
        interp.call(remote.raise_inner, "boom")
    assert "<manygil call>" not in info.value.excinfo.formatted
    assert "raise_inner" in info.value.excinfo.formatted


@needs_stdlib
@pytest.mark.timeout(60)
def test_call_frame_builtins_match_stdlib(interp, std):
    for it in (interp, std):
        it.call(exec, "y = 2")
    for fn, args in ((eval, ("1 + 2",)), (eval, ("y",)), (exec, ("z = 3",))):
        assert interp.call(fn, *args) == std.call(fn, *args)
    assert {"y", "z"} <= set(interp.call(dir)) & set(std.call(dir))


@pytest.mark.timeout(60)
def test_pool_tasks_run_frame_builtins_on_workers_main():
    with manygil.InterpreterPoolExecutor(max_workers=1, initializer=exec,
                                         initargs=("seed = 7",)) as pool:
        assert pool.submit(eval, "seed").result(timeout=30) == 7
        assert pool.submit(exec, "x = 1").result(timeout=30) is None
        assert pool.submit(eval, "1 + 2").result(timeout=30) == 3
        assert pool.submit(eval, "x + seed").result(timeout=30) == 8
        assert pool.submit(globals).result(timeout=30)["x"] == 1
        assert pool.submit(vars).result(timeout=30)["seed"] == 7
        assert "x" in pool.submit(dir).result(timeout=30)
        # map tasks (many calls per task) run under the same kind of frame.
        assert list(pool.map(eval, ["x", "seed", "x * 10"], chunksize=3)) == [1, 7, 10]


# ---- Interpreter(id) ---------------------------------------------------------

@pytest.mark.timeout(60)
def test_interpreter_by_id(interp):
    assert manygil.Interpreter(interp.id) == interp
    assert manygil.Interpreter(manygil.get_main().id) == manygil.get_main()
    with pytest.raises(ValueError, match="non-negative"):
        manygil.Interpreter(-1)
    with pytest.raises(manygil.InterpreterNotFoundError):
        manygil.Interpreter(1_000_000)
    with pytest.raises(OverflowError):
        manygil.Interpreter(2 ** 70)
    for bad in (True, False, 1.0, "1", None):
        with pytest.raises(TypeError):
            manygil.Interpreter(bad)


@pytest.mark.timeout(60)
def test_interpreter_by_id_of_closed_one():
    it = manygil.create()
    it.close()
    with pytest.raises(manygil.InterpreterNotFoundError):
        manygil.Interpreter(it.id)
    with pytest.raises(manygil.InterpreterNotFoundError):
        it.call(eval, "1")          # the old handle: as before


@needs_stdlib
@pytest.mark.timeout(60)
def test_interpreter_by_id_errors_match_stdlib():
    for bad in (-1, 1_000_000, 2 ** 70, 1.0, "1", None):
        assert outcome(manygil.Interpreter, bad)[0] == outcome(stdlib.Interpreter, bad)[0], bad
    # The one deliberate difference (README, PEP 734 compatibility): the
    # stdlib takes a bool as an id (True is interpreter 1), manygil refuses it.
    assert outcome(stdlib.Interpreter, True)[0] != "TypeError"
    assert outcome(manygil.Interpreter, True)[0] == "TypeError"


# ---- prepare_main() ----------------------------------------------------------

@pytest.mark.timeout(60)
def test_prepare_main_with_nothing_is_value_error(interp):
    for args in ((), (None,), ({},)):
        with pytest.raises(ValueError):
            interp.prepare_main(*args)
    with pytest.raises(TypeError):
        interp.prepare_main(1)
    interp.prepare_main(a=1)
    assert interp.call(eval, "a") == 1


@needs_stdlib
@pytest.mark.timeout(60)
def test_prepare_main_errors_match_stdlib(interp, std):
    for args in ((), (None,), ({},), (1,)):
        assert outcome(interp.prepare_main, *args)[0] == outcome(std.prepare_main, *args)[0], args


# ---- create_queue(maxsize <= 0) ------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("maxsize", [0, -1, -100])
def test_queue_maxsize_not_positive_is_unbounded(maxsize):
    q = manygil.create_queue(maxsize)
    assert q.maxsize == maxsize == queue.Queue(maxsize).maxsize
    for i in range(200):
        q.put_nowait(i)
    assert not q.full() and q.qsize() == 200
    assert [q.get_nowait() for _ in range(200)] == list(range(200))


@pytest.mark.timeout(60)
def test_queue_maxsize_bad_types():
    for bad in (2.0, "a", None):
        with pytest.raises(TypeError):
            manygil.create_queue(bad)
    with pytest.raises(ValueError):
        manygil.create_channel(-1)      # channels keep their rule


@needs_stdlib
@pytest.mark.timeout(60)
def test_queue_maxsize_matches_stdlib():
    for maxsize in (0, -1, 3):
        assert manygil.create_queue(maxsize).maxsize == stdlib.create_queue(maxsize).maxsize
    for bad in (2.0, "a"):
        assert outcome(manygil.create_queue, bad)[0] == outcome(stdlib.create_queue, bad)[0]


# ---- Queue(id), QueueNotFoundError, list_queues() ------------------------------

@pytest.mark.timeout(60)
def test_queue_by_id(interp):
    q = manygil.create_queue()
    same = manygil.Queue(q.id)
    assert same == q and hash(same) == hash(q)
    same.put(1)
    assert q.get(timeout=5) == 1
    # From another interpreter, by the plain id.
    interp.call(funcs.put_by_id, q.id, "from afar")
    assert q.get(timeout=5) == "from afar"



@pytest.mark.timeout(60)
def test_queue_by_id_errors():
    recv, send = manygil.create_channel()
    with pytest.raises(ValueError, match="non-negative"):
        manygil.Queue(-1)
    for missing in (1_000_000, recv.id, send.id):
        with pytest.raises(manygil.QueueNotFoundError):
            manygil.Queue(missing)
    for bad in ("x", 1.0, None, True):
        with pytest.raises(TypeError):
            manygil.Queue(bad)
    with pytest.raises(TypeError):
        manygil.Queue()
    q = manygil.create_queue()
    qid = q.id
    del q
    with pytest.raises(manygil.QueueNotFoundError):
        manygil.Queue(qid)


@pytest.mark.timeout(60)
def test_queue_error_classes():
    assert issubclass(manygil.QueueNotFoundError, manygil.QueueError)
    assert issubclass(manygil.QueueError, RuntimeError)
    assert issubclass(manygil.QueueEmpty, manygil.QueueError)
    assert issubclass(manygil.QueueEmpty, queue.Empty)
    assert issubclass(manygil.QueueFull, manygil.QueueError)
    assert issubclass(manygil.QueueFull, queue.Full)


@needs_stdlib
@pytest.mark.timeout(60)
# The stdlib's own Queue.__del__ complains about the Queue(-1) it refused.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_queue_by_id_matches_stdlib():
    for bad in (-1, 1_000_000, "x", 1.0):
        assert outcome(manygil.Queue, bad)[0] == outcome(stdlib.Queue, bad)[0], bad
    for name in ("QueueError", "QueueNotFoundError", "QueueEmpty", "QueueFull"):
        mine = getattr(manygil, name)
        theirs = getattr(stdlib_queues, name)
        for base in (RuntimeError, queue.Empty, queue.Full):
            assert issubclass(mine, base) == issubclass(theirs, base), (name, base)


@pytest.mark.timeout(60)
def test_list_queues(interp):
    a = manygil.create_queue()
    b = manygil.create_queue(3)
    recv, send = manygil.create_channel()
    gone = manygil.create_queue()
    gone_id = gone.id
    del gone
    ids = [q.id for q in manygil.list_queues()]
    assert a.id in ids and b.id in ids
    assert gone_id not in ids
    assert recv.id not in ids and send.id not in ids
    assert ids == sorted(ids)
    # A queue made in another interpreter (kept alive there) is listed too.
    interp.exec("import manygil; kept = manygil.create_queue()")
    far = interp.call(eval, "kept.id")
    assert far in [q.id for q in manygil.list_queues()]
    listed = [q for q in manygil.list_queues() if q.id == b.id][0]
    assert listed.maxsize == 3
    listed.put("x")
    assert b.get(timeout=5) == "x"


@needs_stdlib
@pytest.mark.timeout(60)
def test_list_queues_matches_stdlib_shape():
    mine, theirs = manygil.create_queue(), stdlib.create_queue()
    assert all(type(q) is manygil.Queue for q in manygil.list_queues())
    assert all(type(q) is stdlib.Queue for q in stdlib_queues.list_all())
    assert mine.id in [q.id for q in manygil.list_queues()]
    assert theirs.id in [q.id for q in stdlib_queues.list_all()]


# ---- get_main().is_running() ---------------------------------------------------

@pytest.mark.timeout(60)
def test_main_is_running_while_main_thread_runs(interp):
    assert manygil.get_main().is_running() is True
    assert interp.call(funcs.main_running) is True
    assert interp.is_running() is False



@needs_stdlib
@pytest.mark.timeout(60)
def test_main_is_running_matches_stdlib():
    assert manygil.get_main().is_running() == stdlib.get_main().is_running()


# ---- a result that cannot cross ----------------------------------------------

@pytest.mark.timeout(60)
def test_unshareable_result_raises_not_shareable(interp):
    with pytest.raises(manygil.NotShareableError) as info:
        interp.call(remote.make_lock)
    exc = info.value
    assert not isinstance(exc, manygil.ExecutionFailed)
    assert "result" in str(exc) and "lock" in str(exc)
    cause = exc.__cause__
    assert isinstance(cause, manygil.ExecutionFailed)
    assert cause.excinfo.type.__name__ == "NotShareableError"
    assert "lock" in cause.excinfo.formatted
    # The interpreter is fine afterwards, and other errors are unchanged.
    assert interp.call(eval, "2 + 2") == 4
    with pytest.raises(manygil.ExecutionFailed):
        interp.call(remote.raise_inner, "boom")


@needs_stdlib
@pytest.mark.timeout(60)
def test_unshareable_result_matches_stdlib(interp, std):
    assert outcome(interp.call, remote.make_lock)[0] == "NotShareableError"
    assert outcome(std.call, remote.make_lock)[0] == "NotShareableError"
