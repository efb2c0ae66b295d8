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

# KEYS: dead-letter stream, inbox stream, backlog counter. ARGV: entry ids. Moves each entry.
_REPLAY = """
local moved = 0
for i = 1, #ARGV do
  local found = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if #found == 1 then
    local f = found[1][2]
    local fields = {}
    for j = 1, #f, 2 do fields[f[j]] = f[j + 1] end
    redis.call('XADD', KEYS[2], '*', 't', fields['t'], 'k', fields['k'], 'c', fields['c'], 'a', fields['a'], 'p', fields['p'])
    redis.call('INCR', KEYS[3])
    redis.call('XDEL', KEYS[1], ARGV[i])
    moved = moved + 1
  end
end
return moved
"""


class DeadLetters:
    def __init__(self, client: redis.Redis, tenant_id: str, shard_count: int = 1) -> None:
        self.redis = client
        self.tenant_id = tenant_id
        self.shard_count = shard_count
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
        """Move entries (the oldest ``limit``, or ``ids``) back into the inbox; returns how many."""
        chosen = self._ids(ids, limit)
        if not chosen:
            return 0
        shard = ownership.owner(self.tenant_id, self.shard_count)
        return int(
            self._replay(
                keys=[self.key, keys.inbox(shard), keys.backlog(self.tenant_id)], args=chosen
            )
        )

    def drop(self, ids: Sequence[str] | None = None, limit: int = DEFAULT_LIMIT) -> int:
        chosen = self._ids(ids, limit)
        return int(self.redis.xdel(self.key, *chosen)) if chosen else 0


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)
