"""Genesys ``Structured`` messages → WhatsApp content: quick replies as interactive messages,
everything else (carousel, card, date picker, unknown content) as readable text.

Meta's limits (reference/rich-messages.md): reply buttons hold 1-3 options (title ≤ 20, id ≤ 256,
both unique, body ≤ 1024); a list holds at most 10 rows in all (title ≤ 24, id ≤ 200, description
≤ 72, body ≤ 4096, ``action.button`` ≤ 20). Beyond 10 options the question goes as numbered text.
An option's id is its Genesys payload, so the user's answer can carry it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

BUTTON_MAX = 3
BUTTON_TITLE = 20
BUTTON_ID = 256
BUTTON_BODY = 1024
LIST_MAX = 10
ROW_TITLE = 24
ROW_ID = 200
ROW_DESCRIPTION = 72
LIST_BODY = 4096
LIST_BUTTON_TEXT = "Options"
DEFAULT_QUESTION = "Please choose an option:"
QUICK_REPLY = "QuickReply"
_NATIVE = (None, "Attachment", "QuickReply")
_READABLE_KEYS = ("title", "subtitle", "header", "text", "description", "body", "footer")
_LINK_KEYS = ("url", "imageUrl", "image")


@dataclass(frozen=True, slots=True)
class Option:
    text: str
    payload: str


@dataclass(frozen=True, slots=True)
class Rendered:
    """What a Structured message becomes: ``text`` to send first (may be empty), then one
    ``interactive`` object (None when the options go as text or there are none)."""

    text: str
    interactive: dict[str, Any] | None
    # The ``buttonResponse.type`` a tap on ``interactive`` answers with (``QuickReply`` ...).
    menu: str | None = None
    # Options shown as numbered text (more than fit a list), answered by number or title.
    numbered: tuple[Option, ...] = ()


def render_structured(raw: Mapping[str, Any], text: str | None) -> Rendered:
    """The WhatsApp rendering of a Structured notification's ``content`` (``text`` is its
    question). Malformed items are skipped, never raised on: the rest still reaches the user."""
    items = [i for i in _list(raw.get("content")) if isinstance(i, Mapping)]
    options = [o for i in items if i.get("contentType") == "QuickReply" if (o := _option(i))]
    blocks = [
        block
        for item in items
        if item.get("contentType") not in _NATIVE
        # Genesys renders a template notification into ``text`` already
        if not (text and item.get("contentType") == "Notification")
        if (block := render_item(item))
    ]
    if not options:
        return Rendered("\n\n".join(([text] if text else []) + blocks), None)
    question = text or DEFAULT_QUESTION
    interactive = None
    if len(options) <= LIST_MAX and _ids_fit(options):
        limit = BUTTON_BODY if len(options) <= BUTTON_MAX else LIST_BODY
        if len(question) > limit:  # the whole question still goes, as text before the menu
            blocks.insert(0, question)
            question = DEFAULT_QUESTION
        interactive = (
            buttons(question, options)
            if len(options) <= BUTTON_MAX
            else list_menu(question, options)
        )
        return Rendered("\n\n".join(blocks), interactive, QUICK_REPLY)
    numbered = "\n".join(f"{n}. {o.text}" for n, o in enumerate(options, 1))
    blocks.append(f"{question}\n\n{numbered}")
    return Rendered("\n\n".join(blocks), None, None, tuple(options))


def numbered_answer(text: str, options: list[tuple[str, str]]) -> tuple[str, str] | None:
    """The (title, payload) a user's text picks from a numbered menu: exactly one of the numbers
    (``2``, ``2.``, `` 2 ``) or an option's title, ignoring case and surrounding space; None for
    any other text, which stays a message."""
    answer = " ".join(text.split()).casefold()
    if not answer:
        return None
    number = answer.removesuffix(".").removesuffix(")")
    if number.isdigit() and number.isascii():
        index = int(number) - 1
        return tuple(options[index]) if 0 <= index < len(options) else None  # type: ignore[return-value]
    for title, payload in options:
        if " ".join(title.split()).casefold() == answer:
            return title, payload
    return None


def buttons(question: str, options: list[Option]) -> dict[str, Any]:
    titles = _unique_titles([o.text for o in options], BUTTON_TITLE)
    return {
        "type": "button",
        "body": {"text": question},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": o.payload, "title": t}}
                for o, t in zip(options, titles, strict=True)
            ]
        },
    }


def list_menu(question: str, options: list[Option]) -> dict[str, Any]:
    titles = _unique_titles([o.text for o in options], ROW_TITLE)
    rows = []
    for option, title in zip(options, titles, strict=True):
        row = {"id": option.payload, "title": title}
        if title != option.text:  # the description shows what the title had to leave out
            row["description"] = _cut(option.text, ROW_DESCRIPTION)
        rows.append(row)
    return {
        "type": "list",
        "body": {"text": question},
        "action": {"button": LIST_BUTTON_TEXT, "sections": [{"rows": rows}]},
    }


def render_item(item: Mapping[str, Any]) -> str:
    """Readable text for one non-native content item."""
    kind = item.get("contentType")
    if kind == "Carousel":
        cards = _list(_map(item.get("carousel")).get("cards"))
        return "\n\n".join(c for card in cards if (c := render_card(_map(card))))
    if kind == "Card":
        return render_card(_map(item.get("card")))
    if kind == "DatePicker":
        return render_date_picker(_map(item.get("datePicker")))
    if kind == "Notification":
        return render_notification(_map(item.get("template")))
    return "\n".join(_readable(item))


def render_notification(template: Mapping[str, Any]) -> str:
    body = _map(template.get("body"))
    text = _str(body.get("text"))
    for parameter in _list(body.get("parameters")):
        parameter = _map(parameter)
        name, value = _str(parameter.get("name")), _str(parameter.get("text"))
        if name:
            text = text.replace("{{" + name + "}}", value)
    parts = [_str(_map(template.get("header")).get("text")), text]
    parts.append(_str(_map(template.get("footer")).get("text")))
    return "\n".join(p for p in parts if p)


def render_card(card: Mapping[str, Any]) -> str:
    lines = []
    title = _str(card.get("title"))
    if title:
        lines.append(f"*{title}*")
    lines += [v for key in ("description",) if (v := _str(card.get(key)))]
    for key in ("image", "imageUrl"):
        if url := _str(card.get(key)):
            lines.append(url)
    for action in _list(card.get("actions")):
        action = _map(action)
        label, url = _str(action.get("text")), _str(action.get("url"))
        if label or url:
            lines.append("• " + (f"{label}: {url}" if label and url else label or url))
    return "\n".join(lines)


def render_date_picker(picker: Mapping[str, Any]) -> str:
    lines = [v for key in ("title", "subtitle") if (v := _str(picker.get(key)))]
    if url := _str(picker.get("imageUrl")):
        lines.append(url)
    times = []
    for slot in _list(picker.get("availableTimes")):
        slot = _map(slot)
        when = _str(slot.get("dateTime"))
        if not when:
            continue
        duration = slot.get("duration")
        if isinstance(duration, int) and not isinstance(duration, bool) and duration > 0:
            when += f" ({max(1, duration // 60)} min)"
        times.append("• " + when)
    if times:
        lines += ["Available times:", *times]
    return "\n".join(lines)


def _readable(value: object, depth: int = 0) -> list[str]:
    """Titles, texts and links found anywhere in unknown content (bounded depth)."""
    if depth > 6:
        return []
    found: list[str] = []
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if key in _READABLE_KEYS + _LINK_KEYS and (text := _str(inner)):
                found.append(text)
            elif isinstance(inner, Mapping | list):
                found += _readable(inner, depth + 1)
    elif isinstance(value, list):
        for inner in value:
            found += _readable(inner, depth + 1)
    return found


def _option(item: Mapping[str, Any]) -> Option | None:
    reply = _map(item.get("quickReply"))
    text, payload = _str(reply.get("text")), _str(reply.get("payload"))
    if not text:
        return None
    return Option(text, payload or text)


def _ids_fit(options: list[Option]) -> bool:
    """Ids must be unique and short enough, or the answer could not name its option."""
    limit = BUTTON_ID if len(options) <= BUTTON_MAX else ROW_ID
    payloads = [o.payload for o in options]
    return len(set(payloads)) == len(payloads) and all(len(p) <= limit for p in payloads)


def _unique_titles(texts: list[str], limit: int) -> list[str]:
    titles: list[str] = []
    for text in texts:
        title = _cut(text, limit)
        n = 2
        while title in titles:
            suffix = f" ({n})"
            title = _cut(text, limit - len(suffix)) + suffix
            n += 1
        titles.append(title)
    return titles


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _str(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
