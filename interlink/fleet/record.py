"""The shard count the fleet agrees on, recorded in Redis with a generation.

A shard that starts with another count than the recorded one starts a handover in three steps:
it records a *pending join* (the next generation and its count) next to the current record, raises
the fence of every stream to that generation (from then on a writer of the old generation is
refused, so nothing more lands where the old count put it), then commits its count under that
generation (compare-and-set). A writer refused by a fence ahead of the record finds the pending
join and finishes it (:func:`finish`: the same fences, the same commit), so a joiner killed
between its steps, or a store that lost the commit, does not leave the fleet refusing every
write. The last shard started decides; a shard that finds a newer generation with another count
than its own stops reading (``interlink.fleet.handover``).

A generation is *settled* once every stream has handed over what it held for others. Until then
a tenant's entries may still lie where an earlier count put them, so ``recent`` keeps the counts
of the generations since the last settled one: a tenant whose owner differs under any of them
has *moved*, and its new owner waits for the handover before delivering it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from interlink.store import keys
from interlink.tenancy import ownership

# KEYS[1] = a stream's fence; ARGV[1] = a generation. Raises the fence to it, never lowers it.
_RAISE = """
if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
"""
# KEYS[1] = the done hash; ARGV = stream, generation. Records a finished handover, never lowers it.
_DONE = """
if tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 1
"""
# KEYS[1] = the record; ARGV[1] = the generation expected there ("0": none), then field, value
# pairs. Compare-and-set in one step (Redis Cluster has no MULTI across a WATCH).
_SWAP = """
if tonumber(redis.call('HGET', KEYS[1], 'generation') or '0') ~= tonumber(ARGV[1]) then
  return 0
end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""
_SCAN_BATCH = 512
_STREAM = re.compile(r"\{(\d+)\}$")


@dataclass(frozen=True, slots=True)
class FleetView:
    """One generation of the fleet: ``count`` shards; streams ``0 .. streams-1`` may hold
    entries (the most shards there ever were); ``recent``: the counts of the generations since the
    last settled one, before this one."""

    generation: int
    count: int
    streams: int
    settled: int
    recent: tuple[int, ...] = ()

    def owner(self, tenant_id: str) -> int:
        return ownership.owner(tenant_id, self.count)

    def holder(self, stream: int) -> int:
        """The shard that reads ``stream`` in this generation (an orphan goes to N mod count)."""
        return stream % self.count

    def streams_of(self, shard_id: int) -> list[int]:
        """The streams ``shard_id`` reads in this generation: its own first, then orphans."""
        return [n for n in range(max(self.streams, self.count)) if self.holder(n) == shard_id]

    def moved(self, tenant_id: str) -> bool:
        """Whether the tenant's entries may still lie with another shard than its owner."""
        owner = self.owner(tenant_id)
        return any(ownership.owner(tenant_id, count) != owner for count in self.recent)


def read(client: redis.Redis) -> FleetView | None:
    """The recorded generation, or None before the first shard of the fleet started."""
    return _parse(client.hgetall(keys.fleet()))


def read_pending(client: redis.Redis) -> tuple[FleetView | None, int | None]:
    """The recorded generation and the count of a join pending on it (None: none pending)."""
    raw: Any = client.hgetall(keys.fleet())
    view = _parse(raw)
    if view is None:
        return None, None
    fields = _texts(raw)
    try:
        joining = int(fields.get("joining", "0"))
        joining_count = int(fields.get("joining_count", "0"))
    except ValueError:
        return view, None
    return view, (joining_count if joining > view.generation and joining_count > 0 else None)


def join(client: redis.Redis, count: int) -> FleetView:
    """The generation this shard, started with ``count`` shards, takes part in: the recorded one
    when it has the same count, else a new one with ``count`` (the handover starts)."""
    while True:
        current = read(client)
        if current is not None and current.count == count:
            return current
        if current is None:
            # The first start (or a store that lost the record): streams left by an earlier
            # run, whatever its count, are still found and handed over.
            view = FleetView(1, count, max(count, _streams_found(client)), 1)
            if _swap(client, 0, _fields(view)):
                return view
            continue
        # The join is recorded before any fence is raised: whoever a raised fence refuses
        # finds it, and can finish it should this shard die before it commits.
        if not begin(client, current, count):
            continue
        view = following(current, count)
        raise_fences(client, view)
        if commit(client, current.generation, view):
            return view


def following(current: FleetView, count: int) -> FleetView:
    """The generation after ``current`` with ``count`` shards."""
    return FleetView(
        current.generation + 1,
        count,
        max(current.streams, count),
        current.settled,
        (current.recent if current.settled < current.generation else ()) + (current.count,),
    )


def begin(client: redis.Redis, current: FleetView, count: int) -> bool:
    """Record a join of ``count`` shards pending on ``current`` (step 1 of 3)."""
    return _swap(
        client,
        current.generation,
        {"joining": current.generation + 1, "joining_count": count},
    )


