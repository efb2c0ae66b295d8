"""Genesys → WhatsApp: an agent's Open Messaging notification → Graph API ``/messages`` bodies.

Each body is ready for ``POST {graph}/{phone-number-id}/messages``
(https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/send-messages)::

    {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "+<digits>",
     "type": "text", "text": {"body": ..., "preview_url": ...},
     "biz_opaque_callback_data": <Genesys message id>}

One Genesys message may become several sends, in this order:

1. its text, cut into parts of at most 4096 characters (WhatsApp's limit; nothing dropped) —
   unless it fits as the caption of its single image, video or document (≤ 1024 characters);
2. one media send per attachment, by ``link`` (the Genesys download URL as given: Meta cannot
   fetch it without the Genesys token, so the caller replaces it with an uploaded media id,
   :func:`with_media_id`, or a signed interlink link).

Every send carries the Genesys message id in ``biz_opaque_callback_data``, which Meta echoes in
the status webhooks, so statuses find their Genesys message again.

Attachments are checked against Meta's types and size limits (the ``business-phone-numbers/media``
page under https://developers.facebook.com/documentation/business-messaging/whatsapp/) before
anything is built: a refusal raises :class:`MediaRejected` with the Genesys receipt reason
(``MediaTypeNotAllowed`` / ``InvalidMediaContentLength``), to be reported as a ``Failed`` receipt.
The WhatsApp kind follows the MIME type, not Genesys's ``mediaType`` (Meta validates the MIME).
Stickers are never sent for agents; GIF, WebP and other images Meta does not show as images
(only JPEG and PNG) go as documents.

A ``Structured`` message (quick replies, cards, carousels, date pickers) is rendered by
:mod:`interlink.mapping.structured`: readable text first, then at most one ``interactive`` send.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from interlink.mapping.genesys_webhook import (
    GenesysAttachment,
    GenesysNotification,
    parse_genesys_notification,
)
from interlink.mapping.identity import recipient_fields
from interlink.mapping.structured import render_structured
from interlink.mapping.wire import MappingError, base_mime, split_text, utf16_length

WHATSAPP_TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 512
TEMPLATE_PARAMETER_LIMIT = 1024  # a template body (parameters included) holds at most 1024
SERVICE_WINDOW_SECONDS = 24 * 3600
_MB = 1024 * 1024

MediaReason = Literal["MediaTypeNotAllowed", "InvalidMediaContentLength"]


@dataclass(frozen=True, slots=True)
class MediaLimit:
    kind: str
    mime_types: frozenset[str]
    max_bytes: int
    captions: bool


MEDIA_LIMITS: tuple[MediaLimit, ...] = (
    MediaLimit("image", frozenset({"image/jpeg", "image/png"}), 5 * _MB, captions=True),
    MediaLimit("video", frozenset({"video/mp4", "video/3gpp"}), 16 * _MB, captions=True),
    MediaLimit(
        "audio",
        frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}),
        16 * _MB,
        captions=False,
    ),
    MediaLimit(
        "document",
        frozenset(
            {
                "text/plain",
                "application/pdf",
                "application/msword",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.ms-excel",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "application/vnd.ms-powerpoint",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            }
        ),
        100 * _MB,
        captions=True,
    ),
)
# WhatsApp shows only JPEG and PNG as images; any other image (GIF, WebP, …) still reaches the
# user as a file.
_IMAGE_AS_DOCUMENT = MediaLimit("document", frozenset(), 100 * _MB, captions=True)
_LIMIT_BY_MIME = {mime: limit for limit in MEDIA_LIMITS for mime in limit.mime_types}


class MediaRejected(MappingError):
    """An attachment WhatsApp would refuse. ``reason`` is the Genesys receipt reason code;
    ``str(error)`` is a message fit for the receipt (MIME type and size, nothing else)."""

    def __init__(self, reason: MediaReason, message: str) -> None:
        super().__init__(message)
        self.reason: MediaReason = reason


def media_limit(mime: str | None, size_bytes: int | None = None) -> MediaLimit:
    """The WhatsApp media kind and limits for ``mime``; MediaRejected when the type is not one
    WhatsApp accepts or ``size_bytes`` (when known) is above its limit.

    Call it again with the real size once the file is downloaded: Genesys's
    ``contentSizeBytes`` may be absent.
    """
    mime_type = base_mime(mime or "")
    limit = _LIMIT_BY_MIME.get(mime_type)
    if limit is None and mime_type.startswith("image/") and len(mime_type) > len("image/"):
        limit = _IMAGE_AS_DOCUMENT
    if limit is None:
        shown = mime_type[:80] if mime_type.isascii() and mime_type else "unknown"
        raise MediaRejected("MediaTypeNotAllowed", f"WhatsApp does not accept {shown} attachments")
    if size_bytes is not None and size_bytes > limit.max_bytes:
        raise MediaRejected(
            "InvalidMediaContentLength",
            f"{limit.kind} of {size_bytes} bytes is above WhatsApp's {limit.max_bytes // _MB} MB limit",
        )
    return limit


def found_too_large(mime: str | None) -> MediaRejected:
    """The refusal of an attachment that turned out larger than WhatsApp takes only while it
    was downloaded (Genesys's ``contentSizeBytes`` was absent or wrong): how large it really is
    was not read to the end, so the message names the limit only."""
    limit = media_limit(mime)
    return MediaRejected(
        "InvalidMediaContentLength",
        f"{limit.kind} larger than WhatsApp's {limit.max_bytes // _MB} MB limit",
    )


def to_meta_sends(
    notification: GenesysNotification | Mapping[str, Any],
    *,
    recipient: str,
    callback_data: str,
) -> list[dict[str, Any]]:
    """The Graph API send bodies for one Genesys notification, in sending order.

    ``recipient`` is a phone (``+<digits>``, becomes ``to``) or a BSUID (becomes ``recipient``),
    e.g. from ``identity.whatsapp_recipient``; ``callback_data`` is the Genesys message id
    (≤ 512 characters). Returns ``[]`` for what carries nothing to send: receipts, typing events,
    inbound echoes, a message with neither text nor attachments.

    Raises MediaRejected (a MappingError) for an attachment WhatsApp would refuse, and
    MappingError for a malformed notification, recipient or callback data.
    """
    message = (
        notification
        if isinstance(notification, GenesysNotification)
        else parse_genesys_notification(notification)
    )
    if not message.is_agent_message:
        return []
    _check_callback_data(callback_data)
    address = recipient_fields(recipient)
    limits = [media_limit(a.mime, a.size_bytes) for a in message.attachments]

    text = message.text
    interactive = None
    if message.type == "Structured":
        rendered = render_structured(message.raw, text)
        text, interactive = rendered.text or None, rendered.interactive
    caption = None
    if (
        text is not None
        and len(limits) == 1
        and limits[0].captions
        and interactive is None
        and utf16_length(text) <= CAPTION_LIMIT
    ):
        caption, text = text, None

    sends = []
    if text is not None:
        for part in split_text(text, WHATSAPP_TEXT_LIMIT):
            content = {"body": part, "preview_url": _has_link(part)}
            sends.append(_envelope(address, "text", content, callback_data))
    if interactive is not None:
        sends.append(_envelope(address, "interactive", interactive, callback_data))
    for attachment, limit in zip(message.attachments, limits, strict=True):
        content = _media_object(attachment, limit, caption)
        sends.append(_envelope(address, limit.kind, content, callback_data))
    return sends


def _check_callback_data(callback_data: object) -> None:
    """The Genesys message id rides in ``biz_opaque_callback_data``, which Meta caps."""
    if not isinstance(callback_data, str) or len(callback_data) > CALLBACK_DATA_LIMIT:
        raise MappingError(
            f"callback data must be a string of at most {CALLBACK_DATA_LIMIT} characters"
        )


def _envelope(
    address: Mapping[str, str], kind: str, content: dict[str, Any], callback_data: str
) -> dict[str, Any]:
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    body.update(address)
    body.update({"type": kind, kind: content})
    if callback_data:
        body["biz_opaque_callback_data"] = callback_data
    return body


def template_send(
    text: str, *, name: str, language: str, recipient: str, callback_data: str
) -> dict[str, Any]:
    """The agent's ``text`` as the one body parameter of the approved template ``name``: what
    may still reach a user whose 24-hour window has closed. A template parameter may hold no
    newline, tab or run of more than four spaces (Meta error 132018), so whitespace is folded;
    MappingError when the text is empty or longer than ``TEMPLATE_PARAMETER_LIMIT``."""
    folded = " ".join(text.split())
    if not folded or utf16_length(folded) > TEMPLATE_PARAMETER_LIMIT:
        raise MappingError(f"a template parameter holds 1 to {TEMPLATE_PARAMETER_LIMIT} characters")
    _check_callback_data(callback_data)
    content = {
        "name": name,
        "language": {"code": language},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": folded}]}],
    }
    return _envelope(recipient_fields(recipient), "template", content, callback_data)


_META_TEMPLATE_NAME = re.compile(r"[a-z0-9_]{1,512}")
_LANGUAGE = re.compile(r"([a-z]{2,3})(?:[_-]([A-Za-z]{2,4}))?")


def notification_template(notification: GenesysNotification) -> dict[str, Any] | None:
    """The Meta ``template`` object for a Genesys ``Notification`` (a proactive template
    message), or None when the message is not one or names no template WhatsApp can send.

    Genesys's ``ContentNotificationTemplate`` is ``{"id": <the messaging channel's template id>,
    "language", "header"?: {"text", "parameters"?}, "body": {"text", "parameters": [{"name",
    "text"}]}, "footer"?: {"text"}}``. Its ``id`` must be a Meta template name (``a-z0-9_``) and
    ``language`` a code such as ``en_US`` (``en-US`` is accepted); the texts are the rendered
    template and only the parameters go to Meta: positional (``{{1}}``, in the order of their
    numbers) when every name is a number, else named (``parameter_name``). The footer is part
    of the approved template and has no parameters. A template that cannot be mapped goes as
    text (see ``structured.render_notification``).
    """
    if notification.type != "Structured" or not notification.is_agent_message:
        return None
    content = notification.raw.get("content")
    items = [i for i in content if isinstance(i, Mapping)] if isinstance(content, list) else []
    notifications = [i for i in items if i.get("contentType") == "Notification"]
    if len(notifications) != 1 or len(items) != 1:
        return None
    template = notifications[0].get("template")
    if not isinstance(template, Mapping):
        return None
    name, language = template.get("id"), template.get("language")
    if not isinstance(name, str) or not _META_TEMPLATE_NAME.fullmatch(name):
        return None
    match = _LANGUAGE.fullmatch(language) if isinstance(language, str) else None
    if match is None:
        return None
    code = match.group(1) + (f"_{match.group(2)}" if match.group(2) else "")
    components = []
    for part in ("header", "body"):
        section = template.get(part)
        raw_parameters = section.get("parameters") if isinstance(section, Mapping) else None
        parameters = _template_parameters(raw_parameters)
        if parameters is None:
            return None
        if parameters:
            components.append({"type": part, "parameters": parameters})
    result: dict[str, Any] = {"name": name, "language": {"code": code}}
    if components:
        result["components"] = components
    return result


def _template_parameters(raw: object) -> list[dict[str, str]] | None:
    """Meta parameters for Genesys ``[{"name", "text"}]``; None when one is malformed."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        return None
    pairs = []
    for parameter in raw:
        if not isinstance(parameter, Mapping):
            return None
        name, text = parameter.get("name"), parameter.get("text")
        if not isinstance(name, str) or not name.strip() or not isinstance(text, str):
            return None
        folded = " ".join(text.split())  # Meta refuses newlines and tabs in a parameter
        if not folded or utf16_length(folded) > TEMPLATE_PARAMETER_LIMIT:
            return None
        pairs.append((name.strip(), folded))
    if all(n.isdigit() and n.isascii() for n, _ in pairs):
        return [{"type": "text", "text": t} for _, t in sorted(pairs, key=lambda p: int(p[0]))]
    return [{"type": "text", "parameter_name": n, "text": t} for n, t in pairs]


