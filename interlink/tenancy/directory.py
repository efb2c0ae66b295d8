"""The front end's view of the tenants: lookups and decrypted configurations, cached per process.

The webhook path resolves a tenant and checks a signature on every request; reading and
decrypting the tenant from Redis each time would cost a round trip and five AES-GCM operations.
Entries are dropped at once when a change event for their tenant arrives
(``interlink.tenancy.changes``), so a rotated secret or a deleted tenant is seen within the event's
delivery time (well under a second). A lookup that was waiting on Redis while an invalidation came
is answered but not kept (it may have read the state from before the change).

Why entries also expire, and after ``DEFAULT_TTL`` (60 s): the events are what keeps the cache
right, the time to live only bounds the damage of an event that never arrives. Every tenant write
publishes its event from inside the same Lua script as the write, so no committed change goes
unannounced; pub/sub loses messages only across a disconnection, and the listener then drops
everything (after every subscription, the first one included: a lookup made before it may predate
a change it will never hear of). What is left is an event lost on a connection that stays up: a
Redis Cluster whose bus did not carry a ``PUBLISH`` to the node this shard subscribed on (a
partition between nodes). For that the bound is a minute; the 5 s it used to be cost a reload of
every tenant's record, decrypts and indexes every 5 s (3.7 % of a shard's CPU at 400 tenants and
400 messages per second each way), and a minute costs a twelfth of that.

The Genesys webhook's conversation lookup (``conversationId`` -> tenant, written once per
delivered customer message by ``ConversationStore.mark_done``) is cached here too, positive
answers only: an unknown conversation may be recorded a moment later, by the delivery of its
first message. A recorded conversation changes tenant only when its integration moves to another
tenant, which needs a change of the old owner first (the integration index refuses a second
owner), and that change's event drops every conversation cached for it. The signature is still
checked against the cached owner's secret, and the webhook asks Redis again before refusing a
request routed by a cached answer (``interlink.http.genesys_webhook``): a cached answer can make a
request succeed sooner, never fail or go to another tenant where Redis would have said otherwise
(short of that tenant holding the same webhook secret, within one time to live of a lost event).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from interlink.security.signatures import forget_secrets
from interlink.tenancy.config import TenantConfig

DEFAULT_TTL = 60.0
DEFAULT_MAX_ENTRIES = 20_000

V = TypeVar("V")
_MISSING = object()


class _TtlCache(Generic[V]):
    """Entries live ``ttl`` seconds from their load; past ``max_entries`` the least recently used
    goes. ``keep`` says which loaded values are worth keeping (all, unless told)."""

    def __init__(
        self,
        ttl: float,
        max_entries: int,
        clock: Callable[[], float],
        keep: Callable[[V], bool] | None = None,
    ) -> None:
        self.ttl, self.max_entries, self.clock, self.keep = ttl, max_entries, clock, keep
        self._data: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._generation = 0  # bumped by every invalidation

    def get(self, key: str, load: Callable[[str], V]) -> V:
        now = self.clock()
        hit = self._data.get(key)
        if hit is not None and hit[0] > now:
            self._data.move_to_end(key)
            return hit[1]
        generation = self._generation
        value = load(key)  # may yield to other greenlets (Redis)
        if generation != self._generation:
            return value  # invalidated meanwhile: possibly stale, do not keep it
        if self.keep is not None and not self.keep(value):
            self._data.pop(key, None)
            return value
        self._data[key] = (now + self.ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)
        return value

    def peek(self, key: str) -> V | None:
        """The live entry for ``key``, without loading it (None when there is none)."""
        hit = self._data.get(key)
        if hit is None or hit[0] <= self.clock():
            return None
        self._data.move_to_end(key)
        return hit[1]

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
        self._conversations: _TtlCache[str | None] = _TtlCache(
            ttl, max_entries, clock, keep=lambda owner: owner is not None
        )

    def config(self, tenant_id: str) -> TenantConfig | None:
        return self._configs.get(tenant_id, self.store.load_config)

    def by_phone(self, phone_number_id: str) -> str | None:
        return self._phones.get(phone_number_id, self.store.tenant_for_phone)

    def by_integration(self, integration_id: str) -> str | None:
        return self._integrations.get(integration_id, self.store.tenant_for_integration)

    def by_genesys_conversation(
        self, conversation_id: str, load: Callable[[str], str | None]
    ) -> str | None:
        """The tenant of a Genesys conversation, ``load``-ed (the conversation mapping, read
        through the caller's client) unless cached. Only a tenant is kept, never "unknown"."""
        return self._conversations.get(conversation_id, load)

    def cached_genesys_conversation(self, conversation_id: str) -> str | None:
        """The cached tenant of a Genesys conversation, or None: never a lookup."""
        return self._conversations.peek(conversation_id)

    def forget_genesys_conversation(self, conversation_id: str) -> None:
        self._conversations.drop(conversation_id)

    def by_verify_token(self, token: str) -> str | None:
        """Not cached: verification handshakes are rare, and the token is a secret."""
        result: str | None = self.store.tenant_for_verify_token(token)
        return result

    def invalidate(self, tenant_id: str | None = None) -> None:
        """Forget ``tenant_id`` (or everything): its config, every index entry and conversation
        naming it, and the signature keys derived from secrets."""
        forget_secrets()
        if tenant_id is None:
            for cache in (self._configs, self._phones, self._integrations, self._conversations):
                cache.clear()
            return
        self._configs.drop(tenant_id)
        self._phones.drop_where(lambda owner: owner == tenant_id)
        self._integrations.drop_where(lambda owner: owner == tenant_id)
        self._conversations.drop_where(lambda owner: owner == tenant_id)
        # A number or integration that moved to this tenant was cached as unknown or as another
        # tenant's: unknowns are cheap to forget.
        self._phones.drop_where(lambda owner: owner is None)
        self._integrations.drop_where(lambda owner: owner is None)
