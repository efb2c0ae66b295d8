"""The customer → Genesys side of rich messages, end to end through a shard process: the
conversation id Genesys names only when asked, and the chat events (``request_welcome``, ``edit``,
``revoke``) that are not content."""

from __future__ import annotations

import redis

from interlink.store.conversations import tenant_of_genesys_conversation
from tests.e2e.world import World, wait_for


def test_the_genesys_conversation_is_mapped_to_its_tenant(
    world: World, redis_client: redis.Redis
) -> None:
    # The Genesys simulator names the conversation only on ?prefetchConversationId=true, as the
    # real service: without the flag this map stays empty and webhooks route by integration only.
    tenant = world.add_tenant("acme")
    user = world.user(name="Ana")
    genesys = world.state.genesys
    assert world.state.user.say(tenant.phone_number_id, user, "text", body="hi").status == 200
    wait_for(lambda: genesys.messages_from(tenant.integration_id), message="inbound at Genesys")
    conversation = genesys.conversation_id(tenant.integration_id, user.wa_id)
    assert (
        wait_for(
            lambda: tenant_of_genesys_conversation(redis_client, conversation),
            message="conversation → tenant",
        )
        == tenant.tenant_id
    )
    [call] = world.state.requests(kind="genesys.message")
    assert call.query == "prefetchConversationId=true"


def test_welcome_opens_nothing_and_edits_and_deletions_reach_the_agent(world: World) -> None:
    tenant = world.add_tenant("acme")
    user = world.user(name="Ana")
    state = world.state
    build = state.user.build_message
    pnid = tenant.phone_number_id
    first = build(pnid, user, "text", body="See you at 4")
    items = [
        build(pnid, user, "request_welcome"),
        first,
        build(pnid, user, "edit", original_message_id=first["id"], body="See you at 5"),
        build(pnid, user, "revoke", original_message_id=first["id"]),
    ]
    assert state.user.send(pnid, user, items).status == 200
    arrived = wait_for(
        lambda: (m := state.genesys.messages_from(tenant.integration_id)) and len(m) >= 3 and m,
        message="three messages at Genesys",
    )
    # In order, and the welcome (first in the webhook) sent nothing at all.
    assert [m.body["text"] for m in arrived] == [
        "See you at 4",
        "[WhatsApp: The customer edited a message. New text:]\nSee you at 5",
        "[WhatsApp: The customer deleted a message.]",
    ]
    assert [m.body["channel"]["messageId"] for m in arrived] == [i["id"] for i in items[1:]]
    assert len(state.requests(kind="genesys.message")) == 3
