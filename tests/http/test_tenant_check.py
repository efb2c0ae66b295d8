"""``POST /api/tenants/{id}/check`` through the real app; ``responses`` stands in for Genesys and
Meta and asserts the exact URLs and headers each check calls."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from typing import Any

import falcon.testing
import pytest
import responses
from responses import matchers

from interlink.services import Services

Client = falcon.testing.TestClient
GRAPH = "https://graph.facebook.com/v25.0"
REGION = "mypurecloud.de"


def op(services: Services) -> dict[str, str]:
    return {"Authorization": f"Bearer {services.admin_token}"}


@pytest.fixture
def creds() -> dict[str, str]:
    return {
        "clientId": "client-" + secrets.token_hex(4),
        "clientSecret": secrets.token_urlsafe(32),
        "region": REGION,
        "integrationId": secrets.token_hex(8),
        "webhookSecret": secrets.token_urlsafe(24),
        "meta_access_token": "EAA" + secrets.token_urlsafe(60),
        "whatsapp_phone_number_id": str(10**14 + secrets.randbelow(10**14)),
        "whatsapp_business_account_id": str(10**14 + secrets.randbelow(10**14)),
        "meta_app_secret": secrets.token_hex(16),
        "webhook_verify_token": secrets.token_urlsafe(16),
    }


@pytest.fixture
def tenant(client: Client, services: Services, creds: dict[str, str]) -> str:
    headers = op(services)
    made = client.simulate_post(
        "/api/tenants", json={"tenantId": "acme", "name": "Acme"}, headers=headers
    )
    assert made.status_code == 201, made.text
    genesys = {k: creds[k] for k in ("clientId", "clientSecret", "region", "integrationId")}
    genesys["webhookSecret"] = creds["webhookSecret"]
    put = client.simulate_put(
        "/api/tenants/acme/genesys/credentials", json=genesys, headers=headers
    )
    assert put.status_code == 200, put.text
    whatsapp = {k: v for k, v in creds.items() if "_" in k}
    put = client.simulate_put("/api/tenants/acme/whatsapp/config", json=whatsapp, headers=headers)
    assert put.status_code == 200, put.text
    return "acme"


@pytest.fixture
def providers() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def basic(creds: dict[str, str]) -> str:
    pair = f"{creds['clientId']}:{creds['clientSecret']}".encode()
    return "Basic " + base64.b64encode(pair).decode()


def expect_token(mock: responses.RequestsMock, creds: dict[str, str], status: int = 200) -> None:
    body: dict[str, Any] = (
        {"access_token": "gtok-" + secrets.token_hex(8), "expires_in": 86399}
        if status == 200
        else {"error": "invalid_client", "description": "client not found or bad client secret"}
    )
    mock.post(
        f"https://login.{REGION}/oauth/token",
        json=body,
        status=status,
        match=[
            matchers.header_matcher({"Authorization": basic(creds)}),
            matchers.urlencoded_params_matcher({"grant_type": "client_credentials"}),
        ],
    )


def expect_integration(
    mock: responses.RequestsMock, creds: dict[str, str], status: int = 200
) -> None:
    body = (
        {"id": creds["integrationId"], "name": "acme whatsapp", "createStatus": "Completed"}
        if status == 200
        else {"message": "Integration not found", "code": "not.found", "status": 404}
    )
    mock.get(
        f"https://api.{REGION}/api/v2/conversations/messaging/integrations/open/"
        f"{creds['integrationId']}",
        json=body,
        status=status,
        match=[matchers.header_matcher({"Authorization": matchers.re.compile(r"Bearer gtok-\w+")})],
    )


def meta_auth(creds: dict[str, str]) -> Any:
    return matchers.header_matcher({"Authorization": f"Bearer {creds['meta_access_token']}"})


def expect_number(mock: responses.RequestsMock, creds: dict[str, str], good: bool = True) -> None:
    phone = creds["whatsapp_phone_number_id"]
    body: dict[str, Any] = (
        {
            "display_phone_number": "+1 555-0100",
            "verified_name": "Acme",
            "quality_rating": "GREEN",
            "id": phone,
        }
        if good
        else {
            "error": {
                "message": "Invalid OAuth access token - Cannot parse access token",
                "type": "OAuthException",
                "code": 190,
                "fbtrace_id": "Ab1",
            }
        }
    )
    mock.get(
        f"{GRAPH}/{phone}",
        json=body,
        status=200 if good else 401,
        match=[
            meta_auth(creds),
            matchers.query_param_matcher(
                {"fields": "display_phone_number,verified_name,quality_rating"}
            ),
        ],
    )


def expect_subscribed(mock: responses.RequestsMock, creds: dict[str, str]) -> None:
    mock.get(
        f"{GRAPH}/{creds['whatsapp_business_account_id']}/subscribed_apps",
        json={"data": [{"whatsapp_business_api_data": {"id": "42", "name": "interlink"}}]},
        match=[meta_auth(creds)],
    )


def check(client: Client, services: Services, tenant: str) -> falcon.testing.Result:
    return client.simulate_post(f"/api/tenants/{tenant}/check", headers=op(services))


def no_secret_in(text: str, creds: dict[str, str]) -> None:
    for name in ("clientSecret", "webhookSecret", "meta_access_token", "meta_app_secret"):
        assert creds[name] not in text
    assert "gtok-" not in text


def test_a_good_tenant_passes_every_check(
    client: Client,
    services: Services,
    tenant: str,
    creds: dict[str, str],
    providers: responses.RequestsMock,
) -> None:
    expect_token(providers, creds)
    expect_integration(providers, creds)
    expect_number(providers, creds)
    expect_subscribed(providers, creds)

    result = check(client, services, tenant)

    assert result.status_code == 200, result.text
    assert result.json["ok"] is True
    checks = {c["name"]: c for c in result.json["checks"]}
    assert list(checks) == ["genesys-token", "genesys-integration", "meta-number", "meta-webhook"]
    assert all(c["ok"] is True for c in checks.values())
    assert "Acme" in checks["meta-number"]["detail"]
    assert "GREEN" in checks["meta-number"]["detail"]
    assert "Completed" in checks["genesys-integration"]["detail"]
    no_secret_in(result.text, creds)


def test_refused_credentials_are_failed_checks_not_errors(
    client: Client,
    services: Services,
    tenant: str,
    creds: dict[str, str],
    providers: responses.RequestsMock,
) -> None:
    expect_token(providers, creds, status=401)
    expect_number(providers, creds, good=False)

    result = check(client, services, tenant)

    assert result.status_code == 200, result.text
    assert result.json["ok"] is False
    checks = {c["name"]: c for c in result.json["checks"]}
    assert checks["genesys-token"]["ok"] is False
    assert "invalid_client" in checks["genesys-token"]["detail"]
    assert checks["genesys-integration"]["ok"] is False  # no token, no lookup
    assert checks["meta-number"]["ok"] is False
    assert "190" in checks["meta-number"]["detail"]
    assert checks["meta-webhook"]["ok"] is None
    no_secret_in(result.text, creds)


def test_an_unknown_integration_fails_its_check(
    client: Client,
    services: Services,
    tenant: str,
    creds: dict[str, str],
    providers: responses.RequestsMock,
) -> None:
    expect_token(providers, creds)
    expect_integration(providers, creds, status=404)
    expect_number(providers, creds)
    expect_subscribed(providers, creds)

    result = check(client, services, tenant)

    checks = {c["name"]: c for c in result.json["checks"]}
    assert result.json["ok"] is False
    assert checks["genesys-token"]["ok"] is True
    assert checks["genesys-integration"]["ok"] is False
    assert "not.found" in checks["genesys-integration"]["detail"]


def test_an_unconfigured_tenant_fails_without_calling_anyone(
    client: Client, services: Services, providers: responses.RequestsMock
) -> None:
    made = client.simulate_post(
        "/api/tenants", json={"tenantId": "bare", "name": "Bare"}, headers=op(services)
    )
    assert made.status_code == 201

    result = check(client, services, "bare")

    assert result.status_code == 200
    assert result.json["ok"] is False
    assert all(c["ok"] is False for c in result.json["checks"])


def test_only_the_operator_or_the_tenants_own_key(
    client: Client, services: Services, tenant: str, providers: responses.RequestsMock
) -> None:
    headers = op(services)
    client.simulate_post("/api/tenants", json={"tenantId": "other", "name": "O"}, headers=headers)
    issued = client.simulate_post("/api/tenants/other/keys", headers=headers)
    other_key = {"Authorization": f"Bearer {issued.json['key']}"}

    assert client.simulate_post(f"/api/tenants/{tenant}/check").status_code == 401
    assert (
        client.simulate_post(f"/api/tenants/{tenant}/check", headers=other_key).status_code == 403
    )
    assert client.simulate_post("/api/tenants/nobody/check", headers=headers).status_code == 404
    assert client.simulate_post("/api/tenants/..%2F/check", headers=headers).status_code in (
        400,
        404,
    )
