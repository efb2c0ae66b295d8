"""The tenant's Genesys OAuth token: one per tenant, shared by every shard through Redis.

Single flight twice over: inside the shard because this actor answers one ``GetToken`` at a time
(the first asker fetches, the others find the fresh token when their turn comes), and across
shards because only the holder of the Redis lock fetches while the others wait for the key. So a
tenant costs one token request per token lifetime however many messages and shards it has.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import gevent

from interlink.actors.actor import Actor
from interlink.actors.messages import ConfigChanged, Control
from interlink.actors.supervision import ChildStatus
from interlink.actors.tree import TreeSpec, http_session
from interlink.providers.errors import AuthError, PermanentError, TransientError
from interlink.providers.genesys import Token, fetch_token
from interlink.store.tokens import LOCK_TTL_MS, CachedToken, TokenStore
from interlink.telemetry import metrics
from interlink.tenancy.config import TenantConfig

log = logging.getLogger(__name__)

REFRESH_AHEAD = 120.0  # seconds before the cached token expires that one shard renews it
LOCK_WAIT = 12.0  # how long a shard waits for another one's fetch before giving up
LOCK_POLL = 0.05
# Seconds after asking for the fetch lock during which it is surely still ours (it lives
# LOCK_TTL_MS from when Redis set it): released then with a plain DEL, batched with the store.
LOCK_SURELY_HELD = LOCK_TTL_MS / 1000 - 5.0
AUTH_FAILURE_HOLD = 30.0  # refused credentials are not retried sooner (one request, not 1,000)
MEMORY_TTL = 1.0  # seconds a token is served from memory before Redis is asked again, so that a
# token another shard dropped (a 401, a credential change) stops being used here within a second


@dataclass(frozen=True, slots=True)
class GetToken:
    """Ask for a valid access token (raises AuthError, TransientError or PermanentError)."""


@dataclass(frozen=True, slots=True)
class GetTokenLease:
    """Ask for a valid access token and how long it may be used without asking again: until its
    renewal time. The tenant's conversations keep it in memory for that long (see
    :class:`interlink.actors.context.TenantContext`) instead of asking per message."""


@dataclass(frozen=True, slots=True)
class TokenLease:
    token: str = field(repr=False)
    fresh_for: float  # seconds


@dataclass(frozen=True, slots=True)
class DropToken:
    """Genesys answered 401 to ``token``: forget it, here and in Redis, if it is still current."""

    token: str | None  # None: whatever token is cached


class TokenManager(Actor):
    def __init__(self, config: TenantConfig, *, spec: TreeSpec, status: ChildStatus) -> None:
        super().__init__(status=status)
        self.config = config
        self.spec = spec
        self.tenant_id = config.tenant_id
        self._token: str | None = None
        self._fresh_until = 0.0
        self._lease_until = 0.0
        self._refused: AuthError | None = None
        self._refused_until = 0.0
        self.requests_made = 0

    def started(self) -> None:
        self.session = http_session(self.spec)
        services = self.spec.services
        self.store = TokenStore(services.redis) if services is not None else None

    def receive(self, message: Any) -> Any:
        if isinstance(message, GetToken):
            return self.token()
        if isinstance(message, GetTokenLease):
            token = self.token()
            return TokenLease(token, max(0.0, self._lease_until - time.monotonic()))
        if isinstance(message, DropToken):
            return self.drop(message.token)
        if isinstance(message, ConfigChanged):
            self.config = message.config
            if message.genesys_login_changed:
                self.drop(None)
            return None
        if isinstance(message, Control) and message.type == "invalidate-token":
            return self.drop(None)
        return super().receive(message)

    def drop(self, token: str | None) -> None:
        if token is None or token == self._token:
            self._token, self._fresh_until, self._lease_until = None, 0.0, 0.0
        self._refused, self._refused_until = None, 0.0
        if self.store is not None:
            self.store.drop(self.tenant_id, token)

    def token(self) -> str:
        now = time.monotonic()
        if self._token is not None and now < self._fresh_until:
            return self._token
        if self.store is None:
            raise PermanentError(None, "no.store", "the token manager has no store")
        cached = self.store.get(self.tenant_id)
        if cached is not None and cached.remaining > cached.renew_at(REFRESH_AHEAD):
            return self._remember(cached)
        if self._refused is not None and now < self._refused_until:
            raise self._refused
        deadline = now + LOCK_WAIT
        while True:
            asked = time.monotonic()
            owner = self.store.lock(self.tenant_id)
            if owner is not None:
                return self._fetch_holding(owner, asked)
            if cached is not None:
                return self._remember(cached)  # still valid: another shard is renewing it
            gevent.sleep(LOCK_POLL)
            cached = self.store.get(self.tenant_id)
            if cached is not None:
                return self._remember(cached)
            if time.monotonic() > deadline:
                raise TransientError("another shard holds the token lock and no token appeared")

    def _fetch_holding(self, owner: str, locked_at: float) -> str:
        """Fetch with the lock ``owner`` taken (asked for at ``locked_at``), then release it: in
        the round trip that stores the token while the lock is surely still ours (one round trip
        less on a tenant's first message), else by compare-and-delete."""
        assert self.store is not None
        try:
            token = self._fetch()
        except BaseException:
            self.store.unlock(self.tenant_id, owner)
            raise
        unlock = time.monotonic() - locked_at < LOCK_SURELY_HELD
        try:
            cached = self.store.put(
                self.tenant_id, token.access_token, token.expires_in, unlock=unlock
            )
        except BaseException:
            self.store.unlock(self.tenant_id, owner)
            raise
        if not unlock:
            self.store.unlock(self.tenant_id, owner)
        return self._remember(cached)

    def _fetch(self) -> Token:
        creds = self.config.genesys
        if creds is None:
            raise PermanentError(None, "not.configured", "the tenant has no Genesys credentials")
        settings = self.spec.services.settings
        self.requests_made += 1
        try:
            token = fetch_token(self.session, settings.genesys_login_base(creds.region), creds)
        except AuthError as exc:
            self._refused, self._refused_until = exc, time.monotonic() + AUTH_FAILURE_HOLD
            metrics.GENESYS_TOKEN_FAILURES.inc()
            log.warning(
                "genesys refused the tenant's credentials", extra={"tenant": self.tenant_id}
            )
            raise
        return token

    def _remember(self, cached: CachedToken) -> str:
        self._token = cached.token
        fresh_for = cached.remaining - cached.renew_at(REFRESH_AHEAD)
        now = time.monotonic()
        self._fresh_until = now + min(MEMORY_TTL, fresh_for)
        self._lease_until = now + fresh_for
        return cached.token
