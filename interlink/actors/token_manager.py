"""The tenant's Genesys OAuth token: one per tenant, shared by every shard through Redis.

No actor: the tenant actor owns one :class:`TokenManager` (kept across reloads) and a
conversation calls it in its own greenlet, through its :class:`~interlink.actors.context.
TenantContext`, which keeps the token in memory until its renewal time. So a tenant's first
message costs no actor start and no ask, and a tenant tree one actor less.

Single flight twice over: inside the shard because one greenlet at a time holds the manager's
lock (the first asker fetches, the others find the fresh token when their turn comes), and across
shards because only the holder of the Redis lock fetches while the others wait for the key. So a
tenant costs one token request per token lifetime however many messages and shards it has.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import gevent
import gevent.lock
import requests

from interlink.providers.errors import AuthError, PermanentError, TransientError
from interlink.providers.genesys import Token, fetch_token
from interlink.settings import Settings
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
TURN_WAIT = 20.0  # how long a caller waits for another greenlet of this shard fetching the token
AUTH_FAILURE_HOLD = 30.0  # refused credentials are not retried sooner (one request, not 1,000)
MEMORY_TTL = 1.0  # seconds a token is served from memory before Redis is asked again, so that a
# token another shard dropped (a 401, a credential change) stops being used here within a second


@dataclass(frozen=True, slots=True)
class TokenLease:
    """A valid access token and how long it may be used without asking again: until its
    renewal time. The tenant's conversations keep it in memory for that long (see
    :class:`interlink.actors.context.TenantContext`) instead of asking per message."""

    token: str = field(repr=False)
    fresh_for: float  # seconds


class TokenManager:
    """One tenant's Genesys token on this shard.

    - ``config``: the tenant configuration (its ``genesys`` credentials and region).
    - ``store``: the shared token cache (:class:`TokenStore` on the shard's Redis).
    - ``session`` / ``settings``: the shard's provider session; the login URL.

    :meth:`token` and :meth:`lease` raise :class:`AuthError` (credentials refused, held for
    ``AUTH_FAILURE_HOLD`` seconds), :class:`TransientError` or :class:`PermanentError`.
    """

    def __init__(
        self,
        config: TenantConfig,
        store: TokenStore,
        session: requests.Session,
        settings: Settings,
    ) -> None:
        self.config = config
        self.tenant_id = config.tenant_id
        self.store = store
        self.session = session
        self.settings = settings
        self._turn = gevent.lock.Semaphore()
        self._token: str | None = None
        self._fresh_until = 0.0
        self._lease_until = 0.0
        self._refused: AuthError | None = None
        self._refused_until = 0.0
        # Drops of whatever is cached (new credentials, an operator's invalidate-token): a fetch
        # one of them overtook keeps nothing, as it may be made with the old credentials. Drops
        # of any kind: a read of the cache one of them overtook is not kept either.
        self._generation = 0
        self._drops = 0
        self.requests_made = 0

    def __repr__(self) -> str:
        return f"TokenManager(tenant={self.tenant_id!r}, requests_made={self.requests_made})"

    def configure(self, config: TenantConfig, *, genesys_login_changed: bool) -> None:
        """Follow a reload; a new Genesys client (id, secret, region) makes the cached token go."""
        self.config = config
        if genesys_login_changed:
            self.drop(None)

    def drop(self, token: str | None) -> None:
        """Genesys answered 401 to ``token`` (None: whatever token is cached, an operator's
        ``invalidate-token`` or new credentials): forget it, here and in Redis, if it is still
        current."""
        if token is None or token == self._token:
            self._token, self._fresh_until, self._lease_until = None, 0.0, 0.0
        if token is None:
            self._generation += 1
        self._drops += 1
        self._refused, self._refused_until = None, 0.0
        self.store.drop(self.tenant_id, token)

    @property
    def generation(self) -> int:
        """Counts the drops of whatever was cached (new credentials, ``invalidate-token``): a
        lease taken under an older one is over, whatever its time said."""
        return self._generation

    def lease(self) -> TokenLease:
        token = self.token()
        return TokenLease(token, max(0.0, self._lease_until - time.monotonic()))

    def token(self) -> str:
        if self._token is not None and time.monotonic() < self._fresh_until:
            return self._token
        if not self._turn.acquire(timeout=TURN_WAIT):
            raise TransientError("the tenant's Genesys token is still being fetched")
        try:
            return self._token_in_turn()
        finally:
            self._turn.release()

    def _token_in_turn(self) -> str:
        now = time.monotonic()
        if self._token is not None and now < self._fresh_until:
            return self._token  # fetched by the greenlet before us
        generation, drops = self._generation, self._drops
        if self._refused is not None and now < self._refused_until:
            # Refused credentials are not fetched again for a while: no lock to take.
            cached = self.store.get(self.tenant_id)
            if cached is not None and cached.remaining > cached.renew_at(REFRESH_AHEAD):
                return self._remember(cached, drops)
            raise self._refused
        # The read and, if the token is missing or due for renewal, the lock: one round trip.
        asked = now
        cached, owner = self.store.get_or_lock(self.tenant_id, REFRESH_AHEAD)
        if (
            owner is None
            and cached is not None
            and cached.remaining > cached.renew_at(REFRESH_AHEAD)
        ):
            return self._remember(cached, drops)
        deadline = now + LOCK_WAIT
        while True:
            if owner is not None:
                return self._fetch_holding(owner, asked, generation)
            if cached is not None:
                # Still valid: another shard is renewing it.
                return self._remember(cached, drops)
            gevent.sleep(LOCK_POLL)
            drops = self._drops
            cached = self.store.get(self.tenant_id)
            if cached is not None:
                return self._remember(cached, drops)
            if time.monotonic() > deadline:
                raise TransientError("another shard holds the token lock and no token appeared")
            asked = time.monotonic()
            owner = self.store.lock(self.tenant_id)

    def _fetch_holding(self, owner: str, locked_at: float, generation: int) -> str:
        """Fetch with the lock ``owner`` taken (asked for at ``locked_at``), then release it: in
        the round trip that stores the token while the lock is surely still ours (one round trip
        less on a tenant's first message), else by compare-and-delete."""
        try:
            token = self._fetch()
        except BaseException:
            self.store.unlock(self.tenant_id, owner)
            raise
        if generation != self._generation:
            # Dropped while it was being fetched (new credentials): it may be the old client's.
            self.store.unlock(self.tenant_id, owner)
            raise TransientError("the tenant's Genesys token was dropped while it was fetched")
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
        return self._remember(cached, self._drops)  # fetched after any drop of an older one

    def _fetch(self) -> Token:
        creds = self.config.genesys
        if creds is None:
            raise PermanentError(None, "not.configured", "the tenant has no Genesys credentials")
        self.requests_made += 1
        try:
            return fetch_token(self.session, self.settings.genesys_login_base(creds.region), creds)
        except AuthError as exc:
            self._refused, self._refused_until = exc, time.monotonic() + AUTH_FAILURE_HOLD
            metrics.GENESYS_TOKEN_FAILURES.inc()
            log.warning(
                "genesys refused the tenant's credentials", extra={"tenant": self.tenant_id}
            )
            raise

    def _remember(self, cached: CachedToken, drops: int) -> str:
        """Keep ``cached`` in memory, unless a drop came while it was read (the read may have
        preceded the drop): its asker, who asked before the drop, still gets it, but nobody
        after (no lease: its lease time stays 0)."""
        if drops != self._drops:
            return cached.token
        self._token = cached.token
        fresh_for = cached.remaining - cached.renew_at(REFRESH_AHEAD)
        now = time.monotonic()
        self._fresh_until = now + min(MEMORY_TTL, fresh_for)
        self._lease_until = now + fresh_for
        return cached.token
