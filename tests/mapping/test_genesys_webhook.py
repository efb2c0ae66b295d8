"""Reading Genesys outbound notifications: classification, attachments, malformed bodies."""

import json
from pathlib import Path
from typing import Any

import pytest

from interlink.mapping import MappingError, parse_genesys_notification

PAYLOADS = Path(__file__).parents[1] / "support" / "payloads"


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def test_genesys_text_notification() -> None:
    n = parse_genesys_notification(load("genesys_text.json"))
    assert n.type == "Text" and n.direction == "Outbound" and n.is_agent_message
    assert n.message_id == n.dedupe_key == "8085cbb3f778c34de0bd14c5318ec44c"
    assert n.conversation_id == "1734d888-0c1f-4b8e-9d55-2a7c5b0e9f11"
    assert n.integration_id == "3c1a52e4-6f0b-4b4e-9a2f-1d2e3f4a5b6c"
    assert n.user_id == "16505551234" and n.user_id_type == "Opaque"
    assert n.text == "Hello, how can I help? See https://example.com/help"
    assert n.attachments == ()
    assert n.originating_entity == "Human"


def test_genesys_attachment_notification() -> None:
    n = parse_genesys_notification(load("genesys_image.json"))
    [a] = n.attachments
    assert (a.media_type, a.mime, a.filename, a.size_bytes) == (
        "Image",
        "image/png",
        "label.png",
        2444,
    )
    assert a.url.startswith("https://api-downloads.mypurecloud.ie/")
    assert a.attachment_id == "9ff2a1b0-1c2d-4e5f-8a9b-0c1d2e3f4a5b"


def test_genesys_structured_keeps_rendered_text_and_skips_template_content() -> None:
    n = parse_genesys_notification(load("genesys_structured.json"))
    assert n.type == "Structured" and n.is_agent_message
    assert n.text == "Your order 67 has shipped." and n.attachments == ()


def test_genesys_typing_event_and_receipt_are_not_agent_messages() -> None:
    event = parse_genesys_notification(load("genesys_typing.json"))
    assert event.type == "Event" and not event.is_agent_message
    assert event.message_id is None and event.user_id == "16505551234"
    receipt = parse_genesys_notification(load("genesys_receipt.json"))
    assert receipt.type == "Receipt" and not receipt.is_agent_message


def test_genesys_unknown_type_is_kept_not_refused() -> None:
    body = load("genesys_text.json")
    body["type"] = "Hologram"
    n = parse_genesys_notification(body)
    assert n.type == "Hologram" and not n.is_agent_message


def _broken(path: list[Any], value: Any) -> dict[str, Any]:
    body = load("genesys_image.json")
    target = body
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["type"], KeyError),
        (["type"], 3),
        (["id"], KeyError),
        (["id"], ""),
        (["channel"], KeyError),
        (["channel"], "x"),
        (["channel", "to"], KeyError),
        (["channel", "to", "id"], None),
        (["text"], 42),
        (["content"], "x"),
        (["content", 0], "x"),
        (["content", 0, "attachment"], []),
        (["content", 0, "attachment", "url"], KeyError),
        (["content", 0, "attachment", "mediaType"], 1),
        (["content", 0, "attachment", "contentSizeBytes"], -1),
        (["content", 0, "attachment", "contentSizeBytes"], "12kb"),
        (["content", 0, "attachment", "contentSizeBytes"], True),
    ],
)
def test_genesys_malformed_raises_mapping_error(path: list[Any], value: Any) -> None:
    with pytest.raises(MappingError):
        parse_genesys_notification(_broken(path, value))


def test_genesys_non_object_raises() -> None:
    for body in (None, [], "x", 1):
        with pytest.raises(MappingError):
            parse_genesys_notification(body)
