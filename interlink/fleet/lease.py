"""The lease on one stream: only its holder reads it, delivers from it and hands it over.

``SET NX PX`` with a short lifetime, refreshed well before it runs out; a new holder waits until
the old one released it or it lapsed. The value names the shard and the generation, so that the
same shard restarted in the same generation (a crash, a ``kill -9``) takes its lease back at once
instead of waiting for it to lapse: one shard id runs once (the StatefulSet's ordinal).
"""

from __future__ import annotations

import secrets

import redis

from interlink.store import keys

DEFAULT_TTL = 10.0  # seconds a lease lives without a refresh

# KEYS[1] = lease; ARGV = value, ttl (ms), the value's "shard/generation/" prefix. 1: held.
_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1]
   or string.sub(current, 1, string.len(ARGV[3])) == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
# KEYS[1] = lease; ARGV = value, ttl (ms). Extends it while it is ours (or free again: a store
# restarted without its data). 0: another took it.
_REFRESH = """
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
# KEYS[1] = lease; ARGV = value. Deletes it only if it is still ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"""


class Lease:
    """The lease of ``stream`` for ``shard_id`` in ``generation``."""

    def __init__(
        self,
        client: redis.Redis,
        stream: int,
        shard_id: int,
        generation: int,
        *,
        ttl: float = DEFAULT_TTL,
    ) -> None:
        self.redis = client
        self.stream = stream
        self.key = keys.lease(stream)
        self.prefix = f"{shard_id}/{generation}/"
        self.value = self.prefix + secrets.token_hex(6)
        self.ttl_ms = int(ttl * 1000)
        self.held = False

    def acquire(self) -> bool:
        """Take the lease, or extend it when held; False while another shard (or generation)
        holds it, or once ours was taken by another."""
        if self.held:
            return self.refresh()
        self.held = bool(
            self.redis.eval(_ACQUIRE, 1, self.key, self.value, self.ttl_ms, self.prefix)
        )
        return self.held

    def refresh(self) -> bool:
        self.held = bool(self.redis.eval(_REFRESH, 1, self.key, self.value, self.ttl_ms))
        return self.held

    def release(self) -> None:
        if self.held:
            self.held = False
            self.redis.eval(_RELEASE, 1, self.key, self.value)
