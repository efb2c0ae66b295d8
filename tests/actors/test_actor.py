"""The actor base: an idle actor holds no greenlet, and a woken one keeps its order."""

from __future__ import annotations

import gc
from typing import Any

import gevent
import greenlet
import pykka
import pytest

from interlink.actors.actor import Actor
from interlink.telemetry import logs


class Recorder(Actor):
    def __init__(self) -> None:
        super().__init__()
        self.tenant_id = "t-actor"
        self.seen: list[Any] = []

    def receive(self, message: Any) -> Any:
        if message == "nap":
            gevent.sleep(0.01)
        if message == "fields":
            return dict(logs._bound.get())
        self.seen.append(message)
        return len(self.seen)


def greenlets() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, greenlet.greenlet) and not o.dead)


def test_an_idle_actor_holds_no_greenlet() -> None:
    gevent.sleep(0)
    before = greenlets()
    refs = [Recorder.start() for _ in range(50)]
    for ref in refs:
        assert ref.ask("hello", timeout=5) == 1
    gevent.sleep(0)
    assert greenlets() == before
    for ref in refs:
        ref.stop()
    assert not any(ref.is_alive() for ref in refs)


def test_messages_told_while_it_works_are_handled_in_order_by_one_runner() -> None:
    ref = Recorder.start()
    ref.tell("nap")
    for n in range(100):
        ref.tell(n)
    assert ref.ask("last", timeout=5) == 102
    actor = ref.proxy().seen.get(timeout=5)
    assert actor == ["nap", *range(100), "last"]
    ref.stop()


def test_the_tenant_stays_bound_across_runs() -> None:
    ref = Recorder.start()
    assert ref.ask("fields", timeout=5)["tenant"] == "t-actor"
    gevent.sleep(0.01)
    assert ref.ask("fields", timeout=5)["tenant"] == "t-actor"
    ref.stop()


def test_a_stopped_actor_refuses_and_answers_what_it_had() -> None:
    ref = Recorder.start()
    ref.tell("nap")
    pending = ref.ask("after", block=False)
    ref.stop(block=False)
    assert pending.get(timeout=5) == 2
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("late")
