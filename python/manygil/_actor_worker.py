"""The dispatch loop of an actor worker: runs inside the worker interpreter.

One loop per worker interpreter serves every actor pinned there.  Its inbox
is one channel shared by those actors: each message names its actor, so
messages run one at a time, in the order they arrived.  A second channel,
``urgent``, carries requests that must not wait behind queued messages
(``stop(drain=False)``); it is read before each message.

Messages (tuples; the first item is the kind):
    (CALL, aid, method, args, kwargs, reply)    reply None: a tell
    (SPAWN, aid, spec, reply)                   spec: see _actors._Spec.wire()
    (STOP, aid, reply)                          after the queued messages
    (JOIN, aid, reply)                          answered once aid stopped
    (EXIT,)                                     end the loop
A reply is the send end of a channel of that one call.  Replies are
(status, payload): OK value, ERR the exception's description
(``_remote.describe``), STOPPED a message, GONE a whole message (the actor
was stopped, or its worker abandoned, by the system).  A message dropped
unanswered (the loop ended first) drops its reply handle, which closes the
caller's reply channel: the caller wakes with ActorStoppedError.

Tells are the throughput path: ``_core._actor_next`` receives and runs them
in C, one after the other, for as long as tells to actors whose slot allows
it (``_Slot.fast``) come, and hands any other message to the loop here --
also a message that arrives while ``urgent`` has items, so that those are
read first.  Each tell is still a method run of its own, one message taken
from the inbox at a time (nothing is held back if the worker is abandoned).

Per actor, two channels of plain ids made by the system outlive a worker:
its mailbox credits (``mailbox=N``) and its joiners' channel, where a JOIN's
reply handle waits (in transit) until the actor stops; closing that channel
drops the handles, which wakes the joiners.  When the system abandons a
worker (a method stuck past its interrupt's grace period), a replacement
serves the same inbox (``serve_adopted``): it restarts the actors spawned
with ``restart=True`` and answers the others' messages GONE; the stuck
loop, should its method ever return, ends without touching anything shared.
"""
from __future__ import annotations

import sys

CALL, SPAWN, STOP, JOIN, EXIT = 0, 1, 2, 3, 4
# What _core._actor_next returns for a tell whose method raised:
# (TELL_RAISED, label, method, exception).  Not a message kind.
TELL_RAISED = 5
# ... and for a message that could not be decoded here: (UNDECODABLE, exception).
UNDECODABLE = 6
OK, ERR, STOPPED, GONE = 0, 1, 2, 3
# Reports to the system's control channel (ActorSystem._supervise).
R_STOPPED, R_INTERRUPTED, R_EXIT = 0, 1, 2

class _Slot:
    __slots__ = ("obj", "label", "uid", "credits", "joins", "dropped", "fast")

    def __init__(self, obj: object, label: str, uid: int, credits: object,
                 joins: tuple) -> None:
        self.obj = obj
        self.label = label
        self.uid = uid              # process-unique: the id of its method runs
        self.credits = credits      # (send id, recv id) of the mailbox's credits, or None
        self.joins = joins          # (send id, recv id) of its joiners' channel
        self.dropped = False        # stop(drain=False) asked: fail what is queued
        # (label, uid, obj) while its tells may run in _core._actor_next
        # without coming back to the loop: no credits to take, not dropped.
        self.fast = (label, uid, obj) if credits is None else None


def _answer(reply: object, status: int, payload: object) -> None:
    """Send a reply; a caller that gave up (timed out, cancelled: its reply
    channel is closed) is no error."""
    try:
        reply.send((status, payload))
    except Exception as e:
        if status == OK and _is_not_shareable(e):
            _answer(reply, ERR, _describe(e))


def _is_not_shareable(e: BaseException) -> bool:
    from ._errors import NotShareableError
    return isinstance(e, NotShareableError)


def _describe(e: BaseException) -> tuple:
    from ._remote import describe
    return describe(e)


def _report_tell_failure(label: str, name: str, e: BaseException) -> None:
    import traceback
    text = "".join(traceback.format_exception(e))
    sys.stderr.write(f"manygil: actor {label}: {name}() sent with tell() raised:\n{text}")


