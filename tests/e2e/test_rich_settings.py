"""The tenant settings of issue 16, end to end through a shard and its admin API: ``welcomeText``
answers a user opening the chat (still nothing at Genesys), ``typingIndicator: false`` shows no
typing and marks nothing read."""

from __future__ import annotations

import time

from tests.e2e.test_typing import post_typing
from tests.e2e.world import World, wait_for

WELCOME = "Hello! Write your question and an agent will answer."


def test_a_welcome_text_answers_a_user_opening_the_chat_within_the_window(world: World) -> None:
    tenant = world.add_tenant("acme", enforce_window=True)
    patched = world.admin("PATCH", "/api/tenants/acme", json={"settings": {"welcomeText": WELCOME}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["settings"]["welcomeText"] == WELCOME
    state = world.state
    user = world.user(name="Ana")
    assert state.user.say(tenant.phone_number_id, user, "request_welcome").status == 200

    [sent] = wait_for(lambda: state.meta.sent_to(tenant.phone_number_id), message="the welcome")
    assert sent.type == "text" and sent.body["text"]["body"] == WELCOME
    assert sent.to == user.wa_id
    time.sleep(0.5)
    assert state.genesys.messages_from(tenant.integration_id) == []
    assert state.requests(kind="genesys.message") == []
    assert len(state.meta.sent_to(tenant.phone_number_id)) == 1


def test_a_bad_welcome_text_is_refused_by_the_admin_api(world: World) -> None:
    world.add_tenant("acme")
    refused = world.admin("PATCH", "/api/tenants/acme", json={"settings": {"welcomeText": " "}})
    assert refused.status_code == 400 and "settings.welcomeText" in refused.text


def test_with_typing_indicators_off_agent_typing_shows_nothing(world: World) -> None:
    tenant = world.add_tenant("acme")
    patched = world.admin(
        "PATCH", "/api/tenants/acme", json={"settings": {"typingIndicator": False}}
    )
    assert patched.status_code == 200 and patched.json()["settings"]["typingIndicator"] is False
    state = world.state
    user = world.user()
    state.user.say(tenant.phone_number_id, user, "text", body="hi")
    wait_for(lambda: state.genesys.messages_from(tenant.integration_id))
    post_typing(world, tenant.integration_id, str(user.wa_id))
    state.agent.send(tenant.integration_id, str(user.wa_id), text="hello")
    wait_for(lambda: state.meta.sent_to(tenant.phone_number_id), message="the agent's text")
    # The typing event came first and is handled in order: had it shown, it would be there.
    assert state.meta.typing_shown(tenant.phone_number_id) == []
    calls = state.requests(kind="meta.messages")
    assert calls and all(r.body.get("status") != "read" for r in calls)
