"""Moving a v1 key layout to v2 at start (the keys that took a hash tag for Redis Cluster).

A shard started on a Redis that a version before v2 wrote renames, once, every key whose name
changed (see :mod:`interlink.store.keys`): the tenant registry (records, id set, indexes, API keys)
into the ``{registry}`` slot, each tenant's backlog counter and "accepted" dedupe markers next to
its owner shard's inbox, its message maps and receipt hashes into the tenant's own slot. Inbox
streams, conversations, dead letters and tokens keep their names, so nothing accepted before the
upgrade is lost or delivered again.

``RENAMENX`` keeps each key's value and time to live, never overwrites a v2 key, and is atomic per
key: shards starting together may each move some keys, and a move stopped halfway is finished
by the next start. ``keys.layout()`` records that the move is done, so later starts skip the scan.
A cluster never held a v1 layout (its scripts could not run there), so nothing moves on one.
"""

from __future__ import annotations

import logging

import redis

from interlink.store import keys
from interlink.store.connection import is_cluster
from interlink.tenancy import ownership

log = logging.getLogger(__name__)

VERSION = 2
_V1 = keys.NS
BATCH = 500  # renames per pipeline


def v2_name(name: str, shard_count: int) -> str | None:
    """The v2 name of the v1 key ``name``; None for a key whose name did not change."""
    if not name.startswith(_V1):
        return None
    kind, _, rest = name[len(_V1) :].partition(":")
    if kind == "tenants" and not rest:
        return keys.tenant_ids()
    if kind == "idx":
        return {
            "phone": keys.index_phone(),
            "integration": keys.index_integration(),
            "verify": keys.index_verify_token(),
        }.get(rest)
    if kind == "tenant":
        return keys.tenant(rest)
    if kind == "apikey":
        return keys.api_key(rest)
    if kind == "tenant-keys":
        return keys.tenant_api_keys(rest)
    if kind == "backlog":
        return keys.backlog(ownership.owner(rest, shard_count), rest)
    if kind == "msg":
        tenant_id, _, message_id = rest.partition(":")  # tenant ids hold no ":"
        return keys.message_map(tenant_id, message_id)
    if kind == "seen":
        tenant_id, marker, ident = [*rest.split(":", 2), "", ""][:3]
        if marker == "in":
            return keys.accepted(ownership.owner(tenant_id, shard_count), tenant_id, ident)
        if marker == "receipt":
            return keys.receipt(tenant_id, ident)
    return None


def ensure(client: redis.Redis, shard_count: int) -> int:
    """Move a v1 layout to v2 unless done before; returns how many keys this call moved.
    Raises ``redis.RedisError`` when Redis does not answer (nothing half done: call it again)."""
    if is_cluster(client) or client.exists(keys.layout()):
        return 0
    moved = 0
    batch: list[tuple[str, str]] = []
    # One pass over the keyspace: most v1 keys are dedupe markers and message maps.
    for raw in client.scan_iter(match=_V1 + "*", count=1000):
        name = raw.decode() if isinstance(raw, bytes) else raw
        new = v2_name(name, shard_count)
        if new is not None:
            batch.append((name, new))
        if len(batch) >= BATCH:
            moved += _move(client, batch)
            batch = []
    if batch:
        moved += _move(client, batch)
    client.set(keys.layout(), str(VERSION))
    if moved:
        log.info("key layout moved from v1 to v2", extra={"keys": moved})
    return moved


def _move(client: redis.Redis, pairs: list[tuple[str, str]]) -> int:
    pipe = client.pipeline(transaction=False)
    for name, new in pairs:
        pipe.renamenx(name, new)
    moved = 0
    for (_, new), result in zip(pairs, pipe.execute(raise_on_error=False), strict=True):
        if isinstance(result, redis.ResponseError):
            if "no such key" in str(result).lower():
                continue  # moved meanwhile by another shard starting at the same time
            # Anything else (a NOPERM from an ACL without RENAMENX, say) must not pass for done.
            raise result
        if result:
            moved += 1
        else:
            log.warning("v1 key left in place: its v2 name exists already", extra={"key": new})
    return moved
