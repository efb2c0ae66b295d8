"""Each flow of the Genesys and WhatsApp sides, end to end through a shard process."""

from __future__ import annotations

import time

import gevent
import requests

from interlink.sim.driver import WhatsAppUser
from tests.e2e.world import World, start_world, wait_for

MESSAGE_KINDS = [
    "text", "image", "video", "audio", "voice", "document", "sticker", "location", "contacts",
    "button_reply", "list_reply", "button", "reaction", "unsupported", "system", "order",
]  # fmt: skip


def test_every_message_type_reaches_genesys_as_something_readable(world: World) -> None:
    tenant = world.add_tenant("acme")
    user = world.user()
    state = world.state
    items = []
    for kind in MESSAGE_KINDS:
        options: dict[str, str] = {"body": "hello"} if kind == "text" else {}
        if kind == "reaction":
            options = {"message_id": items[0]["id"], "emoji": "👍"}
        items.append(state.user.build_message(tenant.phone_number_id, user, kind, **options))
    assert state.user.send(tenant.phone_number_id, user, items).status == 200
    arrived = wait_for(
        lambda: (
            (m := state.genesys.messages_from(tenant.integration_id))
            and len(m) >= len(MESSAGE_KINDS)
            and m
        )
    )
    assert len(arrived) == len(MESSAGE_KINDS)
    by_kind = dict(zip(MESSAGE_KINDS, (m.body for m in arrived), strict=True))  # in order
    media_types = {
        kind: by_kind[kind]["content"][0]["attachment"]["mediaType"]
        for kind in ("image", "video", "audio", "document", "sticker")
    }
    assert media_types == {
        "image": "Image",
        "video": "Video",
        "audio": "Audio",
        "document": "File",
        "sticker": "Image",
    }
    assert by_kind["voice"]["content"][0]["attachment"]["mediaType"] == "Audio"
    for kind in (
        "location",
        "contacts",
        "button_reply",
        "list_reply",
        "button",
        "reaction",
        "unsupported",
        "system",
        "order",
        "text",
    ):
        assert by_kind[kind].get("text"), kind
    # The participant is the same for every message of the user, and never empty.
    assert {m.body["channel"]["from"]["id"] for m in arrived} == {user.wa_id}


def test_a_media_link_streams_the_file_and_refuses_a_forgery(world: World) -> None:
    tenant = world.add_tenant("acme")
    user = world.user()
    state = world.state
    picture = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
    state.user.say(
        tenant.phone_number_id,
        user,
        "image",
        data=picture,
        mime_type="image/png",
        caption="my screen",
    )
    message = wait_for(lambda: state.genesys.messages_from(tenant.integration_id))[0].body
    attachment = message["content"][0]["attachment"]
    assert attachment["url"].startswith(world.shard.url + "/media/")
    assert message["text"] == "my screen"
    fetched = requests.get(attachment["url"], timeout=10)
    assert fetched.status_code == 200
    assert fetched.content == picture
    assert fetched.headers["Content-Type"] == "image/png"
    # The fetch went to Meta with this tenant's token.
    lookups = state.requests(kind="meta.media.get")
    assert lookups and all(
        r.headers["authorization"] == f"Bearer {tenant.access_token}" for r in lookups
    )
    token = attachment["url"].rsplit("/", 1)[1]
    forged = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    assert requests.get(world.shard.url + "/media/" + forged, timeout=10).status_code in (403, 404)


def test_an_agent_attachment_arrives_at_whatsapp_as_an_upload(world: World) -> None:
    tenant = world.add_tenant("acme")
    user = world.user()
    state = world.state
    state.user.say(tenant.phone_number_id, user, "text", body="send me the invoice")
    wait_for(lambda: state.genesys.messages_from(tenant.integration_id))
    pdf = b"%PDF-1.4\n" + b"0" * 2000
    attachment = state.agent.attachment(
        tenant.integration_id,
        data=pdf,
        mime="application/pdf",
        filename="invoice.pdf",
        media_type="File",
    )
    delivery = state.agent.send(
        tenant.integration_id, str(user.wa_id), text="Here it is", attachment=attachment
    )
    assert delivery.status == 200
    sent = wait_for(lambda: state.meta.sent_to(tenant.phone_number_id))
    document = sent[-1].body
    assert document["type"] == "document"
    assert document["document"]["filename"] == "invoice.pdf"
    assert document["document"]["caption"] == "Here it is"
    uploaded = state.meta.media[document["document"]["id"]]
    assert uploaded.data == pdf


