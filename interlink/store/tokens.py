"""The shared Genesys token cache: ``genesys:oauth:token:{tenantId}``, plus its fetch lock.

The key holds the bare access token and expires ``SAFETY_MARGIN`` seconds before Genesys says the
token does, so no shard ever sends an expired one. The lock (``SET NX PX``) lets exactly one shard
fetch a new token while the others wait for the key to appear.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import redis

from interlink.store import keys

SAFETY_MARGIN = 60  # seconds taken off Genesys's expires_in (at most 10% of a short lifetime)
LOCK_TTL_MS = 15_000  # longer than a token request's timeout: a crashed holder frees it anyway

# Compare-and-delete: only the holder releases its lock; only a token still current is dropped.
_DELETE_IF_EQUAL = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)


@dataclass(frozen=True, slots=True)
class CachedToken:
    token: str = field(repr=False)
    remaining: float  # seconds until the cache entry expires
    lifetime: float  # seconds it was cached for

    def renew_at(self, refresh_ahead: float) -> float:
        """Remaining seconds below which it is time to renew: ``refresh_ahead``, or a tenth of a
        short lifetime (a 10 s test token is not renewed on every call)."""
        return min(refresh_ahead, self.lifetime * 0.1)


class TokenStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._delete_if_equal = client.register_script(_DELETE_IF_EQUAL)

    def get(self, tenant_id: str) -> CachedToken | None:
        """The cached token, or None."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(keys.token(tenant_id))
        pipe.pttl(keys.token(tenant_id))
        pipe.get(keys.token_lifetime(tenant_id))
        value, pttl, lifetime = pipe.execute()
        if value is None or pttl is None or pttl <= 0:
            return None
        remaining = pttl / 1000
        return CachedToken(value.decode(), remaining, float(lifetime or remaining))

    def put(
        self, tenant_id: str, token: str, expires_in: float, *, unlock: bool = False
    ) -> CachedToken:
        """Cache ``token`` for every shard, until shortly before it expires. ``unlock``: release
        the fetch lock in the same round trip, by a plain ``DEL``: only for a caller that knows
        its lock cannot have expired yet (:data:`LOCK_TTL_MS` is far from over), else
        :meth:`unlock` compares first."""
        ttl = expires_in - min(SAFETY_MARGIN, expires_in * 0.1)
        px = max(1, int(ttl * 1000))
        # Not a MULTI: the contract's key name has no hash tag, so on a Redis Cluster the two keys
        # may be in different slots. The lifetime goes first; a reader that finds the token
        # without it (a moment, at expiry) takes the time remaining instead.
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(keys.token_lifetime(tenant_id), str(ttl), px=px)
        pipe.set(keys.token(tenant_id), token, px=px)
        if unlock:
            pipe.delete(keys.token_lock(tenant_id))
        pipe.execute()
        return CachedToken(token, ttl, ttl)

    def drop(self, tenant_id: str, token: str | None = None) -> None:
        """Drop the cached token (only if it is still ``token``, when given)."""
        if token is None:
            # One DEL per key: they may be in different slots of a cluster.
            self.redis.delete(keys.token(tenant_id))
            self.redis.delete(keys.token_lifetime(tenant_id))
        else:
            self._delete_if_equal(keys=[keys.token(tenant_id)], args=[token])

    def lock(self, tenant_id: str) -> str | None:
        """Try to become the one shard that fetches; returns the lock's owner value or None."""
        owner = secrets.token_hex(8)
        if self.redis.set(keys.token_lock(tenant_id), owner, nx=True, px=LOCK_TTL_MS):
            return owner
        return None

    def unlock(self, tenant_id: str, owner: str) -> None:
        self._delete_if_equal(keys=[keys.token_lock(tenant_id)], args=[owner])

    def locked(self, tenant_id: str) -> bool:
        return bool(self.redis.exists(keys.token_lock(tenant_id)))
