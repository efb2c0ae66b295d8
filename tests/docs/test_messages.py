"""docs/messages.md against the mapping code: every Genesys content type and WhatsApp message
type the mapping modules branch on is named on the page, the limits it states are the code's,
the Meta error code table is the code's, and the notices and failure texts it quotes are exactly
what the code produces. A new ``elif kind == "..."`` without a row here fails."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from interlink.actors import conversation
from interlink.actors.flows import agent_message
from interlink.mapping import inbound, media, outbound, receipts, structured
from interlink.mapping.inbound import to_genesys_inbound
from interlink.mapping.outbound import MediaRejected, media_limit
from interlink.sim import whatsapp_payloads as wa

DASH = "\N{EN DASH}"  # the page writes ranges with an en dash
ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "messages.md"
MAPPING = ROOT / "interlink" / "mapping"


def page() -> str:
    return PAGE.read_text()


def compared_literals(module: str, selects: Callable[[str], bool]) -> set[str]:
    """The strings a module compares an expression chosen by ``selects`` with (``==``, ``!=``,
    ``in``, ``not in``): the types it branches on."""
    tree = ast.parse((MAPPING / module).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and selects(ast.unparse(node.left)):
            for comparator in node.comparators:
                for leaf in ast.walk(comparator):
                    if isinstance(leaf, ast.Constant) and isinstance(leaf.value, str):
                        found.add(leaf.value)
    return found


def missing_from_page(names: Iterable[str]) -> list[str]:
    text = page()
    return sorted(name for name in names if f"`{name}`" not in text)


def test_every_genesys_type_the_mapping_handles_is_on_the_page() -> None:
    content_types = compared_literals(
        "structured.py", lambda left: "contentType" in left or left == "kind"
    )
    content_types |= {kind for kind in structured._NATIVE if kind}
    notification_types = compared_literals(
        "genesys_webhook.py",
        lambda left: left in ("kind", "self.type", "content_type") or "eventType" in left,
    )
    assert {"QuickReply", "Carousel", "Card", "DatePicker", "Notification"} <= content_types
    assert {"Text", "Structured", "Receipt", "Event", "Attachment", "Typing"} <= notification_types
    # Genesys's media types, its answer to a tap (and the types of that answer), and the typing
    # switch, named by the contract.
    named = {"Image", "Video", "Audio", "File", "ButtonResponse", "Off", "Postback"}
    named |= set(inbound.BUTTON_RESPONSE_TYPES)
    assert missing_from_page(content_types | notification_types | named) == []


def test_every_whatsapp_type_the_mapping_handles_is_on_the_page() -> None:
    kinds = compared_literals("inbound.py", lambda left: left == "kind" or ".get('type')" in left)
    subtypes = compared_literals("inbound_text.py", lambda left: left == "subtype")
    statuses = compared_literals("receipts.py", lambda left: left in ("status", "previous_state"))
    assert {"text", "request_welcome", "edit", "revoke", "order"} <= kinds
    assert {"nfm_reply", "user_changed_number", "user_changed_user_id"} <= subtypes
    every = kinds | subtypes | statuses | set(receipts.STATES) | set(media.MEDIA_KINDS)
    # The simulator's kinds are every type Meta documents (``voice`` is an audio with a flag).
    every |= (set(wa.KINDS) | set(wa.CHAT_EVENT_KINDS)) - {"voice"}
    assert missing_from_page(every) == []
    assert "`audio` with `voice: true`" in page()


def test_the_limits_on_the_page_are_the_codes() -> None:
    text = page()
    assert f"`QuickReply`, 1{DASH}{structured.BUTTON_MAX} options" in text
    assert f"titles cut to {structured.BUTTON_TITLE} characters" in text
    assert f"`QuickReply`, {structured.BUTTON_MAX + 1}{DASH}{structured.LIST_MAX} options" in text
    assert f"row titles cut to {structured.ROW_TITLE} characters" in text
    assert f"as its description (≤ {structured.ROW_DESCRIPTION})" in text
    assert f"more than {structured.LIST_MAX} options" in text
    assert (
        f"longer than {structured.BUTTON_ID} (buttons) / {structured.ROW_ID} (list) characters"
        in text
    )
    assert f'"{structured.DEFAULT_QUESTION}"' in text
    assert f'button "{structured.LIST_BUTTON_TEXT}"' in text
    assert f'button "{structured.DATE_BUTTON_TEXT}"' in text
    assert f'(without any: "{structured.DATE_QUESTION}")' in text
    assert f"title such as `{structured._when('2026-05-30T12:00:00Z')}`" in text
    assert f"over {outbound.WHATSAPP_TEXT_LIMIT} characters it is cut" in text
    assert f"the text is ≤ {outbound.CAPTION_LIMIT} characters" in text
    assert f"over {outbound.TEMPLATE_PARAMETER_LIMIT} characters: Failed `GeneralError`" in text
    assert f"A text over {inbound.GENESYS_TEXT_LIMIT} characters" in text
    assert f"at most once per {agent_message.TYPING_INTERVAL:g} s per conversation" in text
    assert f"for up to {conversation.RETRY_FOR:g} s" in text
    assert f'Failed `GeneralError`, "{agent_message.NOT_SENT}"' in text
    for limit in outbound.MEDIA_LIMITS:
        assert f"≤ {limit.max_bytes // (1024 * 1024)} MB" in text, limit.kind
        if limit.kind != "document":  # documents are named by what they are, not by MIME type
            for mime in limit.mime_types:
                assert f"`{mime}`" in text, mime


def test_the_error_code_table_is_the_codes() -> None:
    paragraph = page().split("Meta error code → Genesys reason:", 1)[1].split("\n\n", 1)[0]
    table: dict[int, str] = {}
    for part in paragraph.split(";"):
        reason = re.search(r"`(\w+)`", part)
        assert reason, part
        for code in re.findall(r"\b\d+\b", part):
            table[int(code)] = reason.group(1)
    assert table == receipts._REASON_BY_CODE
    assert "any other code `GeneralError`" in paragraph
    assert missing_from_page(receipts.REASON_CODES & {*table.values(), "GeneralError"}) == []


def failure_texts() -> list[str]:
    texts = [agent_message.NOTHING_TO_SHOW, agent_message.OUTSIDE_WINDOW]
    texts += [agent_message.DOWNLOAD_REFUSED, str(outbound.found_too_large("image/png"))]
    for mime, size in (("application/zip", None), ("image/png", 6 * 1024 * 1024)):
        with pytest.raises(MediaRejected) as refused:
            media_limit(mime, size)
        texts.append(str(refused.value))
    texts.append(receipts.failure_reasons({})[0]["message"])
    return texts


def test_the_failure_texts_quoted_are_the_codes() -> None:
    text = page()
    for quoted in failure_texts():
        assert f'"{quoted}"' in text, quoted
    assert "Failed `UnsupportedMessage`" in text and "Failed `MessageExpired`" in text
    assert "Failed `MediaTypeNotAllowed`" in text and "Failed `InvalidMediaContentLength`" in text


USER = wa.WhatsAppUser(wa_id="34611000001", name="Ana")
SAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("unsupported", {}),
    ("system", {"new_wa_id": "34611000009"}),
    ("order", {}),
    ("edit", {"body": "new words"}),
    ("revoke", {}),
]
RAW_SAMPLES: list[dict[str, Any]] = [
    {"type": "interactive", "interactive": {"type": "call_permission_reply"}},
    {"type": "system", "system": {"type": "user_changed_user_id", "user_id": "US.1"}},
    {"type": "system", "system": {"type": "something_else"}},
    {"type": "ephemeral"},
    {"type": "edit", "edit": {"original_message_id": "w0", "message": {"type": "image"}}},
]


def notices() -> list[str]:
    """The first line the agent sees for each sample that becomes a notice."""
    messages = [
        wa.message(kind, USER, wamid="wamid.A", timestamp=1_700_000_000, business_number="1", **o)
        for kind, o in SAMPLES
    ]
    messages += [{"id": "wamid.B", "timestamp": "1700000000", **raw} for raw in RAW_SAMPLES]
    lines = []
    for message in messages:
        [body] = to_genesys_inbound(
            message,
            None,
            phone_number_id="1",
            participant={"id": "34611000001", "idType": "Opaque"},
            media_url_for=lambda ref: "https://bridge.example/media/x",
        )
        lines.append(body["text"].splitlines()[0])
    return lines


def test_the_notices_quoted_are_what_the_agent_sees() -> None:
    text = page()
    for line in notices():
        assert line.startswith("[WhatsApp: ") or line == "", line
        assert f'"{line}"' in text, line


def test_the_numbered_answers_shown_are_accepted() -> None:
    options = [("Card", "pay-card"), ("Bank transfer", "pay-bank")]
    shown = re.search(r"by number \(((?:`[^`]+`(?:, )?)+)\)", page())
    assert shown, "the page names the numbered answers it accepts"
    for answer in re.findall(r"`([^`]+)`", shown.group(1)):
        assert structured.numbered_answer(answer, options) == options[1], answer
    assert structured.numbered_answer(" bank  TRANSFER ", options) == options[1]
    assert structured.numbered_answer("3", options) is None


def test_every_tenant_setting_the_flows_read_is_on_the_page() -> None:
    flows = ROOT / "interlink" / "actors" / "flows"
    read = set()
    for module in flows.glob("*.py"):
        read |= set(re.findall(r"settings\.get\(\s*\"(\w+)\"", module.read_text()))
    assert {"reactionsAsText", "fallbackTemplate"} <= read
    assert missing_from_page(read) == []
