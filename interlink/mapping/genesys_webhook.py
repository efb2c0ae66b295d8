"""Read a Genesys Open Messaging outbound notification: one normalized message per request.

:func:`genesys_route` reads, before the signature is checked, only what names the tenant;
:func:`parse_genesys_notification` reads and classifies the whole notification once it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from interlink.mapping.wire import (
    MappingError,
    as_mapping,
    optional_list,
    optional_object,
    optional_str,
    required_str,
    whole_number,
)


@dataclass(frozen=True, slots=True)
class GenesysAttachment:
    """``content[].attachment`` of an outbound notification."""

    media_type: str
    url: str
    mime: str | None
    filename: str | None
    size_bytes: int | None
    attachment_id: str | None


@dataclass(frozen=True, slots=True)
class GenesysNotification:
    """An Open Messaging outbound notification (``OpenOutboundNormalizedMessage``), classified.

    - ``type``: ``Text | Structured | Receipt | Event`` as sent; an unknown future type is kept
      as is (``is_agent_message`` is then False).
    - ``message_id``: ``id`` (the receipt id and dedupe key); required for Text/Structured/
      Receipt, may be None for an Event.
    - ``user_id``: ``channel.to.id`` — the participant id we gave Genesys; required for
      Text/Structured.
    - ``integration_id``: ``channel.id`` (the Open Messaging integration).
    - ``text``: the message text, or for a Structured notification its rendered ``text``.
    - ``attachments``: every ``content[].attachment`` (contentType ``Attachment`` or unspecified).
    """

    type: str
    direction: str | None
    message_id: str | None
    conversation_id: str | None
    integration_id: str | None
    user_id: str | None
    user_id_type: str | None
    text: str | None
    attachments: tuple[GenesysAttachment, ...] = field(default_factory=tuple)
    originating_entity: str | None = None
    time: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_agent_message(self) -> bool:
        """A message for the WhatsApp user: Text or Structured, direction Outbound.

        A missing ``direction`` counts as Outbound: this webhook only carries outbound messages,
        and dropping an agent's message silently would be worse than sending it.
        """
        return self.type in ("Text", "Structured") and self.direction in (None, "Outbound")

    @property
    def is_typing(self) -> bool:
        """An agent started typing: an outbound ``Event`` with a ``Typing`` event that is not
        ``Off``, for a known user (``channel.to.id``)."""
        if self.type != "Event" or self.direction not in (None, "Outbound") or not self.user_id:
            return False
        events = self.raw.get("events")
        return isinstance(events, list) and any(_typing_on(event) for event in events)

    @property
    def dedupe_key(self) -> str | None:
        return self.message_id


class GenesysRoute(NamedTuple):
    """What may name the tenant of a Genesys notification: its ``conversationId`` (looked up in
    the conversation mapping) and the integration ids ``channel.id`` and ``channel.from.id``.
    Absent or non-string values are None."""

    conversation_id: str | None
    integration_ids: tuple[str, ...]


def genesys_route(body: object) -> GenesysRoute:
    """Read only what finds the tenant of a parsed Genesys webhook body, before its signature is
    checked: a few fields at fixed places, so an unsigned body costs a bounded amount and learns
    nothing of the rest of its shape. MappingError when the body or its ``channel`` is not an
    object (without them no tenant can be found); the full reading is
    :func:`parse_genesys_notification`, once the signature is checked."""
    message = as_mapping(body, "notification")
    channel = as_mapping(message.get("channel"), "notification.channel")
    sender = channel.get("from")
    candidates = (channel.get("id"), sender.get("id") if isinstance(sender, Mapping) else None)
    return GenesysRoute(
        _nonblank(message.get("conversationId")),
        tuple(found for value in candidates if (found := _nonblank(value)) is not None),
    )


def _typing_on(event: object) -> bool:
    if not isinstance(event, Mapping) or event.get("eventType") != "Typing":
        return False
    typing = event.get("typing")
    return not (isinstance(typing, Mapping) and typing.get("type") == "Off")


def _nonblank(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def parse_genesys_notification(body: object) -> GenesysNotification:
    """Read a parsed Genesys webhook body; MappingError when it cannot be handled safely."""
    message = as_mapping(body, "notification")
    kind = required_str(message, "type", "notification")
    direction = optional_str(message, "direction", "notification")
    channel = as_mapping(message.get("channel"), "notification.channel")
    to = optional_object(channel, "to", "notification.channel")
    needs_ids = kind in ("Text", "Structured", "Receipt")
    message_id = (
        required_str(message, "id", "notification")
        if needs_ids
        else optional_str(message, "id", "notification")
    )
    if kind in ("Text", "Structured"):
        if to is None:
            raise MappingError("notification.channel.to must be an object")
        user_id: str | None = required_str(to, "id", "notification.channel.to")
    else:
        user_id = optional_str(to, "id", "notification.channel.to") if to else None
    return GenesysNotification(
        type=kind,
        direction=direction,
        message_id=message_id,
        conversation_id=optional_str(message, "conversationId", "notification"),
        integration_id=optional_str(channel, "id", "notification.channel"),
        user_id=user_id,
        user_id_type=optional_str(to, "idType", "notification.channel.to") if to else None,
        text=_notification_text(message),
        attachments=_attachments(message),
        originating_entity=optional_str(message, "originatingEntity", "notification"),
        time=optional_str(channel, "time", "notification.channel"),
        raw=message,
    )


def _notification_text(message: Mapping[str, Any]) -> str | None:
    text = message.get("text")
    if text is None:
        return None
    if not isinstance(text, str):
        raise MappingError("notification.text must be a string")
    return text if text.strip() else None


def _attachments(message: Mapping[str, Any]) -> tuple[GenesysAttachment, ...]:
    found = []
    for index, item in enumerate(optional_list(message, "content", "notification")):
        where = f"notification.content[{index}]"
        item_map = as_mapping(item, where)
        content_type = optional_str(item_map, "contentType", where)
        if content_type not in (None, "Attachment"):
            continue  # Notification (template), quick replies, cards: carried by `text`
        attachment = optional_object(item_map, "attachment", where)
        if attachment is None:
            continue
        where = f"{where}.attachment"
        found.append(
            GenesysAttachment(
                media_type=required_str(attachment, "mediaType", where),
                url=required_str(attachment, "url", where),
                mime=optional_str(attachment, "mime", where),
                filename=optional_str(attachment, "filename", where),
                size_bytes=_size(attachment.get("contentSizeBytes"), where),
                attachment_id=optional_str(attachment, "id", where),
            )
        )
    return tuple(found)


def _size(value: object, where: str) -> int | None:
    if value is None:
        return None
    size = whole_number(value, f"{where}.contentSizeBytes")
    if size < 0:
        raise MappingError(f"{where}.contentSizeBytes must not be negative")
    return size
