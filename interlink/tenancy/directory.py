"""The front end's view of the tenants: lookups and decrypted configurations, cached per process.

The webhook path resolves a tenant and checks a signature on every request; reading and
decrypting the tenant from Redis each time would cost a round trip and five AES-GCM operations.
Entries live ``ttl`` seconds and are dropped at once when a change event for their tenant arrives
(``interlink.tenancy.changes``), so a rotated secret is used within the event's delivery time, and within
``ttl`` even if an event is lost. A lookup that was waiting on Redis while an invalidation came
is answered but not kept (it may have read the state from before the change).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from interlink.security.signatures import forget_secrets
from interlink.tenancy.config import TenantConfig

DEFAULT_TTL = 5.0
DEFAULT_MAX_ENTRIES = 20_000

V = TypeVar("V")
_MISSING = object()


class _TtlCache(Generic[V]):
    def __init__(self, ttl: float, max_entries: int, clock: Callable[[], float]) -> None:
        self.ttl, self.max_entries, self.clock = ttl, max_entries, clock
        self._data: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._generation = 0  # bumped by every invalidation

    def get(self, key: str, load: Callable[[str], V]) -> V:
        now = self.clock()
        hit = self._data.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        generation = self._generation
        value = load(key)  # may yield to other greenlets (Redis)
        if generation != self._generation:
            return value  # invalidated meanwhile: possibly stale, do not keep it
        self._data[key] = (now + self.ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)
        return value

    def drop(self, key: str) -> None:
        self._generation += 1
        self._data.pop(key, None)

    def drop_where(self, predicate: Callable[[V], bool]) -> None:
        self._generation += 1
        for key in [k for k, (_, v) in self._data.items() if predicate(v)]:
            del self._data[key]

    def clear(self) -> None:
        self._generation += 1
        self._data.clear()


class TenantDirectory:
    """``store`` is the tenant store (``interlink.store.tenants.TenantStore``)."""

    def __init__(
        self,
        store: Any,
        *,
        ttl: float = DEFAULT_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._configs: _TtlCache[TenantConfig | None] = _TtlCache(ttl, max_entries, clock)
        self._phones: _TtlCache[str | None] = _TtlCache(ttl, max_entries, clock)
        self._integrations: _TtlCache[str | None] = _TtlCache(ttl, max_entries, clock)

    def config(self, tenant_id: str) -> TenantConfig | None:
        return self._configs.get(tenant_id, self.store.load_config)

    def by_phone(self, phone_number_id: str) -> str | None:
        return self._phones.get(phone_number_id, self.store.tenant_for_phone)

    def by_integration(self, integration_id: str) -> str | None:
        return self._integrations.get(integration_id, self.store.tenant_for_integration)

    def by_verify_token(self, token: str) -> str | None:
        """Not cached: verification handshakes are rare, and the token is a secret."""
        result: str | None = self.store.tenant_for_verify_token(token)
        return result

    def invalidate(self, tenant_id: str | None = None) -> None:
        """Forget ``tenant_id`` (or everything): its config, every index entry naming it, and the
        signature keys derived from secrets."""
        forget_secrets()
        if tenant_id is None:
            for cache in (self._configs, self._phones, self._integrations):
                cache.clear()
            return
        self._configs.drop(tenant_id)
        self._phones.drop_where(lambda owner: owner == tenant_id)
        self._integrations.drop_where(lambda owner: owner == tenant_id)
        # A number or integration that moved to this tenant was cached as unknown or as another
        # tenant's: unknowns are cheap to forget.
        self._phones.drop_where(lambda owner: owner is None)
        self._integrations.drop_where(lambda owner: owner is None)
