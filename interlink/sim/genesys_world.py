"""The Genesys Cloud world: orgs, OAuth clients and tokens, Open Messaging integrations,
conversations, the messages and receipts received, agent messages sent, attachment downloads.

No HTTP here: the Falcon resources (``genesys_api``) and the agent driver (``driver``) call these
methods after :mod:`interlink.sim.genesys` has checked the request bodies.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from interlink.sim.genesys import (
    DEFAULT_TOKEN_LIFETIME,
    AgentMessage,
    Download,
    GenesysOrg,
    IssuedToken,
    ReceivedMessage,
    Refusal,
    iso_time,
)

DEFAULT_DOWNLOAD_URL_TTL = 300.0


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
        self.structured_responses: list[ReceivedMessage] = []
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
        self, org: GenesysOrg, integration_id: str, body: dict[str, Any], *, prefetch: bool = False
    ) -> dict[str, Any]:
        """Record a valid inbound message; the ``OpenMessageNormalizedMessage`` to answer. It
        names ``conversationId`` only when ``prefetch`` (``?prefetchConversationId=true``)."""
        channel = body["channel"]
        sender = channel["from"]
        conversation_id = self.conversation_id(integration_id, sender["id"])
        message_id = uuid.uuid4().hex
        response_channel = _normalized_channel(integration_id, channel)
        response: dict[str, Any] = {
            "id": message_id,
            "channel": response_channel,
            "type": "Text",
            "direction": "Inbound",
        }
        if prefetch:
            response["conversationId"] = conversation_id
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

    def accept_structured_response(
        self, org: GenesysOrg, integration_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Record a valid answer to a quick reply; the normalized message to answer (a
        ``Structured`` message whose content is the ``ButtonResponse``)."""
        channel = body["channel"]
        sender = channel["from"]
        conversation_id = self.conversation_id(integration_id, sender["id"])
        message_id = uuid.uuid4().hex
        response_channel = _normalized_channel(integration_id, channel)
        response_channel.pop("metadata", None)
        response: dict[str, Any] = {
            "id": message_id,
            "channel": response_channel,
            "type": "Structured",
            "text": body["buttonResponse"]["text"],
            "content": [
                {"contentType": "ButtonResponse", "buttonResponse": body["buttonResponse"]}
            ],
            "direction": "Inbound",
        }
        with self._lock:
            self.structured_responses.append(
                ReceivedMessage(
                    id=message_id,
                    org_id=org.org_id,
                    integration_id=integration_id,
                    conversation_id=conversation_id,
                    from_id=sender["id"],
                    body=body,
                    response=response,
                    time=self.clock(),
                )
            )
        return response

    def structured_responses_from(
        self, integration_id: str, participant_id: str | None = None
    ) -> list[ReceivedMessage]:
        """Accepted quick-reply answers of an integration (one participant's when given)."""
        with self._lock:
            items = list(self.structured_responses)
        return [
            m
            for m in items
            if m.integration_id == integration_id and participant_id in (None, m.from_id)
        ]

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
        """Build and record an ``OpenOutboundNormalizedMessage`` of the agent: the body Genesys
        posts to the integration's outbound webhook."""
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


def _normalized_channel(integration_id: str, channel: dict[str, Any]) -> dict[str, Any]:
    """The ``channel`` of the normalized message Genesys answers an inbound call with."""
    normalized: dict[str, Any] = {
        "id": integration_id,
        "platform": "Open",
        "type": "Private",
        "to": {"id": integration_id},
        "from": dict(channel["from"]),
        "time": channel["time"],
    }
    for optional in ("messageId", "metadata"):
        if optional in channel:
            normalized[optional] = channel[optional]
    return normalized
