"""The one place that assembles the Falcon application from its resources.

Each subsystem's HTTP module exposes ``add_routes(app, services)``; the table below is the whole
routing of a shard.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import falcon

from interlink.http import control, genesys_webhook, health, media, tenants, whatsapp_webhook
from interlink.http.auth import AuthMiddleware
from interlink.http.webhooks import directory
from interlink.services import Services

log = logging.getLogger(__name__)

RouteModule = Callable[[falcon.App, Services], None]

ROUTE_MODULES: list[RouteModule] = [
    health.add_routes,
    whatsapp_webhook.add_routes,
    genesys_webhook.add_routes,
    media.add_routes,
    tenants.add_routes,
    control.add_routes,
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
            directory(self.services).invalidate(tenant_id)


def _json_errors(req: falcon.Request, resp: falcon.Response, exception: falcon.HTTPError) -> None:
    """Every error is ``{"title", "description"}`` in JSON, whatever the client accepts: Falcon's
    own 404 and 405 carry no description, and it would answer XML to an XML-preferring client."""
    resp.content_type = falcon.MEDIA_JSON
    body = exception.to_dict()
    title = str(body.get("title") or exception.status)
    body["title"] = title
    body.setdefault("description", title.split(" ", 1)[-1] if title[:3].isdigit() else title)
    resp.media = body


def create_app(services: Services, *, route_modules: list[RouteModule] | None = None) -> falcon.App:
    # Authentication runs before routing for /api/ and /control/ (interlink.http.auth).
    middleware: list[Any] = [AuthMiddleware(services), ForgetChangedTenants(services)]
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    # Falcon's default JSON handler builds a new encoder per response (non-default dumps
    # arguments); plain json.dumps reuses one, and its ASCII escapes cannot fail on odd text.
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = falcon.media.JSONHandler(
        dumps=json.dumps, loads=json.loads
    )
    app.add_error_handler(Exception, _unexpected_error)
    app.set_error_serializer(_json_errors)
    for add_routes in route_modules or ROUTE_MODULES:
        add_routes(app, services)
    return app
