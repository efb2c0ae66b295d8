"""WhatsApp → Genesys: one ``messages[]`` item → Open Messaging inbound message bodies.

The body is the minimal ``OpenInboundNormalizedMessage`` (reference/genesys.md §2.1)::

    {"channel": {"messageId": <wamid>, "time": <ISO-8601 UTC, ms>, "from": <participant>,
                 "metadata": {"customAttributes": {<str>: <str>}}},
     "text"?: <str>, "content"?: [{"attachment": {"mediaType", "url", "mime", "filename"}}]}

What each WhatsApp type becomes:

- ``text`` → ``text``.
- ``image``, ``sticker`` → ``Image``; ``video`` → ``Video``; ``audio`` (voice notes too) →
  ``Audio``; ``document`` → ``File`` (INTERFACE.md "Media types"). The URL comes from the caller's
  ``media_url_for`` (a signed interlink link: Meta's media URLs need a token Genesys does not
  have). The caption becomes the message ``text``; documents keep their file name, other media
  get one made from the MIME type.
- ``location`` → text: name, address, coordinates and a map link.
- ``contacts`` → text: one readable card per shared contact.
- ``interactive`` ``button_reply`` / ``list_reply`` and template ``button`` → the title the user
  tapped as text; the ids go to ``customAttributes`` (``waReplyId``, ``waButtonPayload``).
  ``nfm_reply`` (a WhatsApp Flow) → its answers as text.
- ``reaction`` → "reacted 👍 to a message" / "removed a reaction" or nothing, per
  :class:`InboundOptions`.
- ``unsupported``, ``system`` (number changed), ``order`` and any unknown future type → a notice
  to the agent in square brackets, so that nothing the user did goes unseen.

Long text: the Genesys agent UI shows at most 4000 characters for Open Messaging (HELP-RESP). A
longer text is **split** into several messages, in order, nothing dropped (WhatsApp texts are at
most 4096 characters, so two at most for a plain text). The first part keeps the wamid as
``messageId``; later parts get ``<wamid>#2``, ``#3``… and a time one millisecond apart, so that
they sort in order. An attachment rides on the first part.
"""

from __future__ import annotations

import json
import mimetypes
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from interlink.mapping.identity import GenesysParticipant
from interlink.mapping.wire import (
    MappingError,
    as_list,
    as_mapping,
    base_mime,
    iso_utc,
    optional_object,
    optional_str,
    required_str,
    split_text,
    unix_seconds,
)

GENESYS_TEXT_LIMIT = 4000
MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
GENESYS_MEDIA_TYPE = {
    "image": "Image",
    "sticker": "Image",
    "video": "Video",
    "audio": "Audio",
    "document": "File",
}
# Extensions for names we make up; mimetypes would answer ".jpe" or nothing for some of these.
_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/gif": "gif",
    "video/mp4": "mp4",
    "video/3gpp": "3gp",
    "audio/ogg": "ogg",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/aac": "aac",
    "audio/amr": "amr",
    "application/pdf": "pdf",
    "text/plain": "txt",
}
_FILENAME_MAX = 200
_UNSAFE_FILENAME = re.compile(r'[\\/:*?"<>|]+')


@dataclass(frozen=True, slots=True)
class MediaRef:
    """A WhatsApp media item, enough to fetch it (``GET /{media_id}``) and to describe it.

    ``kind`` is the WhatsApp type (``image video audio document sticker``); ``mime_type`` is as
    Meta sent it (parameters kept, e.g. ``audio/ogg; codecs=opus``); ``filename`` is the document's
    name or one made up; ``url`` is Meta's lookaside URL when the payload had one (it still needs
    the access token); ``voice`` marks a recorded voice note.
    """

    kind: str
    media_id: str
    mime_type: str
    filename: str
    phone_number_id: str
    sha256: str | None = None
    url: str | None = None
    voice: bool = False


@dataclass(frozen=True, slots=True)
class InboundOptions:
    """Choices a tenant may make about what reaches the agent."""

    reactions_as_text: bool = True
    reaction_removals_as_text: bool = True
    max_text_length: int = GENESYS_TEXT_LIMIT
    map_link: str = "https://www.google.com/maps/search/?api=1&query={latitude},{longitude}"


DEFAULT_OPTIONS = InboundOptions()


@dataclass(slots=True)
class _Draft:
    """What one WhatsApp message says, before it is cut into Genesys bodies."""

    text: str | None = None
    attachment: dict[str, str] | None = None


def media_ref(message: Mapping[str, Any], *, phone_number_id: str) -> MediaRef:
    """The :class:`MediaRef` of a media message (image, video, audio, document, sticker)."""
    kind = required_str(message, "type", "message")
    if kind not in MEDIA_KINDS:
        raise MappingError("message is not a media message")
    media = as_mapping(message.get(kind), f"message.{kind}")
    where = f"message.{kind}"
    media_id = required_str(media, "id", where)
    mime_type = required_str(media, "mime_type", where)
    if "/" not in base_mime(mime_type):
        raise MappingError(f"{where}.mime_type is not a MIME type")
    given_name = optional_str(media, "filename", where) if kind == "document" else None
    filename = safe_filename(given_name) if given_name else None
    voice = media.get("voice") is True
    return MediaRef(
        kind=kind,
        media_id=media_id,
        mime_type=mime_type,
        filename=filename or synthesized_filename(kind, media_id, mime_type, voice=voice),
        phone_number_id=phone_number_id,
        sha256=optional_str(media, "sha256", where),
        url=optional_str(media, "url", where),
        voice=voice,
    )


