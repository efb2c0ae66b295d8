"""The user's tap on a bot's quick reply reaches Genesys as a structured response with the
option's payload, end to end through a shard process; other answers stay messages."""

from __future__ import annotations

from tests.e2e.test_rich_outbound import post_structured
from tests.e2e.world import World, wait_for


def test_a_button_tap_on_a_bot_quick_reply_goes_back_as_a_structured_response(
    world: World,
) -> None:
    tenant = world.add_tenant("acme")
    user = world.user(name="Ana")
    state = world.state
    pnid = tenant.phone_number_id
    state.user.say(pnid, user, "text", body="hi")
    wait_for(lambda: state.genesys.messages_from(tenant.integration_id), message="hi at Genesys")
    menu_id = post_structured(
        world,
        tenant.integration_id,
        str(user.wa_id),
        "How do you want to pay?",
        [("Card", "pay-card"), ("Bank transfer", "pay-bank")],
    )
    [menu] = wait_for(lambda: state.meta.sent_to(pnid), message="the menu at Meta")
    # Once the receipt is back the menu's wamid is surely mapped to its Genesys message.
    state.user.status(menu.wamid, "delivered")
    wait_for(lambda: state.genesys.receipts_for(menu_id), message="the menu's receipt")

    tap = state.user.say(
        pnid,
        user,
        "button_reply",
        reply_id="pay-bank",
        title="Bank transfer",
        context_id=menu.wamid,
    )
    assert tap.status == 200
    [answer] = wait_for(
        lambda: state.genesys.structured_responses_from(tenant.integration_id),
        message="the structured response",
    )
    assert answer.body["buttonResponse"] == {
        "type": "QuickReply",
        "text": "Bank transfer",
        "payload": "pay-bank",
    }
    assert answer.body["originatingMessageId"] == menu_id
    first = state.genesys.messages_from(tenant.integration_id)[0]
    assert answer.from_id == first.from_id  # the same participant as the user's messages
    assert answer.conversation_id == first.conversation_id

    # A plain text afterwards, and a tap on a menu Genesys never sent, stay messages.
    state.user.say(pnid, user, "text", body="thanks")
    state.user.say(
        pnid, user, "button_reply", reply_id="other", title="Other", context_id="wamid.unknown"
    )
    messages = wait_for(
        lambda: (m := state.genesys.messages_from(tenant.integration_id)) and len(m) >= 3 and m,
        message="two more messages at Genesys",
    )
    assert [m.body["text"] for m in messages] == ["hi", "thanks", "Other"]
    assert len(state.genesys.structured_responses_from(tenant.integration_id)) == 1
    assert len(state.requests(kind="genesys.structured_response")) == 1


def test_a_number_answering_a_numbered_menu_goes_back_as_a_structured_response(
    world: World,
) -> None:
    tenant = world.add_tenant("acme")
    user = world.user(name="Ana")
    state = world.state
    pnid = tenant.phone_number_id
    state.user.say(pnid, user, "text", body="where can I collect?")
    wait_for(lambda: state.genesys.messages_from(tenant.integration_id))
    shops = [(f"Shop {n}", f"shop-{n}") for n in range(1, 13)]  # beyond a list's 10 rows
    menu_id = post_structured(world, tenant.integration_id, str(user.wa_id), "Which shop?", shops)
    [menu] = wait_for(lambda: state.meta.sent_to(pnid), message="the numbered menu")
    assert menu.type == "text" and "12. Shop 12" in menu.body["text"]["body"]
    state.user.status(menu.wamid, "delivered")
    wait_for(lambda: state.genesys.receipts_for(menu_id), message="the menu's receipt")

    state.user.say(pnid, user, "text", body="maybe 13")
    state.user.say(pnid, user, "text", body="shop 11")
    state.user.say(pnid, user, "text", body="11")  # the menu was answered: a message now
    [answer] = wait_for(
        lambda: state.genesys.structured_responses_from(tenant.integration_id),
        message="the structured response",
    )
    assert answer.body["buttonResponse"] == {
        "type": "QuickReply",
        "text": "Shop 11",
        "payload": "shop-11",
    }
    assert answer.body["originatingMessageId"] == menu_id
    messages = wait_for(
        lambda: (m := state.genesys.messages_from(tenant.integration_id)) and len(m) >= 3 and m,
        message="the other texts as messages",
    )
    assert [m.body["text"] for m in messages] == ["where can I collect?", "maybe 13", "11"]
