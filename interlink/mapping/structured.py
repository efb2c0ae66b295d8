"""Genesys ``Structured`` messages → WhatsApp content: quick replies as interactive messages, a
card's postback actions as reply buttons (1-3) and a date picker's times as a list (1-10), when
they fit; everything else (carousels, cards and date pickers that do not fit, unknown content) as
readable text.

Meta's limits (reference/rich-messages.md): reply buttons hold 1-3 options (title ≤ 20, id ≤ 256,
both unique, body ≤ 1024); a list holds at most 10 rows in all (title ≤ 24, id ≤ 200, description
≤ 72, body ≤ 4096, ``action.button`` ≤ 20). Beyond 10 options the question goes as numbered text.
An option's id is its Genesys payload, so the user's answer can carry it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
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
BUTTON = "Button"  # a card's postback buttons
DATE_PICKER = "DatePicker"
DATE_QUESTION = "Please choose a time:"
DATE_BUTTON_TEXT = "Choose a time"
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


def render_structured(
    raw: Mapping[str, Any], text: str | None, *, interactive: bool = True
) -> Rendered:
    """The WhatsApp rendering of a Structured notification's ``content`` (``text`` is its
    question). Malformed items are skipped, never raised on: the rest still reaches the user.
    ``interactive=False`` when only text can go (a template parameter, outside the 24-hour
    window): every quick-reply option is then numbered, cards and date pickers are text."""
    items = [i for i in _list(raw.get("content")) if isinstance(i, Mapping)]
    options = [o for i in items if i.get("contentType") == "QuickReply" if (o := _option(i))]
    native: tuple[Mapping[str, Any], dict[str, Any], str] | None = None
    if not options and interactive:
        candidates = [i for i in items if i.get("contentType") in ("Card", "DatePicker")]
        if len(candidates) == 1 and (fitted := native_menu(candidates[0])) is not None:
            native = (candidates[0], *fitted)
    blocks = [
        block
        for item in items
        if item.get("contentType") not in _NATIVE
        if native is None or item is not native[0]
        # Genesys renders a template notification into ``text`` already
        if not (text and item.get("contentType") == "Notification")
        if (block := render_item(item))
    ]
    if not options:
        shown = "\n\n".join(([text] if text else []) + blocks)
        if native is not None:
            return Rendered(shown, native[1], native[2])
        return Rendered(shown, None)
    question = text or DEFAULT_QUESTION
    if interactive and len(options) <= LIST_MAX and _ids_fit(options):
        limit = BUTTON_BODY if len(options) <= BUTTON_MAX else LIST_BODY
        if len(question) > limit:  # the whole question still goes, as text before the menu
            blocks.insert(0, question)
            question = DEFAULT_QUESTION
        menu = (
            buttons(question, options)
            if len(options) <= BUTTON_MAX
            else list_menu(question, options)
        )
        return Rendered("\n\n".join(blocks), menu, QUICK_REPLY)
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


def native_menu(item: Mapping[str, Any]) -> tuple[dict[str, Any], str] | None:
    """A card whose postback actions fit reply buttons (1-3), or a date picker whose times fit a
    list (1-10), as an interactive message and the ``buttonResponse.type`` its answer takes
    (``Button`` / ``DatePicker``); None when it does not fit (it then goes as text)."""
    if item.get("contentType") == "Card":
        return _card_buttons(_map(item.get("card")))
    if item.get("contentType") == "DatePicker":
        return _date_list(_map(item.get("datePicker")))
    return None


def _card_buttons(card: Mapping[str, Any]) -> tuple[dict[str, Any], str] | None:
    postbacks = []
    for action in _list(card.get("actions")):
        action = _map(action)
        label, payload = _str(action.get("text")), _str(action.get("payload"))
        if action.get("type") == "Postback" and label:
            postbacks.append(Option(label, payload or label))
    links = {**card, "actions": [a for a in _list(card.get("actions"))
                                 if _map(a).get("type") != "Postback"]}  # fmt: skip
    body = render_card(links)
    if not 1 <= len(postbacks) <= BUTTON_MAX or not _ids_fit(postbacks):
        return None
    if not body or len(body) > BUTTON_BODY:
        return None
    return buttons(body, postbacks), BUTTON


def _date_list(picker: Mapping[str, Any]) -> tuple[dict[str, Any], str] | None:
    rows = []
    for slot in _list(picker.get("availableTimes")):
        slot = _map(slot)
        when = _str(slot.get("dateTime"))
        if not when:
            continue
        row = {"id": when, "title": _cut(_when(when), ROW_TITLE)}
        duration = slot.get("duration")
        if isinstance(duration, int) and not isinstance(duration, bool) and duration > 0:
            row["description"] = f"{max(1, duration // 60)} min"
        rows.append(row)
    ids = [r["id"] for r in rows]
    if not 1 <= len(rows) <= LIST_MAX or len(set(ids)) != len(ids):
        return None
    if any(len(i) > ROW_ID for i in ids):
        return None
    question = "\n".join(v for key in ("title", "subtitle") if (v := _str(picker.get(key))))
    if url := _str(picker.get("imageUrl")):
        question = f"{question}\n{url}" if question else url
    question = question or DATE_QUESTION
    if len(question) > LIST_BODY:
        return None
    interactive = {
        "type": "list",
        "body": {"text": question},
        "action": {"button": DATE_BUTTON_TEXT, "sections": [{"rows": rows}]},
    }
    return interactive, DATE_PICKER


def _when(value: str) -> str:
    """``2026-05-30T12:00:00.000Z`` → ``30 May 2026 12:00 UTC`` (the offset as given)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    offset = moment.utcoffset()
    if offset is None:
        zone = ""
    elif not offset:
        zone = " UTC"
    else:
        zone = " " + moment.strftime("%z")
    return moment.strftime("%d %b %Y %H:%M") + zone


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
