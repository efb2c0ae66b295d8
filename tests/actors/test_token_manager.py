"""The TokenManager against a real Valkey, with ``responses`` standing in for Genesys's login.
Two managers of one tenant stand for two shards; greenlets for concurrent conversations."""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import gevent
import pytest
import redis
import responses

from interlink.actors.token_manager import TokenManager
from interlink.providers.errors import AuthError, TransientError
from interlink.services import Services
from interlink.store import keys
from interlink.store.tokens import TokenStore
from interlink.telemetry import metrics
from interlink.tenancy.config import GenesysCredentials, TenantConfig
from tests.support.round_trips import counting_client

TOKEN_URL = "https://login.mypurecloud.ie/oauth/token"


def config(client_secret: str, version: int = 1) -> TenantConfig:
    creds = GenesysCredentials(
        client_id="client-acme",
        client_secret=client_secret,
        region="mypurecloud.ie",
        integration_id="integration-acme",
        webhook_secret=secrets.token_urlsafe(24),
    )
    return TenantConfig(tenant_id="acme", version=version, genesys=creds)


@pytest.fixture
def secret() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture
def login() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def grant(login: responses.RequestsMock, expires_in: int = 86399) -> list[str]:
    issued: list[str] = []

    def callback(request: Any) -> tuple[int, dict[str, str], str]:
        issued.append(secrets.token_urlsafe(32))
        gevent.sleep(0.05)  # a real round trip: concurrent askers pile up meanwhile
        body = f'{{"access_token": "{issued[-1]}", "token_type": "bearer", "expires_in": {expires_in}}}'
        return 200, {"Content-Type": "application/json"}, body

    login.add_callback(responses.POST, TOKEN_URL, callback=callback)
    return issued


def start(services: Services, secret: str) -> TokenManager:
    return TokenManager(
        config(secret), TokenStore(services.redis), services.http, services.settings
    )


def test_one_request_for_many_concurrent_askers_on_two_shards(
    services: Services, login: responses.RequestsMock, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    issued = grant(login)
    shard_a, shard_b = start(services, secret), start(services, secret)
    askers = [gevent.spawn(m.token) for _ in range(200) for m in (shard_a, shard_b)]
    gevent.joinall(askers, timeout=10, raise_error=True)
    tokens = {asker.value for asker in askers}
    assert len(login.calls) == 1
    assert tokens == {issued[0]}

    request = login.calls[0].request
    assert (
        request.headers["Authorization"]
        == "Basic " + base64.b64encode(f"client-acme:{secret}".encode()).decode()
    )
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.body) == {"grant_type": ["client_credentials"]}

    # Shared through the contract key, expiring a safety margin before Genesys's expiry.
    assert services.redis.get(keys.token("acme")) == issued[0].encode()
    assert 86399 - 61 <= services.redis.ttl(keys.token("acme")) <= 86399 - 59
    assert not services.redis.exists(keys.token_lock("acme"))
    for text in (secret, issued[0]):
        assert text not in caplog.text


def test_a_first_token_costs_two_round_trips_and_a_cached_one_one_without_the_lock(
    services: Services, login: responses.RequestsMock, secret: str, redis_url: str
) -> None:
    """A tenant's first token: the read and the lock in one round trip, the store and the
    release in another (a plain DEL, no compare-and-delete of its own). A shard that then finds
    it cached reads it in one round trip and takes no lock (it would block another's renewal)."""
    client, trips = counting_client(redis_url)
    try:
        issued = grant(login)
        first = TokenManager(config(secret), TokenStore(client), services.http, services.settings)
        assert first.token() == issued[0]
        assert trips.count == 2
        assert not services.redis.exists(keys.token_lock("acme"))
        other = TokenManager(config(secret), TokenStore(client), services.http, services.settings)
        assert other.token() == issued[0]
        assert trips.count == 3
        assert not services.redis.exists(keys.token_lock("acme"))
        assert len(login.calls) == 1
    finally:
        client.close()


def test_a_token_due_for_renewal_is_renewed_by_the_shard_that_takes_the_lock(
    services: Services, login: responses.RequestsMock, secret: str
) -> None:
    issued = grant(login, expires_in=30)  # cached for 27 s, renewed in its last 2.7 s
    TokenStore(services.redis).put("acme", "old-token", 20)  # 18 s left of a 18 s lifetime
    services.redis.set(keys.token_lifetime("acme"), "200")  # so 18 s left is due (< 20 s)
    holder = TokenStore(services.redis)
    cached, owner = holder.get_or_lock("acme", 120.0)
    assert cached is not None and cached.token == "old-token" and owner is not None
    # Another shard meanwhile: the old token is still valid, so it serves it, fetching nothing.
    assert start(services, secret).token() == "old-token"
    assert len(login.calls) == 0
    holder.unlock("acme", owner)
    assert start(services, secret).token() == issued[0]
    assert len(login.calls) == 1