def raise_fences(client: redis.Redis, view: FleetView) -> None:
    """Every stream refuses writers older than ``view`` (step 2 of 3; never lowers a fence)."""
    for stream in range(view.streams):
        client.eval(_RAISE, 1, keys.fence(stream), view.generation)


def commit(client: redis.Redis, expected: int, view: FleetView) -> bool:
    """Record ``view`` if the recorded generation is still ``expected`` (step 3 of 3); clears a
    pending join."""
    return _swap(client, expected, {**_fields(view), "joining": 0, "joining_count": 0})


def finish(client: redis.Redis) -> FleetView | None:
    """Finish a join another shard left pending (killed between its steps, or its commit lost
    by the store): raise the fences again and commit it. Returns the recorded generation."""
    current, joining = read_pending(client)
    if current is None or joining is None:
        return current
    view = following(current, joining)
    raise_fences(client, view)
    if commit(client, current.generation, view):
        return view
    return read(client)


def put_back(client: redis.Redis, recorded: FleetView, view: FleetView) -> bool:
    """The store went back to ``recorded`` (it lost the last writes, not the fences): record
    ``view``, newer, again and raise its fences (they may be lost as well)."""
    raise_fences(client, view)
    return commit(client, recorded.generation, view)


def restore(client: redis.Redis, view: FleetView) -> None:
    """Write ``view`` back when the store lost the record (restarted without its data); the
    fences, lost with it, are raised again by the next writers."""
    _swap(client, 0, _fields(view))


def mark_done(client: redis.Redis, stream: int, generation: int) -> None:
    """Stream ``stream`` holds nothing for another shard under ``generation`` any more."""
    client.eval(_DONE, 1, keys.fleet_done(), stream, generation)


def handed_over(client: redis.Redis, view: FleetView) -> bool:
    """Whether every stream has finished its handover for ``view`` (the barrier a moved tenant's
    new owner waits for): each recorded done for the generation, every outbox empty and nothing
    left in the streams beyond the count, and no handover stream holding an entry for another
    shard (one sent late to the destination an earlier count gave it: its stream's holder sends it
    on at its next pass). Records the generation as settled when so."""
    if view.settled >= view.generation:
        return True
    done: Any = client.hgetall(keys.fleet_done())
    finished = {int(k): int(v) for k, v in done.items()}
    if any(finished.get(n, 0) < view.generation for n in range(view.streams)):
        return False
    # Nothing still on its way (an outbox entry sent again after a crash), and nothing left in
    # the streams of shards that no longer exist.
    if any(client.xlen(keys.outbox(n)) for n in range(view.streams)):
        return False
    for n in range(view.count, view.streams):
        if client.xlen(keys.inbox(n)) or client.xlen(keys.handover(n)):
            return False
    for n in range(view.count):
        if _holds_for_others(client, n, view):
            return False
    # Another generation meanwhile: it has its own handover, and this record is left alone.
    _swap(client, view.generation, {"settled": view.generation})
    return True


def _holds_for_others(client: redis.Redis, stream: int, view: FleetView) -> bool:
    """Whether stream ``stream``'s handover stream holds an entry another shard owns."""
    last = "-"
    while True:
        entries: Any = client.xrange(keys.handover(stream), min=last, max="+", count=_SCAN_BATCH)
        for _, fields in entries:
            tenant = fields.get(b"t")
            if tenant is not None and view.owner(tenant.decode()) != stream:
                return True
        if len(entries) < _SCAN_BATCH:
            return False
        raw = entries[-1][0]
        last = "(" + (raw.decode() if isinstance(raw, bytes) else str(raw))


def _swap(client: redis.Redis, expected: int, fields: Mapping[str, Any]) -> bool:
    args: list[Any] = [expected]
    for name, value in fields.items():
        args += (name, value)
    return bool(client.eval(_SWAP, 1, keys.fleet(), *args))


def _streams_found(client: redis.Redis) -> int:
    found = 0
    for pattern in (keys.inbox(0), keys.handover(0)):
        for key in client.scan_iter(match=pattern.replace("{0}", "{*}"), count=1000):
            match = _STREAM.search(key.decode() if isinstance(key, bytes) else key)
            if match:
                found = max(found, int(match.group(1)) + 1)
    return found


def _fields(view: FleetView) -> dict[str, Any]:
    return {
        "generation": view.generation,
        "count": view.count,
        "streams": view.streams,
        "settled": view.settled,
        "recent": ",".join(map(str, view.recent)),
    }


def _parse(raw: Any) -> FleetView | None:
    if not raw:
        return None
    fields = _texts(raw)
    try:
        return FleetView(
            int(fields["generation"]),
            int(fields["count"]),
            int(fields["streams"]),
            int(fields.get("settled", "0")),
            tuple(int(c) for c in fields.get("recent", "").split(",") if c),
        )
    except (KeyError, ValueError):
        return None


def _texts(raw: Any) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }
