"""A Genesys bot's quick replies reach the WhatsApp user as an interactive message, end to end."""

from __future__ import annotations

from typing import Any

from tests.e2e.world import World, wait_for


def post_structured(
    world: World,
    integration_id: str,
    to_id: str,
    text: str | None,
    options: list[tuple[str, str]],
    content: list[dict[str, Any]] | None = None,
) -> str:
    """A bot's Structured quick-reply message, signed and posted as Genesys does; its id."""
    state = world.state
    # Built by the simulator so its receipts are recorded, then made Structured.
    message = state.genesys.outbound_message(
        integration_id,
        {"id": to_id, "idType": "Opaque"},
        text=text or "-",
        originating_entity="Bot",
    )
    body: dict[str, Any] = message.body
    if text is None:
        del body["text"]
    body["type"] = "Structured"
    body["content"] = [
        {"contentType": "QuickReply", "quickReply": {"text": t, "payload": p, "action": "Message"}}
        for t, p in options
    ] + (content or [])
    delivery = state.agent.deliver(integration_id, body, timeout=10)
    assert delivery.status == 200, delivery.response_body
    return str(message.id)


def test_a_bot_quick_reply_reaches_whatsapp_as_reply_buttons(world: World) -> None:
    tenant = world.add_tenant("acme")
    user = world.user()
    state = world.state
    state.user.say(tenant.phone_number_id, user, "text", body="I want to pay")
    wait_for(lambda: state.genesys.messages_from(tenant.integration_id))
    message_id = post_structured(
        world,
        tenant.integration_id,
        str(user.wa_id),
        "How do you want to pay?",
        [("Card", "pay-card"), ("Bank transfer please, thanks", "pay-bank"), ("Cash", "pay-cash")],
    )
    [sent] = wait_for(lambda: state.meta.sent_to(tenant.phone_number_id))
    assert sent.type == "interactive"
    interactive = sent.body["interactive"]
    assert interactive["type"] == "button"
    assert interactive["body"]["text"] == "How do you want to pay?"
    replies = [b["reply"] for b in interactive["action"]["buttons"]]
    assert [r["id"] for r in replies] == ["pay-card", "pay-bank", "pay-cash"]
    assert replies[0]["title"] == "Card" and len(replies[1]["title"]) <= 20
    assert sent.biz_opaque_callback_data == message_id
    state.user.status(sent.wamid, "delivered")
    receipts = wait_for(lambda: state.genesys.receipts_for(message_id))
    assert [r["status"] for r in receipts] == ["Delivered"]


def test_a_structured_message_with_nothing_to_show_gets_a_failed_receipt(world: World) -> None:
    tenant = world.add_tenant("acme")
    user = world.user()
    state = world.state
    state.user.say(tenant.phone_number_id, user, "text", body="hi")
    wait_for(lambda: state.genesys.messages_from(tenant.integration_id))
    message_id = post_structured(
        world,
        tenant.integration_id,
        str(user.wa_id),
        None,
        [],
        [{"contentType": "Card", "card": {}}],
    )
    receipts = wait_for(lambda: state.genesys.receipts_for(message_id))
    assert [r["status"] for r in receipts] == ["Failed"]
    assert receipts[0]["reasons"][0]["code"] == "UnsupportedMessage"
    assert state.meta.sent_to(tenant.phone_number_id) == []