def test_failed_statuses_become_failed_receipts_with_the_reason(world: World) -> None:
    tenant = world.add_tenant("acme")
    user = world.user()
    state = world.state
    state.user.say(tenant.phone_number_id, user, "text", body="hi")
    wait_for(lambda: state.genesys.messages_from(tenant.integration_id))
    delivery = state.agent.send(tenant.integration_id, str(user.wa_id), text="are you there?")
    sent = wait_for(lambda: state.meta.sent_to(tenant.phone_number_id))
    state.user.status(sent[0].wamid, "failed", error_code=131026)
    state.user.status(sent[0].wamid, "delivered")  # late and out of order: must change nothing
    receipts = wait_for(lambda: state.genesys.receipts_for(delivery.message_id))
    gevent.sleep(0.5)
    receipts = state.genesys.receipts_for(delivery.message_id)
    assert [r["status"] for r in receipts] == ["Failed"]
    assert receipts[0]["reasons"][0]["code"] == "InvalidDestination"
    assert "131026" in receipts[0]["reasons"][0]["message"]


def test_outside_the_24_hour_window_the_agent_gets_message_expired(world: World) -> None:
    tenant = world.add_tenant("acme")
    state = world.state
    stranger = world.user()  # never wrote to this business
    delivery = state.agent.send(tenant.integration_id, str(stranger.wa_id), text="hello?")
    assert delivery.status == 200  # never an error status to Genesys
    receipts = wait_for(lambda: state.genesys.receipts_for(delivery.message_id))
    assert receipts[0]["status"] == "Failed"
    assert receipts[0]["reasons"][0]["code"] == "MessageExpired"
    assert state.meta.sent_to(tenant.phone_number_id) == []


def test_outside_the_window_a_tenant_template_carries_the_agents_text(world: World) -> None:
    tenant = world.add_tenant("acme")
    template = {"name": "agent_reply", "language": "en_US"}
    patched = world.admin(
        "PATCH", "/api/tenants/acme", json={"settings": {"fallbackTemplate": template}}
    )
    assert patched.status_code == 200 and patched.json()["settings"]["fallbackTemplate"] == template
    state = world.state
    stranger = world.user()  # never wrote: free text would be refused
    delivery = state.agent.send(
        tenant.integration_id, str(stranger.wa_id), text="Your\norder  shipped"
    )
    [sent] = wait_for(lambda: state.meta.sent_to(tenant.phone_number_id))
    assert sent.type == "template"
    assert sent.body["template"] == {
        "name": "agent_reply",
        "language": {"code": "en_US"},
        "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Your order shipped"}]}
        ],
    }
    assert sent.body["biz_opaque_callback_data"] == delivery.message_id
    state.user.status(sent.wamid, "delivered")
    receipts = wait_for(lambda: state.genesys.receipts_for(delivery.message_id))
    assert [r["status"] for r in receipts] == ["Delivered"]


def test_a_bsuid_only_user_keeps_one_participant(world: World) -> None:
    tenant = world.add_tenant("acme")
    state = world.state
    hidden = WhatsAppUser(wa_id=None, user_id="US.13491208655302741918", name="Hidden")
    for n in range(3):
        state.user.say(tenant.phone_number_id, hidden, "text", body=f"m{n}")
    arrived = wait_for(
        lambda: (m := state.genesys.messages_from(tenant.integration_id)) and len(m) == 3 and m
    )
    assert {m.body["channel"]["from"]["id"] for m in arrived} == {"US.13491208655302741918"}


