"""Which Genesys notifications are an agent's typing, to be shown to the WhatsApp user."""

from __future__ import annotations

from typing import Any

import pytest

from interlink.mapping.genesys_webhook import parse_genesys_notification


def event(events: Any, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "ev-1",
        "type": "Event",
        "direction": "Outbound",
        "channel": {"id": "integration-1", "to": {"id": "user-1", "idType": "Opaque"}},
        "events": events,
    }
    body.update(fields)
    return body


ON = {"eventType": "Typing", "typing": {"type": "On", "duration": 5000}}


def test_a_typing_on_event_for_a_user_is_typing() -> None:
    assert parse_genesys_notification(event([ON])).is_typing
    assert parse_genesys_notification(event([{"eventType": "Typing"}])).is_typing


@pytest.mark.parametrize(
    "body",
    [
        event([{"eventType": "Typing", "typing": {"type": "Off"}}]),
        event([{"eventType": "Presence"}]),
        event("Typing"),
        event([ON], direction="Inbound"),
        event([ON], channel={"id": "integration-1"}),
        {**event([ON]), "type": "Text", "text": "hello"},
    ],
)
def test_other_notifications_are_not_typing(body: dict[str, Any]) -> None:
    assert not parse_genesys_notification(body).is_typing