def test_a_401_drops_the_token_everywhere_and_the_next_ask_fetches_once(
    services: Services, login: responses.RequestsMock, secret: str
) -> None:
    issued = grant(login)
    shard_a, shard_b = start(services, secret), start(services, secret)
    first = shard_a.token()
    assert shard_b.token() == first
    shard_b.drop("not-the-current-one")
    assert services.redis.exists(keys.token("acme"))  # a stale drop does not hurt a good token
    shard_b.drop(first)
    assert not services.redis.exists(keys.token("acme"))
    gevent.sleep(1.05)  # shard A serves its memory copy for at most a second
    second = shard_a.token()
    assert second == issued[1] != first
    assert shard_b.token() == second
    assert len(login.calls) == 2


def test_invalidate_and_a_credential_change_drop_the_token(
    services: Services, login: responses.RequestsMock, secret: str
) -> None:
    grant(login)
    ref = start(services, secret)
    ref.token()
    ref.drop(None)  # an operator's invalidate-token
    assert not services.redis.exists(keys.token("acme"))
    ref.token()
    ref.configure(config(secrets.token_urlsafe(24), 2), genesys_login_changed=True)
    assert not services.redis.exists(keys.token("acme"))
    ref.token()
    assert len(login.calls) == 3


def test_a_token_fetched_while_the_credentials_changed_is_not_kept(
    services: Services, login: responses.RequestsMock, secret: str
) -> None:
    issued = grant(login)
    manager = start(services, secret)
    asker = gevent.spawn(manager.token)
    gevent.sleep(0.01)  # the login request is on its way, with the old client
    manager.configure(config(secrets.token_urlsafe(24), 2), genesys_login_changed=True)
    with pytest.raises(TransientError, match="dropped while it was fetched"):
        asker.get(timeout=5)
    assert not services.redis.exists(keys.token("acme"))
    assert not services.redis.exists(keys.token_lock("acme"))
    assert manager.token() == issued[1]  # fetched again, with the new client
    assert len(login.calls) == 2


def test_a_token_read_while_the_credentials_changed_is_not_leased_on(
    services: Services, login: responses.RequestsMock, secret: str
) -> None:
    issued = grant(login)
    start(services, secret).token()  # another shard cached the old client's token
    manager = start(services, secret)
    services.redis.execute_command("CLIENT", "PAUSE", "200", "ALL")  # Redis answers later
    asker = gevent.spawn(manager.token)
    gevent.sleep(0.05)  # its read of the cached token is on its way
    manager.configure(config(secrets.token_urlsafe(24), 2), genesys_login_changed=True)
    try:
        assert asker.get(timeout=5) == issued[0]  # asked before the change: the old one is its own
    except TransientError:
        pass  # Redis ran the drop first: the asker fetched, and kept nothing
    lease = manager.lease()
    # The new client's, from Genesys (the last one it issued), leased for long.
    assert lease.token == issued[-1] != issued[0] and lease.fresh_for > 60


def test_a_token_read_while_a_401_dropped_it_is_not_leased_on(
    services: Services, login: responses.RequestsMock, secret: str
) -> None:
    issued = grant(login)
    start(services, secret).token()  # another shard cached it
    manager = start(services, secret)
    services.redis.execute_command("CLIENT", "PAUSE", "200", "ALL")  # Redis answers later
    asker = gevent.spawn(manager.token)
    gevent.sleep(0.05)  # its read of the cached token is on its way
    manager.drop(issued[0])  # Genesys answered 401 to it meanwhile
    asker.get(timeout=5)
    assert manager.lease().token == issued[-1] != issued[0]


def test_refused_credentials_fail_clearly_without_hammering_genesys(
    services: Services, login: responses.RequestsMock, secret: str
) -> None:
    login.add(
        responses.POST,
        TOKEN_URL,
        status=401,
        json={"error": "invalid_client", "description": "client authentication failed"},
    )
    refused_before = metrics.value("interlink_genesys_token_failures_total")
    ref = start(services, secret)
    for _ in range(5):
        with pytest.raises(AuthError) as info:
            ref.token()
        assert secret not in str(info.value) and secret not in repr(info.value)
    assert len(login.calls) == 1
    # Counted once per refusal Genesys gave, not per ask answered from the hold.
    assert metrics.value("interlink_genesys_token_failures_total") == refused_before + 1


def test_a_short_token_is_reused_until_it_nearly_expires(
    services: Services, login: responses.RequestsMock, secret: str
) -> None:
    issued = grant(login, expires_in=2)
    ref = start(services, secret)
    assert ref.token() == issued[0]
    for _ in range(20):
        assert ref.token() == issued[0]
    assert len(login.calls) == 1
    gevent.sleep(1.9)  # past its cache lifetime (2 s minus a tenth)
    assert ref.token() == issued[1]


