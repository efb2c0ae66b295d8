"""One final receipt per Genesys message, however many WhatsApp messages it went out as — end to
end through a shard process."""

from __future__ import annotations

import time

import redis

from interlink.actors.flows.agent_message import DOWNLOAD_REFUSED
from interlink.store.dead_letters import DeadLetters
from tests.e2e.world import World, wait_for

LONG = ("word " * 1000).strip() + " end"  # over WhatsApp's 4096 characters: two sends
PNG = b"\x89PNG\r\n\x1a\n" + bytes(5 * 1024 * 1024)  # just over WhatsApp's 5 MB for images


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


def test_an_image_found_too_large_while_downloading_fails_its_message_once(
    world: World, redis_client: redis.Redis
) -> None:
    """Genesys declared a wrong contentSizeBytes: the text before the image goes out, the image
    cannot, and the agent gets one Failed receipt that the text's delivery does not undo."""
    tenant = world.add_tenant("acme")
    user = world.user()
    state = world.state
    pnid = tenant.phone_number_id
    state.user.say(pnid, user, "text", body="send me the photo")
    wait_for(lambda: state.genesys.messages_from(tenant.integration_id))
    image = state.agent.attachment(
        tenant.integration_id, data=PNG, mime="image/png", filename="photo.png"
    )
    image["contentSizeBytes"] = 2048  # what Genesys said, not what it serves

    message = state.agent.send(
        tenant.integration_id, str(user.wa_id), text="caption " * 200, attachment=image
    )
    [failed] = wait_for(lambda: state.genesys.receipts_for(str(message.message_id)))
    [text] = state.meta.sent_to(pnid)
    state.user.status(text.wamid, "delivered")
    state.user.status(text.wamid, "read")
    after = state.agent.send(tenant.integration_id, str(user.wa_id), text="sorry, too big")
    wait_for(lambda: len(state.meta.sent_to(pnid)) == 2, message="the next message")
    time.sleep(0.5)  # time enough for a second receipt, had the text's delivery made one

    assert text.type == "text" and state.meta.media == {}
    assert failed["status"] == "Failed" and failed["reasons"] == [
        {"code": "InvalidMediaContentLength", "message": "image larger than WhatsApp's 5 MB limit"}
    ]
    assert state.genesys.receipts_for(str(message.message_id)) == [failed]
    assert state.meta.sent_to(pnid)[1].body["text"]["body"] == "sorry, too big"
    assert after.status == 200
    assert DeadLetters(redis_client, "acme").count() == 0  # nothing for the operator to do


def test_a_refused_download_fails_its_message_and_leaves_a_dead_letter(
    world: World, redis_client: redis.Redis
) -> None:
    tenant = world.add_tenant("acme")
    user = world.user()
    state = world.state
    pnid = tenant.phone_number_id
    state.user.say(pnid, user, "text", body="send me the photo")
    wait_for(lambda: state.genesys.messages_from(tenant.integration_id))
    image = state.agent.attachment(
        tenant.integration_id, data=PNG[:4096], mime="image/png", filename="photo.png"
    )
    state.faults.inject("genesys.download", status=403, count=None, tenant="org-acme")

    message = state.agent.send(
        tenant.integration_id, str(user.wa_id), text="caption " * 200, attachment=image
    )
    [failed] = wait_for(lambda: state.genesys.receipts_for(str(message.message_id)))
    letters = DeadLetters(redis_client, "acme")
    wait_for(lambda: letters.count() == 1, message="the dead letter")

    assert [s.type for s in state.meta.sent_to(pnid)] == ["text"]
    assert failed["status"] == "Failed"
    assert failed["reasons"] == [{"code": "GeneralError", "message": DOWNLOAD_REFUSED}]
    assert "attachment download answered 403" in letters.entries()[0]["reason"]
