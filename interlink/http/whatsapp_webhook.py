"""Meta's webhook: the verification handshake, and notifications accepted durably before the 200.

Order of checks: size (413), then the tenant (404), then the signature with that tenant's app
secret (401), then the batch's coherence (403) and shape (400); only then is anything stored.
Before the signature only the JSON and the phone number ids are read, which is linear in the body;
400s are counted in ``interlink_client_errors_total``, never logged.
Without a tenant in the path the body must be parsed to find the phone number id before the
signature can be checked; with ``/webhooks/whatsapp/{tenantId}`` the signature comes first.

A body that names no phone number id at all (only account-level fields such as
``message_template_status_update``) cannot be tied to a tenant without the path: it is answered
200 and nothing is stored or processed, so that Meta does not redeliver it for days. Redis failing
under any lookup is a 503 with ``Retry-After``.
"""

from __future__ import annotations

import logging

import falcon

from interlink.http.bodies import META_BODY_LIMIT, read_body
from interlink.http.webhooks import (
    Accepted,
    accept_items,
    counted,
    known_tenant_id,
    mapped,
    parsed_json,
    refuse_unknown,
    storable_item,
)
from interlink.inbox import Entry, Kind
from interlink.mapping.meta_webhook import MetaItem, MetaWebhook, read_meta_webhook
from interlink.mapping.wire import MappingError, whole_number
from interlink.security.signatures import verify_meta
from interlink.services import Services
from interlink.telemetry import logs, metrics
from interlink.tenancy.config import TenantConfig
from interlink.tenancy.directory import TenantDirectory

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
ROUTE = "whatsapp"  # the route label of this webhook's counters


class WhatsAppWebhook:
    def __init__(self, services: Services) -> None:
        self.services = services

    # -- GET: Meta's handshake ------------------------------------------------------------------
    def on_get(
        self, req: falcon.Request, resp: falcon.Response, tenant_id: str | None = None
    ) -> None:
        mode = req.get_param("hub.mode")
        token = req.get_param("hub.verify_token")
        challenge = req.get_param("hub.challenge")
        if mode != "subscribe" or not token or challenge is None or len(challenge) > 1024:
            raise falcon.HTTPForbidden(
                title="Verification failed", description="Not a valid subscription request."
            )
        owner = self.services.directory.by_verify_token(token)
        if owner is None or (tenant_id is not None and owner != tenant_id):
            raise falcon.HTTPForbidden(
                title="Verification failed", description="The verify token matches no tenant."
            )
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = challenge

    # -- POST: notifications --------------------------------------------------------------------
    def on_post(
        self, req: falcon.Request, resp: falcon.Response, tenant_id: str | None = None
    ) -> None:
        counted("whatsapp", resp, lambda: self._post(req, resp, tenant_id))

    def _post(self, req: falcon.Request, resp: falcon.Response, tenant_id: str | None) -> None:
        raw = read_body(req, META_BODY_LIMIT)
        signature = req.get_header(SIGNATURE_HEADER)
        tenants = self.services.directory
        if tenant_id is not None:
            known_tenant_id(tenant_id)
            config = self._verified(tenants.config(tenant_id), raw, signature)
            webhook = self._read(raw)
        else:
            webhook = self._read(raw)
            if not webhook.phone_number_ids:
                self._unroutable(webhook).reply(resp)
                return
            owner = _owner(tenants, webhook.phone_number_ids)
            config = self._verified(tenants.config(owner), raw, signature)
        assert config.whatsapp is not None
        # Every number in the batch must be the signer's: a valid signature of tenant A never
        # carries messages for tenant B's number.
        own = config.whatsapp.phone_number_id
        if any(
            n != own and tenants.by_phone(n) != config.tenant_id for n in webhook.phone_number_ids
        ):
            raise falcon.HTTPForbidden(
                title="Phone number of another tenant",
                description="The batch names a phone number id that is not this tenant's.",
            )
        updates = mapped(self.services, ROUTE, webhook.updates)
        items = [item for update in updates if (item := _to_item(config, update)) is not None]
        accept_items(self.services, items).reply(resp)

    def _verified(
        self, config: TenantConfig | None, raw: bytes, signature: str | None
    ) -> TenantConfig:
        if config is None or config.whatsapp is None:
            refuse_unknown("Unknown or deleted tenant, or no WhatsApp configuration.")
        assert config is not None and config.whatsapp is not None
        logs.bind(config.tenant_id)  # for the rest of the request (reset by http.app.RequestLog)
        if not verify_meta(config.whatsapp.app_secret, raw, signature):
            metrics.SIGNATURE_FAILURES.labels("meta").inc()
            log.warning("meta webhook with a bad signature", extra={"tenant": config.tenant_id})
            raise falcon.HTTPUnauthorized(
                title="Invalid signature", description="X-Hub-Signature-256 does not match."
            )
        return config

    def _read(self, raw: bytes) -> MetaWebhook:
        """The body parsed, and walked once for its numbers and updates (400 when unreadable)."""
        body = parsed_json(self.services, ROUTE, raw)
        return mapped(self.services, ROUTE, lambda: read_meta_webhook(body))

    def _unroutable(self, webhook: MetaWebhook) -> Accepted:
        """A body naming no phone number id: only changes of fields we do not process (a
        ``messages`` change without its number is malformed: 400). Nothing is stored."""
        updates = mapped(self.services, ROUTE, webhook.updates)
        if any(update.kind != "ignored" for update in updates):  # not reachable: belt and braces
            refuse_unknown("No tenant owns the phone number id of this notification.")
        log.info(
            "meta webhook naming no phone number id ignored",
            extra={"fields": sorted({update.field[:64] for update in updates})[:10]},
        )
        return Accepted(0, 0)


def _owner(tenants: TenantDirectory, numbers: frozenset[str]) -> str:
    """The one tenant owning every number: 404 at the first unknown one (one lookup is all an
    unsigned body of made-up numbers costs), 403 when they belong to several tenants."""
    owners: set[str] = set()
    for number in sorted(numbers):
        owner = tenants.by_phone(number)
        if owner is None:
            refuse_unknown("No tenant owns the phone number id of this notification.")
        owners.add(owner)
    if len(owners) > 1:
        raise falcon.HTTPForbidden(
            title="Mixed tenants",
            description="The batch names phone number ids of several tenants.",
        )
    return owners.pop()


def _to_item(config: TenantConfig, update: MetaItem) -> Entry | None:
    """Messages and statuses go to the durable inbox; the rest is logged, with tenant context."""
    if update.dedupe_key is not None:  # a message or a status
        kind: Kind = "wa.message" if update.kind == "message" else "wa.status"
        return storable_item(
            config.tenant_id,
            kind,
            update.as_payload(),
            conversation=update.user_key,
            dedupe=f"{update.kind}:{update.dedupe_key}",
        )
    if update.kind in ("error", "invalid"):
        log.warning(
            "meta webhook item not processed",
            extra={
                "tenant": config.tenant_id,
                "kind": update.kind,
                "problem": update.problem,
                "error": _error_code(update),
            },
        )
    return None


def _error_code(update: MetaItem) -> int | None:
    """The error's code for the log line: a number, or None (a payload's string of 3 MB or int
    of 4,300 digits has no place in a log line)."""
    try:
        return whole_number(update.element.get("code"), "code")
    except MappingError:
        return None
