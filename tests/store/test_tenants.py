"""The tenant registry against the real Valkey: versions, events, indexes, atomicity, rotation."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
import redis

from interlink.security.secrets import CorruptSecret, MissingSecretKey, key_id
from interlink.store import keys
from interlink.store.api_keys import ApiKeys
from interlink.store.tenants import (
    IndexConflict,
    TenantExists,
    TenantNotFound,
    TenantStore,
)
from interlink.tenancy.validation import InvalidTenantData


def _creds() -> dict[str, str]:
    return {
        "client_id": "client-" + secrets.token_hex(4),
        "client_secret": secrets.token_urlsafe(32),
        "region": "mypurecloud.ie",
        "integration_id": secrets.token_hex(8),
        "webhook_secret": secrets.token_urlsafe(24),
    }


def _whatsapp(phone: str | None = None) -> dict[str, str]:
    return {
        "access_token": "EAA" + secrets.token_urlsafe(60),
        "phone_number_id": phone or str(secrets.randbelow(10**15)),
        "business_account_id": str(secrets.randbelow(10**15)),
        "app_secret": secrets.token_hex(16),
        "verify_token": secrets.token_urlsafe(16),
    }


@pytest.fixture
def store(redis_client: redis.Redis) -> TenantStore:
    return TenantStore(redis_client, (secrets.token_bytes(32),))


@pytest.fixture
def api_keys(redis_client: redis.Redis) -> ApiKeys:
    return ApiKeys(redis_client)


class EventLog:
    """Every tenant event published since the subscription, decoded, in order."""

    def __init__(self, client: redis.Redis) -> None:
        self.pubsub = client.pubsub()
        self.pubsub.subscribe(keys.tenant_events())
        confirmation = self.pubsub.get_message(timeout=2)
        assert confirmation is not None and confirmation["type"] == "subscribe"
        self.received: list[dict[str, Any]] = []

    def all(self) -> list[dict[str, Any]]:
        while (message := self.pubsub.get_message(timeout=0.2)) is not None:
            self.received.append(json.loads(message["data"]))
        return self.received


@pytest.fixture
def events(redis_client: redis.Redis) -> Iterator[EventLog]:
    log = EventLog(redis_client)
    yield log
    log.pubsub.close()


def _all_raw_values(client: redis.Redis) -> bytes:
    """Every byte stored in Redis, whatever the type, concatenated (for leak scans)."""
    chunks: list[bytes] = []
    for key in client.scan_iter("*"):
        chunks.append(key)
        kind = client.type(key)
        if kind == b"string":
            chunks.append(client.get(key) or b"")
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                chunks += [field, value]
        elif kind == b"set":
            chunks += list(client.smembers(key))
        elif kind == b"zset":
            chunks += list(client.zrange(key, 0, -1))
    return b"\n".join(chunks)


# -- life cycle ----------------------------------------------------------------------------------
def test_life_cycle_versions_and_events(store: TenantStore, events: EventLog) -> None:
    created = store.create("acme", name="Acme", genesys_region="aps1.mypurecloud.com")
    assert created["version"] == 1 and created["genesysRegion"] == "aps1.pure.cloud"
    assert created["genesys"] is None and created["whatsapp"] is None
    creds, wa = _creds(), _whatsapp()
    store.set_genesys("acme", **creds)
    store.set_whatsapp("acme", **wa)
    store.update("acme", {"name": "Acme Ltd"})
    assert store.version_of("acme") == 4

    config = store.load_config("acme")
    assert config is not None and config.version == 4 and config.name == "Acme Ltd"
    assert config.genesys is not None and config.genesys.client_secret == creds["client_secret"]
    assert config.genesys.webhook_secret == creds["webhook_secret"]
    assert config.whatsapp is not None and config.whatsapp.access_token == wa["access_token"]
    assert config.whatsapp.app_secret == wa["app_secret"]
    assert config.whatsapp.verify_token == wa["verify_token"]
    for secret in (*creds.values(), *wa.values()):
        if len(secret) > 20:
            assert secret not in repr(config)

    assert store.tenant_for_phone(wa["phone_number_id"]) == "acme"
    assert store.tenant_for_integration(creds["integration_id"]) == "acme"
    assert store.tenant_for_verify_token(wa["verify_token"]) == "acme"
    assert store.tenant_for_verify_token("not-" + wa["verify_token"]) is None

    assert store.delete("acme") == 5
    assert store.load_config("acme") is None and store.version_of("acme") is None
    assert store.tenant_for_phone(wa["phone_number_id"]) is None
    assert store.tenant_for_integration(creds["integration_id"]) is None
    assert store.tenant_for_verify_token(wa["verify_token"]) is None
    with pytest.raises(TenantNotFound):
        store.delete("acme")

    assert [(e["version"], e["kind"]) for e in events.all()] == [
        (1, "created"),
        (2, "credentials"),
        (3, "credentials"),
        (4, "updated"),
        (5, "deleted"),
    ]
    assert {e["tenantId"] for e in events.all()} == {"acme"}


def test_nothing_is_left_behind_by_a_delete(
    store: TenantStore, api_keys: ApiKeys, redis_client: redis.Redis
) -> None:
    store.create("gone", name="Gone")
    store.set_genesys("gone", **_creds())
    store.set_whatsapp("gone", **_whatsapp())
    issued = api_keys.issue_key("gone")
    store.delete("gone")
    assert list(redis_client.scan_iter("*")) == []
    assert api_keys.check_key(issued.key) is None


def test_moving_an_index_frees_the_old_value(store: TenantStore) -> None:
    store.create("a", name="A")
    store.create("b", name="B")
    store.set_whatsapp("a", **_whatsapp("111"))
    store.set_whatsapp("a", **_whatsapp("222"))
    assert store.tenant_for_phone("111") is None and store.tenant_for_phone("222") == "a"
    store.set_whatsapp("b", **_whatsapp("111"))  # free again
    assert store.tenant_for_phone("111") == "b"


def test_conflicts_change_nothing(store: TenantStore, events: EventLog) -> None:
    store.create("a", name="A")
    store.create("b", name="B")
    wa, creds = _whatsapp("555"), _creds()
    store.set_whatsapp("a", **wa)
    store.set_genesys("a", **creds)
    before = store.load_config("b")
    with pytest.raises(IndexConflict) as caught:
        store.set_whatsapp("b", **_whatsapp("555"))
    assert caught.value.field == "whatsapp_phone_number_id"
    with pytest.raises(IndexConflict) as caught:
        store.set_genesys("b", **{**_creds(), "integration_id": creds["integration_id"]})
    assert caught.value.field == "integrationId"
    with pytest.raises(IndexConflict) as caught:
        store.set_whatsapp("b", **{**_whatsapp(), "verify_token": wa["verify_token"]})
    assert caught.value.field == "webhook_verify_token"
    assert store.load_config("b") == before
    assert store.tenant_for_phone("555") == "a"
    assert [e["kind"] for e in events.all()] == ["created", "created", "credentials", "credentials"]


def test_create_twice_and_unknown_tenants(store: TenantStore) -> None:
    store.create("acme", name="Acme")
    with pytest.raises(TenantExists):
        store.create("acme", name="Again")
    with pytest.raises(TenantNotFound):
        store.update("nobody", {"name": "x"})
    with pytest.raises(TenantNotFound):
        store.set_whatsapp("nobody", **_whatsapp())
    assert store.load_config("nobody") is None
    assert store.load_config("../acme") is None and store.version_of("ACME") is None


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.create("Bad", name="x"), "tenantId"),
        (lambda s: s.create("by-phone", name="x"), "tenantId"),
        (lambda s: s.create("ok", name=""), "name"),
        (lambda s: s.create("ok", name="x", genesys_region="mars.pure.cloud"), "genesysRegion"),
        (lambda s: s.set_genesys("t", **{**_creds(), "webhook_secret": "x" * 15}), "webhookSecret"),
        (lambda s: s.set_genesys("t", **{**_creds(), "client_secret": "****abcd"}), "clientSecret"),
        (lambda s: s.set_genesys("t", **{**_creds(), "integration_id": "a/b"}), "integrationId"),
        (
            lambda s: s.set_whatsapp("t", **{**_whatsapp(), "app_secret": "short"}),
            "meta_app_secret",
        ),
        (lambda s: s.update("t", {"version": "9"}), "version"),
    ],
)
def test_invalid_data_is_refused_before_any_write(
    store: TenantStore, call: Any, field: str
) -> None:
    store.create("t", name="T")
    with pytest.raises(InvalidTenantData) as caught:
        call(store)
    assert caught.value.field == field
    assert store.version_of("t") == 1


def test_webhook_secret_of_sixteen_characters_is_enough(store: TenantStore) -> None:
    store.create("t", name="T")
    store.set_genesys("t", **{**_creds(), "webhook_secret": "y" * 16})
    config = store.load_config("t")
    assert config is not None and config.genesys is not None
    assert config.genesys.webhook_secret == "y" * 16


def test_pagination_walks_every_tenant_once(store: TenantStore) -> None:
    ids = sorted(f"t{i:02d}" for i in range(7))
    for tenant_id in reversed(ids):
        store.create(tenant_id, name=tenant_id.upper())
    seen, cursor, pages = [], None, 0
    while True:
        items, cursor = store.list_page(3, cursor)
        seen += [item["tenantId"] for item in items]
        pages += 1
        if cursor is None:
            break
    assert seen == ids and pages == 3
    with pytest.raises(InvalidTenantData):
        store.list_page(3, "!!not-a-cursor")


# -- secrets at rest -----------------------------------------------------------------------------
def test_no_secret_is_stored_in_clear(
    store: TenantStore, api_keys: ApiKeys, redis_client: redis.Redis
) -> None:
    planted: list[str] = []
    for tenant_id in ("one", "two"):
        store.create(tenant_id, name=tenant_id)
        creds, wa = _creds(), _whatsapp()
        store.set_genesys(tenant_id, **creds)
        store.set_whatsapp(tenant_id, **wa)
        planted += [creds["client_secret"], creds["webhook_secret"]]
        planted += [wa["access_token"], wa["app_secret"], wa["verify_token"]]
        planted.append(api_keys.issue_key(tenant_id).key)
    raw = _all_raw_values(redis_client)
    for secret in planted:
        assert secret.encode() not in raw
        assert secret[:12].encode() not in raw  # not even a prefix


def test_a_ciphertext_copied_to_another_tenant_does_not_decrypt(
    store: TenantStore, redis_client: redis.Redis
) -> None:
    store.create("victim", name="V")
    store.create("thief", name="T")
    store.set_genesys("victim", **_creds())
    store.set_genesys("thief", **_creds())
    stolen = redis_client.hget(keys.tenant("victim"), "genesys")
    redis_client.hset(keys.tenant("thief"), "genesys", stolen or b"")
    with pytest.raises(CorruptSecret):
        store.load_config("thief")


def test_key_rotation(redis_client: redis.Redis) -> None:
    key_a, key_b = secrets.token_bytes(32), secrets.token_bytes(32)
    with_a = TenantStore(redis_client, (key_a,))
    with_a.create("acme", name="Acme")
    wa = _whatsapp()
    with_a.set_whatsapp("acme", **wa)

    rotated = TenantStore(redis_client, (key_b, key_a))
    config = rotated.load_config("acme")
    assert config is not None and config.whatsapp is not None
    assert config.whatsapp.access_token == wa["access_token"]
    creds = _creds()
    rotated.set_genesys("acme", **creds)
    section = json.loads(redis_client.hget(keys.tenant("acme"), "genesys") or b"")
    assert rotated.box.write_key_id == key_id(key_b).hex()
    assert not rotated.box.needs_rewrap(section["clientSecret"])

    only_b = TenantStore(redis_client, (key_b,))
    with pytest.raises(MissingSecretKey) as caught:
        only_b.load_config("acme")  # the WhatsApp section is still under A
    assert key_id(key_a).hex() in str(caught.value)
    assert wa["access_token"] not in str(caught.value)
    # Rewriting the section under B makes the tenant readable with B alone.
    only_b.set_whatsapp("acme", **wa)
    config = only_b.load_config("acme")
    assert config is not None and config.genesys is not None
    assert config.genesys.client_secret == creds["client_secret"]


# -- concurrency ---------------------------------------------------------------------------------
def test_concurrent_writes_last_wins_and_versions_add_up(
    store: TenantStore, redis_client: redis.Redis
) -> None:
    store.create("busy", name="Busy")
    writes = 40
    payloads = [_whatsapp(str(9000 + i)) for i in range(writes)]
    greenlets = [gevent.spawn(store.set_whatsapp, "busy", **p) for p in payloads]
    gevent.joinall(greenlets, raise_error=True)
    assert store.version_of("busy") == 1 + writes
    config = store.load_config("busy")
    assert config is not None and config.whatsapp is not None
    final = config.whatsapp.phone_number_id
    # The indexes hold exactly the final value: no orphan of an overwritten write.
    assert redis_client.hgetall(keys.index_phone()) == {final.encode(): b"busy"}
    assert len(redis_client.hgetall(keys.index_verify_token())) == 1
    assert store.tenant_for_verify_token(config.whatsapp.verify_token) == "busy"


def test_racing_for_one_phone_number_has_one_winner(store: TenantStore) -> None:
    tenants = [f"r{i}" for i in range(10)]
    for tenant_id in tenants:
        store.create(tenant_id, name=tenant_id)

    def claim(tenant_id: str) -> bool:
        try:
            store.set_whatsapp(tenant_id, **_whatsapp("424242"))
        except IndexConflict:
            return False
        return True

    results = [g.get() for g in gevent.joinall([gevent.spawn(claim, t) for t in tenants])]
    assert results.count(True) == 1
    winner = tenants[results.index(True)]
    assert store.tenant_for_phone("424242") == winner


# -- logs ----------------------------------------------------------------------------------------
def test_logs_carry_no_secret(
    store: TenantStore, api_keys: ApiKeys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store.create("acme", name="Acme")
    creds, wa = _creds(), _whatsapp()
    store.set_genesys("acme", **creds)
    store.set_whatsapp("acme", **wa)
    issued = api_keys.issue_key("acme")
    store.delete("acme")
    assert caplog.records, "the changes are logged"
    text = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    for secret in (creds["client_secret"], creds["webhook_secret"], *wa.values(), issued.key):
        if len(secret) > 15:
            assert secret not in text


def test_store_repr_names_key_ids_only(redis_client: redis.Redis) -> None:
    key = secrets.token_bytes(32)
    text = repr(TenantStore(redis_client, (key,)))
    assert key_id(key).hex() in text and key.hex() not in text
