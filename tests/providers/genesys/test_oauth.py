"""fetch_token against ``responses``: the exact token URL per region, Basic auth, and how each
failure is classified without the secret."""

from __future__ import annotations

import base64
import logging
import secrets
from urllib.parse import parse_qs

import pytest
import requests
import responses

from interlink.providers.errors import (
    AuthError,
    PermanentError,
    TransientError,
)
from interlink.providers.genesys import (
    Token,
    fetch_token,
)
from interlink.settings import Settings
from interlink.tenancy.config import GenesysCredentials
from tests.providers.genesys.calls import REGIONS, assert_no_secret, everything_logged, sent_timeout


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
