"""Genesys agent messages → Graph API send bodies; media limits; the 24-hour window."""

import json
from pathlib import Path
from typing import Any

import pytest

from interlink.mapping import (
    MappingError,
    MediaRejected,
    found_too_large,
    media_limit,
    parse_genesys_notification,
    to_meta_sends,
    with_media_id,
    within_service_window,
)

PAYLOADS = Path(__file__).parents[1] / "support" / "payloads"
TO = "+16505551234"
GID = "8085cbb3f778c34de0bd14c5318ec44c"


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def sends(body: dict[str, Any], recipient: str = TO) -> list[dict[str, Any]]:
    return to_meta_sends(body, recipient=recipient, callback_data=GID)


def with_attachment(
    mime: str, size: int | None = 1000, text: str | None = None, **extra: Any
) -> dict[str, Any]:
    body = load("genesys_image.json")
    attachment = body["content"][0]["attachment"]
    attachment["mime"] = mime
    attachment.update(extra)
    if size is None:
        del attachment["contentSizeBytes"]
    else:
        attachment["contentSizeBytes"] = size
    if text is None:
        del body["text"]
    else:
        body["text"] = text
    return body


def test_text() -> None:
    assert sends(load("genesys_text.json")) == [
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": TO,
            "type": "text",
            "text": {
                "body": "Hello, how can I help? See https://example.com/help",
                "preview_url": True,
            },
            "biz_opaque_callback_data": GID,
        }
    ]


def test_text_without_link_has_no_preview_and_parsed_notification_is_accepted() -> None:
    body = load("genesys_text.json")
    body["text"] = "Hello"
    [send] = to_meta_sends(parse_genesys_notification(body), recipient=TO, callback_data=GID)
    assert send["text"] == {"body": "Hello", "preview_url": False}


def test_bsuid_recipient_uses_recipient_field() -> None:
    [send] = sends(load("genesys_text.json"), recipient="US.13491208655302741918")
    assert send["recipient"] == "US.13491208655302741918" and "to" not in send


def test_image_with_caption() -> None:
    assert sends(load("genesys_image.json")) == [
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": TO,
            "type": "image",
            "image": {
                "link": "https://api-downloads.mypurecloud.ie/api/v2/downloads/pce9d1a2b3c4",
                "caption": "Here is the label",
            },
            "biz_opaque_callback_data": GID,
        }
    ]


def test_document_has_filename_and_no_text() -> None:
    [send] = sends(load("genesys_document.json"))
    assert send["type"] == "document"
    assert send["document"] == {
        "link": "https://api-downloads.mypurecloud.ie/api/v2/downloads/pcdoc0001",
        "filename": "terms.pdf",
    }


def test_document_without_filename_gets_one() -> None:
    [send] = sends(with_attachment("application/pdf", filename=None))
    assert send["document"]["filename"] == "document"


def test_audio_takes_no_caption_text_goes_first() -> None:
    result = sends(with_attachment("audio/ogg; codecs=opus", text="listen"))
    assert [s["type"] for s in result] == ["text", "audio"]
    assert result[0]["text"]["body"] == "listen"
    assert "caption" not in result[1]["audio"]


def test_video() -> None:
    [send] = sends(with_attachment("video/mp4", text="watch"))
    assert send["type"] == "video" and send["video"]["caption"] == "watch"


def test_caption_too_long_goes_as_text() -> None:
    result = sends(with_attachment("image/png", text="x" * 1025))
    assert [s["type"] for s in result] == ["text", "image"]
    assert "caption" not in result[1]["image"]


def test_several_attachments_text_first_each_media_after() -> None:
    body = with_attachment("image/png", text="two files")
    body["content"].append(
        {
            "contentType": "Attachment",
            "attachment": {
                "mediaType": "File",
                "url": "https://api-downloads.mypurecloud.ie/api/v2/downloads/b",
                "mime": "application/pdf",
                "filename": "b.pdf",
            },
        }
    )
    result = sends(body)
    assert [s["type"] for s in result] == ["text", "image", "document"]
    assert all(s["biz_opaque_callback_data"] == GID for s in result)


def test_long_text_is_split_at_4096() -> None:
    body = load("genesys_text.json")
    text = ("line of text\n" * 800).strip()  # ~10,400 characters
    body["text"] = text
    result = sends(body)
    assert len(result) == 3
    assert "".join(s["text"]["body"] for s in result) == text
    assert all(len(s["text"]["body"]) <= 4096 for s in result)
    assert all(s["text"]["body"].endswith("\n") for s in result[:-1])  # cut at line ends


def test_structured_sends_rendered_text() -> None:
    [send] = sends(load("genesys_structured.json"))
    assert send["text"]["body"] == "Your order 67 has shipped."


@pytest.mark.parametrize("name", ["genesys_typing.json", "genesys_receipt.json"])
def test_non_agent_messages_send_nothing(name: str) -> None:
    assert sends(load(name)) == []


def test_inbound_echo_and_empty_messages_send_nothing() -> None:
    body = load("genesys_text.json")
    body["direction"] = "Inbound"
    assert sends(body) == []
    body = load("genesys_text.json")
    body["text"] = "   "
    assert sends(body) == []


def test_missing_direction_counts_as_outbound() -> None:
    body = load("genesys_text.json")
    del body["direction"]
    assert len(sends(body)) == 1


@pytest.mark.parametrize("mime", ["application/zip", "", "image/", "text/html", "video/quicktime"])
def test_media_type_not_allowed(mime: str) -> None:
    with pytest.raises(MediaRejected) as caught:
        sends(with_attachment(mime))
    assert caught.value.reason == "MediaTypeNotAllowed"
    assert isinstance(caught.value, MappingError)


