"""Shards on a real three-master Valkey Cluster (``INTERLINK_REDIS_CLUSTER=true``, the URL of one
node): the round trip, a hot reload across shards and nodes, and ``kill -9`` under load."""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest

from interlink.store import keys
from interlink.tenancy import ownership
from tests.e2e.chaos import Conversation, Load, repeats_announced, wait_until
from tests.e2e.world import World, start_world, wait_for
from tests.support.valkey_cluster import ValkeyCluster, valkey_cluster  # noqa: F401 - fixture

CLUSTER = {"INTERLINK_REDIS_CLUSTER": "true"}


def tenant_owned_by(shard: int, count: int, prefix: str) -> str:
    return next(
        f"{prefix}-{n}" for n in range(1000) if ownership.owner(f"{prefix}-{n}", count) == shard
    )


@pytest.fixture
def cluster_world(tmp_path: Path, valkey_cluster: ValkeyCluster) -> Iterator[World]:  # noqa: F811
    valkey_cluster.flush()
    world = start_world(tmp_path, valkey_cluster.url, shards=2, extra_env=CLUSTER)
    try:
        yield world
    finally:
        world.close()


def test_round_trip_on_a_cluster_with_two_shards(
    cluster_world: World,
    valkey_cluster: ValkeyCluster,  # noqa: F811
) -> None:
    world = cluster_world
    # One tenant per owner shard, and the webhooks all sent to shard 0: a group commit there
    # appends to both shards' streams (one script call per shard, each in its own slot).
    first = world.add_tenant(tenant_owned_by(0, 2, "first"))
    second = world.add_tenant(tenant_owned_by(1, 2, "second"))
    genesys, meta, state = world.state.genesys, world.state.meta, world.state
    users = {first.tenant_id: world.user(name="Ana"), second.tenant_id: world.user(name="Bob")}
    for tenant in (first, second):
        said = state.user.say(tenant.phone_number_id, users[tenant.tenant_id], "text", body="Hola")
        assert said.status == 200
    for tenant in (first, second):
        arrived = wait_for(
            lambda t=tenant: genesys.messages_from(t.integration_id), message="inbound"
        )
        assert [m.body["text"] for m in arrived] == ["Hola"]

    replies = {}
    for tenant in (first, second):
        wa_id = users[tenant.tenant_id].wa_id
        replies[tenant.tenant_id] = state.agent.send(tenant.integration_id, wa_id, text="Hi!")
        assert replies[tenant.tenant_id].status == 200
    for tenant in (first, second):
        sent = wait_for(lambda t=tenant: meta.sent_to(t.phone_number_id), message="reply")
        assert sent[0].body["text"]["body"] == "Hi!"
        state.user.status(sent[0].wamid, "delivered")
        receipts = wait_for(
            lambda t=tenant: genesys.receipts_for(replies[t.tenant_id].message_id),
            message="receipt",
        )
        assert [r["status"] for r in receipts] == ["Delivered"]

    # Both shards' inboxes emptied, each on the node of its own slot, other than the registry's.
    nodes = {valkey_cluster.node_of(k) for k in (keys.inbox(0), keys.inbox(1), keys.tenant("x"))}
    assert len(nodes) == 3
    for shard in (0, 1):
        wait_for(
            lambda s=shard: valkey_cluster.on_node(keys.inbox(s), lambda n, k: n.xlen(k)) == 0,
            message="every entry acknowledged",
        )


def test_hot_reload_travels_between_shards_on_a_cluster(cluster_world: World) -> None:
    world = cluster_world
    acme = world.add_tenant(tenant_owned_by(0, 2, "acme"))
    user = world.user()
    state = world.state
    assert state.user.say(acme.phone_number_id, user, "text", body="before").status == 200
    wait_for(lambda: state.genesys.messages_from(acme.integration_id), message="first message")

    # New WhatsApp credentials written through shard 1; shard 0, the owner, must use them.
    token = secrets.token_urlsafe(40)
    state.meta.grant_token(acme.phone_number_id, token)
    changed = world.admin(
        "PUT",
        f"/api/tenants/{acme.tenant_id}/whatsapp/config",
        shard=1,
        json={
            "meta_access_token": token,
            "whatsapp_phone_number_id": acme.phone_number_id,
            "whatsapp_business_account_id": f"waba-{acme.tenant_id}",
            "meta_app_secret": acme.app_secret,
            "webhook_verify_token": acme.verify_token,
        },
    )
    assert changed.status_code == 200, changed.text
    gevent.sleep(1.0)  # the reload is asynchronous: a pub/sub event through the cluster
    assert state.agent.send(acme.integration_id, user.wa_id, text="after").status == 200
    sent = wait_for(lambda: state.meta.sent_to(acme.phone_number_id), message="reply")
    assert sent[-1].body["text"]["body"] == "after"
    send = state.requests(kind="meta.messages")[-1]
    assert send.headers["authorization"] == f"Bearer {token}"


def test_kill_9_under_load_on_a_cluster_loses_nothing(cluster_world: World) -> None:
    world = cluster_world
    tenants = [world.add_tenant(tenant_owned_by(s, 2, f"load{s}")) for s in (0, 1)]
    conversations = [Conversation(t, world.user()) for t in tenants for _ in range(2)]
    load = Load(world, conversations, rate=30)
    load.start()
    rng = random.Random(11)
    for _ in range(3):
        gevent.sleep(rng.uniform(0.4, 1.0))
        world.shards[0].kill()  # SIGKILL: no drain, no clean stop
        world.shards[0].start()
    gevent.sleep(0.5)
    load.stop()
    wait_until(load.complete, 60)
    counts = load.tally()
    repeats = repeats_announced(world)
    print("counts:", counts.as_dict(), "repeats announced:", repeats)
    assert counts.acknowledged == counts.sent
    assert counts.lost == 0, counts
    assert counts.out_of_order == 0, counts
    assert counts.duplicates <= repeats, (counts, repeats)
    assert load.counts.redeliveries > 0  # the kills really refused some webhooks
