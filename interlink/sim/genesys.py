"""The Genesys Cloud world: orgs, OAuth clients and tokens, Open Messaging integrations,
conversations, the messages and receipts received, agent messages sent, attachment downloads.

No HTTP here: the Falcon resources (``genesys_api``) and the agent driver (``driver``) call these
methods. Validation follows the swagger schemas quoted in reference/genesys.md §2.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DEFAULT_TOKEN_LIFETIME = 86_400
DEFAULT_DOWNLOAD_URL_TTL = 300.0
ID_TYPES = ("Email", "Phone", "Opaque")
MEDIA_TYPES = ("Image", "Video", "Audio", "File", "Link")
RECEIPT_STATUSES = ("Delivered", "Failed")  # DC-RCPT: the only two this endpoint accepts
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
    """``X-Hub-Signature-256`` value Genesys sends: ``sha256=`` + BASE64 HMAC-SHA256 (§3.3)."""
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
        # F-ATTR: a nested object under metadata was refused with bad.request
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
    """``OpenInboundNormalizedReceipt``: only ``Delivered`` and ``Failed`` (DC-RCPT)."""
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


# -- the world -----------------------------------------------------------------------------------
class GenesysWorld:
    """All Genesys state of the simulator. Methods are safe to call from many greenlets."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._lock = threading.RLock()
        self.orgs: dict[str, GenesysOrg] = {}
        self._clients: dict[str, GenesysOrg] = {}
        self._integrations: dict[str, GenesysOrg] = {}
        self.tokens: dict[str, IssuedToken] = {}
        self._conversations: dict[tuple[str, str], str] = {}
        self.received: dict[str, ReceivedMessage] = {}
        self.agent_messages: dict[str, AgentMessage] = {}
        self.downloads: dict[str, Download] = {}
        self.download_url_ttl = DEFAULT_DOWNLOAD_URL_TTL
        self.require_download_auth = False
        self._download_key = secrets.token_bytes(32)

    # -- configuration ---------------------------------------------------------------------------
    def add_org(
        self,
        org_id: str,
        *,
        region: str,
        client_id: str,
        client_secret: str,
        integration_ids: Iterable[str] = (),
        webhook_secret: str = "",
        token_lifetime: int = DEFAULT_TOKEN_LIFETIME,
        webhook_url: str | None = None,
    ) -> GenesysOrg:
        """Register (or replace) an org. A client id or integration id owned by another org is a
        ``ValueError``: each belongs to exactly one org, as in the real platform."""
        with self._lock:
            owner = self._clients.get(client_id)
            if owner is not None and owner.org_id != org_id:
                raise ValueError(f"client id {client_id} belongs to org {owner.org_id}")
            for integration_id in integration_ids:
                owner = self._integrations.get(integration_id)
                if owner is not None and owner.org_id != org_id:
                    raise ValueError(f"integration {integration_id} belongs to org {owner.org_id}")
            previous = self.orgs.get(org_id)
            if previous is not None:
                self._clients.pop(previous.client_id, None)
                for integration_id in previous.integration_ids:
                    self._integrations.pop(integration_id, None)
            org = GenesysOrg(
                org_id=org_id,
                region=region,
                client_id=client_id,
                client_secret=client_secret,
                integration_ids=set(integration_ids),
                webhook_secret=webhook_secret,
                token_lifetime=token_lifetime,
                webhook_url=webhook_url,
            )
            self.orgs[org_id] = org
            self._clients[client_id] = org
            for integration_id in org.integration_ids:
                self._integrations[integration_id] = org
            return org

    def add_client(self, org_id: str, client_id: str, client_secret: str) -> None:
        """Another OAuth client of ``org_id`` (how an org rotates credentials: the new client
        works while the old one still does)."""
        with self._lock:
            owner = self._clients.get(client_id)
            if owner is not None and owner.org_id != org_id:
                raise ValueError(f"client id {client_id} belongs to org {owner.org_id}")
            org = self.orgs[org_id]
            org.other_clients[client_id] = client_secret
            self._clients[client_id] = org

    def org_for_integration(self, integration_id: str) -> GenesysOrg | None:
        return self._integrations.get(integration_id)

    def org_for_client(self, client_id: str) -> GenesysOrg | None:
        return self._clients.get(client_id)

    # -- OAuth -----------------------------------------------------------------------------------
    def login(self, region: str, client_id: str, client_secret: str) -> IssuedToken | None:
        """A new token for a client registered in ``region`` with that secret, else ``None``."""
        org = self._clients.get(client_id)
        if org is None or org.region != region:
            return None
        expected = (
            org.client_secret
            if client_id == org.client_id
            else org.other_clients.get(client_id, "")
        )
        if not expected or not hmac.compare_digest(expected.encode(), client_secret.encode()):
            return None
        now = self.clock()
        issued = IssuedToken(
            token=secrets.token_urlsafe(48),
            client_id=client_id,
            org_id=org.org_id,
            region=region,
            issued_at=now,
            expires_at=now + org.token_lifetime,
        )
        with self._lock:
            self.tokens[issued.token] = issued
        return issued

    def authenticate(self, authorization: str | None, region: str) -> IssuedToken | Refusal:
        """The token behind an ``Authorization: Bearer`` header, or the 401 the API answers."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return Refusal(
                401,
                "authentication.required",
                "No authentication bearer token specified in authorization header.",
            )
        issued = self.tokens.get(authorization[7:].strip())
        if issued is None or issued.region != region:
            return Refusal(401, "bad.credentials", "Invalid login credentials.")
        if issued.expires_at <= self.clock():
            return Refusal(401, "credentials.expired", "The supplied credentials are expired.")
        return issued

    def expire_tokens(self, *, org_id: str | None = None, client_id: str | None = None) -> int:
        """Make matching tokens (all when no filter) expired now; returns how many."""
        now = self.clock()
        count = 0
        with self._lock:
            for issued in self.tokens.values():
                if org_id is not None and issued.org_id != org_id:
                    continue
                if client_id is not None and issued.client_id != client_id:
                    continue
                if issued.expires_at > now:
                    issued.expires_at = now
                    count += 1
        return count

    def tokens_of(self, org_id: str) -> list[IssuedToken]:
        with self._lock:
            return [t for t in self.tokens.values() if t.org_id == org_id]

    # -- Open Messaging --------------------------------------------------------------------------
    def conversation_id(self, integration_id: str, participant_id: str) -> str:
        """The conversation of one participant on one integration (created on first use)."""
        key = (integration_id, participant_id)
        with self._lock:
            found = self._conversations.get(key)
            if found is None:
                found = self._conversations[key] = str(uuid.uuid4())
            return found

    def accept_message(
        self, org: GenesysOrg, integration_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Record a valid inbound message; the ``OpenMessageNormalizedMessage`` to answer."""
        channel = body["channel"]
        sender = channel["from"]
        conversation_id = self.conversation_id(integration_id, sender["id"])
        message_id = uuid.uuid4().hex
        response_channel: dict[str, Any] = {
            "id": integration_id,
            "platform": "Open",
            "type": "Private",
            "to": {"id": integration_id},
            "from": dict(sender),
            "time": channel["time"],
        }
        if "messageId" in channel:
            response_channel["messageId"] = channel["messageId"]
        if "metadata" in channel:
            response_channel["metadata"] = channel["metadata"]
        response: dict[str, Any] = {
            "id": message_id,
            "channel": response_channel,
            "type": "Text",
            "direction": "Inbound",
            "conversationId": conversation_id,
        }
        if body.get("text"):
            response["text"] = body["text"]
        if body.get("content"):
            response["content"] = [
                {"contentType": "Attachment", "attachment": item["attachment"]}
                for item in body["content"]
            ]
        if body.get("metadata"):
            response["metadata"] = body["metadata"]
        with self._lock:
            self.received[message_id] = ReceivedMessage(
                id=message_id,
                org_id=org.org_id,
                integration_id=integration_id,
                conversation_id=conversation_id,
                from_id=sender["id"],
                body=body,
                response=response,
                time=self.clock(),
            )
        return response

    def accept_receipt(
        self, org: GenesysOrg, integration_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Record a valid receipt against the agent message it names (if the agent sent it)."""
        with self._lock:
            sent = self.agent_messages.get(body["id"])
            if sent is not None and sent.integration_id == integration_id:
                sent.receipts.append(body)
        response = {
            "id": body["id"],
            "channel": {
                "id": integration_id,
                "platform": "Open",
                "type": "Private",
                "to": body["channel"]["to"],
                "time": body["channel"]["time"],
            },
            "status": body["status"],
            "direction": "Outbound",
            "isFinalReceipt": body.get("isFinalReceipt", False),
        }
        if body.get("reasons"):
            response["reasons"] = body["reasons"]
        return response

    def receipts_for(self, message_id: str) -> list[dict[str, Any]]:
        sent = self.agent_messages.get(message_id)
        return list(sent.receipts) if sent else []

    def messages_from(
        self, integration_id: str, participant_id: str | None = None
    ) -> list[ReceivedMessage]:
        """Accepted inbound messages of an integration (one participant's when given), in order."""
        with self._lock:
            items = list(self.received.values())
        return [
            m
            for m in items
            if m.integration_id == integration_id and participant_id in (None, m.from_id)
        ]

    # -- agent side ------------------------------------------------------------------------------
    def outbound_message(
        self,
        integration_id: str,
        to: dict[str, str],
        *,
        text: str | None = None,
        attachment: dict[str, Any] | None = None,
        originating_entity: str = "Human",
    ) -> AgentMessage:
        """Build and record an ``OpenOutboundNormalizedMessage`` of the agent (reference §3.2)."""
        org = self._integrations.get(integration_id)
        if org is None:
            raise KeyError(f"unknown integration {integration_id}")
        if text is None and attachment is None:
            raise ValueError("an agent message needs text or an attachment")
        message_id = uuid.uuid4().hex
        now = self.clock()
        conversation_id = self.conversation_id(integration_id, to["id"])
        body: dict[str, Any] = {
            "id": message_id,
            "channel": {
                "id": integration_id,
                "platform": "Open",
                "type": "Private",
                "messageId": message_id,
                "to": dict(to),
                "from": {"nickname": "interlink-sim", "id": integration_id, "idType": "Opaque"},
                "metadata": {"subType": "None"},
                "time": iso_time(now),
            },
            "type": "Text",
            "originatingEntity": originating_entity,
            "direction": "Outbound",
            "conversationId": conversation_id,
        }
        if text is not None:
            body["text"] = text
        if attachment is not None:
            body["content"] = [{"contentType": "Attachment", "attachment": attachment}]
        sent = AgentMessage(
            id=message_id,
            org_id=org.org_id,
            integration_id=integration_id,
            conversation_id=conversation_id,
            to=dict(to),
            body=body,
            time=now,
        )
        with self._lock:
            self.agent_messages[message_id] = sent
        return sent

    # -- downloads -------------------------------------------------------------------------------
    def add_download(self, org_id: str, data: bytes, mime: str, filename: str) -> Download:
        org = self.orgs[org_id]
        download = Download(
            id=uuid.uuid4().hex,
            org_id=org_id,
            region=org.region,
            data=data,
            mime=mime,
            filename=filename,
        )
        with self._lock:
            self.downloads[download.id] = download
        return download

    def download_signature(self, download_id: str, expires: int) -> str:
        message = f"{download_id}:{expires}".encode()
        return hmac.new(self._download_key, message, hashlib.sha256).hexdigest()

    def signed_download_query(self, download_id: str) -> str:
        expires = int(self.clock() + self.download_url_ttl)
        return f"expires={expires}&signature={self.download_signature(download_id, expires)}"

    def check_signed_download(self, download_id: str, expires: str, signature: str) -> bool:
        try:
            deadline = int(expires)
        except ValueError:
            return False
        expected = self.download_signature(download_id, deadline)
        return hmac.compare_digest(expected, signature) and deadline > self.clock()
