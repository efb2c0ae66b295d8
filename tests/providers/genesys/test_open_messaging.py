"""OpenMessagingClient against ``responses``: exact URLs per region, the bearer token, the one
re-authentication after a 401, retries, pacing."""

from __future__ import annotations

import logging
import secrets
import uuid

import pytest
import requests
import responses
import urllib3.exceptions
from responses import matchers

from interlink.providers.errors import (
    AuthError,
    PermanentError,
    SendUncertain,
    TransientError,
)
from interlink.providers.genesys import (
    OpenMessagingClient,
)
from interlink.providers.pacing import Pacer
from interlink.providers.retry import RetryPolicy
from interlink.settings import Settings
from tests.providers.genesys.calls import REGIONS, assert_no_secret, everything_logged, sent_timeout


class Tokens:
    """A token manager stand-in: hands out the current token, drops it on request."""

    def __init__(self) -> None:
        self.current = secrets.token_urlsafe(40)
        self.issued = [self.current]
        self.dropped: list[str] = []

    def __call__(self) -> str:
        return self.current

    def drop(self, token: str) -> None:
        self.dropped.append(token)
        self.current = secrets.token_urlsafe(40)
        self.issued.append(self.current)


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


INBOUND = {
    "channel": {
        "messageId": "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
        "time": "2026-01-02T10:00:00.000Z",
        "from": {"id": "15551234567", "idType": "Opaque", "nickname": "Ana"},
    },
    "text": "Hi, I need help",
}


def make_client(
    tokens: Tokens,
    sleeps: Sleeps,
    *,
    api_base: str = "https://api.mypurecloud.ie",
    integration_id: str = "0f8e6c7a-1111-2222-3333-444455556666",
    **kwargs: object,
) -> OpenMessagingClient:
    kwargs.setdefault("policy", RetryPolicy(max_attempts=4, base=1.0, cap=10.0, rng=lambda: 1.0))
    return OpenMessagingClient(
        requests.Session(),
        api_base,
        integration_id,
        tokens,
        tokens.drop,
        timeout=(2.0, 7.0),
        sleep=sleeps,
        **kwargs,  # type: ignore[arg-type]
    )


def om_url(region: str, integration_id: str, kind: str) -> str:
    return (
        f"https://api.{region}/api/v2/conversations/messages/{integration_id}/inbound/open/{kind}"
    )


@pytest.mark.parametrize("region", REGIONS)
def test_send_inbound_posts_the_body_with_the_bearer_token(
    rsps: responses.RequestsMock, region: str
) -> None:
    tokens, sleeps = Tokens(), Sleeps()
    integration = str(uuid.uuid4())
    rsps.post(
        om_url(region, integration, "message"),
        json={"id": "gen-msg-1", "conversationId": "conv-1"},
        status=202,
        match=[
            matchers.header_matcher(
                {"Authorization": f"Bearer {tokens.current}", "Content-Type": "application/json"}
            ),
            matchers.json_params_matcher(INBOUND),
        ],
    )
    client = make_client(
        tokens, sleeps, api_base=Settings().genesys_api_base(region), integration_id=integration
    )
    assert client.send_inbound(INBOUND) == {"id": "gen-msg-1", "conversationId": "conv-1"}
    # Without the flag Genesys answers without conversationId (the conversation → tenant map
    # the Genesys webhook routes by would stay empty).
    assert rsps.calls[0].request.url == (
        f"{om_url(region, integration, 'message')}?prefetchConversationId=true"
    )
    assert sent_timeout(rsps.calls[0]) == (2.0, 7.0)
    assert sleeps.calls == []


def test_receipt_and_event_endpoints(rsps: responses.RequestsMock) -> None:
    tokens, sleeps = Tokens(), Sleeps()
    integration = "0f8e6c7a-1111-2222-3333-444455556666"
    receipt = {
        "id": "8085cbb3f778c34de0bd14c5318ec44c",
        "channel": {"to": {"id": "15551234567", "idType": "Opaque"}, "time": "2026-01-02T10:00Z"},
        "status": "Delivered",
        "isFinalReceipt": False,
    }
    event = {
        "channel": {"from": {"id": "15551234567", "idType": "Opaque"}, "time": "2026-01-02T10:00Z"},
        "events": [{"eventType": "Typing"}],
    }
    rsps.post(
        om_url("mypurecloud.ie", integration, "receipt"),
        json={"id": "r1", "status": "Delivered"},
        match=[matchers.json_params_matcher(receipt)],
    )
    rsps.post(
        om_url("mypurecloud.ie", integration, "event"),
        json={},
        match=[matchers.json_params_matcher(event)],
    )
    client = make_client(tokens, sleeps)
    assert client.send_receipt(receipt) == {"id": "r1", "status": "Delivered"}
    assert client.send_event(event) == {}
    # Only message calls ask for the conversation id; receipts and events take no such flag.
    assert [call.request.url for call in rsps.calls] == [
        om_url("mypurecloud.ie", integration, "receipt"),
        om_url("mypurecloud.ie", integration, "event"),
    ]


