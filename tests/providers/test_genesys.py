"""The Genesys client against ``responses``: exact URLs per region, headers, bodies, failures."""

from __future__ import annotations

import base64
import json
import logging
import secrets
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
import requests
import responses
import urllib3.exceptions
from responses import matchers

from interlink.providers.errors import (
    AuthError,
    ForbiddenFetch,
    PermanentError,
    SendUncertain,
    TooLarge,
    TransientError,
)
from interlink.providers.genesys import (
    DownloadHosts,
    OpenMessagingClient,
    Token,
    download_attachment,
    fetch_token,
    genesys_download_hosts,
)
from interlink.providers.pacing import Pacer
from interlink.providers.retry import RetryPolicy
from interlink.settings import Settings
from interlink.tenancy.config import GenesysCredentials

REGIONS = ["mypurecloud.com", "mypurecloud.ie", "aps1.pure.cloud", "usw2.pure.cloud"]


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def creds() -> GenesysCredentials:
    return GenesysCredentials(
        client_id=str(uuid.uuid4()),
        client_secret=secrets.token_urlsafe(32),
        region="mypurecloud.ie",
        integration_id=str(uuid.uuid4()),
        webhook_secret=secrets.token_urlsafe(24),
    )


def sent_timeout(call: responses.Call) -> object:
    """The ``timeout=`` the client passed to requests for this call."""
    return call.request.req_kwargs["timeout"]  # type: ignore[attr-defined]


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """Messages and every extra field of every record: where a leaked secret would show."""
    return "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)


def assert_no_secret(secret: str, *texts: str) -> None:
    for text in texts:
        assert secret not in text


# --- fetch_token ---------------------------------------------------------------------------


