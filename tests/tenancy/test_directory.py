"""The per-process cache of tenant lookups: TTL with an injected clock, invalidation of a tenant's
config and of every index entry naming it, the size bound, and the real store behind it."""

from __future__ import annotations

import secrets
from collections import Counter
from typing import Any

import pytest

from interlink.services import Services
from interlink.tenancy.config import TenantConfig
from interlink.tenancy.directory import TenantDirectory


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeStore:
    """The four lookups of ``TenantStore`` over dicts, counting every call."""

    def __init__(self) -> None:
        self.configs: dict[str, TenantConfig] = {}
        self.phones: dict[str, str] = {}
        self.integrations: dict[str, str] = {}
        self.verify_tokens: dict[str, str] = {}
        self.calls: Counter[str] = Counter()

    def load_config(self, tenant_id: str) -> TenantConfig | None:
        self.calls["config", tenant_id] += 1
        return self.configs.get(tenant_id)

    def tenant_for_phone(self, number: str) -> str | None:
        self.calls["phone", number] += 1
        return self.phones.get(number)

    def tenant_for_integration(self, integration_id: str) -> str | None:
        self.calls["integration", integration_id] += 1
        return self.integrations.get(integration_id)

    def tenant_for_verify_token(self, token: str) -> str | None:
        self.calls["verify", token] += 1
        return self.verify_tokens.get(token)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> FakeStore:
    fake = FakeStore()
    for tenant_id, version in (("acme", 1), ("globex", 1)):
        fake.configs[tenant_id] = TenantConfig(tenant_id=tenant_id, version=version)
    fake.phones.update({"111": "acme", "112": "acme", "222": "globex"})
    fake.integrations.update({"int-a": "acme", "int-g": "globex"})
    fake.verify_tokens.update({"token-a": "acme"})
    return fake


@pytest.fixture
def tenants(store: FakeStore, clock: Clock) -> TenantDirectory:
    return TenantDirectory(store, ttl=5.0, clock=clock)


def test_entries_live_exactly_ttl_seconds(
    tenants: TenantDirectory, store: FakeStore, clock: Clock
) -> None:
    assert tenants.config("acme") == store.configs["acme"]
    store.configs["acme"] = TenantConfig(tenant_id="acme", version=2)
    clock.now += 4.999
    assert tenants.config("acme").version == 1  # type: ignore[union-attr]
    assert store.calls["config", "acme"] == 1
    clock.now += 0.001  # 5 s after the load: expired
    assert tenants.config("acme").version == 2  # type: ignore[union-attr]
    assert store.calls["config", "acme"] == 2
    clock.now += 1
    assert tenants.config("acme").version == 2  # type: ignore[union-attr]
    assert store.calls["config", "acme"] == 2


def test_a_hit_does_not_extend_an_entrys_life(
    tenants: TenantDirectory, store: FakeStore, clock: Clock
) -> None:
    for _ in range(10):
        assert tenants.by_phone("111") == "acme"
        clock.now += 1
    assert store.calls["phone", "111"] == 2  # loaded at t=0 and again at t=5


@pytest.mark.parametrize(
    ("lookup", "key", "kind", "value"),
    [
        ("by_phone", "111", "phone", "acme"),
        ("by_integration", "int-g", "integration", "globex"),
        ("config", "acme", "config", TenantConfig(tenant_id="acme", version=1)),
    ],
)
def test_every_cached_lookup_expires(
    tenants: TenantDirectory,
    store: FakeStore,
    clock: Clock,
    lookup: str,
    key: str,
    kind: str,
    value: Any,
) -> None:
    for _ in range(3):
        assert getattr(tenants, lookup)(key) == value
    assert store.calls[kind, key] == 1
    clock.now += 5.0
    assert getattr(tenants, lookup)(key) == value
    assert store.calls[kind, key] == 2


def test_unknowns_are_cached_too_and_expire(
    tenants: TenantDirectory, store: FakeStore, clock: Clock
) -> None:
    assert tenants.by_phone("999") is None
    assert tenants.config("nobody") is None
    store.phones["999"] = "acme"
    assert tenants.by_phone("999") is None
    assert store.calls["phone", "999"] == 1
    clock.now += 5.0
    assert tenants.by_phone("999") == "acme"


