"""The TokenManager against a real Valkey, with ``responses`` standing in for Genesys's login."""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import gevent
import pykka
import pytest
import responses

from interlink.actors.messages import ConfigChanged, Control
from interlink.actors.supervision import ChildStatus
from interlink.actors.token_manager import DropToken, GetToken, TokenManager
from interlink.actors.tree import TreeSpec
from interlink.providers.errors import AuthError
from interlink.services import Services
from interlink.store import keys
from interlink.telemetry import metrics
from interlink.tenancy.config import GenesysCredentials, TenantConfig

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


def start(services: Services, secret: str) -> pykka.ActorRef[Any]:
    spec = TreeSpec(load_config=lambda _: None, services=services)
    return TokenManager.start(config(secret), spec=spec, status=ChildStatus("token-manager"))


def test_one_request_for_many_concurrent_askers_on_two_shards(
    services: Services, login: responses.RequestsMock, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    issued = grant(login)
    shard_a, shard_b = start(services, secret), start(services, secret)
    futures = [ref.ask(GetToken(), block=False) for _ in range(200) for ref in (shard_a, shard_b)]
    tokens = {future.get(timeout=10) for future in futures}
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
    shard_a.stop()
    shard_b.stop()


def test_the_fetch_lock_goes_with_the_token_in_one_round_trip(
    services: Services, login: responses.RequestsMock, secret: str
) -> None:
    def scripts_run() -> int:
        stats = services.redis.info("commandstats")
        return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("eval", "evalsha"))

    grant(login)
    ref = start(services, secret)
    before = scripts_run()
    assert ref.ask(GetToken(), timeout=10)
    # Released by the DEL batched with storing the token, not by a compare-and-delete of its own.
    assert not services.redis.exists(keys.token_lock("acme"))
    assert scripts_run() == before
    ref.stop()


def test_a_401_drops_the_token_everywhere_and_the_next_ask_fetches_once(
    services: Services, login: responses.RequestsMock, secret: str
) -> None:
    issued = grant(login)
    shard_a, shard_b = start(services, secret), start(services, secret)
    first = shard_a.ask(GetToken(), timeout=10)
    assert shard_b.ask(GetToken(), timeout=10) == first
    shard_b.ask(DropToken("not-the-current-one"), timeout=5)
    assert services.redis.exists(keys.token("acme"))  # a stale drop does not hurt a good token
    shard_b.ask(DropToken(first), timeout=5)
    assert not services.redis.exists(keys.token("acme"))
    gevent.sleep(1.05)  # shard A serves its memory copy for at most a second
    second = shard_a.ask(GetToken(), timeout=10)
    assert second == issued[1] != first
    assert shard_b.ask(GetToken(), timeout=10) == second
    assert len(login.calls) == 2
    shard_a.stop()
    shard_b.stop()


def test_invalidate_and_a_credential_change_drop_the_token(
    services: Services, login: responses.RequestsMock, secret: str
) -> None:
    grant(login)
    ref = start(services, secret)
    ref.ask(GetToken(), timeout=10)
    ref.ask(Control("invalidate-token"), timeout=5)
    assert not services.redis.exists(keys.token("acme"))
    ref.ask(GetToken(), timeout=10)
    ref.ask(
        ConfigChanged(
            config(secrets.token_urlsafe(24), 2),
            credentials_changed=True,
            genesys_login_changed=True,
        ),
        timeout=5,
    )
    assert not services.redis.exists(keys.token("acme"))
    ref.ask(GetToken(), timeout=10)
    assert len(login.calls) == 3
    ref.stop()


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
            ref.ask(GetToken(), timeout=10)
        assert secret not in str(info.value) and secret not in repr(info.value)
    assert len(login.calls) == 1
    # Counted once per refusal Genesys gave, not per ask answered from the hold.
    assert metrics.value("interlink_genesys_token_failures_total") == refused_before + 1
    assert ref.is_alive()  # an ask's failure is the asker's to handle
    ref.stop()


def test_a_short_token_is_reused_until_it_nearly_expires(
    services: Services, login: responses.RequestsMock, secret: str
) -> None:
    issued = grant(login, expires_in=2)
    ref = start(services, secret)
    assert ref.ask(GetToken(), timeout=10) == issued[0]
    for _ in range(20):
        assert ref.ask(GetToken(), timeout=10) == issued[0]
    assert len(login.calls) == 1
    gevent.sleep(1.9)  # past its cache lifetime (2 s minus a tenth)
    assert ref.ask(GetToken(), timeout=10) == issued[1]
    ref.stop()


def test_the_tenant_context_serves_the_token_from_memory_until_a_drop(
    services: Services, login: responses.RequestsMock, secret: str
) -> None:
    from interlink.actors.context import TenantContext
    from interlink.actors.whatsapp_sender import SendLane

    issued = grant(login)
    ref = start(services, secret)
    asked: list[int] = []

    def manager() -> pykka.ActorRef[Any]:
        asked.append(1)
        return ref

    context = TenantContext(
        config(secret),
        services.settings,
        token_manager=manager,
        send_lane=SendLane(config(secret)),
        genesys_pacer=None,  # type: ignore[arg-type]
        session=services.http,
    )
    try:
        first = context.token()
        for _ in range(50):
            assert context.token() == first
        assert len(asked) == 1  # one ask, then memory: no actor round trip or Redis read each
        context.drop_token(first)  # Genesys answered 401 to it
        assert services.redis.get(keys.token("acme")) is None
        second = context.token()
        assert second != first and issued == [first, second]
        context.drop_token("some older token")  # not the current one: kept
        assert context.token() == second
    finally:
        ref.stop()