def test_the_tenant_context_serves_the_token_from_memory_until_a_drop(
    services: Services, login: responses.RequestsMock, secret: str
) -> None:
    from interlink.actors.context import TenantContext
    from interlink.actors.whatsapp_sender import SendLane

    issued = grant(login)
    context = TenantContext(
        config(secret),
        services.settings,
        token_manager=start(services, secret),
        send_lane=SendLane(config(secret)),
        genesys_pacer=None,  # type: ignore[arg-type]
        session=services.http,
    )
    first = context.token()
    reads = redis_reads(services)
    for _ in range(50):
        assert context.token() == first
    assert redis_reads(services) == reads  # memory: no Redis read per message
    assert len(login.calls) == 1
    context.drop_token(first)  # Genesys answered 401 to it
    assert services.redis.get(keys.token("acme")) is None
    second = context.token()
    assert second != first and issued == [first, second]
    context.drop_token("some older token")  # not the current one: kept
    assert context.token() == second


def redis_reads(services: Services) -> int:
    stats = services.redis.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("get", "pttl"))


def test_new_credentials_end_every_context_lease_at_once(
    services: Services, login: responses.RequestsMock, secret: str
) -> None:
    # A context of the configuration before a rotation (a message started before it, waiting
    # for its turn at Genesys) must not go on calling with the old client's token.
    from interlink.actors.context import TenantContext
    from interlink.actors.whatsapp_sender import SendLane

    issued = grant(login)
    manager = start(services, secret)
    old = TenantContext(
        config(secret),
        services.settings,
        token_manager=manager,
        send_lane=SendLane(config(secret)),
        genesys_pacer=None,  # type: ignore[arg-type]
        session=services.http,
    )
    first = old.token()
    rotated = config(secrets.token_urlsafe(24), version=2)
    manager.configure(rotated, genesys_login_changed=True)
    second = old.token()
    assert second != first and issued == [first, second]
    assert old.token() == second  # leased again, and kept
    assert len(login.calls) == 2


def tenant_config(tenant_id: str) -> TenantConfig:
    creds = GenesysCredentials(
        client_id=f"client-{tenant_id}",
        client_secret=secrets.token_urlsafe(24),
        region="mypurecloud.ie",
        integration_id=f"integration-{tenant_id}",
        webhook_secret=secrets.token_urlsafe(24),
    )
    return TenantConfig(tenant_id=tenant_id, version=1, genesys=creds)


def test_the_first_tokens_of_many_tenants_share_round_trips_each_its_own(
    services: Services, login: responses.RequestsMock, redis_url: str
) -> None:
    """A burst of first messages: every tenant fetches its own token (its own client id), and
    their Redis reads and stores go out together instead of two round trips each."""
    by_client: dict[str, str] = {}

    def callback(request: Any) -> tuple[int, dict[str, str], str]:
        client_id = base64.b64decode(request.headers["Authorization"].split()[1]).decode()
        by_client[client_id.split(":")[0]] = token = secrets.token_urlsafe(32)
        gevent.sleep(0.01)
        body = f'{{"access_token": "{token}", "expires_in": 86399}}'
        return 200, {"Content-Type": "application/json"}, body

    login.add_callback(responses.POST, TOKEN_URL, callback=callback)
    client, trips = counting_client(redis_url)
    try:
        store = TokenStore(client)
        managers = [
            TokenManager(tenant_config(f"t{n}"), store, services.http, services.settings)
            for n in range(40)
        ]
        askers = [gevent.spawn(m.token) for m in managers]
        gevent.joinall(askers, timeout=10, raise_error=True)
        for manager, asker in zip(managers, askers, strict=True):
            assert asker.value == by_client[f"client-{manager.tenant_id}"]
            cached = TokenStore(services.redis).get(manager.tenant_id)
            assert cached is not None and cached.token == asker.value
            assert not services.redis.exists(keys.token_lock(manager.tenant_id))
        assert len(login.calls) == 40
        assert trips.count <= 20  # 80 one by one
    finally:
        client.close()


def test_a_failing_command_fails_only_its_own_caller(services: Services) -> None:
    services.redis.hset(keys.token("broken"), "not", "a string")  # GET answers WRONGTYPE
    store = TokenStore(services.redis)
    broken = gevent.spawn(store.get_or_lock, "broken", 120.0)
    fine = gevent.spawn(store.get_or_lock, "fine", 120.0)
    gevent.joinall([broken, fine], timeout=5)
    assert isinstance(broken.exception, redis.ResponseError)
    cached, owner = fine.value
    assert cached is None and owner is not None


def test_a_drop_after_a_store_is_applied_after_it(services: Services) -> None:
    store = TokenStore(services.redis)
    put = gevent.spawn(store.put, "acme", "stored-then-dropped", 3600)
    drop = gevent.spawn(store.drop, "acme")
    gevent.joinall([put, drop], timeout=5, raise_error=True)
    assert not services.redis.exists(keys.token("acme"))
    assert not services.redis.exists(keys.token_lifetime("acme"))