def safe_filename(name: str) -> str | None:
    """A file name fit to show and to put in a header: no directories, no control characters,
    at most 200 characters (extension kept). None when nothing usable is left."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE_FILENAME.sub("_", name).strip().strip(".")
    if not name:
        return None
    if len(name) > _FILENAME_MAX:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: _FILENAME_MAX - len(ext) - 1] + "." + ext
        else:
            name = name[:_FILENAME_MAX]
    return name


def synthesized_filename(kind: str, media_id: str, mime_type: str, *, voice: bool = False) -> str:
    """``image-1003383421387256.jpg``, ``voice-….ogg``: a name from the kind, id and MIME type."""
    mime = base_mime(mime_type)
    ext = _EXTENSIONS.get(mime)
    if ext is None:
        guessed = mimetypes.guess_extension(mime)
        ext = guessed.lstrip(".") if guessed else "bin"
    prefix = "voice" if voice else kind
    safe_id = re.sub(r"[^A-Za-z0-9_-]", "", media_id)[:64] or "media"
    return f"{prefix}-{safe_id}.{ext}"


def to_genesys_inbound(
    message: Mapping[str, Any],
    contact: Mapping[str, Any] | None,
    *,
    phone_number_id: str,
    participant: GenesysParticipant,
    media_url_for: Callable[[MediaRef], str],
    options: InboundOptions = DEFAULT_OPTIONS,
) -> list[dict[str, Any]]:
    """The Open Messaging inbound bodies for one WhatsApp ``messages[]`` item, in order.

    Usually one body; several when the text is longer than ``options.max_text_length`` (see the
    module docstring); none when the options drop it (reactions). ``contact`` is the matching
    ``contacts[]`` entry or None; what it says about the user is already in ``participant`` (built
    with ``identity``), so it is accepted for symmetry and not read. ``media_url_for`` is called
    once for a media message.

    Raises MappingError for a malformed item (missing ``id``, bad ``timestamp``, a media message
    without ``id``/``mime_type``, coordinates that are not numbers, …).
    """
    del contact  # the participant already carries what the contact said about the user
    wamid = required_str(message, "id", "message")
    seconds = unix_seconds(message.get("timestamp"), "message.timestamp")
    kind = required_str(message, "type", "message")
    draft = _draft(kind, message, phone_number_id, media_url_for, options)
    if draft is None:
        return []
    attributes = {"waPhoneNumberId": phone_number_id, "waMessageType": kind}
    attributes.update(_context_attributes(message))
    attributes.update(_kind_attributes(kind, message))
    return _bodies(wamid, seconds, participant, attributes, draft, options.max_text_length)


def _bodies(
    wamid: str,
    seconds: int,
    participant: GenesysParticipant,
    attributes: dict[str, str],
    draft: _Draft,
    limit: int,
) -> list[dict[str, Any]]:
    parts: list[str | None] = list(split_text(draft.text, limit)) if draft.text else [None]
    bodies = []
    for index, text in enumerate(parts):
        body: dict[str, Any] = {
            "channel": {
                "messageId": wamid if index == 0 else f"{wamid}#{index + 1}",
                "time": iso_utc(seconds + index / 1000),
                "from": dict(participant),
                "metadata": {"customAttributes": dict(attributes)},
            },
        }
        if text:
            body["text"] = text
        if index == 0 and draft.attachment is not None:
            body["content"] = [{"attachment": dict(draft.attachment)}]
        bodies.append(body)
    return bodies


def _draft(
    kind: str,
    message: Mapping[str, Any],
    phone_number_id: str,
    media_url_for: Callable[[MediaRef], str],
    options: InboundOptions,
) -> _Draft | None:
    if kind == "text":
        body = as_mapping(message.get("text"), "message.text")
        return _Draft(text=required_str(body, "body", "message.text"))
    if kind in MEDIA_KINDS:
        return _media_draft(message, phone_number_id, media_url_for)
    if kind == "location":
        return _Draft(
            text=_location_text(as_mapping(message.get("location"), "message.location"), options)
        )
    if kind == "contacts":
        return _Draft(text=_contacts_text(as_list(message.get("contacts"), "message.contacts")))
    if kind == "interactive":
        return _Draft(
            text=_interactive_text(as_mapping(message.get("interactive"), "message.interactive"))
        )
    if kind == "button":
        button = as_mapping(message.get("button"), "message.button")
        text = optional_str(button, "text", "message.button") or optional_str(
            button, "payload", "message.button"
        )
        if text is None:
            raise MappingError("message.button needs a text or a payload")
        return _Draft(text=text)
    if kind == "reaction":
        return _reaction_draft(as_mapping(message.get("reaction"), "message.reaction"), options)
    if kind == "order":
        return _Draft(text=_order_text(as_mapping(message.get("order"), "message.order")))
    if kind == "system":
        return _Draft(text=_system_text(message.get("system")))
    if kind == "unsupported":
        return _Draft(text=_unsupported_text(message))
    return _Draft(
        text=notice(
            f"The customer sent a WhatsApp message of a type this bridge cannot show ({_label(kind)})."
        )
    )


def notice(sentence: str) -> str:
    """How the bridge speaks to the agent in the customer's stream: ``[WhatsApp: …]``."""
    return f"[WhatsApp: {sentence}]"


