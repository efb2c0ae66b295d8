"""Upgrading a single-shard deployment from the v1 key layout to the cluster-safe v2 one
(interlink.store.layout): what was accepted before the upgrade is delivered once, redeliveries are
still recognised, tenants and their API keys still work, and no v1 key is left behind."""

from __future__ import annotations

import gevent
import redis

from interlink.store import keys
from tests.e2e.world import World, wait_for

V1 = keys.NS


def v1_name(name: str) -> str | None:
    """The name a v1 shard gave the key that v2 calls ``name`` (None: the name did not change)."""
    if name.startswith(keys.REGISTRY):
        rest = name[len(keys.REGISTRY) :]
        return None if rest == "layout" else V1 + rest
    backlog = keys.NS2 + "backlog:{0}:"
    if name.startswith(backlog):
        return V1 + "backlog:" + name[len(backlog) :]
    seen = keys.NS2 + "seen:{0}:"
    if name.startswith(seen):
        return V1 + "seen:" + name[len(seen) :]
    for kind, v1_kind in (("msg", "msg:"), ("receipt", "seen:")):
        prefix = f"{keys.NS2}{kind}:{{"
        if name.startswith(prefix):
            tenant_id, _, ident = name[len(prefix) :].partition("}:")
            middle = "receipt:" if kind == "receipt" else ""
            return f"{V1}{v1_kind}{tenant_id}:{middle}{ident}"
    assert not name.startswith(keys.NS2), f"a v2 key this test does not know: {name}"
    return None


def write_v1_layout(client: redis.Redis) -> int:
    """Rename every v2 key back to its v1 name: the store as the previous version left it."""
    renamed = 0
    for raw in list(client.scan_iter(match="*")):
        name = raw.decode()
        old = v1_name(name)
        if old is not None:
            client.rename(name, old)
            renamed += 1
    client.delete(keys.layout())
    return renamed


def test_a_v1_layout_is_moved_at_start_and_nothing_accepted_is_lost(
    world: World, redis_client: redis.Redis
) -> None:
    tenant = world.add_tenant("acme")
    api_key = world.admin("POST", "/api/tenants/acme/keys").json()["key"]
    user = world.user()
    state = world.state
    # Genesys refuses for now: the accepted messages stay in the inbox, pending.
    rule = state.faults.inject("genesys.message", status=500, count=None, tenant="org-acme")
    deliveries = [
        state.user.say(tenant.phone_number_id, user, "text", body=f"before upgrade {n}")
        for n in range(3)
    ]
    assert all(d.status == 200 for d in deliveries)
    wait_for(lambda: state.requests(kind="genesys.message"), message="a refused attempt")
    world.shard.kill()

    assert write_v1_layout(redis_client) >= 8  # registry, backlog, three accepted markers
    assert redis_client.exists(V1 + "tenant:acme", V1 + "backlog:acme") == 2
    assert redis_client.xlen(keys.inbox(0)) == 3

    state.faults.remove(rule.id)
    world.shard.start()
    arrived = wait_for(
        lambda: len(state.genesys.messages_from(tenant.integration_id)) >= 3 or None,
        timeout=30,
        message="the messages accepted before the upgrade",
    )
    assert arrived
    assert [m.body["text"] for m in state.genesys.messages_from(tenant.integration_id)] == [
        f"before upgrade {n}" for n in range(3)
    ]
    # Meta redelivering one of them: recognised through its moved marker, not delivered again.
    wait_for(lambda: redis_client.xlen(keys.inbox(0)) == 0, message="the inbox emptied")
    assert state.user.redeliver(deliveries[0]).status == 200
    assert redis_client.xlen(keys.inbox(0)) == 0
    gevent.sleep(0.5)
    assert len(state.genesys.messages_from(tenant.integration_id)) == 3
    assert not redis_client.exists(keys.backlog(0, "acme"))
    assert list(redis_client.scan_iter(match=V1 + "tenant*")) == []
    assert list(redis_client.scan_iter(match=V1 + "backlog:*")) == []
    assert redis_client.get(keys.layout()) == b"2"
    # The tenant and its API key were moved with it.
    assert world.admin("GET", "/api/tenants/acme").status_code == 200
    own = world.admin("GET", "/api/tenants/acme", headers={"Authorization": f"Bearer {api_key}"})
    assert own.status_code == 200, own.text
