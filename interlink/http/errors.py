"""What the front end answers when a part below it fails, registered once with
``app.add_error_handler`` (``interlink.http.app``): resources let these exceptions rise.

Who asks decides how the answer reads: a provider (webhooks, ``/media``) retries a 503 after
``Retry-After`` and keeps the message meanwhile, so its 503s are counted and say "retry later"
after 5 s; an administrator (``/api/``, ``/control/``) is told after 1 s, and a secret that cannot
be read is named to them (the operator fixes it), never to a provider.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NoReturn

import falcon
import redis

from interlink.http.auth import is_protected
from interlink.inbox import InboxUnavailable
from interlink.security.secrets import SecretError
from interlink.services import Services
from interlink.store.tenants import IndexConflict, TenantExists, TenantNotFound
from interlink.telemetry import metrics
from interlink.tenancy.validation import InvalidTenantData

log = logging.getLogger(__name__)

RETRY_AFTER_PROVIDER = 5  # seconds before a provider redelivers
RETRY_AFTER_ADMIN = 1
RETRY_AFTER_SECRET = 60  # an operator has to act first


class StoreErrors:
    """The error handlers of one app (a provider's 503 is counted)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def register(self, app: falcon.App) -> None:
        app.add_error_handler(redis.RedisError, self.store_down)
        app.add_error_handler(InboxUnavailable, self.store_down)
        app.add_error_handler(SecretError, self.secret_unreadable)
        app.add_error_handler(InvalidTenantData, answer(falcon.HTTPBadRequest, "Invalid field"))
        app.add_error_handler(
            TenantNotFound, answer(falcon.HTTPNotFound, "Unknown tenant", "No such tenant.")
        )
        app.add_error_handler(TenantExists, answer(falcon.HTTPConflict, "Tenant exists"))
        app.add_error_handler(IndexConflict, answer(falcon.HTTPConflict, "Already in use"))

    def store_down(
        self, req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any
    ) -> NoReturn:
        """Redis does not answer (a lookup, or the inbox's commit): 503 with ``Retry-After``."""
        if is_protected(req.path):
            raise falcon.HTTPServiceUnavailable(
                title="Store unavailable",
                description="The tenant store is unreachable.",
                retry_after=RETRY_AFTER_ADMIN,
            )
        metrics.WEBHOOK_UNAVAILABLE.inc()
        log.warning(
            "store unavailable", extra={"route": req.path[:200], "error": type(ex).__name__}
        )
        raise _provider_retry_later()

    def secret_unreadable(
        self, req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any
    ) -> NoReturn:
        """A master key missing from ``INTERLINK_SECRET_KEY`` (or a corrupt record): the operator's
        problem, said loudly in the log. The messages of ``SecretError`` carry no secret."""
        log.error("tenant secret unreadable", extra={"route": req.path[:200], "error": str(ex)})
        if is_protected(req.path):
            raise falcon.HTTPServiceUnavailable(
                title="Secret unreadable", description=str(ex), retry_after=RETRY_AFTER_SECRET
            )
        raise _provider_retry_later()


def _provider_retry_later() -> falcon.HTTPServiceUnavailable:
    return falcon.HTTPServiceUnavailable(
        title="Store unavailable",
        description="The message store does not answer; retry later.",
        retry_after=RETRY_AFTER_PROVIDER,
    )


ErrorHandler = Callable[[falcon.Request, falcon.Response, Exception, Any], NoReturn]


def answer(
    error: Callable[..., falcon.HTTPError], title: str, description: str | None = None
) -> ErrorHandler:
    """A handler that answers ``error`` with ``title``, and ``description`` or else the
    exception's own text (the tenant errors name a field or an id, never a value)."""

    def handle(req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any) -> NoReturn:
        raise error(title=title, description=description or str(ex))

    return handle
