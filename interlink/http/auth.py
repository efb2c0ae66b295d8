"""Who is calling the admin API and the control endpoint: the operator, or one tenant's key.

``Authorization: Bearer <token>`` carries either the operator token (``INTERLINK_ADMIN_TOKEN``:
everything) or a tenant-scoped key issued by ``POST /api/tenants/{id}/keys`` (that tenant only).
:class:`AuthMiddleware` authenticates every request under ``/api/`` and ``/control/`` before
routing (so an unknown path there is a 401 too, not a map of the routes) and leaves the
:class:`Principal` in ``req.context.principal``. Health, metrics, webhooks and ``/media`` are not
behind it: they have their own proof (none, provider signatures, signed links).

Failed logins are throttled (:class:`LoginThrottle`, docs/security.md): after ``FAILURE_LIMIT``
wrong tokens within ``FAILURE_WINDOW`` seconds from one client address, or against one tenant
key id from any address, every request of that client or key id is a 429 with ``Retry-After``
for ``FAILURE_WINDOW`` seconds, before its token is even looked at, a correct one included: an
answer that differed for the right token would let guessing go on at full speed. A request
without any token is counted in the metric but not towards the throttle (it guesses nothing).
The client is the TCP peer; ``X-Forwarded-For`` is believed only from ``trusted_proxies``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import re
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import falcon

from interlink.services import Services
from interlink.telemetry import metrics

log = logging.getLogger(__name__)

PROTECTED_ROOTS = frozenset({"api", "control"})
MAX_TOKEN_LENGTH = 512

FAILURE_LIMIT = 10  # wrong tokens per client address (or per key id) ...
FAILURE_WINDOW = 60.0  # ... within this many seconds; then blocked for as long again
MAX_TRACKED = 10_000  # buckets remembered per kind; the least recently used go first
MAX_LOGGED_ROUTE = 200
# A tenant key's id, as issued by ApiKeys.issue_key: the part an attacker cannot vary without
# also varying which key it guesses against.
_KEY_ID = re.compile(r"ilk_([0-9a-f]{16})_")

Clock = Callable[[], float]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_V4_MAPPED = bytes(10) + b"\xff\xff"


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


class _MissingToken(falcon.HTTPUnauthorized):
    """No bearer token at all: a 401 that guessed nothing, so it is not held against anyone."""


def bearer_token(req: falcon.Request) -> str:
    """The token of ``Authorization: Bearer <token>``, or 401."""
    header = req.get_header("Authorization")
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _MissingToken(
            title="Unauthorized",
            description="Send Authorization: Bearer <token>.",
            challenges=["Bearer"],
        )
    if len(token) > MAX_TOKEN_LENGTH:
        raise _unauthorized("The token is not valid.")
    return token


def key_id_of(token: str) -> str | None:
    """The id of a token shaped like a tenant key, else None (the operator token has none)."""
    match = _KEY_ID.match(token)
    return match.group(1) if match else None


# -- throttling ----------------------------------------------------------------------------------
@dataclass(slots=True)
class _Bucket:
    started: float
    failures: int = 0
    blocked_until: float = 0.0


class Throttle:
    """Failures per key in fixed windows; ``limit`` failures block the key for ``window`` seconds.

    At most ``max_entries`` keys are remembered (LRU), so made-up keys cannot grow it without
    bound; evicting a key forgets its failures, which is why addresses and key ids live in
    separate throttles (made-up key ids cannot push an attacker's address out)."""

    def __init__(
        self,
        *,
        limit: int = FAILURE_LIMIT,
        window: float = FAILURE_WINDOW,
        max_entries: int = MAX_TRACKED,
        clock: Clock = time.monotonic,
    ) -> None:
        self.limit, self.window, self.max_entries, self.clock = limit, window, max_entries, clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again; 0 when it may now."""
        bucket = self._buckets.get(key)
        if bucket is None or not bucket.blocked_until:
            return 0.0
        left = bucket.blocked_until - self.clock()
        if left > 0:
            return left
        del self._buckets[key]  # served its time: a fresh start
        return 0.0

    def fail(self, key: str) -> bool:
        """Count one failure of ``key``; True when this one blocks it."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None or now - bucket.started >= self.window:
            bucket = _Bucket(started=now)
            self._buckets[key] = bucket
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_entries:
            self._buckets.popitem(last=False)
        bucket.failures += 1
        if bucket.failures >= self.limit and not bucket.blocked_until:
            bucket.blocked_until = now + self.window
            return True
        return False


def _networks(values: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


class LoginThrottle:
    """The two throttles of failed logins, and who the client is."""

    def __init__(
        self,
        *,
        limit: int = FAILURE_LIMIT,
        window: float = FAILURE_WINDOW,
        max_entries: int = MAX_TRACKED,
        clock: Clock = time.monotonic,
        trusted_proxies: Iterable[str] = (),
    ) -> None:
        self.clients = Throttle(limit=limit, window=window, max_entries=max_entries, clock=clock)
        self.key_ids = Throttle(limit=limit, window=window, max_entries=max_entries, clock=clock)
        self.trusted_proxies = _networks(trusted_proxies)

    def client_of(self, req: falcon.Request) -> str:
        """The bucket of the caller: its address, an IPv6 one as its /64 (one subscriber usually
        holds a whole /64 and could otherwise rotate through it). Behind a trusted proxy, the
        right-most ``X-Forwarded-For`` entry that is not itself a trusted proxy."""
        peer = req.remote_addr or ""
        if self.trusted_proxies and _within(peer, self.trusted_proxies):
            forwarded = [
                hop.strip() for hop in (req.get_header("X-Forwarded-For") or "").split(",")
            ]
            for hop in reversed(forwarded):
                if hop and not _within(hop, self.trusted_proxies):
                    peer = hop
                    break
        return _bucket_of(peer)


def _within(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _bucket_of(address: str) -> str:
    if ":" not in address:
        return address[:64]  # IPv4, or whatever a WSGI server put there: as it is, bounded
    try:
        # inet_pton, not ipaddress.IPv6Network: this runs on every request, and is 50x cheaper.
        packed = socket.inet_pton(socket.AF_INET6, address.split("%", 1)[0])
    except OSError:
        return address[:64]
    if packed[:12] == _V4_MAPPED:
        return socket.inet_ntop(socket.AF_INET, packed[12:])
    return packed[:8].hex() + "::/64"


def _throttled(seconds: float) -> falcon.HTTPTooManyRequests:
    return falcon.HTTPTooManyRequests(
        title="Too many failed logins",
        description="Too many wrong tokens from this client or for this key; try again later.",
        retry_after=max(1, math.ceil(seconds)),
    )


def _count(services: Services, reason: str) -> None:
    """``interlink_auth_failures_total{reason}``: missing (no token), invalid, throttled."""
    metrics.AUTH_FAILURES.labels(reason).inc()


def authenticate(
    req: falcon.Request, services: Services, throttle: LoginThrottle | None = None
) -> Principal:
    """The caller, or 401 (no token, wrong token, revoked key, deleted tenant); 429 after too
    many wrong tokens from this client or for this key id. Redis being away (a tenant key cannot
    be checked then) rises to the app's error handler: 503."""
    throttle = throttle or services.login_throttle
    client = throttle.client_of(req)
    wait = throttle.clients.retry_after(client)
    if wait:
        _count(services, "throttled")
        raise _throttled(wait)
    try:
        token = bearer_token(req)
    except _MissingToken:
        _count(services, "missing")
        raise
    except falcon.HTTPUnauthorized:
        _failed(req, services, throttle, client, None)
        raise
    key_id = key_id_of(token)
    if key_id is not None:
        wait = throttle.key_ids.retry_after(key_id)
        if wait:
            _count(services, "throttled")
            raise _throttled(wait)
    if hmac.compare_digest(_digest(token), _digest(services.admin_token)):
        return OPERATOR
    tenant_id = services.api_keys.check_key(token)
    if tenant_id is None:
        _failed(req, services, throttle, client, key_id)
        raise _unauthorized("The token is not valid.")
    return Principal(operator=False, tenant_id=tenant_id)


def _failed(
    req: falcon.Request,
    services: Services,
    throttle: LoginThrottle,
    client: str,
    key_id: str | None,
) -> None:
    """Count and log one wrong token: the client, the route and the key id, never the token.
    One line per failure until the client or key id is blocked, then one more; the 429s after
    that are only counted, so a flood cannot flood the log too."""
    _count(services, "invalid")
    blocked = throttle.clients.fail(client)
    if key_id is not None:
        blocked = throttle.key_ids.fail(key_id) or blocked
    log.warning(
        "login blocked after repeated failures" if blocked else "login failed",
        extra={
            "client": client,
            "route": req.path[:MAX_LOGGED_ROUTE],
            "keyId": key_id,
            "blockedFor": throttle.clients.window if blocked else None,
        },
    )


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
