"""A message its worker cannot load (a class or an argument that cannot be
rebuilt in the worker's interpreter) is dropped there and reported on
stderr; its caller gets ActorStoppedError saying so, and the worker, with
every other actor on it, goes on."""
import pytest

import manygil
from helpers import actor_funcs as af
from helpers.proc import describe, run_script

WAIT = 30
pytestmark = pytest.mark.timeout(120)


def test_a_call_whose_argument_cannot_load_fails_and_the_actor_goes_on(one_worker_system, capfd):
    log = manygil.spawn(af.Log, system=one_worker_system)
    other = manygil.spawn(af.Counter, system=one_worker_system)
    log.add(1)
    with pytest.raises(manygil.ActorStoppedError, match="could not load the message"):
        log.add(af.Unloadable(), timeout=WAIT)
    with pytest.raises(manygil.ActorStoppedError, match="could not load the message"):
        log.add.submit(af.Unloadable()).result(WAIT)
    log.add(2)
    assert log.items_() == [1, 2]
    assert other.incr() == 1
    err = capfd.readouterr().err
    assert err.count("dropped a message it could not load") == 2, err
    assert "RuntimeError: an Unloadable cannot be rebuilt" in err


def test_a_tell_whose_argument_cannot_load_is_dropped(one_worker_system, capfd):
    log = manygil.spawn(af.Log, system=one_worker_system)
    log.add.tell("a")
    log.add.tell(af.Unloadable())
    log.add.tell("b")
    assert log.items_() == ["a", "b"]
    assert "dropped a message it could not load" in capfd.readouterr().err


def test_spawn_whose_argument_cannot_load_raises_and_the_system_goes_on(one_worker_system, capfd):
    with pytest.raises(manygil.ActorStoppedError, match="was not started: its worker could "
                                                        "not load the class or its arguments"):
        manygil.spawn(af.Counter, af.Unloadable(), system=one_worker_system)
    assert manygil.spawn(af.Counter, 5, system=one_worker_system).incr() == 6
    assert "RuntimeError: an Unloadable cannot be rebuilt" in capfd.readouterr().err


def test_a_script_without_a_main_guard_is_told_to_add_one(tmp_path):
    """The worker imports the script to find its class; the script then
    spawns again there: that fails, and both messages say what to do."""
    proc = run_script(tmp_path, """
        import manygil

        class Sink:
            def add(self, x):
                return x

        with manygil.ActorSystem(workers=1) as system:
            print(manygil.spawn(Sink, system=system).add(1))
    """)
    assert proc.returncode != 0, describe(proc)
    assert "Sink#1 was not started" in proc.stderr, describe(proc)
    assert "if __name__ == " in proc.stderr, describe(proc)
