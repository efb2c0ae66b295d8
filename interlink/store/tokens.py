"""The shared Genesys token cache: ``genesys:oauth:token:{tenantId}``, plus its fetch lock.

The key holds the bare access token and expires ``SAFETY_MARGIN`` seconds before Genesys says the
token does, so no shard ever sends an expired one. The lock (``SET NX PX``) lets exactly one shard
fetch a new token while the others wait for the key to appear.

A tenant's first ask (nothing cached yet) reads the token and takes the lock in one round trip
(:meth:`TokenStore.get_or_lock`, a script); the lock is only taken when the cached token is
missing or due for renewal, so an ask that finds a good token costs no lock and no release.
Those reads, the stores and the drops go through the shard's shared store connection
(:mod:`interlink.store.multiplex`): when thousands of tenants get their first message at once (a
restart, a burst), theirs share writes and reads instead of a pool loan and a round trip each, in
the order they were asked (a drop asked after a store is applied after it).
"""

from __future__ import annotations

import secrets
import weakref
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.commands.core import Script

from interlink.store import keys, multiplex
from interlink.store.connection import is_cluster

SAFETY_MARGIN = 60  # seconds taken off Genesys's expires_in (at most 10% of a short lifetime)
LOCK_TTL_MS = 15_000  # longer than a token request's timeout: a crashed holder frees it anyway

# Compare-and-delete: only the holder releases its lock; only a token still current is dropped.
_DELETE_IF_EQUAL = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)

# The cached token as :meth:`TokenStore.get` reads it; when it is missing or due for renewal
# (the rule of CachedToken.renew_at: less than min(ARGV[1], a tenth of its lifetime) remains),
# also SET NX PX the fetch lock. Returns {token or false, pttl, lifetime or false, 1 if locked}.
_GET_OR_LOCK = """
local value = redis.call('GET', KEYS[1])
local pttl = redis.call('PTTL', KEYS[1])
local lifetime = redis.call('GET', KEYS[2])
if value and pttl > 0 then
  local life = tonumber(lifetime) or pttl / 1000
  if pttl / 1000 > math.min(tonumber(ARGV[1]), life * 0.1) then
    return {value, pttl, lifetime, 0}
  end
end
if redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[3]) then
  return {value, pttl, lifetime, 1}
end
return {value, pttl, lifetime, 0}
"""

# One set of script objects per client, not per tenant: a tenant's first message builds a
# TokenStore, and hashing the scripts' sources each time is wasted work.
_SCRIPTS: weakref.WeakKeyDictionary[Any, dict[str, Script]] = weakref.WeakKeyDictionary()


def _script(client: Any, source: str) -> Script:
    scripts = _SCRIPTS.get(client)
    if scripts is None:
        scripts = _SCRIPTS[client] = {}
    script = scripts.get(source)
    if script is None:
        script = scripts[source] = client.register_script(source)
    return script


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

    def _delete_if_equal(self, *, keys: list[str], args: list[str]) -> Any:
        return _script(self.redis, _DELETE_IF_EQUAL)(keys=keys, args=args)

    def get(self, tenant_id: str) -> CachedToken | None:
        """The cached token, or None."""
        pipe = multiplex.pipeline(self.redis)
        pipe.get(keys.token(tenant_id))
        pipe.pttl(keys.token(tenant_id))
        pipe.get(keys.token_lifetime(tenant_id))
        value, pttl, lifetime = pipe.execute()
        return _cached(value, pttl, lifetime)

    def get_or_lock(
        self, tenant_id: str, refresh_ahead: float
    ) -> tuple[CachedToken | None, str | None]:
        """The cached token (or None) and, when it is missing or due for renewal (see
        :meth:`CachedToken.renew_at`), the fetch lock's owner value if this call took it (else
        None), in one round trip. On a Redis Cluster the three keys may lie in different slots,
        which a script cannot touch: :meth:`get`, then :meth:`lock` when it is needed."""
        if is_cluster(self.redis):
            cached = self.get(tenant_id)
            if cached is not None and cached.remaining > cached.renew_at(refresh_ahead):
                return cached, None
            return cached, self.lock(tenant_id)
        owner = secrets.token_hex(8)
        names = (keys.token(tenant_id), keys.token_lifetime(tenant_id), keys.token_lock(tenant_id))
        # EVAL, not EVALSHA: a script object would be loaded through the client's pool; Valkey
        # keeps the compiled script by its hash, so only the source's bytes are sent again.
        pipe = multiplex.pipeline(self.redis)
        pipe.eval(_GET_OR_LOCK, 3, *names, refresh_ahead, owner, LOCK_TTL_MS)
        ((value, pttl, lifetime, locked),) = pipe.execute()
        return _cached(value, pttl, lifetime), (owner if locked else None)

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
        pipe = multiplex.pipeline(self.redis)
        pipe.set(keys.token_lifetime(tenant_id), str(ttl), px=px)
        pipe.set(keys.token(tenant_id), token, px=px)
        if unlock:
            pipe.delete(keys.token_lock(tenant_id))
        pipe.execute()
        return CachedToken(token, ttl, ttl)

    def drop(self, tenant_id: str, token: str | None = None) -> None:
        """Drop the cached token (only if it is still ``token``, when given), after any store
        of this shard asked for before it."""
        if token is None:
            # One DEL per key: they may be in different slots of a cluster.
            pipe = multiplex.pipeline(self.redis)
            pipe.delete(keys.token(tenant_id))
            pipe.delete(keys.token_lifetime(tenant_id))
            pipe.execute()
        elif is_cluster(self.redis):
            self._delete_if_equal(keys=[keys.token(tenant_id)], args=[token])
        else:
            pipe = multiplex.pipeline(self.redis)
            pipe.eval(_DELETE_IF_EQUAL, 1, keys.token(tenant_id), token)
            pipe.execute()

    def lock(self, tenant_id: str) -> str | None:
        """Try to become the one shard that fetches; returns the lock's owner value or None."""
        owner = secrets.token_hex(8)
        pipe = multiplex.pipeline(self.redis)
        pipe.set(keys.token_lock(tenant_id), owner, nx=True, px=LOCK_TTL_MS)
        (taken,) = pipe.execute()
        return owner if taken else None

    def unlock(self, tenant_id: str, owner: str) -> None:
        self._delete_if_equal(keys=[keys.token_lock(tenant_id)], args=[owner])

    def locked(self, tenant_id: str) -> bool:
        return bool(self.redis.exists(keys.token_lock(tenant_id)))


def _cached(value: Any, pttl: Any, lifetime: Any) -> CachedToken | None:
    if value is None or pttl is None or pttl <= 0:
        return None
    remaining = pttl / 1000
    return CachedToken(value.decode(), remaining, float(lifetime or remaining))
