"""A Genesys agent's typing event shows WhatsApp's typing indicator to the user, end to end."""

from __future__ import annotations

import time
from typing import Any

from tests.e2e.world import World, wait_for

TYPING = [{"eventType": "Typing", "typing": {"type": "On", "duration": 5000}}]


def post_typing(world: World, integration_id: str, to_id: str) -> None:
    """An agent's typing event, signed and posted as Genesys does."""
    state = world.state
    message = state.genesys.outbound_message(
        integration_id, {"id": to_id, "idType": "Opaque"}, text="-"
    )
    body: dict[str, Any] = message.body
    body.pop("text", None)
    body["type"] = "Event"
    body["events"] = TYPING
    delivery = state.agent.deliver(integration_id, body, timeout=10)
    assert delivery.status == 200, delivery.response_body
    assert delivery.response_body and "ignored" not in str(delivery.response_body)


def test_agent_typing_shows_the_typing_indicator_once_per_five_seconds(world: World) -> None:
    tenant = world.add_tenant("acme")
    user = world.user()
    state = world.state
    state.user.say(tenant.phone_number_id, user, "text", body="hi")
    wait_for(lambda: state.genesys.messages_from(tenant.integration_id))
    [wamid] = [w for w, n in state.meta.received_wamids.items() if n == tenant.phone_number_id]
    post_typing(world, tenant.integration_id, str(user.wa_id))
    assert wait_for(lambda: state.meta.typing_shown(tenant.phone_number_id)) == [wamid]
    post_typing(world, tenant.integration_id, str(user.wa_id))
    time.sleep(1.0)  # time enough for a second indicator, had it not been held back
    assert state.meta.typing_shown(tenant.phone_number_id) == [wamid]
    assert state.meta.sent_to(tenant.phone_number_id) == []


def test_typing_with_no_message_of_the_user_known_shows_nothing(world: World) -> None:
    tenant = world.add_tenant("acme")
    user = world.user()
    state = world.state
    state.user.say(tenant.phone_number_id, user, "text", body="hi")
    wait_for(lambda: state.genesys.messages_from(tenant.integration_id))
    post_typing(world, tenant.integration_id, "someone-who-never-wrote")
    time.sleep(1.0)
    assert state.meta.typing_shown(tenant.phone_number_id) == []
