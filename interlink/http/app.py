"""The one place that assembles the Falcon application: its middleware, its error handlers and,
in :func:`routes`, the whole routing of a shard.

Resources are built here with what they need; they let the failures of the parts below them rise
to the error handlers of :mod:`interlink.http.errors`, which answer the same way on every route.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import falcon

from interlink.http import (
    control,
    genesys_webhook,
    health,
    media,
    tenant_check,
    tenants,
    whatsapp_webhook,
)
from interlink.http.auth import AuthMiddleware
from interlink.http.errors import StoreErrors
from interlink.services import Services
from interlink.telemetry import logs

log = logging.getLogger(__name__)

Route = tuple[str, Any] | tuple[str, Any, str]  # path, resource[, suffix]


def routes(services: Services) -> list[Route]:
    """Every route of a shard: path, resource, and the responder suffix where one is used."""
    store, api_keys = services.tenants, services.api_keys
    whatsapp = whatsapp_webhook.WhatsAppWebhook(services)
    genesys = genesys_webhook.GenesysWebhook(services)
    return [
        # Probes and metrics: no authentication.
        ("/healthz", health.Liveness(services)),
        ("/readyz", health.Readiness(services)),
        ("/metrics", health.Metrics(services)),
        # Provider webhooks, each with or without the tenant in the path; their own signatures.
        ("/webhooks/whatsapp", whatsapp),
        ("/webhooks/whatsapp/{tenant_id}", whatsapp),
        ("/webhooks/genesys", genesys),
        ("/webhooks/genesys/{tenant_id}", genesys),
        # Signed, expiring links to WhatsApp media, fetched by Genesys.
        ("/media/{token}", media.Media(services)),
        # The admin API (AuthMiddleware). The literal routes come before {tenantId}: the two
        # words are reserved as tenant ids.
        ("/api/tenants", tenants.TenantCollection(store)),
        ("/api/tenants/by-phone/{phoneNumberId}", tenants.ByPhone(store)),
        ("/api/tenants/by-integration/{integrationId}", tenants.ByIntegration(store)),
        ("/api/tenants/{tenantId}", tenants.TenantItem(store)),
        ("/api/tenants/{tenantId}/genesys/credentials", tenants.GenesysCredentialsResource(store)),
        ("/api/tenants/{tenantId}/whatsapp/config", tenants.WhatsAppConfigResource(store)),
        ("/api/tenants/{tenantId}/keys", tenants.Keys(api_keys)),
        ("/api/tenants/{tenantId}/keys/{keyId}", tenants.KeyItem(api_keys)),
        ("/api/tenants/{tenantId}/check", tenant_check.TenantCheck(services)),
        # The operator's view into the actor tree, and its commands (AuthMiddleware).
        ("/control/actors", control.Actors(services)),
        ("/control/tenants/{tenant_id}/messages", control.TenantMessages(services)),
        ("/control/shard/messages", control.ShardMessages(services)),
    ]


def _unexpected_error(
    req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any
) -> None:
    """A bug of ours: log it with the route (never the body) and answer a plain JSON 500."""
    log.exception("unhandled error", extra={"method": req.method, "route": req.path})
    raise falcon.HTTPInternalServerError(title="Internal error", description="See the shard's log.")


class ForgetChangedTenants:
    """After a successful admin write, this process stops using its cached view of the tenant at
    once (other processes learn it from the change event, ``interlink.tenancy.changes``)."""

    WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

    def __init__(self, services: Services) -> None:
        self.services = services

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        req.context.changed_tenant = params.get("tenantId") if req.method in self.WRITES else None

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        tenant_id = getattr(req.context, "changed_tenant", None)
        if tenant_id and req_succeeded and req.path.startswith("/api/tenants/"):
            self.services.directory.invalidate(tenant_id)


def _json_errors(req: falcon.Request, resp: falcon.Response, exception: falcon.HTTPError) -> None:
    """Every error is ``{"title", "description"}`` in JSON, whatever the client accepts: Falcon's
    own 404 and 405 carry no description, and it would answer XML to an XML-preferring client."""
    resp.content_type = falcon.MEDIA_JSON
    body = exception.to_dict()
    title = str(body.get("title") or exception.status)
    body["title"] = title
    body.setdefault("description", title.split(" ", 1)[-1] if title[:3].isdigit() else title)
    resp.media = body


def create_app(services: Services) -> falcon.App:
    # Authentication runs before routing for /api/ and /control/ (interlink.http.auth).
    # RequestLog first: its process_response runs last, after every other part logged.
    middleware: list[Any] = [
        logs.RequestLog(access=services.settings.access_log),
        AuthMiddleware(services),
        ForgetChangedTenants(services),
    ]
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    # Falcon's default JSON handler builds a new encoder per response (non-default dumps
    # arguments); plain json.dumps reuses one, and its ASCII escapes cannot fail on odd text.
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = falcon.media.JSONHandler(
        dumps=json.dumps, loads=json.loads
    )
    # Falcon picks the handler of the most specific class: these win over the catch-all.
    app.add_error_handler(Exception, _unexpected_error)
    StoreErrors(services).register(app)
    app.set_error_serializer(_json_errors)
    for path, resource, *suffix in routes(services):
        app.add_route(path, resource, suffix=suffix[0] if suffix else None)
    return app
