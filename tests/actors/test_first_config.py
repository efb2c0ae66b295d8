"""A tenant tree's first configuration comes from the shard's tenant directory (which the webhook
that accepted its first message has just filled); a reload always reads the store. Real Valkey,
real supervisor; the store's reads counted by the server (``INFO commandstats``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from interlink.actors import Control, GetTenant, Supervisor, TenantChanged, TreeSpec
from interlink.services import Services


def record_reads(services: Services) -> int:
    stats = services.redis.info("commandstats")
    return int(stats.get("cmdstat_hgetall", {}).get("calls", 0))


@pytest.fixture
def supervisor(services: Services) -> Iterator[pykka.ActorRef[Any]]:
    ref = Supervisor.start(
        TreeSpec(load_config=services.tenants.load_config, services=services, stop_timeout=2.0)
    )
    yield ref
    ref.stop(timeout=10)


def version(supervisor: pykka.ActorRef[Any], tenant_id: str) -> int:
    tenant = supervisor.ask(GetTenant(tenant_id), timeout=10)
    stats: dict[str, Any] = tenant.ask(Control("stats"), timeout=10)
    return int(stats["version"])


def test_a_tree_starts_on_the_configuration_the_directory_holds(
    services: Services, supervisor: pykka.ActorRef[Any]
) -> None:
    services.tenants.create("acme", name="Acme")
    assert services.directory.config("acme") is not None  # the webhook's lookup
    before = record_reads(services)
    assert version(supervisor, "acme") == 1
    assert record_reads(services) == before  # no second read of the record


def test_a_tree_started_after_a_change_event_reads_the_new_version(
    services: Services, supervisor: pykka.ActorRef[Any]
) -> None:
    services.tenants.create("acme", name="Acme")
    assert services.directory.config("acme") is not None
    services.tenants.update("acme", {"name": "Acme 2"})
    services.directory.invalidate("acme")  # what the shard does first with the change event
    assert version(supervisor, "acme") == 2


def test_a_reload_reads_the_store_not_the_directory(
    services: Services, supervisor: pykka.ActorRef[Any]
) -> None:
    services.tenants.create("acme", name="Acme")
    assert version(supervisor, "acme") == 1
    # The directory still holds version 1 (its event not handled yet); the tree's reload must
    # not take it from there.
    assert services.directory.config("acme").version == 1  # type: ignore[union-attr]
    services.tenants.update("acme", {"name": "Acme 2"})
    supervisor.tell(TenantChanged("acme", 2))
    assert version(supervisor, "acme") == 2


def test_a_tree_with_its_own_loader_never_reads_the_directory(services: Services) -> None:
    services.tenants.create("acme", name="Acme")
    assert services.directory.config("acme") is not None  # version 1 cached
    services.tenants.update("acme", {"name": "Acme 2"})
    ref = Supervisor.start(
        TreeSpec(
            load_config=lambda tenant_id: services.tenants.load_config(tenant_id),
            services=services,
            stop_timeout=2.0,
        )
    )
    try:
        assert version(ref, "acme") == 2
    finally:
        ref.stop(timeout=10)
