"""Delivery guarantees end to end: kill -9, a Redis restart, redeliveries, a Genesys outage.

Each test runs a two-way load through a real shard process and counts at the simulators: every
acknowledged message arrives once, in order per conversation, and nothing else arrives. The
longer drills run under ``make chaos``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
import requests

from interlink.store.embedded import EmbeddedValkey
from tests.e2e.chaos import Conversation, Load, repeats_announced, wait_until
from tests.e2e.world import World, start_world, wait_for


def conversations(world: World, tenants: int = 3, users: int = 2) -> list[Conversation]:
    result = []
    for t in range(tenants):
        tenant = world.add_tenant(f"tenant-{t}")
        for _ in range(users):
            result.append(Conversation(tenant, world.user()))
    return result


def finish(load: Load, timeout: float = 60) -> None:
    """Nothing lost, nothing reordered, nothing duplicated — except that a ``kill -9`` landing
    between a provider's success and the write of its "done" marker makes that call happen again
    on redelivery. Each such repeat is logged by the shard, so every duplicate must be one of
    them (README, "Guarantees")."""
    load.stop()
    wait_until(load.complete, timeout)
    counts = load.tally()
    repeats = repeats_announced(load.world)
    print("counts:", counts.as_dict(), "repeats announced:", repeats)
    assert counts.acknowledged == counts.sent
    assert counts.lost == 0, counts
    assert counts.out_of_order == 0, counts
    assert counts.duplicates <= repeats, (counts, repeats)


def test_kill_9_under_load_loses_nothing(world: World) -> None:
    load = Load(world, conversations(world), rate=40)
    load.start()
    rng = random.Random(7)
    for _ in range(5):
        gevent.sleep(rng.uniform(0.4, 1.0))
        world.shard.kill()  # SIGKILL: no drain, no clean stop
        world.shard.start()
    gevent.sleep(0.5)
    finish(load)
    assert load.counts.redeliveries > 0  # the kills really refused some webhooks


def test_sigterm_restarts_under_load_lose_nothing(world: World) -> None:
    load = Load(world, conversations(world, tenants=2), rate=40)
    load.start()
    for _ in range(3):
        gevent.sleep(0.6)
        assert world.shard.stop() == 0
        world.shard.start()
    finish(load)


def test_every_webhook_twice_and_out_of_order_reaches_each_side_once(world: World) -> None:
    tenant = world.add_tenant("acme")
    user = world.user()
    state = world.state
    first = state.user.say(tenant.phone_number_id, user, "text", body="opening")
    deliveries = [first]
    for n in range(8):
        deliveries.append(state.user.say(tenant.phone_number_id, user, "text", body=f"m{n}"))
    # Meta redelivers: the same signed bodies again, in another order.
    for delivery in reversed(deliveries):
        again = requests.post(delivery.url, data=delivery.raw, headers=delivery.headers, timeout=10)
        assert again.status_code == 200 and again.json()["duplicates"] == 1
    expected = ["opening"] + [f"m{n}" for n in range(8)]
    wait_for(lambda: len(state.genesys.messages_from(tenant.integration_id)) >= len(expected))
    gevent.sleep(0.5)
    texts = [m.body["text"] for m in state.genesys.messages_from(tenant.integration_id)]
    assert texts == expected

    replies = [
        state.agent.send(tenant.integration_id, str(user.wa_id), text=f"r{n}") for n in range(5)
    ]
    for delivery in reversed(replies):
        again = requests.post(delivery.url, data=delivery.raw, headers=delivery.headers, timeout=10)
        assert again.status_code == 200
    wait_for(lambda: len(state.meta.sent_to(tenant.phone_number_id)) >= 5)
    gevent.sleep(0.5)
    assert [s.body["text"]["body"] for s in state.meta.sent_to(tenant.phone_number_id)] == [
        f"r{n}" for n in range(5)
    ]


def test_a_genesys_outage_is_ridden_out_in_order(world: World) -> None:
    tenant = world.add_tenant("acme")
    other = world.add_tenant("globex")
    user, other_user = world.user(), world.user()
    state = world.state
    rule = state.faults.inject("genesys.message", status=500, count=None, tenant="org-acme")
    for n in range(5):
        assert state.user.say(tenant.phone_number_id, user, "text", body=f"m{n}").status == 200
    # The other tenant is not held up by acme's outage.
    state.user.say(other.phone_number_id, other_user, "text", body="unaffected")
    wait_for(lambda: state.genesys.messages_from(other.integration_id), timeout=5)
    gevent.sleep(2)
    assert state.genesys.messages_from(tenant.integration_id) == []
    state.faults.remove(rule.id)
    wait_for(lambda: len(state.genesys.messages_from(tenant.integration_id)) == 5, timeout=60)
    assert [m.body["text"] for m in state.genesys.messages_from(tenant.integration_id)] == [
        f"m{n}" for n in range(5)
    ]


def test_a_refused_message_is_dead_lettered_and_replayed_after_a_fix(world: World) -> None:
    tenant = world.add_tenant("acme")
    user = world.user()
    state = world.state
    rule = state.faults.inject(
        "genesys.message", status=400, count=None, tenant="org-acme", genesys_code="invalid.value"
    )
    state.user.say(tenant.phone_number_id, user, "text", body="refused at first")
    path = f"/control/tenants/{tenant.tenant_id}/messages"

    def dead_letters() -> int:
        reply = world.admin("POST", path, json={"type": "dead-letters"})
        assert reply.status_code == 200, reply.text
        return int(reply.json()["deadLetters"])

    wait_for(lambda: dead_letters() == 1, timeout=20)
    listed = world.admin("POST", path, json={"type": "dead-letters"}).json()["entries"][0]
    assert listed["kind"] == "wa.message" and "invalid.value" in listed["reason"]
    state.faults.remove(rule.id)
    replayed = world.admin("POST", path, json={"type": "replay-dead-letters"}).json()
    assert replayed["replayed"] == 1 and replayed["deadLetters"] == 0
    arrived = wait_for(lambda: state.genesys.messages_from(tenant.integration_id), timeout=20)
    assert [m.body["text"] for m in arrived] == ["refused at first"]


@pytest.fixture
def own_store(tmp_path: Path) -> Iterator[EmbeddedValkey]:
    store = EmbeddedValkey(tmp_path / "store")
    store.start()
    try:
        yield store
    finally:
        store.stop()


def test_a_redis_restart_under_load_loses_nothing(
    tmp_path: Path, own_store: EmbeddedValkey
) -> None:
    world = start_world(tmp_path, own_store.url)
    try:
        load = Load(world, conversations(world, tenants=2), rate=30)
        load.start()
        gevent.sleep(1.0)
        own_store.stop()  # SIGTERM: Valkey flushes its AOF and exits
        gevent.sleep(1.5)
        assert requests.get(world.shard.url + "/readyz", timeout=5).status_code == 503
        own_store.start()  # same port, same AOF
        wait_for(
            lambda: requests.get(world.shard.url + "/readyz", timeout=5).status_code == 200,
            timeout=20,
        )
        gevent.sleep(1.0)
        finish(load, timeout=90)
        assert load.counts.redeliveries > 0
    finally:
        world.close()