def test_an_expired_genesys_token_is_refreshed_once_and_the_message_delivered(world: World) -> None:
    tenant = world.add_tenant("acme")
    user = world.user()
    state = world.state
    state.user.say(tenant.phone_number_id, user, "text", body="first")
    wait_for(lambda: state.genesys.messages_from(tenant.integration_id))
    state.genesys.expire_tokens(org_id="org-acme")
    time.sleep(1.1)  # past the shard's one-second memory of the token
    state.user.say(tenant.phone_number_id, user, "text", body="second")
    arrived = wait_for(
        lambda: (m := state.genesys.messages_from(tenant.integration_id)) and len(m) == 2 and m
    )
    assert [m.body["text"] for m in arrived] == ["first", "second"]
    assert len(state.genesys.tokens_of("org-acme")) == 2


def test_retry_after_from_genesys_is_honoured(world: World) -> None:
    tenant = world.add_tenant("acme")
    user = world.user()
    state = world.state
    state.faults.inject("genesys.message", status=429, retry_after=1, count=1, tenant="org-acme")
    started = time.monotonic()
    state.user.say(tenant.phone_number_id, user, "text", body="patience")
    wait_for(lambda: state.genesys.messages_from(tenant.integration_id))
    assert time.monotonic() - started >= 1.0
    attempts = state.requests(kind="genesys.message", tenant="org-acme")
    assert [r.status for r in attempts] == [429, 200]


def test_one_token_for_a_thousand_messages_through_two_shards(
    tmp_path, redis_url: str, redis_client
) -> None:  # type: ignore[no-untyped-def]
    world = start_world(tmp_path, redis_url, shards=2)
    try:
        tenant = world.add_tenant("acme")
        state = world.state
        users = [world.user() for _ in range(50)]
        jobs = []
        for n in range(1000):
            shard = world.shards[n % 2]
            jobs.append(
                gevent.spawn(
                    state.user.say,
                    tenant.phone_number_id,
                    users[n % 50],
                    "text",
                    body=f"m{n}",
                    webhook_url=shard.url + "/webhooks/whatsapp",
                )
            )
            if len(jobs) % 100 == 0:
                gevent.joinall(jobs[-100:])
        gevent.joinall(jobs)
        assert all(job.value.status == 200 for job in jobs)
        # 270/min per tenant token: 1,000 messages would take minutes; the token count is what matters.
        wait_for(lambda: len(state.genesys.messages_from(tenant.integration_id)) >= 20, timeout=30)
        assert len(state.genesys.tokens_of("org-acme")) == 1
        assert len(state.requests(kind="genesys.token")) == 1
    finally:
        world.close()


def test_a_pair_rate_refusal_backs_off_that_recipient_only(world: World) -> None:
    tenant = world.add_tenant("acme")
    ana, bob = world.user(name="Ana"), world.user(name="Bob")
    state = world.state
    for user in (ana, bob):
        state.user.say(tenant.phone_number_id, user, "text", body="hi")
    wait_for(lambda: len(state.genesys.messages_from(tenant.integration_id)) == 2)
    # Meta refuses the next send with 131056 (too many messages to this user): 4^0 s for Ana.
    state.faults.inject("meta.messages", meta_error=131056, count=1)
    started = time.monotonic()
    state.agent.send(tenant.integration_id, str(ana.wa_id), text="for Ana")
    gevent.sleep(0.05)
    state.agent.send(tenant.integration_id, str(bob.wa_id), text="for Bob")
    to_bob = wait_for(lambda: state.meta.sent_to(tenant.phone_number_id, bob.wa_id))
    bob_after = time.monotonic() - started
    wait_for(lambda: state.meta.sent_to(tenant.phone_number_id, ana.wa_id))
    ana_after = time.monotonic() - started
    assert to_bob[0].body["text"]["body"] == "for Bob"
    assert bob_after < 0.9  # Bob is not held up by Ana's back-off
    assert ana_after >= 1.0  # Ana waited Meta's 4^0 seconds, then got her message once
    assert [
        s.body["text"]["body"] for s in state.meta.sent_to(tenant.phone_number_id, ana.wa_id)
    ] == ["for Ana"]
