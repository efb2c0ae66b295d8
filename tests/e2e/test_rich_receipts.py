"""One final receipt per Genesys message, however many WhatsApp messages it went out as — end to
end through a shard process."""

from __future__ import annotations

import time

from tests.e2e.world import World, wait_for

LONG = ("word " * 1000).strip() + " end"  # over WhatsApp's 4096 characters: two sends


def test_a_long_text_is_delivered_once_both_parts_are_and_failed_once_one_fails(
    world: World,
) -> None:
    tenant = world.add_tenant("acme")
    user = world.user()
    state = world.state
    pnid = tenant.phone_number_id
    state.user.say(pnid, user, "text", body="tell me everything")
    wait_for(lambda: state.genesys.messages_from(tenant.integration_id))

    good = state.agent.send(tenant.integration_id, str(user.wa_id), text=LONG)
    first, second = wait_for(lambda: (s := state.meta.sent_to(pnid)) and len(s) == 2 and s)
    state.user.status(first.wamid, "delivered")
    state.user.status(first.wamid, "read")
    time.sleep(0.5)  # time enough for a receipt, had one part been taken for the whole
    assert state.genesys.receipts_for(str(good.message_id)) == []
    state.user.status(second.wamid, "delivered")
    receipts = wait_for(lambda: state.genesys.receipts_for(str(good.message_id)))
    state.user.status(second.wamid, "failed", error_code=131026)  # after the final: nothing
    bad = state.agent.send(tenant.integration_id, str(user.wa_id), text=LONG)
    third, fourth = wait_for(lambda: (s := state.meta.sent_to(pnid)) and len(s) == 4 and s[2:])
    state.user.status(third.wamid, "failed", error_code=131026)
    state.user.status(fourth.wamid, "delivered")
    state.user.status(third.wamid, "failed", error_code=131026)
    failed = wait_for(lambda: state.genesys.receipts_for(str(bad.message_id)))
    time.sleep(0.5)

    assert [r["status"] for r in state.genesys.receipts_for(str(good.message_id))] == ["Delivered"]
    assert [r["status"] for r in receipts] == ["Delivered"]
    assert [r["status"] for r in state.genesys.receipts_for(str(bad.message_id))] == ["Failed"]
    assert failed[0]["reasons"][0]["code"] == "InvalidDestination"