def notification_send(
    template: dict[str, Any], *, recipient: str, callback_data: str
) -> dict[str, Any]:
    """The Graph send body of a template object (from :func:`notification_template`)."""
    _check_callback_data(callback_data)
    return _envelope(recipient_fields(recipient), "template", template, callback_data)


def text_send(text: str, *, recipient: str) -> dict[str, Any]:
    """A plain text of the business's own (e.g. the tenant's welcome text), no Genesys message
    behind it: no callback data. MappingError when it is empty or over WhatsApp's limit."""
    if not text.strip() or len(text) > WHATSAPP_TEXT_LIMIT:
        raise MappingError(f"a text holds 1 to {WHATSAPP_TEXT_LIMIT} characters")
    content = {"body": text, "preview_url": _has_link(text)}
    return _envelope(recipient_fields(recipient), "text", content, "")


def _has_link(text: str) -> bool:
    """Meta previews the first ``http(s)://`` URL only when asked to (``preview_url``)."""
    lowered = text.lower()
    return "https://" in lowered or "http://" in lowered


def _media_object(
    attachment: GenesysAttachment, limit: MediaLimit, caption: str | None
) -> dict[str, Any]:
    media: dict[str, Any] = {"link": attachment.url}
    if caption is not None:
        media["caption"] = caption
    if limit.kind == "document":
        # The filename drives the icon and the name the user sees.
        media["filename"] = attachment.filename or "document"
    return media


def with_media_id(send: Mapping[str, Any], media_id: str) -> dict[str, Any]:
    """A copy of a media send whose ``link`` is replaced by an uploaded ``id`` (never both)."""
    kind = send.get("type")
    media = send.get(kind) if isinstance(kind, str) else None
    if not isinstance(kind, str) or not isinstance(media, Mapping) or "link" not in media:
        raise MappingError("not a media send")
    if not media_id:
        raise MappingError("media id must not be empty")
    result = copy.deepcopy(dict(send))
    replaced = dict(media)
    del replaced["link"]
    replaced["id"] = media_id
    result[kind] = replaced
    return result


def within_service_window(last_user_message_at: float | None, now: float) -> bool:
    """True while free-form messages may be sent: less than 24 h since the user's last message.

    ``last_user_message_at`` is Unix seconds of the user's last inbound message (or call), None
    when the user never wrote. A last message "in the future" (clock skew between shards) counts
    as inside the window; Meta has the final word anyway (131047).
    """
    if last_user_message_at is None:
        return False
    return now - last_user_message_at < SERVICE_WINDOW_SECONDS