@pytest.mark.parametrize("region", REGIONS)
def test_fetch_token_posts_client_credentials_to_the_region(
    rsps: responses.RequestsMock, creds: GenesysCredentials, region: str
) -> None:
    access = secrets.token_urlsafe(40)
    login_base = Settings().genesys_login_base(region)
    rsps.post(
        f"https://login.{region}/oauth/token",
        json={"access_token": access, "token_type": "bearer", "expires_in": 86399},
        headers={"ININ-Correlation-Id": "corr-1"},
    )
    token = fetch_token(requests.Session(), login_base, creds, timeout=3.0, clock=lambda: 1234.5)
    assert token == Token(access, 86399, 1234.5)
    assert token.expires_at == 1234.5 + 86399
    request = rsps.calls[0].request
    expected = base64.b64encode(f"{creds.client_id}:{creds.client_secret}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(str(request.body)) == {"grant_type": ["client_credentials"]}
    assert sent_timeout(rsps.calls[0]) == 3.0
    assert access not in repr(token) and access not in str(token)
    assert repr(token).endswith(f"'****{access[-4:]}', expires_in=86399, obtained_at=1234.5)")


@pytest.mark.parametrize("status", [400, 401])
def test_fetch_token_bad_credentials_is_auth_error_without_the_secret(
    rsps: responses.RequestsMock,
    creds: GenesysCredentials,
    status: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Even if Genesys echoed the secret back, it must not reach the error text.
    rsps.post(
        "https://login.mypurecloud.ie/oauth/token",
        status=status,
        json={"error": "invalid_client", "description": f"bad secret {creds.client_secret}"},
        headers={"ININ-Correlation-Id": "corr-401"},
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthError) as caught:
        fetch_token(requests.Session(), "https://login.mypurecloud.ie", creds)
    error = caught.value
    assert error.status == status
    assert error.code == "invalid_client"
    assert error.correlation_id == "corr-401"
    assert creds.client_id in str(error)  # the id names the client; only the secret is hidden
    assert_no_secret(creds.client_secret, str(error), repr(error), everything_logged(caplog))


def test_fetch_token_rate_limited_is_transient_with_retry_after(
    rsps: responses.RequestsMock, creds: GenesysCredentials
) -> None:
    rsps.post(
        "https://login.mypurecloud.ie/oauth/token",
        status=429,
        json={"message": "Rate limit exceeded", "code": "too.many.requests.retry.after"},
        headers={"Retry-After": "12"},
    )
    with pytest.raises(TransientError) as caught:
        fetch_token(requests.Session(), "https://login.mypurecloud.ie", creds)
    assert caught.value.retry_after == 12.0
    assert caught.value.status == 429


@pytest.mark.parametrize(
    "failure",
    [requests.ReadTimeout("read timed out"), requests.ConnectionError("refused")],
)
def test_fetch_token_network_failures_are_transient(
    rsps: responses.RequestsMock, creds: GenesysCredentials, failure: Exception
) -> None:
    rsps.post("https://login.mypurecloud.ie/oauth/token", body=failure)
    with pytest.raises(TransientError):
        fetch_token(requests.Session(), "https://login.mypurecloud.ie", creds)


def test_fetch_token_5xx_is_transient(
    rsps: responses.RequestsMock, creds: GenesysCredentials
) -> None:
    rsps.post("https://login.mypurecloud.ie/oauth/token", status=503, body="<html>down</html>")
    with pytest.raises(TransientError) as caught:
        fetch_token(requests.Session(), "https://login.mypurecloud.ie", creds)
    assert caught.value.status == 503


def test_fetch_token_without_a_token_is_permanent_not_auth(
    rsps: responses.RequestsMock, creds: GenesysCredentials
) -> None:
    rsps.post("https://login.mypurecloud.ie/oauth/token", json={"token_type": "bearer"})
    with pytest.raises(PermanentError) as caught:
        fetch_token(requests.Session(), "https://login.mypurecloud.ie", creds)
    assert not isinstance(caught.value, AuthError)


# --- OpenMessagingClient -------------------------------------------------------------------


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


# --- attachments ---------------------------------------------------------------------------


IE_HOSTS = genesys_download_hosts(Settings(), "mypurecloud.ie")
SIM = Settings(genesys_api_url="http://127.0.0.1:8999/genesys/{region}/api")


def test_download_hosts_default_and_simulator() -> None:
    assert IE_HOSTS == DownloadHosts(
        frozenset({"https://api-downloads.mypurecloud.ie", "https://api.mypurecloud.ie"})
    )
    # A path-mounted API URL (the simulator's) admits downloads under its parent only.
    assert genesys_download_hosts(SIM, "aps1.pure.cloud") == DownloadHosts(
        frozenset({"https://api-downloads.aps1.pure.cloud", "http://127.0.0.1:8999"}),
        "http://127.0.0.1:8999",
        "/genesys/aps1.pure.cloud",
    )


def test_download_attachment_sends_the_token_to_the_download_host(
    rsps: responses.RequestsMock,
) -> None:
    token = secrets.token_urlsafe(40)
    url = "https://api-downloads.mypurecloud.ie/api/v2/downloads/pce9abc"
    rsps.get(
        url,
        body=b"\x89PNG-bytes",
        content_type="image/png",
        match=[matchers.header_matcher({"Authorization": f"Bearer {token}"})],
    )
    data, mime = download_attachment(
        requests.Session(),
        url,
        allowed_hosts=IE_HOSTS,
        token=token,
        timeout=4.0,
    )
    assert (data, mime) == (b"\x89PNG-bytes", "image/png")
    assert sent_timeout(rsps.calls[0]) == 4.0


def test_download_follows_the_signed_redirect_without_the_token(
    rsps: responses.RequestsMock,
) -> None:
    token = secrets.token_urlsafe(40)
    url = "https://api-downloads.mypurecloud.ie/api/v2/downloads/pce9abc"
    signed = "https://storage.example.net/bucket/obj?X-Amz-Signature=abc"
    rsps.get(url, status=303, headers={"Location": signed})
    rsps.get(signed, body=b"data", content_type="application/pdf")
    data, mime = download_attachment(
        requests.Session(),
        url,
        allowed_hosts=IE_HOSTS,
        token=token,
    )
    assert (data, mime) == (b"data", "application/pdf")
    assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {token}"
    assert "Authorization" not in rsps.calls[1].request.headers


def test_download_refuses_a_redirect_to_plain_http(rsps: responses.RequestsMock) -> None:
    url = "https://api-downloads.mypurecloud.ie/api/v2/downloads/pce9abc"
    rsps.get(url, status=302, headers={"Location": "http://evil.example/x"})
    with pytest.raises(ForbiddenFetch):
        download_attachment(
            requests.Session(),
            url,
            allowed_hosts=IE_HOSTS,
            token="t",
        )


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/api/v2/downloads/x",
        "http://api-downloads.mypurecloud.ie/api/v2/downloads/x",  # downgrade to http
        "https://api-downloads.mypurecloud.de/api/v2/downloads/x",  # another region
        "https://api-downloads.mypurecloud.ie.evil.example/x",
        "file:///etc/passwd",
        "https://api-downloads.mypurecloud.ie@evil.example/x",
        "https://evil.example\\@api-downloads.mypurecloud.ie/api/v2/downloads/x",
        "https://evil.example:443\\@api-downloads.mypurecloud.ie/api/v2/downloads/x",
        "https://u:p@api-downloads.mypurecloud.ie/api/v2/downloads/x",
        "https://api-downloads.mypurecloud.ie:8443/api/v2/downloads/x",
        "https://api-downloads.mypurecloud.ie./api/v2/downloads/x",
        # Genesys's own hosts, but not a download: the token must not fetch the rest of the API.
        "https://api.mypurecloud.ie/api/v2/users/me",
        "https://api-downloads.mypurecloud.ie/api/v2/users/me",
        "https://api-downloads.mypurecloud.ie/api/v2/downloads/x/../../users/me",
        "https://api-downloads.mypurecloud.ie/api/v2/downloads/%2e%2e/%2e%2e/users/me",
        "https://api-downloads.mypurecloud.ie/api/v2/downloads/%2E%2E",
        "https://api.mypurecloud.ie/api/v2/users/me/api/v2/downloads/x",
        "https://api-downloads.mypurecloud.ie/api/v2/downloads/x\tX",
        "https://api-downloads.mypurecloud.ie/api/v2/downloads/x\r\nX-Evil: 1",
        "https://api-downloads.mypurecloud.ie/api/v2/downloads/x y",
        " https://api-downloads.mypurecloud.ie/api/v2/downloads/x",
        "https://api-downloads.mypurecloud.ie/api/v2/downloads/x\u00e9",
        "",
    ],
)
def test_download_refuses_other_hosts_without_a_request(
    rsps: responses.RequestsMock, url: str
) -> None:
    token = secrets.token_urlsafe(40)
    with pytest.raises(ForbiddenFetch) as caught:
        download_attachment(
            requests.Session(),
            url,
            allowed_hosts=IE_HOSTS,
            token=token,
        )
    assert len(rsps.calls) == 0
    assert token not in str(caught.value)


