"""Poison messages (issue 13, finding 6): an inbox entry that cannot be handled is dead-lettered
with its reason and acknowledged, the tenant's backlog is released, and the conversation goes on.

Shard-level: a real shard process, the Meta and Genesys simulators, signed webhooks through real
HTTP, and the shard's own Redis looked at directly (inbox stream, backlog counter, dead letters).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import redis
import requests

from interlink.inbox import Entry, Inbox
from interlink.inbox.reader import GROUP
from interlink.security.signatures import meta_signature
from interlink.sim.driver import WhatsAppUser
from interlink.store import keys
from interlink.store.dead_letters import DeadLetters
from tests.e2e.world import Tenant, World, wait_for

HUGE = "9" * 5000  # past Python's 4,300-digit limit of int()


def post_meta(world: World, tenant: Tenant, body: dict[str, Any]) -> requests.Response:
    raw = json.dumps(body).encode()
    return requests.post(
        world.shard.url + "/webhooks/whatsapp",
        data=raw,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": meta_signature(tenant.app_secret, raw),
        },
        timeout=10,
    )


def envelope(tenant: Tenant, **value: Any) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": f"waba-{tenant.tenant_id}",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550000000",
                                "phone_number_id": tenant.phone_number_id,
                            },
                            **value,
                        },
                    }
                ],
            }
        ],
    }


def poison_message(world: World, tenant: Tenant, user: WhatsAppUser) -> dict[str, Any]:
    item = world.state.user.build_message(tenant.phone_number_id, user, "text", body="poison")
    item["timestamp"] = HUGE
    contact = {"profile": {"name": user.name}, "wa_id": user.wa_id}
    return envelope(tenant, contacts=[contact], messages=[item])


def poison_status(tenant: Tenant, user: WhatsAppUser, **changes: Any) -> dict[str, Any]:
    status = {
        "id": "wamid." + secrets.token_hex(16),
        "status": "delivered",
        "timestamp": "1751142888",
        "recipient_id": user.wa_id,
        "biz_opaque_callback_data": secrets.token_hex(16),
        **changes,
    }
    return envelope(tenant, statuses=[status])


def settled(redis_client: redis.Redis, tenant: Tenant) -> bool:
    """Every inbox entry acknowledged and deleted, and the tenant's backlog counter released."""
    stream = keys.inbox(0)
    pending = redis_client.xpending(stream, GROUP)["pending"] if redis_client.exists(stream) else 0
    return (
        pending == 0
        and redis_client.xlen(stream) == 0
        and not int(redis_client.get(keys.backlog(0, tenant.tenant_id)) or 0)
    )


def delivered_texts(world: World, tenant: Tenant) -> list[str]:
    return [m.body.get("text") for m in world.state.genesys.messages_from(tenant.integration_id)]


def test_signed_poison_items_are_dead_lettered_and_their_conversation_goes_on(
    world: World, redis_client: redis.Redis
) -> None:
    tenant = world.add_tenant("acme")
    letters = DeadLetters(redis_client, "acme")
    cases = [
        ("message.timestamp", lambda user: poison_message(world, tenant, user)),
        ("status.timestamp", lambda user: poison_status(tenant, user, timestamp=HUGE)),
        (
            "status.errors[0].code",
            lambda user: poison_status(
                tenant, user, status="failed", errors=[{"code": HUGE, "title": "x"}]
            ),
        ),
    ]
    for number, (field, poison) in enumerate(cases, start=1):
        user = world.user()
        accepted = post_meta(world, tenant, poison(user))
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["accepted"] == 1
        follow_up = f"after poison {number}"
        world.state.user.say(tenant.phone_number_id, user, "text", body=follow_up)
        wait_for(lambda t=follow_up: t in delivered_texts(world, tenant), message=follow_up)
        wait_for(lambda n=number: letters.count() == n, message=f"dead letter {number}")
        reason = letters.entries()[-1]["reason"]
        assert field in reason and "out of range" in reason, reason
        assert HUGE[:50] not in reason
        wait_for(lambda: settled(redis_client, tenant), message="inbox settled")
    assert delivered_texts(world, tenant) == [f"after poison {n}" for n in (1, 2, 3)]


def test_an_entry_that_makes_the_actor_raise_is_dead_lettered_and_acknowledged(
    world: World, redis_client: redis.Redis
) -> None:
    """An entry no webhook would write (say, from an older version): the conversation's code
    raises an unexpected KeyError on it. It is dead-lettered with the exception's type, and the
    user's next message is delivered."""
    tenant = world.add_tenant("acme")
    user = world.user()
    inbox = Inbox(redis_client, 1)
    try:
        inbox.accept([Entry("acme", "wa.message", {"junk": True}, user.wa_id, "poison-1")])
    finally:
        inbox.close()
    world.state.user.say(tenant.phone_number_id, user, "text", body="still here")
    wait_for(lambda: "still here" in delivered_texts(world, tenant), message="next message")
    letters = DeadLetters(redis_client, "acme")
    wait_for(lambda: letters.count() == 1, message="dead letter")
    [letter] = letters.entries()
    assert letter["reason"].startswith("unexpected KeyError"), letter
    assert letter["conversation"] == user.wa_id
    wait_for(lambda: settled(redis_client, tenant), message="inbox settled")
