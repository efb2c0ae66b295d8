"""The tenant change listener on a real store: events reach ``on_change``, and every subscription
Redis confirms (the first one, and one redis-py renews by itself after a dropped connection)
is followed by ``on_resync``, since what was cached before it may predate a change nobody heard."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import gevent
import pytest
import redis

from interlink.store import keys
from interlink.tenancy.changes import ReloadListener


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        gevent.sleep(0.01)


class Recorder:
    def __init__(self) -> None:
        self.changes: list[tuple[str, int | None, str]] = []
        self.resyncs = 0

    def on_change(self, tenant_id: str, version: int | None, kind: str) -> None:
        self.changes.append((tenant_id, version, kind))

    def on_resync(self) -> None:
        self.resyncs += 1


@pytest.fixture
def recorded(redis_client: redis.Redis) -> Iterator[tuple[ReloadListener, Recorder]]:
    recorder = Recorder()
    listener = ReloadListener(redis_client, recorder.on_change, recorder.on_resync)
    listener.start()
    try:
        yield listener, recorder
    finally:
        listener.stop()


def _subscribers(client: redis.Redis) -> int:
    channel = keys.tenant_events()
    return int(dict(client.pubsub_numsub(channel)).get(channel.encode(), 0))


def test_the_first_subscription_resynchronises_once_confirmed(
    redis_client: redis.Redis, recorded: tuple[ReloadListener, Recorder]
) -> None:
    listener, recorder = recorded
    wait_for(lambda: recorder.resyncs == 1)
    assert _subscribers(redis_client) == 1  # confirmed by Redis before the resync
    event = {"tenantId": "acme", "version": 3, "kind": "updated"}
    redis_client.publish(keys.tenant_events(), json.dumps(event))
    wait_for(lambda: recorder.changes == [("acme", 3, "updated")])
    assert recorder.resyncs == 1 and listener.events == 1


def test_a_dropped_connection_resynchronises_however_it_is_renewed(
    redis_client: redis.Redis, recorded: tuple[ReloadListener, Recorder]
) -> None:
    """Events published while the connection was down are lost: the renewed subscription
    resyncs, once Redis confirms it."""
    _, recorder = recorded
    wait_for(lambda: recorder.resyncs == 1)
    assert redis_client.client_kill_filter(_type="pubsub") >= 1
    wait_for(lambda: recorder.resyncs == 2 and _subscribers(redis_client) == 1)
    redis_client.publish(keys.tenant_events(), json.dumps({"tenantId": "acme", "version": 4}))
    wait_for(lambda: recorder.changes == [("acme", 4, "updated")])


def test_subscription_confirmations_are_not_taken_for_events(
    redis_client: redis.Redis, recorded: tuple[ReloadListener, Recorder]
) -> None:
    listener, recorder = recorded
    wait_for(lambda: recorder.resyncs == 1)
    redis_client.publish(keys.tenant_events(), "not json")
    redis_client.publish(keys.tenant_events(), json.dumps({"tenantId": "globex"}))
    wait_for(lambda: recorder.changes == [("globex", None, "updated")])
    assert listener.events == 1
