"""Every line of a shard's JSON log that is about one tenant carries its ``tenant`` field
(the contract's Observability section), across a webhook → delivery round trip with a
provider error on the way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.e2e.world import Tenant, World, start_world, wait_for


@pytest.fixture
def logged_world(tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> Iterator[World]:
    world = start_world(tmp_path, redis_url, extra_env={"INTERLINK_ACCESS_LOG": "true"})
    try:
        yield world
    finally:
        world.close()


def _records(world: World) -> list[dict[str, Any]]:
    records = []
    for line in world.shard.log_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a traceback's continuation, a subprocess's stray output
        if isinstance(record, dict):
            records.append(record)
    return records


def _names(record: dict[str, Any], tenant: Tenant, extra: set[str]) -> bool:
    """Whether a line names one of the tenant's ids anywhere (its message or a field)."""
    text = json.dumps(record)
    ids = {
        tenant.phone_number_id,
        tenant.integration_id,
        f"org-{tenant.tenant_id}",
        tenant.client_id,
        f'"{tenant.tenant_id}"',
        *extra,
    }
    return any(i in text for i in ids)


def test_every_line_about_a_tenant_carries_it_through_a_round_trip(logged_world: World) -> None:
    world = logged_world
    acme = world.add_tenant("acme")
    state = world.state
    # A provider error on the way in: Genesys answers 429 once, the shard retries.
    state.faults.inject("genesys.message", status=429, retry_after=1, count=1, tenant="org-acme")
    # And on the way out: Meta's pair-rate error once (the sender's pool greenlets log it).
    state.faults.inject("meta.messages", meta_error=131056, count=1)
    ana = world.user(name="Ana")
    hello = state.user.say(acme.phone_number_id, ana, "text", body="Hola")
    assert hello.status == 200
    wait_for(lambda: state.genesys.messages_from(acme.integration_id), timeout=20)

    delivery = state.agent.send(acme.integration_id, ana.wa_id, text="Hi Ana")
    assert delivery.status == 200
    sent = wait_for(lambda: state.meta.sent_to(acme.phone_number_id), message="reply at Meta")
    state.user.status(sent[0].wamid, "delivered")
    wait_for(lambda: state.genesys.receipts_for(delivery.message_id), message="receipt")

    records = _records(world)
    warned = [
        r
        for r in records
        if r.get("logger", "").startswith("interlink.providers") and r["level"] == "WARNING"
    ]
    assert warned, "the injected 429 left no provider warning"
    meta_warned = [r for r in warned if "meta" in r["logger"]]
    assert meta_warned, "the Meta error left no provider warning"
    # It came while the shard handled the agent's message: its lines name that message.
    assert all(r.get("genesysMessageId") == delivery.message_id for r in meta_warned), meta_warned
    assert all(r.get("tenant") == "acme" for r in warned), warned
    # The 429 came while the shard handled Ana's message: its line names that message.
    (said,) = [r for r in warned if "429" in r["msg"]]
    assert said.get("wamid") == hello.wamids[0], said

    about = [r for r in records if _names(r, acme, {sent[0].wamid, delivery.message_id})]
    untagged = [r for r in about if r.get("tenant") != "acme"]
    assert about and not untagged, untagged

    # The access log is on here: each webhook's line names its tenant, resolved from the body.
    webhooks = [
        r
        for r in records
        if r.get("logger") == "interlink.access"
        and str(r.get("route", "")).startswith("/webhooks/")
    ]
    assert {r["route"] for r in webhooks} >= {"/webhooks/whatsapp", "/webhooks/genesys"}
    assert all(r.get("tenant") == "acme" for r in webhooks if r["status"] == 200), webhooks
