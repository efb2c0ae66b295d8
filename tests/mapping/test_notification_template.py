"""A Genesys ``Notification`` naming a WhatsApp template → a Meta ``template`` send (proactive
messages); what cannot be mapped stays text."""

from __future__ import annotations

from typing import Any

from interlink.mapping import notification_send, notification_template
from interlink.mapping.genesys_webhook import parse_genesys_notification


def notification(template: dict[str, Any], extra: list[dict[str, Any]] | None = None) -> Any:
    """The shape of go-gcloudcx's openmessaging-outbound-notification.json, with a template id."""
    return parse_genesys_notification(
        {
            "id": "c327c2078ca056db130c55ce648d9fa2",
            "channel": {
                "id": "73cb7fb7-c2db-4996-88f3-0a83a4fea1da",
                "messageId": "c327c2078ca056db130c55ce648d9fa2",
                "platform": "Open",
                "type": "Private",
                "to": {"id": "16505551234", "idType": "Opaque"},
                "from": {"id": "73cb7fb7-c2db-4996-88f3-0a83a4fea1da", "idType": "Opaque"},
                "time": "2021-02-01T15:04:05.123Z",
            },
            "conversationId": "d06cb41e-f938-4dcf-b823-c8af1a39d7e5",
            "direction": "Outbound",
            "originatingEntity": "Human",
            "type": "Structured",
            "text": "Hi Happy, How can I help you?",
            "content": [{"contentType": "Notification", "template": template}, *(extra or [])],
        }
    )


TEMPLATE = {
    "id": "order_shipped",
    "language": "en-US",
    "header": {"text": "Order 67", "parameters": [{"name": "1", "text": "67"}]},
    "body": {
        "text": "Hi Happy, order 67 ships on Monday",
        "parameters": [{"name": "2", "text": "Monday"}, {"name": "1", "text": "Happy\n"}],
    },
    "footer": {"text": "Goodbye"},
}


def test_a_notification_with_a_template_name_becomes_a_meta_template_with_its_parameters() -> None:
    template = notification_template(notification(TEMPLATE))
    assert template == {
        "name": "order_shipped",
        "language": {"code": "en_US"},
        "components": [
            {"type": "header", "parameters": [{"type": "text", "text": "67"}]},
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Happy"},
                    {"type": "text", "text": "Monday"},
                ],
            },
        ],
    }
    send = notification_send(template, recipient="+16505551234", callback_data="gen-1")
    assert send["type"] == "template" and send["to"] == "+16505551234"
    assert send["biz_opaque_callback_data"] == "gen-1"


def test_named_parameters_keep_their_names() -> None:
    body = {"text": "Hi Ana", "parameters": [{"name": "first_name", "text": "Ana"}]}
    template = notification_template(notification({**TEMPLATE, "header": None, "body": body}))
    assert template is not None
    assert template["components"] == [
        {
            "type": "body",
            "parameters": [{"type": "text", "parameter_name": "first_name", "text": "Ana"}],
        }
    ]


def test_what_names_no_sendable_template_is_left_to_the_text_rendering() -> None:
    for changed in (
        {"id": None},
        {"id": "4c1a52e4-6f0b-4b4e-9a2f-1d2e3f4a5b6c"},  # a Genesys id, no WhatsApp name
        {"language": None},
        {"language": "english"},
        {"body": {"text": "x", "parameters": [{"name": "1"}]}},
        {"body": {"text": "x", "parameters": "1"}},
    ):
        assert notification_template(notification({**TEMPLATE, **changed})) is None
    quick = {"contentType": "QuickReply", "quickReply": {"text": "Yes", "payload": "y"}}
    assert notification_template(notification(TEMPLATE, [quick])) is None