def test_missing_mime_is_not_allowed() -> None:
    body = with_attachment("image/png")
    del body["content"][0]["attachment"]["mime"]
    with pytest.raises(MediaRejected) as caught:
        sends(body)
    assert caught.value.reason == "MediaTypeNotAllowed"


@pytest.mark.parametrize(
    ("mime", "limit_mb"),
    [
        ("image/jpeg", 5),
        ("image/png", 5),
        ("video/mp4", 16),
        ("video/3gpp", 16),
        ("audio/aac", 16),
        ("audio/amr", 16),
        ("audio/mpeg", 16),
        ("audio/mp4", 16),
        ("audio/ogg", 16),
        ("application/pdf", 100),
        ("text/plain", 100),
        ("application/msword", 100),
        ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", 100),
    ],
)
def test_size_limits(mime: str, limit_mb: int) -> None:
    limit = limit_mb * 1024 * 1024
    assert sends(with_attachment(mime, size=limit))
    with pytest.raises(MediaRejected) as caught:
        sends(with_attachment(mime, size=limit + 1))
    assert caught.value.reason == "InvalidMediaContentLength"
    assert str(limit + 1) in str(caught.value)


def test_unknown_size_is_checked_later_with_media_limit() -> None:
    assert sends(with_attachment("image/png", size=None))
    assert media_limit("IMAGE/PNG").kind == "image"
    with pytest.raises(MediaRejected):
        media_limit("image/png", 6 * 1024 * 1024)


def test_rejection_message_does_not_echo_hostile_mime() -> None:
    with pytest.raises(MediaRejected) as caught:
        sends(with_attachment("x/" + "é" * 500))
    assert "é" not in str(caught.value) and len(str(caught.value)) < 200


@pytest.mark.parametrize("mime", ["image/gif", "image/webp", "image/bmp"])
def test_images_whatsapp_does_not_show_as_images_go_as_documents(mime: str) -> None:
    [send] = sends(with_attachment(mime, text="look", filename="funny.gif"))
    assert send["type"] == "document"
    assert send["document"]["filename"] == "funny.gif"
    assert send["document"]["caption"] == "look"
    assert media_limit(mime).kind == "document"
    assert media_limit(mime).max_bytes == 100 * 1024 * 1024


def test_one_bad_attachment_rejects_the_whole_message() -> None:
    body = with_attachment("image/png", text="two files")
    body["content"].append(
        {
            "attachment": {
                "mediaType": "File",
                "url": "https://x.example/a",
                "mime": "application/zip",
            }
        }
    )
    with pytest.raises(MediaRejected):
        sends(body)


def test_with_media_id_replaces_link() -> None:
    [send] = sends(load("genesys_image.json"))
    replaced = with_media_id(send, "1234567890")
    assert replaced["image"] == {"id": "1234567890", "caption": "Here is the label"}
    assert "link" in send["image"]  # the original is untouched
    with pytest.raises(MappingError):
        with_media_id(replaced, "1")
    with pytest.raises(MappingError):
        with_media_id(sends(load("genesys_text.json"))[0], "1")
    with pytest.raises(MappingError):
        with_media_id(send, "")


def test_bad_recipient_or_callback_data() -> None:
    with pytest.raises(MappingError):
        sends(load("genesys_text.json"), recipient="someone")
    with pytest.raises(MappingError):
        to_meta_sends(load("genesys_text.json"), recipient=TO, callback_data="x" * 513)


def test_malformed_notification_raises() -> None:
    body = load("genesys_text.json")
    del body["channel"]["to"]
    with pytest.raises(MappingError):
        sends(body)


def test_service_window() -> None:
    now = 1_750_000_000.0
    assert not within_service_window(None, now)
    assert within_service_window(now - 60, now)
    assert within_service_window(now - 24 * 3600 + 1, now)
    assert not within_service_window(now - 24 * 3600, now)
    assert not within_service_window(now - 3 * 24 * 3600, now)
    assert within_service_window(now + 5, now)  # clock skew


# -- the tenant's template outside the 24-hour window ----------------------------------------------
def test_template_send_carries_the_text_as_its_one_body_parameter() -> None:
    from interlink.mapping.outbound import template_send

    send = template_send(
        "Hello\n\tthere,   you", name="agent_reply", language="pt_BR",
        recipient="+5511999999999", callback_data="genesys-1",
    )  # fmt: skip
    assert send == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+5511999999999",
        "type": "template",
        "template": {
            "name": "agent_reply",
            "language": {"code": "pt_BR"},
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": "Hello there, you"}]}
            ],
        },
        "biz_opaque_callback_data": "genesys-1",
    }


@pytest.mark.parametrize("text", ["", " \n ", "x" * 1025])
def test_template_send_refuses_what_a_parameter_cannot_hold(text: str) -> None:
    from interlink.mapping.outbound import template_send
    from interlink.mapping.wire import MappingError

    with pytest.raises(MappingError):
        template_send(
            text, name="agent_reply", language="en", recipient="+15551234567", callback_data="g"
        )


@pytest.mark.parametrize(
    ("mime", "text"),
    [
        ("image/png", "image larger than WhatsApp's 5 MB limit"),
        ("image/gif", "document larger than WhatsApp's 100 MB limit"),  # sent as a document
        ("video/mp4", "video larger than WhatsApp's 16 MB limit"),
    ],
)
def test_an_attachment_found_too_large_while_downloading_names_its_limit(
    mime: str, text: str
) -> None:
    refused = found_too_large(mime)
    assert refused.reason == "InvalidMediaContentLength" and str(refused) == text
