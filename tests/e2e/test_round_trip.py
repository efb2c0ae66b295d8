"""The main flows, end to end: a shard process between the two simulators, real sockets only."""

from __future__ import annotations

from tests.e2e.world import World, wait_for


def test_text_both_ways_with_receipts_for_two_tenants(world: World) -> None:
    acme = world.add_tenant("acme", region="mypurecloud.ie")
    globex = world.add_tenant("globex", region="mypurecloud.de")
    genesys, meta = world.state.genesys, world.state.meta

    ana, bob = world.user(name="Ana"), world.user(name="Bob")
    assert (
        world.state.user.say(acme.phone_number_id, ana, "text", body="Hola from Ana").status == 200
    )
    assert (
        world.state.user.say(globex.phone_number_id, bob, "text", body="Hallo from Bob").status
        == 200
    )

    # Each message reaches its own tenant's integration, with that tenant's own token.
    acme_in = wait_for(lambda: genesys.messages_from(acme.integration_id), message="acme inbound")
    globex_in = wait_for(
        lambda: genesys.messages_from(globex.integration_id), message="globex inbound"
    )
    assert acme_in[0].body["text"] == "Hola from Ana"
    assert acme_in[0].body["channel"]["from"] == {
        "id": ana.wa_id,
        "idType": "Opaque",
        "nickname": "Ana",
    }
    assert globex_in[0].body["text"] == "Hallo from Bob"
    assert len(genesys.tokens_of("org-acme")) == len(genesys.tokens_of("org-globex")) == 1
    for tenant in ("acme", "globex"):
        calls = world.state.requests(kind="genesys.message", tenant=f"org-{tenant}")
        assert {r.headers["authorization"] for r in calls} == {
            f"Bearer {genesys.tokens_of(f'org-{tenant}')[0].token}"
        }

    # The agent answers; the reply leaves from the right business number with the right token.
    delivery = world.state.agent.send(
        acme.integration_id, ana.wa_id, text="Hi Ana, how can I help?"
    )
    assert delivery.status == 200
    sent = wait_for(lambda: meta.sent_to(acme.phone_number_id), message="reply at WhatsApp")
    assert sent[0].body["text"]["body"] == "Hi Ana, how can I help?"
    assert sent[0].body["to"] == "+" + ana.wa_id
    assert sent[0].body["biz_opaque_callback_data"] == delivery.message_id
    assert meta.sent_to(globex.phone_number_id) == []
    send_request = world.state.requests(kind="meta.messages")[-1]
    assert send_request.headers["authorization"] == f"Bearer {acme.access_token}"

    # WhatsApp reports delivered then read: Genesys gets exactly one Delivered receipt.
    wamid = sent[0].wamid
    world.state.user.status(wamid, "delivered")
    world.state.user.status(wamid, "read")
    receipts = wait_for(lambda: genesys.receipts_for(delivery.message_id), message="receipt")
    wait_for(lambda: len(world.state.requests(kind="genesys.receipt")) >= 1)
    assert [r["status"] for r in receipts] == ["Delivered"]
