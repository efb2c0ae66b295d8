"""The shared parts of one shard, built once by the process that serves and handed to every part
that needs them (the HTTP resources, the actor tree, the reload listener).

Tests build the same object around their own embedded store, so they drive the real code paths;
a test that needs a part configured differently (a tenant directory that never expires, a login
throttle on a fake clock) assigns it before first use: every part is a cached property.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pykka
import redis
import requests
from prometheus_client import CollectorRegistry

from interlink.settings import Settings
from interlink.store.connection import disconnect
from interlink.telemetry.metrics import REGISTRY

if TYPE_CHECKING:
    from interlink.fleet.handover import Handover
    from interlink.fleet.relay import ControlRelay
    from interlink.http.auth import LoginThrottle
    from interlink.inbox import Inbox, InboxReader
    from interlink.store.api_keys import ApiKeys
    from interlink.store.holds import Holds
    from interlink.store.tenants import TenantStore
    from interlink.tenancy.directory import TenantDirectory


@dataclass
class Services:
    settings: Settings
    redis: redis.Redis
    admin_token: str = field(repr=False)
    secret_keys: tuple[bytes, ...] = field(repr=False)
    supervisor: pykka.ActorRef[Any] | None = None
    # The process's declared series (interlink.telemetry.metrics); /metrics adds this shard's state.
    metrics: CollectorRegistry = REGISTRY
    # The owner side of this shard's inbox; None until the shard starts reading it.
    reader: InboxReader | None = None
    # Control messages to and from the other shards; None until the shard starts it.
    relay: ControlRelay | None = None
    # This shard's part in the fleet's shard count (fenced or not); None until the shard starts.
    fleet: Handover | None = None

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

    @cached_property
    def holds(self) -> Holds:
        """The tenants an operator stopped, kept until ``start`` (whichever shard owns them)."""
        from interlink.store.holds import Holds

        return Holds(self.redis)

    @cached_property
    def directory(self) -> TenantDirectory:
        """This process's cached view of the tenants, read on every webhook and media request
        and invalidated by change events."""
        from interlink.tenancy.directory import TenantDirectory

        return TenantDirectory(self.tenants)

    @cached_property
    def http(self) -> requests.Session:
        """The process's HTTP session to the providers: one pool of kept-alive connections per
        provider host, shared by every tenant (``interlink.providers.session``)."""
        from interlink.providers.session import shared_session

        return shared_session()

    @cached_property
    def login_throttle(self) -> LoginThrottle:
        """Failed logins to the admin API and the control endpoint, per client and per key id,
        trusting ``X-Forwarded-For`` from ``settings.trusted_proxies`` only."""
        from interlink.http.auth import LoginThrottle

        return LoginThrottle(trusted_proxies=self.settings.trusted_proxies)

    def close(self) -> None:
        """Release the connections: the inbox's script connection (only if the inbox was
        used), then the pool's."""
        inbox = self.__dict__.get("inbox")
        if inbox is not None:
            inbox.close()
        disconnect(self.redis)