def test_download_from_the_simulator_api_host(rsps: responses.RequestsMock) -> None:
    token = secrets.token_urlsafe(40)
    url = "http://127.0.0.1:8999/genesys/mypurecloud.ie/api-downloads/api/v2/downloads/d1"
    signed = "http://127.0.0.1:8999/genesys/mypurecloud.ie/api-downloads/signed/d1?signature=s"
    rsps.get(url, status=302, headers={"Location": signed})
    rsps.get(signed, body=b"sim", content_type="image/jpeg")
    data, mime = download_attachment(
        requests.Session(),
        url,
        allowed_hosts=genesys_download_hosts(SIM, "mypurecloud.ie"),
        token=token,
    )
    assert (data, mime) == (b"sim", "image/jpeg")
    assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {token}"
    assert "Authorization" not in rsps.calls[1].request.headers  # not a download path


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8999/genesys/mypurecloud.ie/api/api/v2/users/me",
        "http://127.0.0.1:8999/genesys/mypurecloud.de/api-downloads/api/v2/downloads/d1",
        "http://127.0.0.1:8999/api/v2/downloads/d1",
        "http://127.0.0.1:8998/genesys/mypurecloud.ie/api-downloads/api/v2/downloads/d1",
        "http://localhost:8999/genesys/mypurecloud.ie/api-downloads/api/v2/downloads/d1",
    ],
)
def test_the_simulator_origin_admits_only_its_download_paths(
    rsps: responses.RequestsMock, url: str
) -> None:
    with pytest.raises(ForbiddenFetch):
        download_attachment(
            requests.Session(),
            url,
            allowed_hosts=genesys_download_hosts(SIM, "mypurecloud.ie"),
            token="t",
        )
    assert len(rsps.calls) == 0