def _report_undecodable(e: BaseException) -> None:
    import traceback
    text = "".join(traceback.format_exception(e))
    sys.stderr.write("manygil: an actor worker dropped a message it could not load (a class "
                     "or an argument that cannot be rebuilt in its interpreter); its caller "
                     f"gets ActorStoppedError:\n{text}")


def _take_credit(recv_id: int) -> None:
    from . import _core
    try:
        _core._channel_recv(recv_id, 0)
    except Exception:           # a message sent without credit (a race with stop)
        pass


def close_ids(ids: tuple | None) -> None:
    """Close a channel of plain ids (both ends): for the mailbox's credits,
    senders waiting for room wake with ChannelClosedError (ActorStoppedError
    for them); for the joiners' channel, the reply handles in it drop and
    every join() returns."""
    if ids is not None:
        from . import _core
        for end in ids:
            try:
                _core._channel_close(end)
            except Exception:
                pass


def _report(ctl: int, msg: tuple) -> None:
    """Tell the system (its control channel); a stopped system is no error."""
    from . import _core
    try:
        _core._channel_send(ctl, msg, 0)
    except Exception:
        pass


def _slot_of(spec: tuple, invoke: object) -> _Slot:
    """Run an actor's __init__ here (spec: _actors._Spec.wire())."""
    aid, uid, cls, args, kwargs, label, credits, joins = spec
    obj = invoke(label, uid, cls, None, tuple(args), kwargs or None, None)
    return _Slot(obj, label, uid, credits, joins)


def serve(boot: object, solo: bool, ctl: int) -> None:
    """The worker's entry: make the inbox here (so that only this
    interpreter holds its receive end: the deadlock detector takes the
    holders of that end as the ones who will answer a call), hand its send
    end to the system through ``boot``, and run."""
    from . import _core
    inbox, inbox_send = _core._actor_inbox()
    urgent, urgent_send = _core.create_channel()
    send_id = inbox_send.id
    boot.send((inbox_send, urgent_send))
    del boot, inbox_send, urgent_send
    abandoned = True
    try:
        abandoned = run(inbox, urgent, solo, ctl, {}, {})
    finally:
        if not abandoned:
            _core._channel_close(send_id)      # pinned: closes only by its id


def serve_adopted(boot: object, solo: bool, ctl: int, inbox_id: int, urgent_id: int,
                  restarts: list, gone: dict) -> None:
    """The entry of a worker that replaces an abandoned one: serve the same
    inbox and urgent channels (their receive ends by id), after running the
    ``__init__`` of each actor to restart (specs, in spawn order).  An actor
    whose __init__ now raises is stopped (reported on stderr).  ``boot`` is
    not used (the system has the inbox's send ends already).  ``gone``:
    aid -> the message the callers of the actors not restarted get."""
    from . import _core
    inbox = _core._channel_adopt(inbox_id + 1)
    urgent = _core._channel_adopt(urgent_id + 1)
    invoke = _core._actor_invoke
    actors: dict[int, _Slot] = {}
    for spec in restarts:
        try:
            actors[spec[0]] = _slot_of(spec, invoke)
        except BaseException as e:
            import traceback
            text = "".join(traceback.format_exception(e))
            sys.stderr.write(f"manygil: actor {spec[5]} could not be restarted, its "
                             f"__init__ raised:\n{text}")
            gone[spec[0]] = (f"actor {spec[5]} was stopped: its worker interpreter was "
                             f"abandoned and its restart's __init__ raised {e!r}")
            close_ids(spec[6])
            close_ids(spec[7])
            _report(ctl, (R_STOPPED, spec[0]))
            del e
    del boot, restarts
    if solo and not actors:     # its one actor could not come back: it ends
        _core._channel_close(inbox_id)
        inbox.close()           # the queued messages drop: their callers wake
        urgent.close()
        return
    abandoned = True
    try:
        abandoned = run(inbox, urgent, solo, ctl, actors, gone)
    finally:
        if not abandoned:
            _core._channel_close(inbox_id)


