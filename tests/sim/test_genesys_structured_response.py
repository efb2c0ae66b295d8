"""The Genesys simulator takes a quick-reply answer at ``structured/response`` and refuses what
the real service refuses: no ``buttonResponse.type/text/payload``, an unknown integration."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from tests.sim.test_genesys import REGION, World, inbound, integration, token_of, world

__all__ = ["world"]


def answer(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": {
            "messageId": "wamid.tap",
            "time": "2026-01-02T10:00:00.000Z",
            "from": {"id": "user-1", "idType": "Opaque", "nickname": "Ana"},
            "metadata": {"customAttributes": {"waReplyId": "pay-card"}},
        },
        "originatingMessageId": "8085cbb3f778c34de0bd14c5318ec44c",
        "buttonResponse": {"type": "QuickReply", "text": "Card", "payload": "pay-card"},
    }
    body.update(overrides)
    return body


def test_an_answer_is_accepted_and_recorded(world: World) -> None:
    token = token_of(world, world.org)
    result = inbound(world, token, answer(), what="structured/response")
    assert result.status_code == 200, result.text
    assert result.json["type"] == "Structured"
    assert result.json["content"][0]["buttonResponse"]["payload"] == "pay-card"
    [recorded] = world.state.genesys.structured_responses_from(integration(world.org), "user-1")
    assert recorded.body == answer()
    assert world.state.genesys.messages_from(integration(world.org)) == []
    [call] = world.state.requests(kind="genesys.structured_response")
    assert call.status == 200


@pytest.mark.parametrize("missing", ["type", "text", "payload"])
def test_an_answer_without_a_button_response_field_is_refused(world: World, missing: str) -> None:
    token = token_of(world, world.org)
    body = answer()
    del body["buttonResponse"][missing]
    result = inbound(world, token, body, what="structured/response")
    assert result.status_code == 400
    assert result.json["code"] == "constraint.validation"
    assert missing in result.json["message"]
    assert world.state.genesys.structured_responses == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (answer(buttonResponse=None), "constraint.validation"),
        (answer(buttonResponse={"type": "Poll", "text": "a", "payload": "b"}), "invalid.value"),
        ({"buttonResponse": answer()["buttonResponse"]}, "constraint.validation"),
    ],
)
def test_malformed_answers_are_refused(world: World, body: dict[str, Any], code: str) -> None:
    token = token_of(world, world.org)
    result = inbound(world, token, body, what="structured/response")
    assert result.status_code == 400 and result.json["code"] == code
    assert set(result.json) >= {"message", "code", "status"}


def test_an_answer_to_an_unknown_integration_is_not_found(world: World) -> None:
    token = token_of(world, world.org)
    result = world.client.simulate_post(
        f"/genesys/{REGION}/api/api/v2/conversations/messages/{secrets.token_hex(16)}"
        "/inbound/open/structured/response",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        body=json.dumps(answer()),
    )
    assert result.status_code == 404 and result.json["code"] == "not.found"
    assert world.state.genesys.structured_responses == []
