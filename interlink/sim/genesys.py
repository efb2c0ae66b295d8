"""What the simulated Genesys Cloud speaks and keeps: the records of its world (orgs, tokens,
messages, downloads), its timestamp and signature formats, and the checks of the Open Messaging
inbound bodies. Pure: the state and its operations are :mod:`interlink.sim.genesys_world`.

The checks follow the Genesys Platform API swagger definitions ``OpenInboundNormalizedMessage``,
``OpenInboundNormalizedReceipt`` and ``OpenInboundNormalizedEvent``, and answer the error codes
Genesys answers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DEFAULT_TOKEN_LIFETIME = 86_400
ID_TYPES = ("Email", "Phone", "Opaque")
MEDIA_TYPES = ("Image", "Video", "Audio", "File", "Link")
# The only two statuses the receipt endpoint accepts
# (https://developer.genesys.cloud/commdigital/digital/openmessaging/inboundReceiptMessages).
RECEIPT_STATUSES = ("Delivered", "Failed")
REASON_CODES = (
    "MessageExpired",
    "RateLimited",
    "MessageNotAllowed",
    "GeneralError",
    "UnsupportedMessage",
    "UnknownMessage",
    "InvalidMessageStructure",
    "InvalidDestination",
    "ServerError",
    "MediaTypeNotAllowed",
    "InvalidMediaContentLength",
    "RecipientOptedOut",
    "DataFiltered",
)
MISSING_TEXT_OR_CONTENT = (
    "should have required property 'content', should have required property '.text', "
    "should match some schema in anyOf"
)


@dataclass(frozen=True, slots=True)
class Refusal:
    """An answer other than success: HTTP status, Genesys error code, message."""

    status: int
    code: str
    message: str


@dataclass(slots=True)
class GenesysOrg:
    """One Genesys org with one client-credentials OAuth client and its Open integrations."""

    org_id: str
    region: str
    client_id: str
    client_secret: str = field(repr=False)
    integration_ids: set[str] = field(default_factory=set)
    webhook_secret: str = field(default="", repr=False)
    token_lifetime: int = DEFAULT_TOKEN_LIFETIME
    webhook_url: str | None = None  # the integrations' outboundNotificationWebhookUrl
    # More OAuth clients of the same org (a credential rotation: client id -> secret).
    other_clients: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(slots=True)
class IssuedToken:
    token: str = field(repr=False)
    client_id: str
    org_id: str
    region: str
    issued_at: float
    expires_at: float


@dataclass(slots=True)
class ReceivedMessage:
    """An inbound Open message as accepted (``body`` is the request, ``response`` our answer)."""

    id: str
    org_id: str
    integration_id: str
    conversation_id: str
    from_id: str
    body: dict[str, Any]
    response: dict[str, Any]
    time: float


@dataclass(slots=True)
class AgentMessage:
    """An outbound message the simulated agent sent, and the receipts that came back for it."""

    id: str
    org_id: str
    integration_id: str
    conversation_id: str
    to: dict[str, str]
    body: dict[str, Any]
    time: float
    receipts: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class Download:
    id: str
    org_id: str
    region: str
    data: bytes = field(repr=False)
    mime: str
    filename: str


def iso_time(ts: float) -> str:
    """Genesys' timestamp format, e.g. ``2026-03-25T13:20:05.493Z``."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def genesys_signature(secret: str, raw: bytes) -> str:
    """``X-Hub-Signature-256`` value Genesys sends: ``sha256=`` + BASE64 HMAC-SHA256 of the raw
    body, keyed with the integration's webhook secret."""
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


# -- validation (pure) ---------------------------------------------------------------------------
def _bad(message: str, code: str = "constraint.validation") -> Refusal:
    return Refusal(400, code, message)


def _check_recipient(value: Any, where: str) -> Refusal | None:
    if not isinstance(value, dict):
        return _bad(f"{where} is required")
    if not isinstance(value.get("id"), str) or not value["id"]:
        return _bad(f"{where}.id is required")
    if value.get("idType") not in ID_TYPES:
        return _bad(f"{where}.idType must be one of {', '.join(ID_TYPES)}", "invalid.value")
    return None


def _check_time(channel: dict[str, Any]) -> Refusal | None:
    if "time" not in channel or channel["time"] in (None, ""):
        return _bad("The channel time is required.", "missing.open.channel.date")
    if parse_iso_time(channel["time"]) is None:
        return _bad("channel.time is not an ISO-8601 date-time", "invalid.value")
    return None


def _check_string_map(value: Any, where: str) -> Refusal | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        # Genesys refuses a nested object under metadata with bad.request
        # (https://developer.genesys.cloud/forum/t/set-participant-data-in-open-inbound-message/26014).
        return _bad(f"{where} must map strings to strings", "bad.request")
    return None


def _check_sender_channel(body: dict[str, Any]) -> Refusal | None:
    """``channel`` with ``from`` and ``time``, as messages and events both require."""
    channel = body.get("channel")
    if not isinstance(channel, dict):
        return _bad("channel is required")
    return _check_recipient(channel.get("from"), "channel.from") or _check_time(channel)


