"""The autouse fixture of ``tests/conftest.py`` stops what a test started: these two tests run in
this order, the first starts things and leaves them running, the second sees none of them."""

from __future__ import annotations

from typing import Any

import gevent
import pykka

from interlink.actors.actor import Actor

LEFT_BEHIND: dict[str, Any] = {}


class Idle(Actor):
    def receive(self, message: Any) -> Any:
        return message


def test_a_test_leaves_an_actor_a_registered_actor_and_a_greenlet_running() -> None:
    LEFT_BEHIND["actor"] = Idle.start()  # outside pykka's registry, like every actor of ours
    LEFT_BEHIND["registered"] = pykka.ThreadingActor.start()
    LEFT_BEHIND["greenlet"] = gevent.spawn(gevent.sleep, 3600)
    LEFT_BEHIND["not yet run"] = gevent.spawn(gevent.sleep, 3600)
    gevent.sleep(0)
    assert LEFT_BEHIND["actor"].ask("ping", timeout=1) == "ping"


def test_the_next_test_sees_none_of_it() -> None:
    assert LEFT_BEHIND, "the test before this one did not run"
    assert not LEFT_BEHIND["actor"].is_alive()
    assert not LEFT_BEHIND["registered"].is_alive()
    assert pykka.ActorRegistry.get_all() == []
    assert LEFT_BEHIND["greenlet"].dead
    assert LEFT_BEHIND["not yet run"].dead