def test_verify_tokens_are_never_cached(tenants: TenantDirectory, store: FakeStore) -> None:
    for _ in range(3):
        assert tenants.by_verify_token("token-a") == "acme"
    assert tenants.by_verify_token("nope") is None
    assert store.calls["verify", "token-a"] == 3


def test_invalidate_drops_the_config_and_every_index_entry_naming_the_tenant(
    tenants: TenantDirectory, store: FakeStore
) -> None:
    for number in ("111", "112", "222", "999"):
        tenants.by_phone(number)
    for integration in ("int-a", "int-g", "int-x"):
        tenants.by_integration(integration)
    tenants.config("acme")
    tenants.config("globex")
    store.calls.clear()

    tenants.invalidate("acme")

    # acme's config and indexes, and the unknowns, are loaded again ...
    tenants.config("acme")
    for number in ("111", "112", "999"):
        tenants.by_phone(number)
    for integration in ("int-a", "int-x"):
        tenants.by_integration(integration)
    # ... globex's entries are still cached.
    tenants.config("globex")
    tenants.by_phone("222")
    tenants.by_integration("int-g")
    assert store.calls == Counter(
        {
            ("config", "acme"): 1,
            ("phone", "111"): 1,
            ("phone", "112"): 1,
            ("phone", "999"): 1,
            ("integration", "int-a"): 1,
            ("integration", "int-x"): 1,
        }
    )


def test_invalidate_sees_a_number_that_moved_to_another_tenant(
    tenants: TenantDirectory, store: FakeStore
) -> None:
    assert tenants.by_phone("112") == "acme"
    store.phones["112"] = "globex"  # acme gave it up (event for acme) ...
    tenants.invalidate("acme")
    assert tenants.by_phone("112") == "globex"
    # ... and a new number taken by a tenant, cached as unknown, is seen on that tenant's event.
    assert tenants.by_integration("int-new") is None
    store.integrations["int-new"] = "globex"
    tenants.invalidate("globex")
    assert tenants.by_integration("int-new") == "globex"


def test_invalidate_everything(tenants: TenantDirectory, store: FakeStore) -> None:
    tenants.config("acme")
    tenants.by_phone("222")
    tenants.by_integration("int-a")
    store.calls.clear()
    tenants.invalidate(None)
    tenants.config("acme")
    tenants.by_phone("222")
    tenants.by_integration("int-a")
    assert sum(store.calls.values()) == 3


def test_invalidate_of_an_unknown_tenant_is_harmless(
    tenants: TenantDirectory, store: FakeStore
) -> None:
    tenants.by_phone("111")
    tenants.invalidate("nobody")
    tenants.invalidate("nobody")
    tenants.by_phone("111")
    assert store.calls["phone", "111"] == 1


def test_an_invalidation_during_a_load_is_not_undone_by_it(store: FakeStore, clock: Clock) -> None:
    """A load that started before a change event (a greenlet waiting on Redis while the event
    is handled) must not put the old answer back for a whole TTL."""
    tenants = TenantDirectory(store, ttl=5.0, clock=clock)
    real = store.load_config

    def load_then_change(tenant_id: str) -> TenantConfig | None:
        before = real(tenant_id)  # read the old version ...
        store.configs[tenant_id] = TenantConfig(tenant_id=tenant_id, version=2)
        tenants.invalidate(tenant_id)  # ... while the change is committed and announced
        return before

    store.load_config = load_then_change  # type: ignore[method-assign]
    assert tenants.config("acme").version == 1  # type: ignore[union-attr]
    store.load_config = real  # type: ignore[method-assign]
    assert tenants.config("acme").version == 2  # type: ignore[union-attr]


def test_the_cache_is_bounded(store: FakeStore, clock: Clock) -> None:
    tenants = TenantDirectory(store, ttl=5.0, max_entries=3, clock=clock)
    for number in ("1", "2", "3", "4"):
        assert tenants.by_phone(number) is None
    tenants.by_phone("4")
    tenants.by_phone("2")
    assert store.calls["phone", "4"] == 1 and store.calls["phone", "2"] == 1
    tenants.by_phone("1")  # the oldest was dropped
    assert store.calls["phone", "1"] == 2


