"""WhatsApp ``request_welcome``, ``edit`` and ``revoke`` → what the agent sees (or nothing)."""

from typing import Any

import pytest

from interlink.mapping import MappingError, MediaRef, genesys_participant, to_genesys_inbound
from interlink.sim.genesys import check_inbound_message

PNID = "106540352242922"
PARTICIPANT = genesys_participant("16505551234", "Sheena Nelson")
ORIGINAL = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTdBQkNERUYwMTIzNDU2Nzg5AA=="


def no_media(ref: MediaRef) -> str:
    raise AssertionError(f"no media expected, got {ref}")


def convert(message: dict[str, Any]) -> list[dict[str, Any]]:
    bodies = to_genesys_inbound(
        message, None, phone_number_id=PNID, participant=PARTICIPANT, media_url_for=no_media
    )
    for body in bodies:
        assert check_inbound_message(body) is None
    return bodies


def item(kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "from": "16505551234",
        "id": "wamid.NEW",
        "timestamp": "1767348000",
        "type": kind,
        **fields,
    }


def test_request_welcome_sends_nothing() -> None:
    # The user only opened the chat: no content, and it must not open a Genesys conversation.
    assert convert(item("request_welcome")) == []


def test_edit_shows_the_new_text_and_says_it_was_edited() -> None:
    [body] = convert(
        item(
            "edit",
            edit={
                "original_message_id": ORIGINAL,
                "message": {"type": "text", "text": {"body": "See you at 5, not 4"}},
            },
        )
    )
    assert body["text"] == (
        "[WhatsApp: The customer edited a message. New text:]\nSee you at 5, not 4"
    )
    attributes = body["channel"]["metadata"]["customAttributes"]
    assert attributes["waEditedMessageId"] == ORIGINAL
    assert attributes["waMessageType"] == "edit"
    assert body["channel"]["messageId"] == "wamid.NEW"


def test_an_edited_caption_is_the_new_text() -> None:
    [body] = convert(
        item(
            "edit",
            edit={
                "original_message_id": ORIGINAL,
                "message": {"type": "image", "image": {"id": "1", "caption": "the blue one"}},
            },
        )
    )
    assert body["text"].endswith("\nthe blue one")
    assert "edited" in body["text"]
    assert "content" not in body  # the picture itself was sent (and shown) before


def test_an_edit_without_readable_text_is_still_a_notice() -> None:
    [body] = convert(item("edit", edit={"original_message_id": ORIGINAL, "message": {}}))
    assert body["text"].startswith("[WhatsApp: The customer edited a message")


def test_revoke_is_a_notice_that_the_user_deleted_a_message() -> None:
    [body] = convert(item("revoke", revoke={"original_message_id": ORIGINAL}))
    assert body["text"] == "[WhatsApp: The customer deleted a message.]"
    attributes = body["channel"]["metadata"]["customAttributes"]
    assert attributes["waRevokedMessageId"] == ORIGINAL


@pytest.mark.parametrize(
    "message",
    [
        item("edit"),
        item("edit", edit="x"),
        item("edit", edit={"original_message_id": ORIGINAL}),
        item("edit", edit={"message": {"type": "text", "text": {"body": 5}}}),
        item("revoke"),
        item("revoke", revoke=[]),
    ],
)
def test_malformed_edits_and_revokes_raise_mapping_error(message: dict[str, Any]) -> None:
    with pytest.raises(MappingError):
        convert(message)
