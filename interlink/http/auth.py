"""Who is calling the admin API and the control endpoint: the operator, or one tenant's key.

``Authorization: Bearer <token>`` carries either the operator token (``INTERLINK_ADMIN_TOKEN``:
everything) or a tenant-scoped key issued by ``POST /api/tenants/{id}/keys`` (that tenant only).
:class:`AuthMiddleware` authenticates every request under ``/api/`` and ``/control/`` before
routing (so an unknown path there is a 401 too, not a map of the routes) and leaves the
:class:`Principal` in ``req.context.principal``. Health, metrics, webhooks and ``/media`` are not
behind it: they have their own proof (none, provider signatures, signed links).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import falcon
import redis

from interlink.services import Services

PROTECTED_ROOTS = frozenset({"api", "control"})
MAX_TOKEN_LENGTH = 512


@dataclass(frozen=True, slots=True)
class Principal:
    """``operator`` may do everything; otherwise ``tenant_id`` names the only tenant allowed."""

    operator: bool
    tenant_id: str | None = None


OPERATOR = Principal(operator=True)


def _unauthorized(description: str) -> falcon.HTTPUnauthorized:
    return falcon.HTTPUnauthorized(
        title="Unauthorized", description=description, challenges=["Bearer"]
    )


def _digest(value: str) -> bytes:
    # Comparing fixed-length digests keeps compare_digest constant-time whatever the lengths.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def bearer_token(req: falcon.Request) -> str:
    """The token of ``Authorization: Bearer <token>``, or 401."""
    header = req.get_header("Authorization")
    if not header:
        raise _unauthorized("Send Authorization: Bearer <token>.")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("Send Authorization: Bearer <token>.")
    if len(token) > MAX_TOKEN_LENGTH:
        raise _unauthorized("The token is not valid.")
    return token


def authenticate(req: falcon.Request, services: Services) -> Principal:
    """The caller, or 401 (no token, wrong token, revoked key, deleted tenant); 503 if Redis is
    away (a tenant key cannot be checked then)."""
    token = bearer_token(req)
    if hmac.compare_digest(_digest(token), _digest(services.admin_token)):
        return OPERATOR
    try:
        tenant_id = services.tenants.check_key(token)
    except redis.RedisError:
        raise falcon.HTTPServiceUnavailable(
            title="Store unavailable", description="Cannot check the key now.", retry_after=1
        ) from None
    if tenant_id is None:
        raise _unauthorized("The token is not valid.")
    return Principal(operator=False, tenant_id=tenant_id)


def principal_of(req: falcon.Request) -> Principal:
    principal = getattr(req.context, "principal", None)
    if not isinstance(principal, Principal):
        # The middleware did not run for this route: refuse rather than guess.
        raise _unauthorized("Send Authorization: Bearer <token>.")
    return principal


def require_operator(req: falcon.Request) -> Principal:
    """403 unless the caller holds the operator token."""
    principal = principal_of(req)
    if not principal.operator:
        raise falcon.HTTPForbidden(
            title="Forbidden", description="This needs the operator token, not a tenant key."
        )
    return principal


def require_tenant(req: falcon.Request, tenant_id: str) -> Principal:
    """403 unless the caller is the operator or holds a key of ``tenant_id``."""
    principal = principal_of(req)
    if not principal.operator and principal.tenant_id != tenant_id:
        raise falcon.HTTPForbidden(
            title="Forbidden", description="This key belongs to another tenant."
        )
    return principal


def is_protected(path: str) -> bool:
    """``/api/...`` and ``/control/...`` (also with stray slashes or in another case)."""
    return path.strip("/").split("/", 1)[0].lower() in PROTECTED_ROOTS


class AuthMiddleware:
    """Authenticates every protected request before routing; others pass untouched."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if is_protected(req.path):
            req.context.principal = authenticate(req, self.services)