def test_a_redirect_to_another_api_path_gets_no_token(rsps: responses.RequestsMock) -> None:
    # Only a hop that is itself a download URL on an allowed host is given the token.
    token = secrets.token_urlsafe(40)
    url = "https://api-downloads.mypurecloud.ie/api/v2/downloads/pce9abc"
    me = "https://api.mypurecloud.ie/api/v2/users/me"
    rsps.get(url, status=302, headers={"Location": me})
    rsps.get(me, json={"name": "someone"})
    download_attachment(requests.Session(), url, allowed_hosts=IE_HOSTS, token=token)
    assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {token}"
    assert "Authorization" not in rsps.calls[1].request.headers


def test_a_redirect_to_another_download_host_keeps_the_token(
    rsps: responses.RequestsMock,
) -> None:
    token = secrets.token_urlsafe(40)
    url = "https://api.mypurecloud.ie/api/v2/downloads/pce9abc"
    moved = "https://api-downloads.mypurecloud.ie/api/v2/downloads/pce9abc"
    rsps.get(url, status=301, headers={"Location": moved})
    rsps.get(moved, body=b"ok", content_type="text/plain")
    assert download_attachment(requests.Session(), url, allowed_hosts=IE_HOSTS, token=token) == (
        b"ok",
        "text/plain",
    )
    assert [c.request.headers["Authorization"] for c in rsps.calls] == [f"Bearer {token}"] * 2


def test_a_redirect_loop_ends(rsps: responses.RequestsMock) -> None:
    url = "https://api-downloads.mypurecloud.ie/api/v2/downloads/loop"
    rsps.get(url, status=302, headers={"Location": url})
    with pytest.raises(PermanentError) as caught:
        download_attachment(requests.Session(), url, allowed_hosts=IE_HOSTS, token="t")
    assert caught.value.code == "too.many.redirects"
    assert len(rsps.calls) == 4


def test_download_too_large_is_abandoned(rsps: responses.RequestsMock) -> None:
    url = "https://api-downloads.mypurecloud.ie/api/v2/downloads/big"
    rsps.get(url, body=b"x" * 2048, content_type="video/mp4")
    with pytest.raises(TooLarge):
        download_attachment(
            requests.Session(),
            url,
            allowed_hosts=IE_HOSTS,
            token="t",
            max_bytes=1024,
        )


@pytest.mark.parametrize(("status", "error"), [(404, PermanentError), (503, TransientError)])
def test_download_errors(rsps: responses.RequestsMock, status: int, error: type[Exception]) -> None:
    url = "https://api-downloads.mypurecloud.ie/api/v2/downloads/gone"
    rsps.get(url, status=status, body=json.dumps({"code": "not.found"}))
    with pytest.raises(error):
        download_attachment(
            requests.Session(),
            url,
            allowed_hosts=IE_HOSTS,
            token="t",
        )


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
