"""A user who changes number or business-scoped id stays the same Genesys participant, in the same
conversation, and agent replies follow them to the new address — end to end through a shard."""

from __future__ import annotations

from interlink.sim.whatsapp_payloads import WhatsAppUser
from tests.e2e.world import World, wait_for


def test_after_a_number_change_the_thread_continues_and_replies_go_to_the_new_number(
    world: World,
) -> None:
    tenant = world.add_tenant("acme")
    state = world.state
    pnid, integration = tenant.phone_number_id, tenant.integration_id
    user = world.user(name="Ana")
    state.user.say(pnid, user, "text", body="hi")
    [first] = wait_for(lambda: state.genesys.messages_from(integration), message="hi")

    delivery, moved = state.user.change_number(pnid, user, "34699000111")
    assert delivery.status == 200
    state.user.say(pnid, moved, "text", body="this is my new phone")
    messages = wait_for(
        lambda: (m := state.genesys.messages_from(integration)) and len(m) >= 3 and m,
        message="the notice and the message from the new number",
    )
    assert {m.from_id for m in messages} == {first.from_id}
    assert {m.conversation_id for m in messages} == {first.conversation_id}
    assert "+34699000111" in messages[1].body["text"]
    assert messages[2].body["text"] == "this is my new phone"

    reply = state.agent.send(integration, first.from_id, text="noted")
    assert reply.status == 200
    [sent] = wait_for(lambda: state.meta.sent_to(pnid), message="the reply at Meta")
    assert sent.to == "34699000111"
    state.user.status(sent.wamid, "delivered")
    receipts = wait_for(lambda: state.genesys.receipts_for(str(reply.message_id)))
    assert [r["status"] for r in receipts] == ["Delivered"]


def test_after_a_business_scoped_id_change_replies_go_to_the_new_id(world: World) -> None:
    tenant = world.add_tenant("acme")
    state = world.state
    pnid, integration = tenant.phone_number_id, tenant.integration_id
    user = WhatsAppUser(user_id="US.13491208655302741918", name="ana_l")  # a username, no phone
    state.user.say(pnid, user, "text", body="hi")
    [first] = wait_for(lambda: state.genesys.messages_from(integration), message="hi")
    assert first.from_id == "US.13491208655302741918"

    _, moved = state.user.change_user_id(pnid, user, "US.77001122334455667788")
    state.user.say(pnid, moved, "text", body="still me")
    messages = wait_for(
        lambda: (m := state.genesys.messages_from(integration)) and len(m) >= 3 and m,
        message="the notice and the next message",
    )
    assert {m.from_id for m in messages} == {first.from_id}
    assert {m.conversation_id for m in messages} == {first.conversation_id}

    reply = state.agent.send(integration, first.from_id, text="hello again")
    assert reply.status == 200
    [sent] = wait_for(lambda: state.meta.sent_to(pnid), message="the reply at Meta")
    assert sent.to == "US.77001122334455667788"
    assert sent.body.get("recipient") == "US.77001122334455667788"
