"""Moving a v1 key layout to v2 at start (the keys that took a hash tag for Redis Cluster).

A shard started on a Redis that a version before v2 wrote renames, once, every key whose name
changed (see :mod:`interlink.store.keys`): the tenant registry (records, id set, indexes, API keys)
into the ``{registry}`` slot, each tenant's backlog counter and "accepted" dedupe markers next to
its owner shard's inbox. Inbox streams, conversations, dead letters and tokens keep their names,
so nothing accepted before the upgrade is lost or delivered again.

``RENAMENX`` keeps each key's value and time to live, never overwrites a v2 key, and is atomic per
key: shards starting together may each move some keys, and a move stopped halfway is finished
by the next start. ``keys.layout()`` records that the move is done, so later starts skip the scan.
A cluster never held a v1 layout (its scripts could not run there), so nothing moves on one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import redis

from interlink.store import keys
from interlink.store.connection import is_cluster
from interlink.tenancy import ownership

log = logging.getLogger(__name__)

VERSION = 2
_V1 = keys.NS
BATCH = 500  # renames per pipeline


def _v1_names(shard_count: int) -> list[tuple[str, Callable[[str], str | None]]]:
    """(SCAN pattern, v1 name -> v2 name or None to leave it) for each key type that moved."""

    def after(prefix: str) -> Callable[[str], str]:
        return lambda name: name[len(prefix) :]

    def seen(name: str) -> str | None:
        # il:v1:seen:<tenant>:in:<ident>; tenant ids hold no ":".
        tenant_id, kind, ident = name[len(_V1 + "seen:") :].split(":", 2)
        if kind != "in":
            return None
        return keys.accepted(ownership.owner(tenant_id, shard_count), tenant_id, ident)

    def backlog(name: str) -> str:
        tenant_id = after(_V1 + "backlog:")(name)
        return keys.backlog(ownership.owner(tenant_id, shard_count), tenant_id)

    return [
        (_V1 + "tenants", lambda _: keys.tenant_ids()),
        (_V1 + "idx:phone", lambda _: keys.index_phone()),
        (_V1 + "idx:integration", lambda _: keys.index_integration()),
        (_V1 + "idx:verify", lambda _: keys.index_verify_token()),
        (_V1 + "tenant:*", lambda name: keys.tenant(after(_V1 + "tenant:")(name))),
        (_V1 + "apikey:*", lambda name: keys.api_key(after(_V1 + "apikey:")(name))),
        (
            _V1 + "tenant-keys:*",
            lambda name: keys.tenant_api_keys(after(_V1 + "tenant-keys:")(name)),
        ),
        (_V1 + "backlog:*", backlog),
        (_V1 + "seen:*:in:*", seen),
    ]


def ensure(client: redis.Redis, shard_count: int) -> int:
    """Move a v1 layout to v2 unless done before; returns how many keys this call moved.
    Raises ``redis.RedisError`` when Redis does not answer (nothing half done: call it again)."""
    if is_cluster(client) or client.exists(keys.layout()):
        return 0
    moved = 0
    for pattern, rename in _v1_names(shard_count):
        for names in _batches(client, pattern):
            moved += _move(client, names, rename)
    client.set(keys.layout(), str(VERSION))
    if moved:
        log.info("key layout moved from v1 to v2", extra={"keys": moved})
    return moved


def _batches(client: redis.Redis, pattern: str) -> Iterator[list[str]]:
    if "*" not in pattern:
        if client.exists(pattern):
            yield [pattern]
        return
    batch: list[str] = []
    for raw in client.scan_iter(match=pattern, count=1000):
        batch.append(raw.decode() if isinstance(raw, bytes) else raw)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _move(client: redis.Redis, names: list[str], rename: Callable[[str], str | None]) -> int:
    pairs = [(name, new) for name in names if (new := rename(name)) is not None]
    pipe = client.pipeline(transaction=False)
    for name, new in pairs:
        pipe.renamenx(name, new)
    moved = 0
    for (_, new), result in zip(pairs, pipe.execute(raise_on_error=False), strict=True):
        if isinstance(result, redis.ResponseError):
            continue  # moved meanwhile by another shard starting at the same time
        if result:
            moved += 1
        else:
            log.warning("v1 key left in place: its v2 name exists already", extra={"key": new})
    return moved
