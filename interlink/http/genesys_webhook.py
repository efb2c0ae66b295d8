"""Genesys's Open Messaging webhook: agent messages, accepted durably before the 2xx.

The tenant is found from the conversation mapping first (Genesys conversation id, recorded when
the customer's first message was delivered), then from the integration id. The signature is
``sha256=<base64 HMAC>`` with the tenant's webhook secret (Meta's header of the same name is hex:
two verifiers on purpose). Any non-2xx makes Genesys fail the whole chat, so once a request is
authentic, trouble with one message later becomes a ``Failed`` receipt, never an error status.

Refusals: 413 over 512,000 bytes (before parsing), 400 malformed, 404 when neither the
conversation nor the integration id names a tenant (or the tenant is deleted or has no Genesys
credentials), 401 bad signature, 403 a path tenant the body disagrees with, 503 with
``Retry-After`` when Redis does not answer (Genesys retries 5xx; a lookup that failed is never
replaced by a guess from the integration id, which could name another tenant and fail the chat).
"""

from __future__ import annotations

import json
import logging

import falcon

from interlink.http.common import GENESYS_BODY_LIMIT, read_body
from interlink.http.webhooks import (
    accept_items,
    directory,
    refuse_unknown,
    storable_item,
    unavailable_when_store_down,
    valid_tenant_id,
)
from interlink.mapping._wire import MappingError
from interlink.mapping.webhooks import GenesysNotification, parse_genesys_notification
from interlink.model import TenantConfig
from interlink.services import Services
from interlink.signatures import verify_genesys
from interlink.store import keys
from interlink.store.tenants import is_provider_id

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"


class GenesysWebhook:
    def __init__(self, services: Services) -> None:
        self.services = services

    @unavailable_when_store_down
    def on_post(
        self, req: falcon.Request, resp: falcon.Response, tenant_id: str | None = None
    ) -> None:
        raw = read_body(req, GENESYS_BODY_LIMIT)
        signature = req.get_header(SIGNATURE_HEADER)
        if tenant_id is not None:
            valid_tenant_id(tenant_id)
            config = self._verified(tenant_id, raw, signature)
            notification = _parse(raw)
            owner = self._owner(notification)
            if owner is None:
                refuse_unknown("This conversation or integration belongs to no tenant.")
            if owner != tenant_id:
                raise falcon.HTTPForbidden(
                    title="Tenant mismatch",
                    description="The notification belongs to another tenant.",
                )
        else:
            notification = _parse(raw)
            owner = self._owner(notification)
            if owner is None:
                refuse_unknown("No tenant owns this conversation or integration.")
            config = self._verified(owner, raw, signature)
        self._accept(config, notification, resp)

    def _owner(self, notification: GenesysNotification) -> str | None:
        # Conversation ids are UUIDs: anything else (a lone surrogate Redis cannot encode, 500 kB
        # of text) is not looked up.
        if notification.conversation_id and is_provider_id(notification.conversation_id):
            found = self.services.redis.get(keys.genesys_conversation(notification.conversation_id))
            if found is not None:
                return found.decode() if isinstance(found, bytes) else str(found)
        channel = notification.raw.get("channel")
        candidates = [notification.integration_id]
        if isinstance(channel, dict) and isinstance(channel.get("from"), dict):
            candidates.append(channel["from"].get("id"))
        for integration_id in candidates:
            if isinstance(integration_id, str) and integration_id:
                owner = directory(self.services).by_integration(integration_id)
                if owner is not None:
                    return owner
        return None

    def _verified(self, tenant_id: str, raw: bytes, signature: str | None) -> TenantConfig:
        config = directory(self.services).config(tenant_id)
        if config is None or config.genesys is None:
            refuse_unknown("Unknown or deleted tenant, or no Genesys configuration.")
        assert config is not None and config.genesys is not None
        if not verify_genesys(config.genesys.webhook_secret, raw, signature):
            self.services.metrics.counter(
                "interlink_webhook_signature_failures_total",
                "Webhooks refused for a bad signature.",
            ).inc(provider="genesys")
            log.warning("genesys webhook with a bad signature", extra={"tenant": tenant_id})
            raise falcon.HTTPUnauthorized(
                title="Invalid signature", description="X-Hub-Signature-256 does not match."
            )
        return config

    def _accept(
        self, config: TenantConfig, notification: GenesysNotification, resp: falcon.Response
    ) -> None:
        if not notification.is_agent_message:
            # Receipts and events about our own messages, or types nobody has seen yet: noted.
            kind = _shown(notification.type)
            log.info(
                "genesys notification not forwarded",
                extra={
                    "tenant": config.tenant_id,
                    "type": kind,
                    "direction": _shown(notification.direction),
                },
            )
            resp.media = {"accepted": 0, "duplicates": 0, "ignored": kind}
            return
        assert notification.message_id is not None and notification.user_id is not None
        item = storable_item(
            config.tenant_id,
            "gc.message",
            dict(notification.raw),
            conversation=notification.user_id,
            dedupe=f"genesys:{notification.message_id}",
        )
        accept_items(self.services, [item] if item is not None else []).reply(resp)


def _shown(value: str | None, limit: int = 64) -> str | None:
    """A value of the body fit for a log line or our reply: cut short, and without lone
    surrogates (valid in JSON, not encodable in UTF-8)."""
    if value is None:
        return None
    return value[:limit].encode("utf-8", "replace").decode("utf-8")


def _parse(raw: bytes) -> GenesysNotification:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise falcon.HTTPBadRequest(
            title="Malformed JSON", description="The body is not valid JSON."
        ) from None
    try:
        return parse_genesys_notification(body)
    except MappingError as exc:  # a ValueError too: checked apart so the title says what it is
        raise falcon.HTTPBadRequest(title="Invalid notification", description=str(exc)) from None


def add_routes(app: falcon.App, services: Services) -> None:
    resource = GenesysWebhook(services)
    app.add_route("/webhooks/genesys", resource)
    app.add_route("/webhooks/genesys/{tenant_id}", resource)
