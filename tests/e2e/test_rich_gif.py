"""An agent's GIF, which WhatsApp cannot show as an image, reaches the user as a document —
end to end through a shard process, against a Meta simulator that refuses a GIF sent as an image."""

from __future__ import annotations

from tests.e2e.world import World, wait_for

GIF = b"GIF89a" + bytes(2048)


def test_an_agent_gif_goes_as_a_document_and_is_delivered(world: World) -> None:
    tenant = world.add_tenant("acme")
    user = world.user()
    state = world.state
    pnid = tenant.phone_number_id
    state.user.say(pnid, user, "text", body="show me")
    wait_for(lambda: state.genesys.messages_from(tenant.integration_id))
    gif = state.agent.attachment(
        tenant.integration_id, data=GIF, mime="image/gif", filename="dance.gif"
    )

    message = state.agent.send(tenant.integration_id, str(user.wa_id), attachment=gif)
    [sent] = wait_for(lambda: state.meta.sent_to(pnid))
    state.user.status(sent.wamid, "delivered")
    receipts = wait_for(lambda: state.genesys.receipts_for(str(message.message_id)))

    assert message.status == 200
    assert sent.type == "document"
    document = sent.body["document"]
    assert document["filename"] == "dance.gif"
    blob = state.meta.media[document["id"]]
    assert blob.mime_type == "image/gif" and blob.data == GIF
    assert [r["status"] for r in receipts] == ["Delivered"]
