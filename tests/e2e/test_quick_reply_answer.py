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


def test_a_card_button_and_a_date_picker_time_go_back_with_their_response_types(
    world: World,
) -> None:
    tenant = world.add_tenant("acme")
    user = world.user(name="Ana")
    state = world.state
    pnid = tenant.phone_number_id
    state.user.say(pnid, user, "text", body="show me")
    wait_for(lambda: state.genesys.messages_from(tenant.integration_id))
    card = {
        "title": "Blue shirt",
        "description": "Cotton, size M",
        "actions": [
            {"type": "Postback", "text": "Buy", "payload": "buy-1"},
            {"type": "Link", "text": "Details", "url": "https://shop.example/shirt"},
        ],
    }
    card_id = post_structured(
        world, tenant.integration_id, str(user.wa_id), None, [],
        [{"contentType": "Card", "card": card}],
    )  # fmt: skip
    [card_menu] = wait_for(lambda: state.meta.sent_to(pnid), message="the card at Meta")
    assert card_menu.body["interactive"]["type"] == "button"
    times = [{"dateTime": "2026-05-30T12:00:00.000Z", "duration": 1800}]
    picker = {"title": "When?", "availableTimes": times}
    picker_id = post_structured(
        world, tenant.integration_id, str(user.wa_id), None, [],
        [{"contentType": "DatePicker", "datePicker": picker}],
    )  # fmt: skip
    picker_menu = wait_for(lambda: (s := state.meta.sent_to(pnid)) and len(s) == 2 and s[1])
    assert picker_menu.body["interactive"]["type"] == "list"
    for sent, genesys_id in ((card_menu, card_id), (picker_menu, picker_id)):
        state.user.status(sent.wamid, "delivered")
        wait_for(lambda g=genesys_id: state.genesys.receipts_for(g), message="receipt")

    state.user.say(pnid, user, "button_reply", reply_id="buy-1", title="Buy",
                   context_id=card_menu.wamid)  # fmt: skip
    state.user.say(pnid, user, "list_reply", reply_id="2026-05-30T12:00:00.000Z",
                   title="30 May 2026 12:00 UTC", context_id=picker_menu.wamid)  # fmt: skip
    answers = wait_for(
        lambda: (
            (r := state.genesys.structured_responses_from(tenant.integration_id))
            and len(r) == 2
            and r
        ),
        message="both structured responses",
    )
    assert [a.body["buttonResponse"] for a in answers] == [
        {"type": "Button", "text": "Buy", "payload": "buy-1"},
        {
            "type": "DatePicker",
            "text": "2026-05-30T12:00:00.000Z",
            "payload": "2026-05-30T12:00:00.000Z",
        },
    ]
    assert [a.body["originatingMessageId"] for a in answers] == [card_id, picker_id]


def test_outside_the_window_a_quick_reply_goes_as_the_template_and_a_number_answers_it(
    world: World,
) -> None:
    tenant = world.add_tenant("acme", enforce_window=True)
    template = {"name": "agent_reply", "language": "en_US"}
    patched = world.admin(
        "PATCH", "/api/tenants/acme", json={"settings": {"fallbackTemplate": template}}
    )
    assert patched.status_code == 200, patched.text
    state = world.state
    pnid = tenant.phone_number_id
    user = world.user(name="Ana")  # never wrote: only a template reaches them
    sizes = [("Small", "size-s"), ("Large", "size-l")]
    menu_id = post_structured(world, tenant.integration_id, str(user.wa_id), "Which size?", sizes)
    [sent] = wait_for(lambda: state.meta.sent_to(pnid), message="the template at Meta")
    assert sent.type == "template" and sent.body["template"]["components"] == [
        {"type": "body", "parameters": [{"type": "text", "text": "Which size? 1. Small 2. Large"}]}
    ]
    state.user.status(sent.wamid, "delivered")
    wait_for(lambda: state.genesys.receipts_for(menu_id), message="the template's receipt")

    state.user.say(pnid, user, "text", body="2")
    [answer] = wait_for(
        lambda: state.genesys.structured_responses_from(tenant.integration_id),
        message="the structured response",
    )
    assert answer.body["buttonResponse"] == {
        "type": "QuickReply",
        "text": "Large",
        "payload": "size-l",
    }
    assert answer.body["originatingMessageId"] == menu_id
