"""A tenant's dead letters: what could not be delivered, with the reason, until an operator acts.

Entries keep the inbox's field layout (tenant, kind, conversation, payload), so a replay moves an
entry back into the owner shard's inbox in one atomic step: it is then delivered like any new
item (its provider-call "done" markers still prevent repeating what had already succeeded).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import msgpack
import redis

from interlink.store import keys
from interlink.tenancy import ownership

MAXLEN = 10_000
DEFAULT_LIMIT = 100

# Back into the owner's inbox, each entry once. Per entry i (from 0): KEYS[3i+1..3i+3] = its
# replay marker, the inbox stream, the tenant's backlog counter (one slot, the inbox's);
# ARGV[1] = the marker's ttl, ARGV[2+5i..6+5i] = the entry's t, k, c, a, p. A marker already set
# means an earlier replay appended it and stopped before deleting the dead letter: not again.
_REPLAY = """
local appended = 0
for i = 0, #KEYS / 3 - 1 do
  if redis.call('SET', KEYS[3 * i + 1], '1', 'NX', 'EX', ARGV[1]) then
    local a = 3 + 5 * i
    redis.call('XADD', KEYS[3 * i + 2], '*', 't', ARGV[a], 'k', ARGV[a + 1], 'c', ARGV[a + 2], 'a', ARGV[a + 3], 'g', ARGV[2], 'p', ARGV[a + 4])
    redis.call('INCR', KEYS[3 * i + 3])
    appended = appended + 1
  end
end
return appended
"""
REPLAY_MARKER_TTL = 8 * 24 * 3600  # a replay interrupted between its two steps is finished later


class DeadLetters:
    def __init__(
        self, client: redis.Redis, tenant_id: str, shard_count: int = 1, generation: int = 0
    ) -> None:
        self.redis = client
        self.tenant_id = tenant_id
        self.shard_count = shard_count
        # The fleet's generation a replayed entry is accepted under (interlink.fleet): at the
        # next change of the shard count it is ordered among the tenant's entries by it.
        self.generation = generation
        self.key = keys.dead_letters(tenant_id)
        self._replay = client.register_script(_REPLAY)

    def add(
        self, kind: str, payload: Mapping[str, Any], conversation: str | None, reason: str
    ) -> None:
        self.redis.xadd(
            self.key,
            {
                "t": self.tenant_id,
                "k": kind,
                "c": conversation or "",
                "a": str(int(time.time() * 1000)),
                "r": reason[:500],
                "p": msgpack.packb(dict(payload), use_bin_type=True),
            },
            maxlen=MAXLEN,
            approximate=True,
        )

    def count(self) -> int:
        return int(self.redis.xlen(self.key))

    def entries(self, limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
        """The oldest ``limit`` entries, without their payloads (they may hold personal data)."""
        entries: Any = self.redis.xrange(self.key, count=limit)
        return [
            {
                "id": _text(entry_id),
                "kind": _text(fields.get(b"k")),
                "conversation": _text(fields.get(b"c")) or None,
                "reason": _text(fields.get(b"r")),
                "at": int(fields.get(b"a", b"0")),
            }
            for entry_id, fields in entries
        ]

    def _ids(self, ids: Sequence[str] | None, limit: int) -> list[str]:
        if ids is not None:
            return [str(i) for i in ids][:limit]
        return [entry["id"] for entry in self.entries(limit)]

    def replay(self, ids: Sequence[str] | None = None, limit: int = DEFAULT_LIMIT) -> int:
        """Move entries (the oldest ``limit``, or ``ids``) back into the inbox; returns how many.

        Two steps, because the tenant's dead letters and its owner's inbox are in different
        slots on a Redis Cluster: append (marking each entry as replayed, in the inbox's slot),
        then delete the dead letters. An entry whose replay stopped between the two is deleted by
        the next replay, not appended twice."""
        chosen = self._ids(ids, limit)
        if not chosen:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for entry_id in chosen:
            pipe.xrange(self.key, entry_id, entry_id)
        found = [
            (entry_id, rows[0][1])
            for entry_id, rows in zip(chosen, pipe.execute(), strict=True)
            if rows
        ]
        if not found:
            return 0
        shard = ownership.owner(self.tenant_id, self.shard_count)
        script_keys: list[str] = []
        args: list[Any] = [REPLAY_MARKER_TTL, self.generation]
        for entry_id, fields in found:
            script_keys += (
                keys.accepted(shard, self.tenant_id, f"dead-letter:{entry_id}"),
                keys.inbox(shard),
                keys.backlog(shard, self.tenant_id),
            )
            args += (
                fields.get(b"t", self.tenant_id),
                *(fields.get(f, b"") for f in (b"k", b"c", b"a", b"p")),
            )
        self._replay(keys=script_keys, args=args)
        return int(self.redis.xdel(self.key, *(entry_id for entry_id, _ in found)))

    def drop(self, ids: Sequence[str] | None = None, limit: int = DEFAULT_LIMIT) -> int:
        chosen = self._ids(ids, limit)
        return int(self.redis.xdel(self.key, *chosen)) if chosen else 0


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)
