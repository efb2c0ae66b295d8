"""Operator holds: the tenants an operator stopped (``stop``), kept in Redis until ``start``.

The owner of a tenant reads them when its supervisor starts, so a hold outlives the owner's
restarts and a change of owner; it does not depend on which shard the operator talked to.
"""

from __future__ import annotations

import time

import redis

from interlink.store import keys


class Holds:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def hold(self, tenant_id: str) -> None:
        self.redis.hset(keys.holds(), tenant_id, int(time.time() * 1000))

    def release(self, tenant_id: str) -> bool:
        """Forget the tenant's hold; True if it had one."""
        return bool(self.redis.hdel(keys.holds(), tenant_id))

    def held(self) -> set[str]:
        """Every tenant held, whichever shard owns it."""
        return {
            t.decode() if isinstance(t, bytes) else str(t) for t in self.redis.hkeys(keys.holds())
        }

    def is_held(self, tenant_id: str) -> bool:
        return bool(self.redis.hexists(keys.holds(), tenant_id))
