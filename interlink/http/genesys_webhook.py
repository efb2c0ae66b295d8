"""Genesys's Open Messaging webhook: agent messages, accepted durably before the 2xx.

The tenant is found from the conversation mapping first (Genesys conversation id, recorded when
the customer's first message was delivered; cached by the tenant directory once known, and asked
of Redis again before a request it routed is refused), then from the integration id. The signature is
``sha256=<base64 HMAC>`` with the tenant's webhook secret (Meta's header of the same name is hex:
two verifiers on purpose). Any non-2xx makes Genesys fail the whole chat, so once a request is
authentic, trouble with one message later becomes a ``Failed`` receipt, never an error status.

Refusals, in this order: 413 over 512,000 bytes (before parsing), 404 when neither the
conversation nor the integration id names a tenant (or the tenant is deleted or has no Genesys
credentials), 401 bad signature, 403 a path tenant the body disagrees with, 400 malformed. Before
the signature only the JSON and the fields naming the tenant are read (400 when even they cannot
be: not JSON, no ``channel`` object); 400s are counted in ``interlink_client_errors_total``, never
logged. 503 with
``Retry-After`` when Redis does not answer (Genesys retries 5xx; a lookup that failed is never
replaced by a guess from the integration id, which could name another tenant and fail the chat).
"""

from __future__ import annotations

import logging

import falcon

from interlink.http.bodies import GENESYS_BODY_LIMIT, read_body
from interlink.http.webhooks import (
    accept_items,
    counted,
    known_tenant_id,
    mapped,
    parsed_json,
    refuse_unknown,
    storable_item,
)
from interlink.mapping.genesys_webhook import (
    GenesysNotification,
    GenesysRoute,
    genesys_route,
    parse_genesys_notification,
)
from interlink.security.signatures import verify_genesys
from interlink.services import Services
from interlink.store.conversations import tenant_of_genesys_conversation
from interlink.telemetry import logs, metrics
from interlink.tenancy.config import TenantConfig
from interlink.tenancy.validation import is_provider_id

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
ROUTE = "genesys"  # the route label of this webhook's counters


class GenesysWebhook:
    def __init__(self, services: Services) -> None:
        self.services = services

    def on_post(
        self, req: falcon.Request, resp: falcon.Response, tenant_id: str | None = None
    ) -> None:
        counted("genesys", resp, lambda: self._post(req, resp, tenant_id))

    def _post(self, req: falcon.Request, resp: falcon.Response, tenant_id: str | None) -> None:
        raw = read_body(req, GENESYS_BODY_LIMIT)
        signature = req.get_header(SIGNATURE_HEADER)
        services = self.services
        if tenant_id is not None:
            known_tenant_id(tenant_id)
            config = self._verified(tenant_id, raw, signature)
            body = parsed_json(services, ROUTE, raw)
            notification = mapped(services, ROUTE, lambda: parse_genesys_notification(body))
            route = mapped(services, ROUTE, lambda: genesys_route(body))
            owner, cached = self._owner(route)
            if cached and owner != tenant_id:
                owner, _ = self._owner(route, cache=False)
            if owner is None:
                refuse_unknown("This conversation or integration belongs to no tenant.")
            if owner != tenant_id:
                raise falcon.HTTPForbidden(
                    title="Tenant mismatch",
                    description="The notification belongs to another tenant.",
                )
        else:
            # Before the signature only the few fields that name the tenant are read: the rest
            # of an unsigned body (attachments, sizes, texts) is nobody's business yet.
            body = parsed_json(services, ROUTE, raw)
            route = mapped(services, ROUTE, lambda: genesys_route(body))
            owner, cached = self._owner(route)
            signed = self._signed(owner, raw, signature) if cached else None
            if signed is not None:
                config = signed
                logs.bind(config.tenant_id)
            else:
                if cached:
                    owner, _ = self._owner(route, cache=False)
                if owner is None:
                    refuse_unknown("No tenant owns this conversation or integration.")
                config = self._verified(owner, raw, signature)
            notification = mapped(services, ROUTE, lambda: parse_genesys_notification(body))
        self._accept(config, notification, resp)

    def _owner(self, route: GenesysRoute, *, cache: bool = True) -> tuple[str | None, bool]:
        """The tenant the notification names, and whether that came from this process's cache
        of the conversation mapping. A cached answer that leads to a refusal is checked again
        with ``cache=False`` (which also drops it): the cache must never refuse what Redis
        would route, nor send a conversation to a tenant Redis no longer names."""
        # Conversation ids are UUIDs: anything else (a lone surrogate Redis cannot encode, 500 kB
        # of text) is not looked up.
        conversation_id = route.conversation_id
        directory = self.services.directory
        if conversation_id and is_provider_id(conversation_id):
            if cache:
                known = directory.cached_genesys_conversation(conversation_id)
                if known is not None:
                    return known, True
            else:
                directory.forget_genesys_conversation(conversation_id)
            found = directory.by_genesys_conversation(conversation_id, self._mapping)
            if found is not None and directory.config(found) is not None:
                return found, False
            if found is not None:
                # A mapping left behind by a deleted tenant (it lives 30 days): the integration
                # may belong to a new tenant now, whose conversations these are.
                directory.forget_genesys_conversation(conversation_id)
        for integration_id in route.integration_ids:
            owner = directory.by_integration(integration_id)
            if owner is not None:
                return owner, False
        return None, False

    def _mapping(self, conversation_id: str) -> str | None:
        # Through this shard's own client: a lookup that fails is a 503, never a guess.
        return tenant_of_genesys_conversation(self.services.redis, conversation_id)

    def _signed(
        self, tenant_id: str | None, raw: bytes, signature: str | None
    ) -> TenantConfig | None:
        """The tenant's configuration if ``signature`` is its own; None otherwise, quietly (the
        caller tries the conversation mapping again, then refuses through ``_verified``)."""
        if tenant_id is None:
            return None
        config = self.services.directory.config(tenant_id)
        if config is None or config.genesys is None:
            return None
        if not verify_genesys(config.genesys.webhook_secret, raw, signature):
            return None
        return config

    def _verified(self, tenant_id: str, raw: bytes, signature: str | None) -> TenantConfig:
        logs.bind(tenant_id)  # for the rest of the request (reset by http.app.RequestLog)
        config = self.services.directory.config(tenant_id)
        if config is None or config.genesys is None:
            refuse_unknown("Unknown or deleted tenant, or no Genesys configuration.")
        assert config is not None and config.genesys is not None
        if not verify_genesys(config.genesys.webhook_secret, raw, signature):
            metrics.SIGNATURE_FAILURES.labels("genesys").inc()
            log.warning("genesys webhook with a bad signature", extra={"tenant": tenant_id})
            raise falcon.HTTPUnauthorized(
                title="Invalid signature", description="X-Hub-Signature-256 does not match."
            )
        return config

    def _accept(
        self, config: TenantConfig, notification: GenesysNotification, resp: falcon.Response
    ) -> None:
        if notification.is_typing:
            # Shown to the user by the conversation, in order with the agent's messages.
            assert notification.user_id is not None
            ident = notification.message_id or f"typing:{notification.user_id}:{notification.time}"
            typing = storable_item(
                config.tenant_id,
                "gc.message",
                dict(notification.raw),
                conversation=notification.user_id,
                dedupe=f"genesys:{ident}",
            )
            accept_items(self.services, [typing] if typing is not None else []).reply(resp)
            return
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