def check_inbound_message(body: dict[str, Any]) -> Refusal | None:
    """``OpenInboundNormalizedMessage`` as the swagger requires it."""
    refusal = _check_sender_channel(body)
    if refusal:
        return refusal
    channel = body["channel"]
    metadata = channel.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            return _bad("channel.metadata must be an object", "bad.request")
        refusal = _check_string_map(metadata.get("customAttributes"), "customAttributes")
        if refusal:
            return refusal
    refusal = _check_string_map(body.get("metadata"), "metadata")
    if refusal:
        return refusal
    text, content = body.get("text"), body.get("content")
    if text is not None and not isinstance(text, str):
        return _bad("text must be a string", "invalid.value")
    if content is not None and not isinstance(content, list):
        return _bad("content must be an array", "invalid.value")
    if not text and not content:
        return _bad(MISSING_TEXT_OR_CONTENT)
    for item in content or ():
        attachment = item.get("attachment") if isinstance(item, dict) else None
        if not isinstance(attachment, dict):
            return _bad("content[].attachment is required")
        if attachment.get("mediaType") not in MEDIA_TYPES:
            return _bad(
                f"attachment.mediaType must be one of {', '.join(MEDIA_TYPES)}", "invalid.value"
            )
        for name in ("url", "mime"):
            if not isinstance(attachment.get(name), str) or not attachment[name]:
                return _bad(f"attachment.{name} is required")
    if content and len(content) > 1:
        return _bad("Only one attachment is allowed per message")
    return None


def check_receipt(body: dict[str, Any]) -> Refusal | None:
    """``OpenInboundNormalizedReceipt``: only ``Delivered`` and ``Failed``."""
    if not isinstance(body.get("id"), str) or not body["id"]:
        return _bad("id is required")
    channel = body.get("channel")
    if not isinstance(channel, dict):
        return _bad("channel is required")
    refusal = _check_recipient(channel.get("to"), "channel.to") or _check_time(channel)
    if refusal:
        return refusal
    if body.get("status") not in RECEIPT_STATUSES:
        return _bad("There are 2 supported receipt statuses: Delivered | Failed", "invalid.value")
    reasons = body.get("reasons")
    if reasons is not None:
        if not isinstance(reasons, list):
            return _bad("reasons must be an array", "invalid.value")
        for reason in reasons:
            if not isinstance(reason, dict) or not isinstance(reason.get("message"), str):
                return _bad("reasons[].message is required")
            if "code" in reason and reason["code"] not in REASON_CODES:
                return _bad(
                    f"reasons[].code must be one of {', '.join(REASON_CODES)}", "invalid.value"
                )
    if "isFinalReceipt" in body and not isinstance(body["isFinalReceipt"], bool):
        return _bad("isFinalReceipt must be a boolean", "invalid.value")
    return None


def check_event(body: dict[str, Any]) -> Refusal | None:
    """``OpenInboundNormalizedEvent``: ``channel{from,time}``, ``events[{eventType:"Typing"}]``."""
    refusal = _check_sender_channel(body)
    if refusal:
        return refusal
    events = body.get("events")
    if not isinstance(events, list) or not events:
        return _bad("events is required")
    for event in events:
        if not isinstance(event, dict) or event.get("eventType") != "Typing":
            return _bad("events[].eventType must be Typing", "invalid.value")
        typing = event.get("typing")
        if typing is not None and (
            not isinstance(typing, dict) or typing.get("type") not in ("On", "Off")
        ):
            return _bad("events[].typing.type must be On or Off", "invalid.value")
    return None


def check_structured_response(body: dict[str, Any]) -> Refusal | None:
    """``OpenInboundStructuredResponseMessage``: ``channel{from,time}`` and ``buttonResponse``
    with ``type``, ``text`` and ``payload`` (strings; the bot matches ``payload``)."""
    refusal = _check_sender_channel(body)
    if refusal:
        return refusal
    metadata = body["channel"].get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            return _bad("channel.metadata must be an object", "bad.request")
        refusal = _check_string_map(metadata.get("customAttributes"), "customAttributes")
        if refusal:
            return refusal
    response = body.get("buttonResponse")
    if not isinstance(response, dict):
        return _bad("buttonResponse is required")
    for name in ("type", "text", "payload"):
        if not isinstance(response.get(name), str) or not response[name]:
            return _bad(f"buttonResponse.{name} is required")
    if response["type"] not in BUTTON_RESPONSE_TYPES:
        return _bad(
            f"buttonResponse.type must be one of {', '.join(BUTTON_RESPONSE_TYPES)}",
            "invalid.value",
        )
    originating = body.get("originatingMessageId")
    if originating is not None and not isinstance(originating, str):
        return _bad("originatingMessageId must be a string", "invalid.value")
    return None


BUTTON_RESPONSE_TYPES = ("Button", "QuickReply", "DatePicker")