def test_simulator_base_is_used_verbatim(rsps: responses.RequestsMock) -> None:
    settings = Settings(genesys_api_url="http://127.0.0.1:8999/genesys/{region}")
    base = settings.genesys_api_base("mypurecloud.ie")
    rsps.post(
        "http://127.0.0.1:8999/genesys/mypurecloud.ie/api/v2/conversations/messages/i-1/inbound/open/message",
        json={"id": "x"},
    )
    assert make_client(Tokens(), Sleeps(), api_base=base, integration_id="i-1").send_inbound(
        INBOUND
    ) == {"id": "x"}


def test_401_drops_the_token_and_retries_once_with_a_fresh_one(
    rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens, sleeps = Tokens(), Sleeps()
    old = tokens.current
    url = om_url("mypurecloud.ie", "0f8e6c7a-1111-2222-3333-444455556666", "message")
    rsps.post(
        url,
        status=401,
        json={"message": "Authentication required", "code": "authentication.required"},
        match=[matchers.header_matcher({"Authorization": f"Bearer {old}"})],
    )

    def fresh_token_matcher(request: requests.PreparedRequest) -> tuple[bool, str]:
        expected = f"Bearer {tokens.current}"
        ok = request.headers.get("Authorization") == expected and tokens.current != old
        return ok, "" if ok else "not the fresh token"

    rsps.post(url, json={"id": "m2"}, match=[fresh_token_matcher])
    client = make_client(tokens, sleeps)
    assert client.send_inbound(INBOUND) == {"id": "m2"}
    assert tokens.dropped == [old]
    assert len(rsps.calls) == 2
    assert sleeps.calls == []  # a re-authentication is not a backoff
    for token in tokens.issued:
        assert token not in everything_logged(caplog)


def test_second_401_is_auth_error_and_only_one_refresh(
    rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens, sleeps = Tokens(), Sleeps()
    url = om_url("mypurecloud.ie", "0f8e6c7a-1111-2222-3333-444455556666", "message")
    rsps.post(
        url,
        status=401,
        json={"message": "bad credentials", "code": "bad.credentials"},
        headers={"ININ-Correlation-Id": "corr-x"},
    )
    with pytest.raises(AuthError) as caught:
        make_client(tokens, sleeps).send_inbound(INBOUND)
    assert len(rsps.calls) == 2
    assert len(tokens.dropped) == 1
    assert caught.value.status == 401 and caught.value.code == "bad.credentials"
    assert caught.value.correlation_id == "corr-x"
    for token in tokens.issued:
        assert_no_secret(token, str(caught.value), repr(caught.value), everything_logged(caplog))


def test_429_waits_retry_after_then_succeeds(rsps: responses.RequestsMock) -> None:
    tokens, sleeps = Tokens(), Sleeps()
    url = om_url("mypurecloud.ie", "0f8e6c7a-1111-2222-3333-444455556666", "message")
    rsps.post(
        url,
        status=429,
        json={"message": "Retry in [3] seconds", "code": "too.many.requests.retry.after"},
        headers={"Retry-After": "3"},
    )
    rsps.post(url, json={"id": "m"})
    assert make_client(tokens, sleeps).send_inbound(INBOUND) == {"id": "m"}
    assert sleeps.calls == [3.0]


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_retryable_statuses_back_off_with_jitter(rsps: responses.RequestsMock, status: int) -> None:
    tokens, sleeps = Tokens(), Sleeps()
    url = om_url("mypurecloud.ie", "0f8e6c7a-1111-2222-3333-444455556666", "message")
    rsps.post(url, status=status, json={"message": "unavailable", "code": "service.unavailable"})
    rsps.post(url, status=status, json={"message": "unavailable", "code": "service.unavailable"})
    rsps.post(url, json={"id": "m"})
    assert make_client(tokens, sleeps).send_inbound(INBOUND) == {"id": "m"}
    assert sleeps.calls == [1.0, 2.0]  # rng=1.0: the ceilings of the full-jitter schedule


def test_exhausted_retries_raise_transient_error(rsps: responses.RequestsMock) -> None:
    tokens, sleeps = Tokens(), Sleeps()
    url = om_url("mypurecloud.ie", "0f8e6c7a-1111-2222-3333-444455556666", "message")
    rsps.post(
        url,
        status=503,
        json={"message": "unavailable", "code": "service.unavailable"},
        headers={"ININ-Correlation-Id": "corr-503"},
    )
    with pytest.raises(TransientError) as caught:
        make_client(tokens, sleeps).send_inbound(INBOUND)
    assert len(rsps.calls) == 4
    assert caught.value.status == 503
    assert caught.value.correlation_id == "corr-503"
    assert sleeps.calls == [1.0, 2.0, 4.0]


def test_other_4xx_is_permanent_with_the_genesys_code(
    rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens, sleeps = Tokens(), Sleeps()
    url = om_url("mypurecloud.ie", "0f8e6c7a-1111-2222-3333-444455556666", "message")
    rsps.post(
        url,
        status=400,
        json={
            "message": "The channel time is missing",
            "code": "missing.open.channel.date",
            "status": 400,
            "contextId": "ctx",
            "details": [],
            "errors": [],
        },
        headers={"ININ-Correlation-Id": "corr-400"},
    )
    with pytest.raises(PermanentError) as caught:
        make_client(tokens, sleeps).send_inbound(INBOUND)
    assert not isinstance(caught.value, AuthError)
    assert caught.value.status == 400
    assert caught.value.code == "missing.open.channel.date"
    assert caught.value.message == "The channel time is missing"
    assert "corr-400" in str(caught.value)
    assert "corr-400" in everything_logged(caplog)  # matched with Genesys support by this id
    assert len(rsps.calls) == 1 and sleeps.calls == []


def test_read_timeout_is_retried_by_default(rsps: responses.RequestsMock) -> None:
    tokens, sleeps = Tokens(), Sleeps()
    url = om_url("mypurecloud.ie", "0f8e6c7a-1111-2222-3333-444455556666", "message")
    rsps.post(url, body=requests.ReadTimeout("read timed out"))
    rsps.post(url, json={"id": "m"})
    assert make_client(tokens, sleeps).send_inbound(INBOUND) == {"id": "m"}
    assert sleeps.calls == [1.0]


def test_read_timeout_is_uncertain_when_not_retrying_uncertain(
    rsps: responses.RequestsMock,
) -> None:
    tokens, sleeps = Tokens(), Sleeps()
    url = om_url("mypurecloud.ie", "0f8e6c7a-1111-2222-3333-444455556666", "message")
    rsps.post(url, body=requests.ReadTimeout("read timed out"))
    with pytest.raises(SendUncertain):
        make_client(tokens, sleeps, retry_uncertain=False).send_inbound(INBOUND)
    assert len(rsps.calls) == 1


def test_refused_connection_is_retried_even_when_not_retrying_uncertain(
    rsps: responses.RequestsMock,
) -> None:
    tokens, sleeps = Tokens(), Sleeps()
    url = om_url("mypurecloud.ie", "0f8e6c7a-1111-2222-3333-444455556666", "message")
    refused = urllib3.exceptions.MaxRetryError(
        None,  # type: ignore[arg-type]
        url,
        urllib3.exceptions.NewConnectionError(None, "Connection refused"),  # type: ignore[arg-type]
    )
    rsps.post(url, body=requests.ConnectionError(refused))
    rsps.post(url, json={"id": "m"})
    client = make_client(tokens, sleeps, retry_uncertain=False)
    assert client.send_inbound(INBOUND) == {"id": "m"}


def test_every_request_takes_a_pacer_slot(rsps: responses.RequestsMock) -> None:
    tokens, sleeps = Tokens(), Sleeps()
    now = [0.0]
    paced: list[float] = []
    pacer = Pacer(1.0, burst=1, clock=lambda: now[0], sleep=paced.append)
    url = om_url("mypurecloud.ie", "0f8e6c7a-1111-2222-3333-444455556666", "message")
    rsps.post(url, status=503, json={"code": "service.unavailable", "message": "x"})
    rsps.post(url, json={"id": "m"})
    make_client(tokens, sleeps, pacer=pacer).send_inbound(INBOUND)
    assert paced == [1.0]  # the retry waited for its slot (the clock did not move)


def test_only_one_refresh_per_call_even_across_retries(rsps: responses.RequestsMock) -> None:
    tokens, sleeps = Tokens(), Sleeps()
    url = om_url("mypurecloud.ie", "0f8e6c7a-1111-2222-3333-444455556666", "message")
    unauthorized = {"message": "expired", "code": "credentials.expired"}
    rsps.post(url, status=401, json=unauthorized)
    rsps.post(url, status=503, json={"message": "busy", "code": "service.unavailable"})
    rsps.post(url, status=401, json=unauthorized)
    with pytest.raises(AuthError):
        make_client(tokens, sleeps).send_inbound(INBOUND)
    assert len(tokens.dropped) == 1
    assert len(rsps.calls) == 3
