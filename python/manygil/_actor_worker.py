"""The dispatch loop of an actor worker: runs inside the worker interpreter.

One loop per worker interpreter serves every actor pinned there.  Its inbox
is one channel shared by those actors: each message names its actor, so
messages run one at a time, in the order they arrived.  A second channel,
``urgent``, carries requests that must not wait behind queued messages
(``stop(drain=False)``); it is read before each message.

Messages (tuples; the first item is the kind):
    (CALL, aid, method, args, kwargs, reply)    reply None: a tell
    (SPAWN, aid, cls, args, kwargs, reply, credits, label)
    (STOP, aid, reply)                          after the queued messages
    (JOIN, aid, reply)                          answered once aid stopped
    (EXIT,)                                     end the loop
A reply is the send end of a channel of that one call.  Replies are (status, payload): OK value, ERR the exception's
description (``_remote.describe``), STOPPED a message.  A message dropped
unanswered (the loop ended first) drops its reply handle, which closes the
caller's reply channel: the caller wakes with ActorStoppedError.
"""
from __future__ import annotations

import sys

CALL, SPAWN, STOP, JOIN, EXIT = 0, 1, 2, 3, 4
OK, ERR, STOPPED = 0, 1, 2

# What the worker is running now, for stack dumps and hang reports:
# (label, method) or None.  Read by _actors.running() in this interpreter.
current: tuple | None = None


class _Slot:
    __slots__ = ("obj", "label", "credits", "dropped", "joiners")

    def __init__(self, obj: object, label: str, credits: object) -> None:
        self.obj = obj
        self.label = label
        self.credits = credits      # (send id, recv id) of the mailbox's credits, or None
        self.dropped = False        # stop(drain=False) asked: fail what is queued
        self.joiners: list = []


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


def _take_credit(recv_id: int) -> None:
    from . import _core
    try:
        _core._channel_recv(recv_id, 0)
    except Exception:           # a message sent without credit (a race with stop)
        pass


def _close_credits(slot: _Slot) -> None:
    """Close the mailbox bound's channel: senders waiting for room wake
    with ChannelClosedError (ActorStoppedError for them)."""
    if slot.credits is not None:
        from . import _core
        for end in slot.credits:
            try:
                _core._channel_close(end)
            except Exception:
                pass


def serve(boot: object, solo: bool) -> None:
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
    try:
        run(inbox, urgent, solo)
    finally:
        _core._channel_close(send_id)      # pinned: closes only by its id


def run(inbox: object, urgent: object, solo: bool = False) -> None:
    """Serve the actors of this worker until an EXIT message (or the inbox
    closes); a solo worker (``dedicated=True``) ends with its actor."""
    global current
    from . import _core
    from ._errors import ChannelClosedError
    actors: dict[int, _Slot] = {}
    actors_get = actors.get
    invoke = _core._actor_invoke
    recv = inbox.recv
    urgent_get = urgent.recv_nowait
    try:
        while True:
            try:
                msg = recv()
            except ChannelClosedError:
                return
            u = urgent_get(None)
            while u is not None:
                slot = actors.get(u)
                if slot is not None:
                    slot.dropped = True
                u = urgent_get(None)
            kind = msg[0]
            if kind == CALL:
                _, aid, name, args, kw, reply = msg
                slot = actors_get(aid)
                if slot is None:
                    if reply is not None:
                        _answer(reply, STOPPED, "the actor has stopped")
                    continue
                if slot.credits is not None:
                    _take_credit(slot.credits[1])
                if slot.dropped:
                    if reply is not None:
                        _answer(reply, STOPPED,
                                f"actor {slot.label} was stopped without drain "
                                "(stop(drain=False)) before this message ran")
                    continue
                current = (slot.label, name)
                try:
                    # A run of its own: the watchdog, dump_stacks and
                    # ActorRef.interrupt() see this actor's method.
                    value = invoke(slot.label, aid, slot.obj, name, args, kw or None)
                except BaseException as e:      # the actor goes on
                    current = None
                    if reply is not None:
                        _answer(reply, ERR, _describe(e))
                    else:
                        _report_tell_failure(slot.label, name, e)
                    del e
                    continue
                current = None
                if reply is not None:
                    _answer(reply, OK, value)
                del value, args, kw
            elif kind == SPAWN:
                _, aid, cls, args, kwargs, reply, credits, label = msg
                current = (label, "__init__")
                try:
                    obj = invoke(label, aid, cls, None, tuple(args), kwargs or None)
                except BaseException as e:
                    current = None
                    _answer(reply, ERR, _describe(e))
                    del e
                    continue
                current = None
                actors[aid] = _Slot(obj, label, credits)
                _answer(reply, OK, None)
            elif kind == STOP:
                slot = actors.pop(msg[1], None)
                if slot is not None:
                    _close_credits(slot)
                    for j in slot.joiners:
                        _answer(j, OK, None)
                    slot.joiners.clear()
                    del slot            # the instance goes now
                if msg[2] is not None:
                    _answer(msg[2], OK, None)
                if solo and not actors:
                    return
            elif kind == JOIN:
                slot = actors.get(msg[1])
                if slot is None:
                    _answer(msg[2], OK, None)
                else:
                    slot.joiners.append(msg[2])
            elif kind == EXIT:
                return
            del msg
    finally:
        current = None
        for slot in actors.values():
            _close_credits(slot)
            for j in slot.joiners:
                _answer(j, OK, None)
        actors.clear()
        inbox.close()
        urgent.close()
        from . import _actors
        _actors._collector_close()