def _label(value: str) -> str:
    """A type name from the payload, safe to echo in a notice: short, word characters only."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "", value)[:40]
    return cleaned or "unknown"


def _media_draft(
    message: Mapping[str, Any], phone_number_id: str, media_url_for: Callable[[MediaRef], str]
) -> _Draft:
    ref = media_ref(message, phone_number_id=phone_number_id)
    media = as_mapping(message.get(ref.kind), f"message.{ref.kind}")
    caption = optional_str(media, "caption", f"message.{ref.kind}")
    url = media_url_for(ref)
    if not isinstance(url, str) or not url:
        raise MappingError("media_url_for returned no URL")
    attachment = {
        "mediaType": GENESYS_MEDIA_TYPE[ref.kind],
        "url": url,
        "mime": base_mime(ref.mime_type),
        "filename": ref.filename,
    }
    return _Draft(text=caption, attachment=attachment)


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


def _location_text(location: Mapping[str, Any], options: InboundOptions) -> str:
    latitude = _number(location.get("latitude"), "message.location.latitude", -90, 90)
    longitude = _number(location.get("longitude"), "message.location.longitude", -180, 180)
    lines = ["📍 Location"]
    for key in ("name", "address"):
        value = optional_str(location, key, "message.location")
        if value:
            lines.append(value.strip())
    lat, lon = f"{latitude:.6f}".rstrip("0").rstrip("."), f"{longitude:.6f}".rstrip("0").rstrip(".")
    lines.append(f"{lat}, {lon}")
    lines.append(options.map_link.format(latitude=lat, longitude=lon))
    return "\n".join(lines)


def _contacts_text(cards: list[Any]) -> str:
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


def _interactive_text(interactive: Mapping[str, Any]) -> str:
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
        f"The customer answered an interactive message of a type this bridge cannot show ({_label(subtype)})."
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


def _reaction_draft(reaction: Mapping[str, Any], options: InboundOptions) -> _Draft | None:
    emoji = optional_str(reaction, "emoji", "message.reaction")
    if emoji is None:  # the key is absent when the user removes a reaction (S-R-REACT)
        return _Draft(text="removed a reaction") if options.reaction_removals_as_text else None
    return (
        _Draft(text=f"reacted {emoji.strip()} to a message") if options.reactions_as_text else None
    )


def _order_text(order: Mapping[str, Any]) -> str:
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


def _system_text(system: object) -> str:
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


def _unsupported_text(message: Mapping[str, Any]) -> str:
    unsupported = message.get("unsupported")
    subtype = None
    if isinstance(unsupported, Mapping) and isinstance(unsupported.get("type"), str):
        subtype = _label(unsupported["type"])
    what = f" ({subtype})" if subtype else ""
    return notice(
        f"The customer sent something WhatsApp does not deliver to businesses{what}. "
        "Ask them to send it another way if it matters."
    )


def _context_attributes(message: Mapping[str, Any]) -> dict[str, str]:
    context = message.get("context")
    if not isinstance(context, Mapping):
        return {}
    attributes = {}
    quoted = context.get("id")
    if isinstance(quoted, str) and quoted:
        attributes["waContextMessageId"] = quoted
    if context.get("forwarded") is True or context.get("frequently_forwarded") is True:
        attributes["waForwarded"] = "true"
    return attributes


def _kind_attributes(kind: str, message: Mapping[str, Any]) -> dict[str, str]:
    """The ids behind a tap, kept for Architect flows (``customAttributes`` are strings only)."""
    if kind == "interactive":
        interactive = message.get("interactive")
        if isinstance(interactive, Mapping):
            subtype = interactive.get("type")
            reply = interactive.get(subtype) if isinstance(subtype, str) else None
            if isinstance(reply, Mapping) and isinstance(reply.get("id"), str):
                return {"waReplyType": str(subtype), "waReplyId": reply["id"]}
    if kind == "button":
        button = message.get("button")
        if isinstance(button, Mapping) and isinstance(button.get("payload"), str):
            return {"waButtonPayload": button["payload"]}
    if kind == "reaction":
        reaction = message.get("reaction")
        if isinstance(reaction, Mapping) and isinstance(reaction.get("message_id"), str):
            return {"waReactionMessageId": reaction["message_id"]}
    return {}