def test_store_errors_propagate_and_are_not_cached(store: FakeStore, clock: Clock) -> None:
    tenants = TenantDirectory(store, ttl=5.0, clock=clock)
    real = store.tenant_for_phone

    def broken(number: str) -> str | None:
        raise ConnectionError("store down")

    store.tenant_for_phone = broken  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        tenants.by_phone("111")
    store.tenant_for_phone = real  # type: ignore[method-assign]
    assert tenants.by_phone("111") == "acme"


# -- against the real store ----------------------------------------------------------------------
def _whatsapp(services: Services, tenant_id: str, phone: str) -> None:
    services.tenants.set_whatsapp(
        tenant_id,
        access_token="EAA" + secrets.token_urlsafe(24),
        phone_number_id=phone,
        business_account_id="1",
        app_secret=secrets.token_hex(16),
        verify_token=secrets.token_urlsafe(16),
    )


def test_with_the_real_store(services: Services, clock: Clock) -> None:
    tenants = TenantDirectory(services.tenants, ttl=5.0, clock=clock)
    services.tenants.create("acme", name="Acme")
    _whatsapp(services, "acme", "1001")
    config = tenants.config("acme")
    assert config is not None and config.whatsapp is not None
    assert tenants.by_phone("1001") == "acme"

    _whatsapp(services, "acme", "1002")  # a new number and secrets: version 3
    assert tenants.config("acme") == config  # cached until told
    tenants.invalidate("acme")
    fresh = tenants.config("acme")
    assert fresh is not None and fresh.version == config.version + 1
    assert fresh.whatsapp is not None and fresh.whatsapp.app_secret != config.whatsapp.app_secret
    assert tenants.by_phone("1001") is None
    assert tenants.by_phone("1002") == "acme"

    services.tenants.delete("acme")
    tenants.invalidate("acme")
    assert tenants.config("acme") is None
    assert tenants.by_phone("1002") is None
    # Values that are not ids are not looked up in Redis at all.
    assert tenants.by_phone("../x") is None
    assert tenants.config("NOT VALID") is None


def test_repr_of_a_cached_config_shows_no_secret(services: Services) -> None:
    tenants = TenantDirectory(services.tenants)
    services.tenants.create("acme", name="Acme")
    secret = secrets.token_hex(16)
    services.tenants.set_whatsapp(
        "acme",
        access_token="EAA" + secrets.token_urlsafe(24),
        phone_number_id="1001",
        business_account_id="1",
        app_secret=secret,
        verify_token=secrets.token_urlsafe(16),
    )
    config = tenants.config("acme")
    assert config is not None and config.whatsapp is not None
    assert secret not in repr(config) and config.whatsapp.access_token not in repr(config)


def test_invalidate_also_forgets_the_signature_keys_derived_from_secrets(
    tenants: TenantDirectory,
) -> None:
    from interlink.security import signatures

    signatures.meta_signature(secrets.token_hex(16), b"{}")
    assert signatures._keyed.cache_info().currsize >= 1
    tenants.invalidate("acme")
    assert signatures._keyed.cache_info().currsize == 0


# -- defaults and order --------------------------------------------------------------------------
def test_by_default_entries_live_a_minute(store: FakeStore, clock: Clock) -> None:
    """Change events keep the cache right; the time to live only bounds a lost event."""
    tenants = TenantDirectory(store, clock=clock)
    tenants.config("acme")
    clock.now += 59.9
    tenants.config("acme")
    assert store.calls["config", "acme"] == 1
    clock.now += 0.1
    tenants.config("acme")
    assert store.calls["config", "acme"] == 2


def test_the_bound_drops_the_least_recently_used(store: FakeStore, clock: Clock) -> None:
    tenants = TenantDirectory(store, ttl=5.0, max_entries=2, clock=clock)
    tenants.by_phone("111")
    tenants.by_phone("222")
    tenants.by_phone("111")  # used again: "222" is now the oldest use
    tenants.by_phone("112")
    tenants.by_phone("111")
    assert store.calls["phone", "111"] == 1
    tenants.by_phone("222")
    assert store.calls["phone", "222"] == 2