def run(inbox: object, urgent: object, solo: bool, ctl: int, actors: dict,
        gone: dict) -> bool:
    """Serve the actors of this worker until an EXIT message (or the inbox
    closes); a solo worker (``dedicated=True``) ends with its actor.
    ``actors``: aid -> _Slot of the actors already here; ``gone``: aid ->
    message, actors stopped by the system.  Returns True when the system
    abandoned this worker (then nothing shared was touched: a replacement
    serves the inbox), False when it ended normally."""
    from . import _core
    from ._errors import ChannelClosedError
    actors_get = actors.get
    invoke = _core._actor_invoke
    next_msg = _core._actor_next        # runs the tells itself: the fast path
    urgent_get = urgent.recv_nowait
    abandoned = False
    try:
        while True:
            try:
                msg = next_msg(inbox, urgent, actors)
            except ChannelClosedError:
                return False
            u = urgent_get(None)
            while u is not None:
                slot = actors.get(u)
                if slot is not None:
                    slot.dropped = True
                    slot.fast = None
                u = urgent_get(None)
            kind = msg[0]
            if kind == UNDECODABLE:     # the worker goes on: only that message is lost
                _report_undecodable(msg[1])
                del msg
                continue
            if kind == TELL_RAISED:
                e = msg[3]
                if type(e) is SystemExit and _abandoned(e):
                    abandoned = True
                    return True
                _report_tell_failure(msg[1], msg[2], e)
                del e, msg
                continue
            if kind == CALL:
                _, aid, name, args, kw, reply = msg
                slot = actors_get(aid)
                if slot is None:
                    if reply is not None:
                        why = gone.get(aid)
                        if why is None:
                            _answer(reply, STOPPED, "the actor has stopped")
                        else:
                            _answer(reply, GONE, why)
                    continue
                if slot.credits is not None:
                    _take_credit(slot.credits[1])
                if slot.dropped:
                    if reply is not None:
                        _answer(reply, STOPPED,
                                f"actor {slot.label} was stopped without drain "
                                "(stop(drain=False)) before this message ran")
                    continue
                try:
                    # A run of its own: the watchdog, dump_stacks and
                    # ActorRef.interrupt() see this actor's method.
                    value = invoke(slot.label, slot.uid, slot.obj, name, args, kw or None,
                                   reply)
                except BaseException as e:      # the actor goes on
                    if type(e) is SystemExit and _abandoned(e):
                        abandoned = True
                        return True
                    if reply is not None:
                        _answer(reply, ERR, _describe(e))
                    else:
                        _report_tell_failure(slot.label, name, e)
                    del e
                    continue
                if reply is not None:
                    _answer(reply, OK, value)
                del value, args, kw
            elif kind == SPAWN:
                _, aid, spec, reply = msg
                if aid in actors:       # restarted before its SPAWN came (an abandonment)
                    _answer(reply, OK, None)
                    continue
                try:
                    actors[aid] = _slot_of(spec, invoke)
                except BaseException as e:
                    if type(e) is SystemExit and _abandoned(e):
                        abandoned = True
                        return True
                    _answer(reply, ERR, _describe(e))
                    del e
                    continue
                _answer(reply, OK, None)
            elif kind == STOP:
                slot = actors.pop(msg[1], None)
                if slot is not None:
                    close_ids(slot.credits)
                    close_ids(slot.joins)       # its joiners wake
                    del slot            # the instance goes now
                    _report(ctl, (R_STOPPED, msg[1]))
                if msg[2] is not None:
                    _answer(msg[2], OK, None)
                if solo and not actors:
                    return False
            elif kind == JOIN:
                slot = actors.get(msg[1])
                if slot is None:
                    _answer(msg[2], OK, None)
                else:
                    try:                # it waits there until the actor stops
                        _core._channel_send(slot.joins[0], msg[2], 0)
                    except Exception:
                        _answer(msg[2], OK, None)
            elif kind == EXIT:
                return False
            del msg
    finally:
        if not abandoned:
            for slot in actors.values():
                close_ids(slot.credits)
                close_ids(slot.joins)
            actors.clear()
            inbox.close()
            urgent.close()
        from . import _actors
        _actors._collector_close()


def _abandoned(e: BaseException) -> bool:
    """e is the SystemExit _actor_invoke raises when the system abandoned
    this worker while the method ran (a method's own SystemExit is not)."""
    return e.args == ("manygil: this actor worker was abandoned",)
