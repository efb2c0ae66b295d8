"""WhatsApp → Genesys: one ``messages[]`` item → Open Messaging inbound message bodies.

The body is the minimal ``OpenInboundNormalizedMessage`` of
``POST /api/v2/conversations/messages/{integrationId}/inbound/open/message``::

    {"channel": {"messageId": <wamid>, "time": <ISO-8601 UTC, ms>, "from": <participant>,
                 "metadata": {"customAttributes": {<str>: <str>}}},
     "text"?: <str>, "content"?: [{"attachment": {"mediaType", "url", "mime", "filename"}}]}

What each WhatsApp type becomes:

- ``text`` → ``text``.
- ``image``, ``sticker`` → ``Image``; ``video`` → ``Video``; ``audio`` (voice notes too) →
  ``Audio``; ``document`` → ``File``. The URL comes from the caller's
  ``media_url_for`` (a signed interlink link: Meta's media URLs need a token Genesys does not
  have). The caption becomes the message ``text``; documents keep their file name, other media
  get one made from the MIME type.
- ``location`` → text: name, address, coordinates and a map link.
- ``contacts`` → text: one readable card per shared contact.
- ``interactive`` ``button_reply`` / ``list_reply`` and template ``button`` → the title the user
  tapped as text; the ids go to ``customAttributes`` (``waReplyId``, ``waButtonPayload``).
  A ``button_reply`` / ``list_reply`` answering a Genesys quick reply (its ``context.id`` is a
  wamid the agent-message flow mapped to a Genesys message) is instead a structured response,
  see :func:`to_structured_response`.
  ``nfm_reply`` (a WhatsApp Flow) → its answers as text.
- ``reaction`` → "reacted 👍 to a message" / "removed a reaction" or nothing, per
  :class:`InboundOptions`.
- ``request_welcome`` (the user opened the chat for the first time, no content) → nothing: it
  must not open a Genesys conversation.
- ``edit`` (numbers shared with the WhatsApp Business app) → a notice that the customer edited a
  message, then the new text; ``revoke`` → a notice that the customer deleted a message. The
  original wamid goes to ``customAttributes`` (``waEditedMessageId`` / ``waRevokedMessageId``).
- ``unsupported``, ``system`` (number changed), ``order`` and any unknown future type → a notice
  to the agent in square brackets, so that nothing the user did goes unseen.

Long text: the Genesys agent UI shows at most 4000 characters for Open Messaging
(https://help.mypurecloud.com/?p=174625). A
longer text is **split** into several messages, in order, nothing dropped (WhatsApp texts are at
most 4096 characters, so two at most for a plain text). The first part keeps the wamid as
``messageId``; later parts get ``<wamid>#2``, ``#3``… and a time one millisecond apart, so that
they sort in order. An attachment rides on the first part.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from interlink.mapping.identity import GenesysParticipant
from interlink.mapping.inbound_text import (
    contacts_text,
    edit_text,
    interactive_text,
    label,
    location_text,
    notice,
    order_text,
    revoke_text,
    system_text,
    unsupported_text,
)
from interlink.mapping.media import GENESYS_MEDIA_TYPE, MEDIA_KINDS, MediaRef, media_ref
from interlink.mapping.wire import (
    MappingError,
    as_list,
    as_mapping,
    base_mime,
    iso_utc,
    optional_str,
    required_str,
    split_text,
    unix_seconds,
)

GENESYS_TEXT_LIMIT = 4000


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


def answered_menu(message: Mapping[str, Any]) -> str | None:
    """The wamid of the menu a ``button_reply`` / ``list_reply`` answers (its ``context.id``),
    or None for any other message: only such a tap can be a quick-reply answer."""
    if message.get("type") != "interactive":
        return None
    interactive = message.get("interactive")
    if not isinstance(interactive, Mapping):
        return None
    if interactive.get("type") not in ("button_reply", "list_reply"):
        return None
    context = message.get("context")
    quoted = context.get("id") if isinstance(context, Mapping) else None
    return quoted if isinstance(quoted, str) and quoted else None


BUTTON_RESPONSE_TYPES = ("QuickReply", "Button", "DatePicker")


def to_structured_response(
    message: Mapping[str, Any],
    *,
    phone_number_id: str,
    participant: GenesysParticipant,
    originating_message_id: str,
    response_type: str = "QuickReply",
) -> dict[str, Any]:
    """The ``OpenInboundStructuredResponseMessage`` for a tap on a Genesys menu
    (``POST …/inbound/open/structured/response``)::

        {"channel": {<as for a message>}, "originatingMessageId": <the menu's Genesys id>,
         "buttonResponse": {"type": <response_type>, "text": <title>, "payload": <reply id>}}

    The reply id is the option's payload (the outbound mapping put it there), which is what the
    bot matches on; the title is what the user saw. ``response_type`` is what the menu was:
    ``QuickReply`` (a bot's quick replies), ``Button`` (a card's postback buttons) or
    ``DatePicker`` (a date picker's times, where text and payload are both the chosen ISO time,
    as Genesys's own channels answer). Raises MappingError for a message :func:`answered_menu`
    does not accept, a reply without an id or an unknown type.
    """
    if answered_menu(message) is None:
        raise MappingError("message is not a button or list reply to a menu")
    interactive = as_mapping(message.get("interactive"), "message.interactive")
    subtype = str(interactive["type"])
    where = f"message.interactive.{subtype}"
    reply = as_mapping(interactive.get(subtype), where)
    payload = required_str(reply, "id", where)
    title = optional_str(reply, "title", where) or payload
    if response_type == "DatePicker":
        title = payload
    return structured_response(
        message,
        phone_number_id=phone_number_id,
        participant=participant,
        originating_message_id=originating_message_id,
        response_type=response_type,
        text=title,
        payload=payload,
    )


def structured_response(
    message: Mapping[str, Any],
    *,
    phone_number_id: str,
    participant: GenesysParticipant,
    originating_message_id: str,
    response_type: str,
    text: str,
    payload: str,
) -> dict[str, Any]:
    """A structured response for ``message`` (a tap, or a text naming a numbered option) that
    picked the option ``text`` / ``payload`` of a menu of type ``response_type``."""
    if response_type not in BUTTON_RESPONSE_TYPES:
        raise MappingError("unknown buttonResponse type")
    if not text or not payload:
        raise MappingError("a structured response needs a text and a payload")
    wamid = required_str(message, "id", "message")
    seconds = unix_seconds(message.get("timestamp"), "message.timestamp")
    kind = required_str(message, "type", "message")
    attributes = {"waPhoneNumberId": phone_number_id, "waMessageType": kind}
    attributes.update(_context_attributes(message))
    attributes.update(_kind_attributes(kind, message))
    return {
        "channel": {
            "messageId": wamid,
            "time": iso_utc(seconds),
            "from": dict(participant),
            "metadata": {"customAttributes": attributes},
        },
        "originatingMessageId": originating_message_id,
        "buttonResponse": {"type": response_type, "text": text, "payload": payload},
    }


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
            text=location_text(
                as_mapping(message.get("location"), "message.location"), options.map_link
            )
        )
    if kind == "contacts":
        return _Draft(text=contacts_text(as_list(message.get("contacts"), "message.contacts")))
    if kind == "interactive":
        return _Draft(
            text=interactive_text(as_mapping(message.get("interactive"), "message.interactive"))
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
        return _Draft(text=order_text(as_mapping(message.get("order"), "message.order")))
    if kind == "system":
        return _Draft(text=system_text(message.get("system")))
    if kind == "unsupported":
        return _Draft(text=unsupported_text(message))
    if kind == "request_welcome":
        return None
    if kind == "edit":
        return _Draft(text=edit_text(as_mapping(message.get("edit"), "message.edit")))
    if kind == "revoke":
        return _Draft(text=revoke_text(as_mapping(message.get("revoke"), "message.revoke")))
    return _Draft(
        text=notice(
            f"The customer sent a WhatsApp message of a type this bridge cannot show ({label(kind)})."
        )
    )


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


def _reaction_draft(reaction: Mapping[str, Any], options: InboundOptions) -> _Draft | None:
    emoji = optional_str(reaction, "emoji", "message.reaction")
    if emoji is None:  # the key is absent when the user removes a reaction (S-R-REACT)
        return _Draft(text="removed a reaction") if options.reaction_removals_as_text else None
    return (
        _Draft(text=f"reacted {emoji.strip()} to a message") if options.reactions_as_text else None
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
    if kind in _ORIGINAL_ATTRIBUTE:
        changed = message.get(kind)
        if isinstance(changed, Mapping) and isinstance(changed.get("original_message_id"), str):
            return {_ORIGINAL_ATTRIBUTE[kind]: changed["original_message_id"]}
    return {}


_ORIGINAL_ATTRIBUTE = {"edit": "waEditedMessageId", "revoke": "waRevokedMessageId"}