# -- the Genesys conversation mapping ------------------------------------------------------------
class Mapping:
    """The conversation mapping (``tenant_of_genesys_conversation``) over a dict, counting reads."""

    def __init__(self, owners: dict[str, str]) -> None:
        self.owners = owners
        self.reads: Counter[str] = Counter()

    def __call__(self, conversation_id: str) -> str | None:
        self.reads[conversation_id] += 1
        return self.owners.get(conversation_id)


@pytest.fixture
def mapping() -> Mapping:
    return Mapping({"c-acme": "acme", "c-acme-2": "acme", "c-globex": "globex"})


def test_a_conversation_tenant_is_read_once_and_expires(
    tenants: TenantDirectory, mapping: Mapping, clock: Clock
) -> None:
    assert tenants.cached_genesys_conversation("c-acme") is None  # never a lookup
    assert mapping.reads["c-acme"] == 0
    for _ in range(3):
        assert tenants.by_genesys_conversation("c-acme", mapping) == "acme"
    assert tenants.cached_genesys_conversation("c-acme") == "acme"
    assert mapping.reads["c-acme"] == 1
    clock.now += 5.0
    assert tenants.cached_genesys_conversation("c-acme") is None
    assert tenants.by_genesys_conversation("c-acme", mapping) == "acme"
    assert mapping.reads["c-acme"] == 2


def test_an_unknown_conversation_is_asked_again_every_time(
    tenants: TenantDirectory, mapping: Mapping
) -> None:
    assert tenants.by_genesys_conversation("c-new", mapping) is None
    assert tenants.by_genesys_conversation("c-new", mapping) is None
    mapping.owners["c-new"] = "globex"  # its first customer message was delivered
    assert tenants.by_genesys_conversation("c-new", mapping) == "globex"
    assert mapping.reads["c-new"] == 3
    # ... and a known one that is gone (expired, cached beyond its life) is not kept as unknown.
    del mapping.owners["c-new"]
    tenants.forget_genesys_conversation("c-new")
    assert tenants.by_genesys_conversation("c-new", mapping) is None
    assert tenants.cached_genesys_conversation("c-new") is None


def test_a_tenants_invalidation_drops_its_conversations_only(
    tenants: TenantDirectory, mapping: Mapping
) -> None:
    for conversation in ("c-acme", "c-acme-2", "c-globex"):
        tenants.by_genesys_conversation(conversation, mapping)
    tenants.invalidate("acme")
    assert tenants.cached_genesys_conversation("c-acme") is None
    assert tenants.cached_genesys_conversation("c-acme-2") is None
    assert tenants.cached_genesys_conversation("c-globex") == "globex"
    mapping.owners["c-acme"] = "globex"  # the integration moved on
    assert tenants.by_genesys_conversation("c-acme", mapping) == "globex"
    tenants.invalidate(None)  # a resync
    assert tenants.cached_genesys_conversation("c-globex") is None


def test_a_conversation_read_during_an_invalidation_is_not_kept(
    tenants: TenantDirectory, mapping: Mapping
) -> None:
    def read_then_delete(conversation_id: str) -> str | None:
        owner = mapping(conversation_id)  # the old owner is read ...
        tenants.invalidate("acme")  # ... while acme's deletion is announced
        return owner

    assert tenants.by_genesys_conversation("c-acme", read_then_delete) == "acme"
    assert tenants.cached_genesys_conversation("c-acme") is None


def test_the_conversations_are_bounded(store: FakeStore, clock: Clock) -> None:
    tenants = TenantDirectory(store, ttl=5.0, max_entries=2, clock=clock)
    mapping = Mapping({f"c{n}": "acme" for n in range(3)})
    for n in range(3):
        tenants.by_genesys_conversation(f"c{n}", mapping)
    assert tenants.cached_genesys_conversation("c0") is None
    assert tenants.cached_genesys_conversation("c2") == "acme"
