"""Tenant ids chosen for the shard that owns them (multi-shard tests)."""

from __future__ import annotations

import itertools

from interlink.tenancy.ownership import owner


def owned_by(shard: int, count: int, prefix: str = "acme") -> str:
    """The first tenant id ``prefix-N`` whose owner is ``shard`` among ``count`` shards."""
    return next(
        tenant_id
        for tenant_id in (f"{prefix}-{n}" for n in itertools.count())
        if owner(tenant_id, count) == shard
    )
