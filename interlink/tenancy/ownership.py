"""Which shard owns a tenant: rendezvous (highest random weight) hashing.

Every shard computes the same answer from the tenant id and the shard count alone, and changing
the count moves only the tenants whose winner changed (about 1/N of them), not all of them.
"""

from __future__ import annotations

import functools
import hashlib


@functools.lru_cache(maxsize=65_536)  # every webhook asks; the answer never changes
def owner(tenant_id: str, shard_count: int) -> int:
    if shard_count <= 1:
        return 0
    key = tenant_id.encode()
    return max(range(shard_count), key=lambda shard: _weight(key, shard))


def _weight(key: bytes, shard: int) -> int:
    digest = hashlib.blake2b(key, digest_size=8, salt=shard.to_bytes(8, "little")).digest()
    return int.from_bytes(digest, "big")
