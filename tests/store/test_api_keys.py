"""Tenant-scoped API keys against the real Valkey: issue once, check, revoke, die with the tenant."""

from __future__ import annotations

import logging
import secrets

import gevent
import pytest
import redis

from interlink.store.api_keys import ApiKeys
from interlink.store.tenants import TenantNotFound, TenantStore


@pytest.fixture
def store(redis_client: redis.Redis) -> TenantStore:
    return TenantStore(redis_client, (secrets.token_bytes(32),))


@pytest.fixture
def api_keys(redis_client: redis.Redis) -> ApiKeys:
    return ApiKeys(redis_client)


def test_issue_check_revoke(store: TenantStore, api_keys: ApiKeys) -> None:
    store.create("acme", name="Acme")
    issued = api_keys.issue_key("acme")
    assert issued.key not in repr(issued)
    assert api_keys.check_key(issued.key) == "acme"
    assert api_keys.check_key(issued.key[:-1] + ("A" if issued.key[-1] != "A" else "B")) is None
    assert api_keys.check_key("ilk_" + "0" * 16 + "_" + "x" * 43) is None
    assert api_keys.check_key("") is None and api_keys.check_key("x" * 1000) is None
    assert store.version_of("acme") == 1  # keys are access, not configuration
    assert not api_keys.revoke_key("other", issued.key_id)
    assert api_keys.check_key(issued.key) == "acme"
    assert api_keys.revoke_key("acme", issued.key_id)
    assert api_keys.check_key(issued.key) is None
    assert not api_keys.revoke_key("acme", issued.key_id)
    assert not api_keys.revoke_key("acme", "../" + issued.key_id)


def test_no_key_for_an_unknown_tenant(api_keys: ApiKeys, redis_client: redis.Redis) -> None:
    with pytest.raises(TenantNotFound):
        api_keys.issue_key("nobody")
    assert list(redis_client.scan_iter("*")) == []


def test_a_key_does_not_outlive_its_tenant(store: TenantStore, api_keys: ApiKeys) -> None:
    store.create("acme", name="Acme")
    issued = api_keys.issue_key("acme")
    store.delete("acme")
    assert api_keys.check_key(issued.key) is None
    store.create("acme", name="Acme again")  # the same id, a new tenant: the old key stays dead
    assert api_keys.check_key(issued.key) is None


def test_issuing_races_a_delete_without_an_orphan(
    store: TenantStore, api_keys: ApiKeys, redis_client: redis.Redis
) -> None:
    store.create("racing", name="Racing")

    def issue() -> str | None:
        try:
            return api_keys.issue_key("racing").key
        except TenantNotFound:
            return None

    greenlets = [gevent.spawn(issue) for _ in range(20)] + [gevent.spawn(store.delete, "racing")]
    gevent.joinall(greenlets, raise_error=True)
    assert list(redis_client.scan_iter("*")) == []


def test_logs_name_the_key_id_never_the_key(
    store: TenantStore, api_keys: ApiKeys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store.create("acme", name="Acme")
    issued = api_keys.issue_key("acme")
    api_keys.revoke_key("acme", issued.key_id)
    text = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert issued.key_id in text and issued.key not in text
