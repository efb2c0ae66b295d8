"""The shared parts of one shard, built once by ``runtime.py`` and handed to the HTTP resources.

Tests build the same object around their own embedded store, so they drive the real code paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pykka
import redis

from interlink.settings import Settings
from interlink.telemetry.metrics import REGISTRY, Registry

if TYPE_CHECKING:
    from interlink.inbox import Inbox, InboxReader
    from interlink.store.api_keys import ApiKeys
    from interlink.store.tenants import TenantStore


@dataclass
class Services:
    settings: Settings
    redis: redis.Redis
    admin_token: str = field(repr=False)
    secret_keys: tuple[bytes, ...] = field(repr=False)
    supervisor: pykka.ActorRef[Any] | None = None
    metrics: Registry = REGISTRY
    # The owner side of this shard's inbox; None until the runtime starts it (tests may not).
    reader: InboxReader | None = None
    # Filled by the subsystems that own them; typed there.
    extras: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def inbox(self) -> Inbox:
        """The accepting side of the durable inbox (any shard accepts for any tenant)."""
        from interlink.inbox import Inbox

        return Inbox(self.redis, self.settings.shard_count)

    @cached_property
    def tenants(self) -> TenantStore:
        """The tenant registry (records and indexes), secrets under ``secret_keys``."""
        from interlink.store.tenants import TenantStore

        return TenantStore(self.redis, self.secret_keys)

    @cached_property
    def api_keys(self) -> ApiKeys:
        """Tenant-scoped API keys: issued by the operator, checked on every tenant request."""
        from interlink.store.api_keys import ApiKeys

        return ApiKeys(self.redis)
