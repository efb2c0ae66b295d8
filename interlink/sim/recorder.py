"""Every request the simulators receive or send, kept in memory and readable by kind and tenant.

Appending is O(1): a record goes into a bounded deque for the whole log and into one deque per
kind, per tenant and per (kind, tenant). A query reads only the deque that answers it, so neither
recording nor asking scans the whole log — the simulators serve benchmarks. Each deque keeps its
own last ``capacity`` records, so a filtered query can reach further back than the unfiltered one.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_CAPACITY = 200_000


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One HTTP exchange.

    ``kind`` names the route (``genesys.message``, ``meta.messages``, ``meta.webhook`` ...);
    ``tenant`` is the Genesys org id or the Meta phone number id it belongs to (``""`` when none
    could be resolved, e.g. an unknown client id). ``direction`` is ``"in"`` for requests made to
    the simulators and ``"out"`` for webhooks the drivers sent. ``headers`` keep
    ``Authorization`` on purpose: tests check which token each call carried. ``body`` is the
    parsed JSON (or form fields) when there was one; ``status`` is the status answered (or, for
    ``"out"``, received; 0 when the connection failed).
    """

    seq: int
    time: float
    kind: str
    tenant: str
    direction: str
    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: Any
    status: int
    fault: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["headers"] = dict(self.headers)
        data["extra"] = dict(self.extra)
        return data

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


class Recorder:
    """Bounded, indexed request log. Safe to use from many greenlets (and threads)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._clear_locked()

    def _clear_locked(self) -> None:
        self._all: deque[RecordedRequest] = deque(maxlen=self.capacity)
        self._by_kind: dict[str, deque[RecordedRequest]] = {}
        self._by_tenant: dict[str, deque[RecordedRequest]] = {}
        self._by_both: dict[tuple[str, str], deque[RecordedRequest]] = {}

    def _index(self, table: dict[Any, deque[RecordedRequest]], key: Any) -> deque[RecordedRequest]:
        found = table.get(key)
        if found is None:
            found = table[key] = deque(maxlen=self.capacity)
        return found

    def record(self, **fields: Any) -> RecordedRequest:
        """Append one record (``seq`` is assigned here) and return it."""
        with self._lock:
            entry = RecordedRequest(seq=next(self._seq), **fields)
            self._all.append(entry)
            self._index(self._by_kind, entry.kind).append(entry)
            self._index(self._by_tenant, entry.tenant).append(entry)
            self._index(self._by_both, (entry.kind, entry.tenant)).append(entry)
            return entry

    def query(
        self,
        *,
        kind: str | None = None,
        tenant: str | None = None,
        since: int = 0,
        limit: int | None = None,
    ) -> list[RecordedRequest]:
        """Records in arrival order, filtered by exact ``kind`` and/or ``tenant``; only those with
        ``seq > since``; the last ``limit`` of them when ``limit`` is given."""
        with self._lock:
            if kind is not None and tenant is not None:
                source = self._by_both.get((kind, tenant), ())
            elif kind is not None:
                source = self._by_kind.get(kind, ())
            elif tenant is not None:
                source = self._by_tenant.get(tenant, ())
            else:
                source = self._all
            items = list(source)
        if since:
            # seq grows monotonically: skip the older prefix from the right end.
            start = len(items)
            while start > 0 and items[start - 1].seq > since:
                start -= 1
            items = items[start:]
        if limit is not None:
            items = items[-limit:] if limit > 0 else []
        return items

    def count(self, *, kind: str | None = None, tenant: str | None = None) -> int:
        """How many records a query with the same filters would return (no copy)."""
        with self._lock:
            if kind is not None and tenant is not None:
                return len(self._by_both.get((kind, tenant), ()))
            if kind is not None:
                return len(self._by_kind.get(kind, ()))
            if tenant is not None:
                return len(self._by_tenant.get(tenant, ()))
            return len(self._all)

    def clear(self) -> None:
        with self._lock:
            self._clear_locked()
