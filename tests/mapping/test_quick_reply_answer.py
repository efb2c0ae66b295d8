"""A tap on a menu → the structured response Genesys's bots match on; other messages are not."""

from __future__ import annotations

from typing import Any

import pytest

from interlink.mapping import MappingError, genesys_participant
from interlink.mapping.inbound import answered_menu, to_structured_response

PNID = "106540352242922"
PARTICIPANT = genesys_participant("16505551234", "Sheena Nelson")


def tap(kind: str = "button_reply", **reply: Any) -> dict[str, Any]:
    return {
        "from": "16505551234",
        "id": "wamid.tap",
        "timestamp": "1767348000",
        "type": "interactive",
        "context": {"from": "15550001111", "id": "wamid.menu"},
        "interactive": {"type": kind, kind: reply or {"id": "pay-card", "title": "Card"}},
    }


def test_a_button_tap_becomes_a_quick_reply_response_with_the_payload() -> None:
    message = tap()
    assert answered_menu(message) == "wamid.menu"
    body = to_structured_response(
        message, phone_number_id=PNID, participant=PARTICIPANT, originating_message_id="gen-1"
    )
    assert body == {
        "channel": {
            "messageId": "wamid.tap",
            "time": "2026-01-02T10:00:00.000Z",
            "from": dict(PARTICIPANT),
            "metadata": {
                "customAttributes": {
                    "waPhoneNumberId": PNID,
                    "waMessageType": "interactive",
                    "waContextMessageId": "wamid.menu",
                    "waReplyType": "button_reply",
                    "waReplyId": "pay-card",
                }
            },
        },
        "originatingMessageId": "gen-1",
        "buttonResponse": {"type": "QuickReply", "text": "Card", "payload": "pay-card"},
    }


def test_a_list_tap_answers_with_the_row_id() -> None:
    message = tap("list_reply", id="opt-4", title="Fourth", description="the last one")
    body = to_structured_response(
        message, phone_number_id=PNID, participant=PARTICIPANT, originating_message_id="gen-1"
    )
    assert body["buttonResponse"] == {"type": "QuickReply", "text": "Fourth", "payload": "opt-4"}


@pytest.mark.parametrize(
    "message",
    [
        {**tap(), "context": None},
        {k: v for k, v in tap().items() if k != "context"},
        {**tap(), "context": {"from": "15550001111"}},
        {**tap(), "interactive": {"type": "nfm_reply", "nfm_reply": {}}},
        {
            "id": "wamid.t",
            "timestamp": "1",
            "type": "text",
            "text": {"body": "1"},
            "context": {"id": "wamid.menu"},
        },
        {**tap(), "interactive": "nonsense"},
    ],
)
def test_other_messages_answer_no_menu(message: dict[str, Any]) -> None:
    assert answered_menu(message) is None
    with pytest.raises(MappingError):
        to_structured_response(
            message, phone_number_id=PNID, participant=PARTICIPANT, originating_message_id="g"
        )


def test_a_tap_without_a_reply_id_is_malformed() -> None:
    with pytest.raises(MappingError):
        to_structured_response(
            tap(title="Card"),
            phone_number_id=PNID,
            participant=PARTICIPANT,
            originating_message_id="g",
        )


def test_a_date_picker_answer_gives_the_chosen_time_as_text_and_payload() -> None:
    message = tap("list_reply", id="2026-05-30T12:00:00.000Z", title="30 May 2026 12:00 UTC")
    body = to_structured_response(
        message,
        phone_number_id=PNID,
        participant=PARTICIPANT,
        originating_message_id="gen-2",
        response_type="DatePicker",
    )
    assert body["buttonResponse"] == {
        "type": "DatePicker",
        "text": "2026-05-30T12:00:00.000Z",
        "payload": "2026-05-30T12:00:00.000Z",
    }


def test_a_card_button_answer_is_a_button_response_and_unknown_types_are_refused() -> None:
    body = to_structured_response(
        tap(id="buy-1", title="Buy"),
        phone_number_id=PNID,
        participant=PARTICIPANT,
        originating_message_id="gen-3",
        response_type="Button",
    )
    assert body["buttonResponse"] == {"type": "Button", "text": "Buy", "payload": "buy-1"}
    with pytest.raises(MappingError):
        to_structured_response(
            tap(),
            phone_number_id=PNID,
            participant=PARTICIPANT,
            originating_message_id="gen-3",
            response_type="Poll",
        )
