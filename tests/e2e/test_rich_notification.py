"""A Genesys Notification naming a WhatsApp template reaches a user who never wrote (a proactive
message) as a Meta template send; one Meta refuses becomes a Failed receipt — end to end."""

from __future__ import annotations

from typing import Any

from interlink.sim.meta import MetaTemplate
from tests.e2e.world import World, wait_for


def post_notification(
    world: World, integration_id: str, to_id: str, template: dict[str, Any]
) -> str:
    """A Notification as Genesys sends it (go-gcloudcx's openmessaging-outbound-notification),
    signed and posted; its id."""
    state = world.state
    message = state.genesys.outbound_message(
        integration_id, {"id": to_id, "idType": "Opaque"}, text="rendered by Genesys"
    )
    body: dict[str, Any] = message.body
    body["type"] = "Structured"
    body["content"] = [{"contentType": "Notification", "template": template}]
    delivery = state.agent.deliver(integration_id, body, timeout=10)
    assert delivery.status == 200, delivery.response_body
    return str(message.id)


def test_a_template_notification_reaches_a_user_who_never_wrote(world: World) -> None:
    tenant = world.add_tenant("acme", enforce_window=True)
    state = world.state
    pnid = tenant.phone_number_id
    waba = state.meta.numbers[pnid].waba_id
    state.meta.add_template(waba, MetaTemplate("order_shipped", "en_US", body_parameters=2))
    template = {
        "id": "order_shipped",
        "language": "en-US",
        "body": {
            "text": "Hi Ana, order 67 ships on Monday",
            "parameters": [{"name": "1", "text": "Ana"}, {"name": "2", "text": "Monday"}],
        },
        "footer": {"text": "Acme"},
    }
    good = post_notification(world, tenant.integration_id, "34600000042", template)
    [sent] = wait_for(lambda: state.meta.template_sends(pnid), message="the template at Meta")
    assert sent.to == "34600000042"
    assert sent.body["template"] == {
        "name": "order_shipped",
        "language": {"code": "en_US"},
        "components": [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "Monday"}],
            }
        ],
    }
    state.user.status(sent.wamid, "delivered")
    assert [r["status"] for r in wait_for(lambda: state.genesys.receipts_for(good))] == [
        "Delivered"
    ]

    short = {**template, "body": {"text": "Hi", "parameters": [{"name": "1", "text": "Ana"}]}}
    bad = post_notification(world, tenant.integration_id, "34600000042", short)
    [failed] = wait_for(lambda: state.genesys.receipts_for(bad), message="the Failed receipt")
    assert failed["status"] == "Failed" and "132000" in failed["reasons"][0]["message"]
    assert failed["reasons"][0]["code"] == "InvalidMessageStructure"

    unknown = post_notification(
        world, tenant.integration_id, "34600000042", {**template, "id": "order_lost"}
    )
    [refused] = wait_for(lambda: state.genesys.receipts_for(unknown), message="the Failed receipt")
    assert refused["status"] == "Failed" and "132001" in refused["reasons"][0]["message"]
    assert refused["reasons"][0]["code"] == "MessageNotAllowed"
    assert len(state.meta.template_sends(pnid)) == 1
