"""What the WhatsApp messages that are not plain text read as for the agent.

- ``location`` → name, address, coordinates and a map link.
- ``contacts`` → one readable card per shared contact.
- ``interactive`` ``button_reply`` / ``list_reply`` → the title the user tapped; ``nfm_reply`` (a
  WhatsApp Flow) → its answers.
- ``edit`` → a notice that the customer edited a message, then the new text (or caption);
  ``revoke`` → a notice that the customer deleted a message.
- ``order``, ``system`` (number changed), ``unsupported`` → a :func:`notice` to the agent in
  square brackets, so that nothing the user did goes unseen.

Every function raises MappingError for a malformed part, naming the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from interlink.mapping.wire import (
    MappingError,
    as_list,
    as_mapping,
    optional_object,
    optional_str,
    required_str,
)


def notice(sentence: str) -> str:
    """How the bridge speaks to the agent in the customer's stream: ``[WhatsApp: …]``."""
    return f"[WhatsApp: {sentence}]"


def label(value: str) -> str:
    """A type name from the payload, safe to echo in a notice: short, word characters only."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "", value)[:40]
    return cleaned or "unknown"


def _number(value: object, where: str, low: float, high: float) -> float:
    if isinstance(value, bool):
        raise MappingError(f"{where} must be a number")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise MappingError(f"{where} must be a number") from None
    else:
        raise MappingError(f"{where} must be a number")
    if not low <= number <= high:  # also refuses NaN
        raise MappingError(f"{where} is out of range")
    return number


def location_text(location: Mapping[str, Any], map_link: str) -> str:
    """``map_link`` is a format string with ``{latitude}`` and ``{longitude}``."""
    latitude = _number(location.get("latitude"), "message.location.latitude", -90, 90)
    longitude = _number(location.get("longitude"), "message.location.longitude", -180, 180)
    lines = ["📍 Location"]
    for key in ("name", "address"):
        value = optional_str(location, key, "message.location")
        if value:
            lines.append(value.strip())
    lat, lon = f"{latitude:.6f}".rstrip("0").rstrip("."), f"{longitude:.6f}".rstrip("0").rstrip(".")
    lines.append(f"{lat}, {lon}")
    lines.append(map_link.format(latitude=lat, longitude=lon))
    return "\n".join(lines)


def contacts_text(cards: list[Any]) -> str:
    if not cards:
        raise MappingError("message.contacts must not be empty")
    blocks = []
    for index, card in enumerate(cards):
        blocks.append(_contact_card(as_mapping(card, f"message.contacts[{index}]"), index))
    heading = "👤 Shared contact" if len(blocks) == 1 else f"👤 Shared contacts ({len(blocks)})"
    return heading + "\n" + "\n\n".join(blocks)


def _contact_card(card: Mapping[str, Any], index: int) -> str:
    where = f"message.contacts[{index}]"
    lines = []
    name = optional_object(card, "name", where)
    formatted = None
    if name is not None:
        formatted = optional_str(name, "formatted_name", f"{where}.name") or " ".join(
            part
            for part in (
                optional_str(name, "first_name", f"{where}.name"),
                optional_str(name, "last_name", f"{where}.name"),
            )
            if part
        )
    lines.append(f"Name: {formatted}" if formatted else "Name: (none)")
    org = optional_object(card, "org", where)
    if org is not None:
        company = optional_str(org, "company", f"{where}.org")
        if company:
            lines.append(f"Company: {company}")
    for field_name, key, label in (
        ("phones", "phone", "Phone"),
        ("emails", "email", "Email"),
        ("urls", "url", "URL"),
    ):
        for entry_index, entry in enumerate(_optional_entries(card, field_name, where)):
            entry_where = f"{where}.{field_name}[{entry_index}]"
            value = optional_str(entry, key, entry_where)
            if value is None and field_name == "phones":
                value = optional_str(entry, "wa_id", entry_where)
            if value:
                kind = optional_str(entry, "type", entry_where)
                lines.append(f"{label}: {value}" + (f" ({kind})" if kind else ""))
    birthday = optional_str(card, "birthday", where)
    if birthday:
        lines.append(f"Birthday: {birthday}")
    return "\n".join(lines)


def _optional_entries(card: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    value = card.get(key)
    if value is None:
        return []
    return [
        as_mapping(item, f"{where}.{key}[{i}]")
        for i, item in enumerate(as_list(value, f"{where}.{key}"))
    ]


def interactive_text(interactive: Mapping[str, Any]) -> str:
    subtype = required_str(interactive, "type", "message.interactive")
    if subtype in ("button_reply", "list_reply"):
        reply = as_mapping(interactive.get(subtype), f"message.interactive.{subtype}")
        title = optional_str(reply, "title", f"message.interactive.{subtype}")
        reply_id = optional_str(reply, "id", f"message.interactive.{subtype}")
        if title is None and reply_id is None:
            raise MappingError(f"message.interactive.{subtype} needs a title or an id")
        text = title or reply_id or ""
        description = optional_str(reply, "description", f"message.interactive.{subtype}")
        return f"{text}\n{description}" if description else text
    if subtype == "nfm_reply":
        return _flow_reply_text(
            as_mapping(interactive.get("nfm_reply"), "message.interactive.nfm_reply")
        )
    return notice(
        f"The customer answered an interactive message of a type this bridge cannot show ({label(subtype)})."
    )


def _flow_reply_text(reply: Mapping[str, Any]) -> str:
    lines = ["📝 Form submitted"]
    raw = reply.get("response_json")
    answers: object = None
    if isinstance(raw, str):
        try:
            answers = json.loads(raw)
        except ValueError:
            answers = None
    if isinstance(answers, Mapping):
        for key, value in answers.items():
            if key == "flow_token":
                continue  # our own correlation token, not an answer
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            lines.append(f"{key}: {shown}")
    else:
        body = optional_str(reply, "body", "message.interactive.nfm_reply")
        if body:
            lines.append(body)
    return "\n".join(lines)


def order_text(order: Mapping[str, Any]) -> str:
    lines = []
    items = order.get("product_items")
    for index, item in enumerate(
        as_list(items, "message.order.product_items") if items is not None else []
    ):
        where = f"message.order.product_items[{index}]"
        entry = as_mapping(item, where)
        sku = entry.get("product_retailer_id")
        quantity, price, currency = (
            entry.get("quantity"),
            entry.get("item_price"),
            entry.get("currency"),
        )
        line = f"- {_scalar(quantity)} x {_scalar(sku)}"
        if price is not None:
            line += f" at {_scalar(price)}" + (
                f" {_scalar(currency)}" if currency is not None else ""
            )
        lines.append(line)
    text = optional_str(order, "text", "message.order")
    head = notice(
        "The customer sent an order from the catalog. Items:"
        if lines
        else "The customer sent an order from the catalog."
    )
    parts = [head, *lines]
    if text:
        parts.append(f"Note: {text}")
    return "\n".join(parts)


def _scalar(value: object) -> str:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)[:64]
    return "?"


def system_text(system: object) -> str:
    body = as_mapping(system, "message.system")
    subtype = optional_str(body, "type", "message.system")
    if subtype == "user_changed_number":
        new_number = optional_str(body, "wa_id", "message.system")
        if new_number:
            return notice(f"The customer changed their phone number to +{new_number.lstrip('+')}.")
        return notice("The customer changed their phone number.")
    if subtype == "user_changed_user_id":
        return notice("The customer's WhatsApp account changed (new business-scoped id).")
    return notice("WhatsApp reported a change of the customer's account.")


def unsupported_text(message: Mapping[str, Any]) -> str:
    unsupported = message.get("unsupported")
    subtype = None
    if isinstance(unsupported, Mapping) and isinstance(unsupported.get("type"), str):
        subtype = label(unsupported["type"])
    what = f" ({subtype})" if subtype else ""
    return notice(
        f"The customer sent something WhatsApp does not deliver to businesses{what}. "
        "Ask them to send it another way if it matters."
    )


def edit_text(edit: Mapping[str, Any]) -> str:
    """``edit.message`` is the whole new message; WhatsApp lets users edit texts and captions."""
    new = as_mapping(edit.get("message"), "message.edit.message")
    kind = optional_str(new, "type", "message.edit.message")
    content = new.get(kind) if kind else None
    new_text = None
    if isinstance(content, Mapping):
        key = "body" if kind == "text" else "caption"
        new_text = optional_str(content, key, f"message.edit.message.{label(kind or '')}")
    if new_text:
        return notice("The customer edited a message. New text:") + "\n" + new_text
    return notice("The customer edited a message; the new version cannot be shown here.")


def revoke_text(revoke: Mapping[str, Any]) -> str:
    del revoke  # only the deleted message's id, which goes to customAttributes
    return notice("The customer deleted a message.")
