"""The tenant admin API through Falcon's TestClient on the real app and the real Valkey."""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

import falcon
import falcon.testing
import gevent
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from interlink.http.app import create_app
from interlink.http.auth import require_operator
from interlink.services import Services
from interlink.store import keys
from interlink.tenancy.regions import REGIONS

Client = falcon.testing.TestClient


def op(services: Services) -> dict[str, str]:
    return {"Authorization": f"Bearer {services.admin_token}"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def genesys_body(**overrides: str) -> dict[str, str]:
    return {
        "clientId": "client-" + secrets.token_hex(4),
        "clientSecret": secrets.token_urlsafe(32),
        "region": "mypurecloud.de",
        "integrationId": secrets.token_hex(8),
        "webhookSecret": secrets.token_urlsafe(24),
        **overrides,
    }


def whatsapp_body(**overrides: str) -> dict[str, str]:
    return {
        "meta_access_token": "EAA" + secrets.token_urlsafe(60),
        "whatsapp_phone_number_id": str(10**14 + secrets.randbelow(10**14)),
        "whatsapp_business_account_id": str(secrets.randbelow(10**15)),
        "meta_app_secret": secrets.token_hex(16),
        "webhook_verify_token": secrets.token_urlsafe(16),
        **overrides,
    }


def make_tenant(client: Client, services: Services, tenant_id: str, **extra: str) -> dict[str, Any]:
    body = {"tenantId": tenant_id, "name": tenant_id.title(), **extra}
    result = client.simulate_post("/api/tenants", json=body, headers=op(services))
    assert result.status_code == 201, result.text
    return result.json


def issue_key(client: Client, services: Services, tenant_id: str) -> str:
    result = client.simulate_post(f"/api/tenants/{tenant_id}/keys", headers=op(services))
    assert result.status_code == 201
    return str(result.json["key"])


# -- every route, happy path ---------------------------------------------------------------------
def test_walk_a_tenant_through_every_route(client: Client, services: Services) -> None:
    created = make_tenant(
        client,
        services,
        "acme",
        genesysOrgId="org-1",
        genesysOrgName="Acme Org",
        genesysRegion="aps1.mypurecloud.com",
    )
    assert set(created) == {
        "tenantId", "name", "genesysOrgId", "genesysOrgName", "genesysRegion",
        "version", "createdAt", "updatedAt", "genesys", "whatsapp", "settings",
    }  # fmt: skip
    assert created["genesysRegion"] == "aps1.pure.cloud" and created["version"] == 1
    assert created["genesys"] is None and created["whatsapp"] is None

    got = client.simulate_get("/api/tenants/acme", headers=op(services))
    assert got.status_code == 200 and got.json == created

    patched = client.simulate_patch(
        "/api/tenants/acme", json={"name": "Acme Ltd"}, headers=op(services)
    )
    assert patched.status_code == 200
    assert patched.json["name"] == "Acme Ltd" and patched.json["version"] == 2

    creds = genesys_body()
    put = client.simulate_put(
        "/api/tenants/acme/genesys/credentials", json=creds, headers=op(services)
    )
    assert put.status_code == 200
    assert put.json == {
        "clientId": creds["clientId"],
        "clientSecret": "****" + creds["clientSecret"][-4:],
        "region": "mypurecloud.de",
        "integrationId": creds["integrationId"],
        "webhookSecret": "****" + creds["webhookSecret"][-4:],
    }
    assert (
        client.simulate_get("/api/tenants/acme/genesys/credentials", headers=op(services)).json
        == put.json
    )

    wa = whatsapp_body()
    posted = client.simulate_post(
        "/api/tenants/acme/whatsapp/config", json=wa, headers=op(services)
    )
    assert posted.status_code == 200
    assert posted.json["meta_access_token"] == "****" + wa["meta_access_token"][-4:]
    assert posted.json["webhook_verify_token"] == "****" + wa["webhook_verify_token"][-4:]
    again = whatsapp_body()
    put_wa = client.simulate_put(
        "/api/tenants/acme/whatsapp/config", json=again, headers=op(services)
    )
    assert put_wa.status_code == 200
    got_wa = client.simulate_get("/api/tenants/acme/whatsapp/config", headers=op(services))
    assert got_wa.json == put_wa.json
    assert got_wa.json["whatsapp_phone_number_id"] == again["whatsapp_phone_number_id"]

    phone = again["whatsapp_phone_number_id"]
    by_phone = client.simulate_get(f"/api/tenants/by-phone/{phone}", headers=op(services))
    assert by_phone.status_code == 200 and by_phone.json["tenantId"] == "acme"
    by_integration = client.simulate_get(
        f"/api/tenants/by-integration/{creds['integrationId']}", headers=op(services)
    )
    assert by_integration.status_code == 200 and by_integration.json["version"] == 5
    # The old phone number id was released by the PUT.
    old = client.simulate_get(
        f"/api/tenants/by-phone/{wa['whatsapp_phone_number_id']}", headers=op(services)
    )
    assert old.status_code == 404

    listed = client.simulate_get("/api/tenants", headers=op(services))
    assert listed.status_code == 200
    assert listed.json == {"items": [by_phone.json], "nextCursor": None}

    issued = client.simulate_post("/api/tenants/acme/keys", headers=op(services))
    assert issued.status_code == 201 and set(issued.json) == {"keyId", "key"}
    assert "no-store" in issued.headers.get("cache-control", "")
    revoked = client.simulate_delete(
        f"/api/tenants/acme/keys/{issued.json['keyId']}", headers=op(services)
    )
    assert revoked.status_code == 204
    assert (
        client.simulate_delete(
            f"/api/tenants/acme/keys/{issued.json['keyId']}", headers=op(services)
        ).status_code
        == 404
    )

    assert client.simulate_delete("/api/tenants/acme", headers=op(services)).status_code == 204
    assert client.simulate_get("/api/tenants/acme", headers=op(services)).status_code == 404
    assert client.simulate_delete("/api/tenants/acme", headers=op(services)).status_code == 404
    assert (
        client.simulate_get(f"/api/tenants/by-phone/{phone}", headers=op(services)).status_code
        == 404
    )


def test_region_falls_back_to_the_tenants_region(client: Client, services: Services) -> None:
    make_tenant(client, services, "eu", genesysRegion="mypurecloud.ie")
    body = genesys_body()
    del body["region"]
    put = client.simulate_put(
        "/api/tenants/eu/genesys/credentials", json=body, headers=op(services)
    )
    assert put.status_code == 200 and put.json["region"] == "mypurecloud.ie"
    make_tenant(client, services, "noregion")
    refused = client.simulate_put(
        "/api/tenants/noregion/genesys/credentials", json=body, headers=op(services)
    )
    assert refused.status_code == 400 and "region" in refused.json["description"]


def test_unconfigured_sections_are_404(client: Client, services: Services) -> None:
    make_tenant(client, services, "bare")
    for path in ("genesys/credentials", "whatsapp/config"):
        result = client.simulate_get(f"/api/tenants/bare/{path}", headers=op(services))
        assert result.status_code == 404
    assert (
        client.simulate_get("/api/tenants/nobody/whatsapp/config", headers=op(services)).status_code
        == 404
    )


# -- pagination ----------------------------------------------------------------------------------
def test_pagination(client: Client, services: Services) -> None:
    for i in range(5):
        make_tenant(client, services, f"p{i}")
    first = client.simulate_get("/api/tenants", params={"limit": "2"}, headers=op(services))
    assert [t["tenantId"] for t in first.json["items"]] == ["p0", "p1"]
    cursor = first.json["nextCursor"]
    second = client.simulate_get(
        "/api/tenants", params={"limit": "2", "cursor": cursor}, headers=op(services)
    )
    assert [t["tenantId"] for t in second.json["items"]] == ["p2", "p3"]
    third = client.simulate_get(
        "/api/tenants",
        params={"limit": "2", "cursor": second.json["nextCursor"]},
        headers=op(services),
    )
    assert [t["tenantId"] for t in third.json["items"]] == ["p4"]
    assert third.json["nextCursor"] is None
    default = client.simulate_get("/api/tenants", headers=op(services))
    assert len(default.json["items"]) == 5
    for bad in ({"limit": "0"}, {"limit": "201"}, {"limit": "ten"}, {"cursor": "%%%"}):
        result = client.simulate_get("/api/tenants", params=bad, headers=op(services))
        assert result.status_code == 400, bad
    assert (
        client.simulate_get(
            "/api/tenants", params={"limit": "200"}, headers=op(services)
        ).status_code
        == 200
    )


# -- validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        {"name": "no id"},
        {"tenantId": "acme"},
        {"tenantId": "Acme", "name": "upper case"},
        {"tenantId": "-acme", "name": "leading dash"},
        {"tenantId": "a" * 65, "name": "too long"},
        {"tenantId": "acme\n", "name": "newline"},
        {"tenantId": "\uff41cme", "name": "fullwidth a"},
        {"tenantId": "by-phone", "name": "reserved"},
        {"tenantId": 7, "name": "number"},
        {"tenantId": "acme", "name": ["list"]},
        {"tenantId": "acme", "name": "x", "genesysRegion": "mypurecloud.xx"},
        {"tenantId": "acme", "name": "x", "genesysRegion": None},
        {"tenantId": "acme", "name": "x", "plan": "gold"},
    ],
)
def test_create_refuses_bad_bodies(
    client: Client, services: Services, body: dict[str, Any]
) -> None:
    result = client.simulate_post("/api/tenants", json=body, headers=op(services))
    assert result.status_code == 400, result.text
    assert set(result.json) >= {"title", "description"}
    assert services.redis.zcard(keys.tenant_ids()) == 0


def test_unknown_region_lists_the_valid_ones(client: Client, services: Services) -> None:
    result = client.simulate_post(
        "/api/tenants",
        json={"tenantId": "acme", "name": "x", "genesysRegion": "eu-west-1"},
        headers=op(services),
    )
    assert result.status_code == 400
    assert all(region in result.json["description"] for region in REGIONS)


def test_unknown_field_is_named(client: Client, services: Services) -> None:
    make_tenant(client, services, "acme")
    body = genesys_body()
    body["client_secret"] = body.pop("clientSecret")
    result = client.simulate_put(
        "/api/tenants/acme/genesys/credentials", json=body, headers=op(services)
    )
    assert result.status_code == 400 and "client_secret" in result.json["description"]
    assert body["client_secret"] not in result.text


@pytest.mark.parametrize(
    ("path", "method", "body"),
    [
        ("genesys/credentials", "PUT", genesys_body(webhookSecret="fifteen-chars-x")),
        ("genesys/credentials", "PUT", genesys_body(region="mypurecloud.xx")),
        ("genesys/credentials", "PUT", genesys_body(clientSecret="****abcd")),
        ("genesys/credentials", "PUT", {**genesys_body(), "clientSecret": 12345678}),
        (
            "genesys/credentials",
            "PUT",
            {k: v for k, v in genesys_body().items() if k != "clientId"},
        ),
        ("genesys/credentials", "PUT", genesys_body(integrationId="../x")),
        ("whatsapp/config", "POST", whatsapp_body(meta_app_secret="short")),
        ("whatsapp/config", "POST", whatsapp_body(whatsapp_phone_number_id="12 34")),
        ("whatsapp/config", "PUT", {**whatsapp_body(), "meta_access_token": None}),
        ("whatsapp/config", "PUT", {**whatsapp_body(), "extra": "x"}),
        ("", "PATCH", {"name": 5}),
        ("", "PATCH", {}),
        ("", "PATCH", {"tenantId": "other", "name": "rename"}),
        ("", "PATCH", {"genesysRegion": "nowhere"}),
        ("", "PATCH", {"colour": "blue"}),
    ],
)
def test_section_validation(
    client: Client, services: Services, path: str, method: str, body: dict[str, Any]
) -> None:
    make_tenant(client, services, "acme")
    url = "/api/tenants/acme" + (f"/{path}" if path else "")
    result = client.simulate_request(method, url, json=body, headers=op(services))
    assert result.status_code == 400, result.text
    for value in body.values():
        if isinstance(value, str) and len(value) > 15:
            assert value not in result.text
    assert services.tenants.version_of("acme") == 1


def test_patch_accepts_an_echoed_tenant(client: Client, services: Services) -> None:
    tenant = make_tenant(client, services, "acme")
    tenant["name"] = "Renamed"
    result = client.simulate_patch("/api/tenants/acme", json=tenant, headers=op(services))
    assert result.status_code == 200 and result.json["name"] == "Renamed"


def test_webhook_secret_of_sixteen_is_accepted(client: Client, services: Services) -> None:
    make_tenant(client, services, "acme")
    result = client.simulate_put(
        "/api/tenants/acme/genesys/credentials",
        json=genesys_body(webhookSecret="sixteen-chars-xy"),
        headers=op(services),
    )
    assert result.status_code == 200


def test_malformed_json_wrong_type_and_size(client: Client, services: Services) -> None:
    make_tenant(client, services, "acme")
    headers = {**op(services), "Content-Type": "application/json"}
    assert client.simulate_post("/api/tenants", body=b"{", headers=headers).status_code == 400
    assert client.simulate_post("/api/tenants", body=b"[1]", headers=headers).status_code == 400
    assert (
        client.simulate_post("/api/tenants", body=b"\xff\xfe", headers=headers).status_code == 400
    )
    text_headers = {**op(services), "Content-Type": "text/plain"}
    assert client.simulate_post("/api/tenants", body=b"{}", headers=text_headers).status_code == 415
    big = json.dumps({"tenantId": "big", "name": "x" * (64 * 1024)}).encode()
    assert client.simulate_post("/api/tenants", body=big, headers=headers).status_code == 413
    big_patch = client.simulate_patch("/api/tenants/acme", body=big, headers=headers)
    assert big_patch.status_code == 413


def test_duplicates_are_409(client: Client, services: Services) -> None:
    make_tenant(client, services, "a")
    make_tenant(client, services, "b")
    again = client.simulate_post(
        "/api/tenants", json={"tenantId": "a", "name": "A"}, headers=op(services)
    )
    assert again.status_code == 409
    wa, creds = whatsapp_body(), genesys_body()
    assert (
        client.simulate_post(
            "/api/tenants/a/whatsapp/config", json=wa, headers=op(services)
        ).status_code
        == 200
    )
    assert (
        client.simulate_put(
            "/api/tenants/a/genesys/credentials", json=creds, headers=op(services)
        ).status_code
        == 200
    )
    same_phone = whatsapp_body(whatsapp_phone_number_id=wa["whatsapp_phone_number_id"])
    result = client.simulate_post(
        "/api/tenants/b/whatsapp/config", json=same_phone, headers=op(services)
    )
    assert result.status_code == 409 and "whatsapp_phone_number_id" in result.json["description"]
    same_integration = genesys_body(integrationId=creds["integrationId"])
    result = client.simulate_put(
        "/api/tenants/b/genesys/credentials", json=same_integration, headers=op(services)
    )
    assert result.status_code == 409 and "integrationId" in result.json["description"]
    # The same tenant may write its own values again.
    assert (
        client.simulate_post(
            "/api/tenants/a/whatsapp/config", json=wa, headers=op(services)
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    "path",
    [
        "/api/tenants/..%2Facme",
        "/api/tenants/%2E%2E",
        "/api/tenants/ACME",
        "/api/tenants/%EF%BD%81cme",  # fullwidth a
        "/api/tenants/acme%0A",
        "/api/tenants/a%20cme",
        "/api/tenants/../tenants/acme",
        "/api/tenants/acme%2Fkeys",
    ],
)
def test_path_tricks_never_reach_a_lookup(client: Client, services: Services, path: str) -> None:
    make_tenant(client, services, "acme")
    result = client.simulate_get(path, headers=op(services))
    # 405: "%2F" arrives decoded, so ".../acme%2Fkeys" is the keys route, which has no GET.
    assert result.status_code in (400, 404, 405), (path, result.status_code)
    assert "createdAt" not in result.text


def test_by_lookup_paths_validate(client: Client, services: Services) -> None:
    for path in ("/api/tenants/by-phone/a%20b", "/api/tenants/by-integration/..%2F.."):
        assert client.simulate_get(path, headers=op(services)).status_code in (400, 404)
    assert client.simulate_get("/api/tenants/by-phone/123", headers=op(services)).status_code == 404


# -- authentication and scope --------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer " + "x" * 5000},
        {"Authorization": "Bearer ilk_0123456789abcdef_" + "a" * 43},
    ],
)
def test_401_without_a_valid_token(client: Client, headers: dict[str, str]) -> None:
    for method, path in (
        ("GET", "/api/tenants"),
        ("POST", "/api/tenants"),
        ("GET", "/api/tenants/acme"),
        ("GET", "/api/nothing-here"),
        ("GET", "/control/actors"),
    ):
        result = client.simulate_request(method, path, headers=headers)
        assert result.status_code == 401, (method, path)
        assert result.headers.get("www-authenticate") == "Bearer"


def test_operator_token_is_case_sensitive_and_exact(client: Client, services: Services) -> None:
    token = services.admin_token
    for wrong in (
        token.upper() if token.upper() != token else token + "A",
        token[:-1],
        token + " x",
    ):
        result = client.simulate_get("/api/tenants", headers=bearer(wrong))
        assert result.status_code == 401
    result = client.simulate_get("/api/tenants", headers={"Authorization": f"bearer  {token} "})
    assert result.status_code == 200  # scheme is case-insensitive, blanks around are ignored


def test_open_routes_need_no_token(client: Client) -> None:
    assert client.simulate_get("/healthz").status_code == 200
    assert client.simulate_get("/metrics").status_code == 200
    # Not behind the admin middleware (their own routes decide): no 401 with a Bearer challenge.
    for path in ("/webhooks/whatsapp", "/media/abc"):
        result = client.simulate_get(path)
        assert result.headers.get("www-authenticate") is None


def test_scoped_key_reaches_its_own_tenant_only(client: Client, services: Services) -> None:
    make_tenant(client, services, "mine")
    make_tenant(client, services, "theirs")
    theirs_wa = whatsapp_body()
    client.simulate_post(
        "/api/tenants/theirs/whatsapp/config", json=theirs_wa, headers=op(services)
    )
    key = issue_key(client, services, "mine")
    me = bearer(key)

    assert client.simulate_get("/api/tenants/mine", headers=me).status_code == 200
    assert (
        client.simulate_patch("/api/tenants/mine", json={"name": "Mine!"}, headers=me).status_code
        == 200
    )
    wa = whatsapp_body()
    assert (
        client.simulate_post("/api/tenants/mine/whatsapp/config", json=wa, headers=me).status_code
        == 200
    )
    assert (
        client.simulate_put(
            "/api/tenants/mine/genesys/credentials", json=genesys_body(), headers=me
        ).status_code
        == 200
    )
    assert (
        client.simulate_get("/api/tenants/mine/genesys/credentials", headers=me).status_code == 200
    )
    phone = wa["whatsapp_phone_number_id"]
    assert client.simulate_get(f"/api/tenants/by-phone/{phone}", headers=me).status_code == 200

    forbidden = [
        ("GET", "/api/tenants/theirs", None),
        ("PATCH", "/api/tenants/theirs", {"name": "pwned"}),
        ("DELETE", "/api/tenants/theirs", None),
        ("GET", "/api/tenants/theirs/whatsapp/config", None),
        ("POST", "/api/tenants/theirs/whatsapp/config", whatsapp_body()),
        ("PUT", "/api/tenants/theirs/genesys/credentials", genesys_body()),
        ("GET", "/api/tenants/nonexistent", None),  # same answer: no existence oracle
        ("GET", "/api/tenants", None),
        ("POST", "/api/tenants", {"tenantId": "new", "name": "New"}),
        ("POST", "/api/tenants/mine/keys", None),
        ("POST", "/api/tenants/theirs/keys", None),
        ("DELETE", "/api/tenants/mine/keys/0123456789abcdef", None),
        ("DELETE", "/api/tenants/mine", None),
    ]
    for method, path, body in forbidden:
        result = client.simulate_request(method, path, json=body, headers=me)
        assert result.status_code == 403, (method, path, result.status_code)
    # Another tenant's phone number looks exactly like an unknown one.
    other = theirs_wa["whatsapp_phone_number_id"]
    assert client.simulate_get(f"/api/tenants/by-phone/{other}", headers=me).status_code == 404
    assert services.tenants.get("theirs")["name"] == "Theirs"  # type: ignore[index]
    assert services.tenants.version_of("theirs") == 2


def test_revoked_and_deleted_keys_stop_working(client: Client, services: Services) -> None:
    make_tenant(client, services, "acme")
    issued = client.simulate_post("/api/tenants/acme/keys", headers=op(services)).json
    other_key = issue_key(client, services, "acme")
    assert (
        client.simulate_get("/api/tenants/acme", headers=bearer(issued["key"])).status_code == 200
    )
    client.simulate_delete(f"/api/tenants/acme/keys/{issued['keyId']}", headers=op(services))
    assert (
        client.simulate_get("/api/tenants/acme", headers=bearer(issued["key"])).status_code == 401
    )
    assert client.simulate_get("/api/tenants/acme", headers=bearer(other_key)).status_code == 200
    client.simulate_delete("/api/tenants/acme", headers=op(services))
    assert client.simulate_get("/api/tenants/acme", headers=bearer(other_key)).status_code == 401
    # A tenant created again under the same id does not revive the old keys.
    make_tenant(client, services, "acme")
    assert client.simulate_get("/api/tenants/acme", headers=bearer(other_key)).status_code == 401


def test_require_operator_for_control_routes(services: Services) -> None:
    class Probe:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            principal = require_operator(req)
            resp.media = {"operator": principal.operator}

    app = create_app(services)
    app.add_route("/control/probe", Probe())
    client = falcon.testing.TestClient(app)
    make_tenant(client, services, "acme")
    key = issue_key(client, services, "acme")
    assert client.simulate_get("/control/probe").status_code == 401
    assert client.simulate_get("/control/probe", headers=bearer(key)).status_code == 403
    result = client.simulate_get("/control/probe", headers=op(services))
    assert result.status_code == 200 and result.json == {"operator": True}


# -- secrets never surface -----------------------------------------------------------------------
def test_secrets_never_surface(
    client: Client, services: Services, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    make_tenant(client, services, "acme")
    creds, wa = genesys_body(), whatsapp_body()
    secrets_planted = [
        creds["clientSecret"],
        creds["webhookSecret"],
        wa["meta_access_token"],
        wa["meta_app_secret"],
        wa["webhook_verify_token"],
    ]
    responses = [
        client.simulate_put(
            "/api/tenants/acme/genesys/credentials", json=creds, headers=op(services)
        ),
        client.simulate_post("/api/tenants/acme/whatsapp/config", json=wa, headers=op(services)),
        client.simulate_get("/api/tenants/acme", headers=op(services)),
        client.simulate_get("/api/tenants", headers=op(services)),
        client.simulate_get("/api/tenants/acme/genesys/credentials", headers=op(services)),
        client.simulate_get("/api/tenants/acme/whatsapp/config", headers=op(services)),
        client.simulate_get(
            f"/api/tenants/by-phone/{wa['whatsapp_phone_number_id']}", headers=op(services)
        ),
        client.simulate_get(
            f"/api/tenants/by-integration/{creds['integrationId']}", headers=op(services)
        ),
        # Refusals must not echo what they refuse.
        client.simulate_put(
            "/api/tenants/acme/genesys/credentials",
            json={**creds, "webhookSecret": creds["clientSecret"][:15]},
            headers=op(services),
        ),
        client.simulate_post(
            "/api/tenants/acme/whatsapp/config", json={**wa, "oops": 1}, headers=op(services)
        ),
        client.simulate_get("/api/tenants", headers=bearer(creds["clientSecret"])),
    ]
    config = services.tenants.load_config("acme")
    surfaces = [r.text + json.dumps(dict(r.headers)) for r in responses]
    surfaces += [repr(config), repr(services.tenants), repr(services)]
    surfaces += [f"{r.getMessage()} {vars(r)}" for r in caplog.records]
    raw = b""
    for key in redis_client.scan_iter("*"):
        kind = redis_client.type(key)
        if kind == b"hash":
            raw += b"".join(k + v for k, v in redis_client.hgetall(key).items())
        elif kind == b"string":
            raw += redis_client.get(key) or b""
        elif kind in (b"set", b"zset"):
            raw += b"".join(
                redis_client.zrange(key, 0, -1) if kind == b"zset" else redis_client.smembers(key)
            )
    for secret in secrets_planted:
        for surface in surfaces:
            assert secret not in surface
            assert secret[:15] not in surface
        assert secret.encode() not in raw and secret[:12].encode() not in raw
    masked = responses[2].json
    assert masked["genesys"]["clientSecret"] == "****" + creds["clientSecret"][-4:]
    assert masked["whatsapp"]["meta_app_secret"] == "****" + wa["meta_app_secret"][-4:]


# -- rotation through the API --------------------------------------------------------------------
def test_master_key_rotation_over_http(services: Services) -> None:
    key_a, key_b = services.secret_keys[0], secrets.token_bytes(32)
    client_a = falcon.testing.TestClient(create_app(services))
    make_tenant(client_a, services, "acme")
    wa = whatsapp_body()
    client_a.simulate_post("/api/tenants/acme/whatsapp/config", json=wa, headers=op(services))

    def restarted(*secret_keys: bytes) -> tuple[Client, Services]:
        fresh = Services(
            settings=services.settings,
            redis=services.redis,
            admin_token=services.admin_token,
            secret_keys=secret_keys,
        )
        return falcon.testing.TestClient(create_app(fresh)), fresh

    client_ba, services_ba = restarted(key_b, key_a)
    got = client_ba.simulate_get("/api/tenants/acme/whatsapp/config", headers=op(services))
    assert got.status_code == 200
    assert got.json["meta_access_token"] == "****" + wa["meta_access_token"][-4:]
    client_ba.simulate_put(
        "/api/tenants/acme/genesys/credentials", json=genesys_body(), headers=op(services)
    )
    section = json.loads(services.redis.hget(keys.tenant("acme"), "genesys") or b"")
    assert not services_ba.tenants.box.needs_rewrap(section["clientSecret"])

    client_b, _ = restarted(key_b)
    refused = client_b.simulate_get("/api/tenants/acme", headers=op(services))
    assert refused.status_code == 503
    assert "INTERLINK_SECRET_KEY" in refused.json["description"]
    assert wa["meta_access_token"] not in refused.text
    # The rest of the API keeps working: the operator can rewrite the secrets under B.
    assert client_b.simulate_get("/healthz").status_code == 200
    rewritten = client_b.simulate_put(
        "/api/tenants/acme/whatsapp/config", json=wa, headers=op(services)
    )
    assert rewritten.status_code == 200
    assert client_b.simulate_get("/api/tenants/acme", headers=op(services)).status_code == 200


# -- concurrency ---------------------------------------------------------------------------------
def test_concurrent_puts_over_http(
    client: Client, services: Services, redis_client: redis.Redis
) -> None:
    make_tenant(client, services, "busy")
    bodies = [whatsapp_body() for _ in range(25)]

    def put(body: dict[str, str]) -> int:
        return client.simulate_put(
            "/api/tenants/busy/whatsapp/config", json=body, headers=op(services)
        ).status_code

    statuses = [g.get() for g in gevent.joinall([gevent.spawn(put, b) for b in bodies])]
    assert statuses == [200] * len(bodies)
    final = client.simulate_get("/api/tenants/busy", headers=op(services)).json
    assert final["version"] == 1 + len(bodies)
    phone = final["whatsapp"]["whatsapp_phone_number_id"]
    assert redis_client.hgetall(keys.index_phone()) == {phone.encode(): b"busy"}
    winner = next(b for b in bodies if b["whatsapp_phone_number_id"] == phone)
    assert final["whatsapp"]["meta_app_secret"] == "****" + winner["meta_app_secret"][-4:]


def test_redis_down_is_503_not_500(services: Services) -> None:
    broken = Services(
        settings=services.settings,
        redis=redis.Redis(
            host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
        ),
        admin_token=services.admin_token,
        secret_keys=services.secret_keys,
    )
    client = falcon.testing.TestClient(create_app(broken))
    assert client.simulate_get("/api/tenants/acme", headers=op(services)).status_code == 503
    key = "ilk_0123456789abcdef_" + "a" * 43
    assert client.simulate_get("/api/tenants/acme", headers=bearer(key)).status_code == 503


# -- tenant settings -------------------------------------------------------------------------------
def test_settings_default_and_are_replaced_whole_by_a_patch(
    client: Client, services: Services
) -> None:
    tenant = make_tenant(client, services, "acme")
    assert tenant["settings"] == {
        "messagesPerSecond": 80,
        "reactionsAsText": True,
        "fallbackTemplate": None,
        "welcomeText": None,
        "typingIndicator": True,
    }
    result = client.simulate_patch(
        "/api/tenants/acme", json={"settings": {"messagesPerSecond": 20}}, headers=op(services)
    )
    assert result.status_code == 200, result.text
    assert result.json["settings"] == {
        "messagesPerSecond": 20,
        "reactionsAsText": True,
        "fallbackTemplate": None,
        "welcomeText": None,
        "typingIndicator": True,
    }
    assert result.json["version"] == tenant["version"] + 1
    client.simulate_patch(
        "/api/tenants/acme", json={"settings": {"reactionsAsText": False}}, headers=op(services)
    )
    config = services.tenants.load_config("acme")
    assert config is not None
    assert config.settings == {
        "messagesPerSecond": 80,
        "reactionsAsText": False,
        "fallbackTemplate": None,
        "welcomeText": None,
        "typingIndicator": True,
    }


# Not named "settings": that is the shard's Settings fixture the services are built from.
@pytest.mark.parametrize(
    "tenant_settings",
    [
        "fast",
        [],
        {"messagesPerSecond": 0},
        {"messagesPerSecond": -5},
        {"messagesPerSecond": 1001},
        {"messagesPerSecond": "80"},
        {"messagesPerSecond": True},
        {"reactionsAsText": "no"},
        {"reactionsAsText": 1},
        {"reactionSAsText": False},
        {"fallbackTemplate": "agent_reply"},
        {"fallbackTemplate": {"name": "agent_reply"}},
        {"fallbackTemplate": {"name": "Agent Reply", "language": "en_US"}},
        {"fallbackTemplate": {"name": "agent_reply", "language": "english"}},
        {"fallbackTemplate": {"name": "agent_reply", "language": "en_US", "x": 1}},
        {"welcomeText": ""},
        {"welcomeText": "   "},
        {"welcomeText": 5},
        {"welcomeText": "x" * 4097},
        {"typingIndicator": "off"},
    ],
)
def test_bad_settings_are_a_400_naming_the_field(
    client: Client, services: Services, tenant_settings: Any
) -> None:
    make_tenant(client, services, "acme")
    result = client.simulate_patch(
        "/api/tenants/acme", json={"settings": tenant_settings}, headers=op(services)
    )
    assert result.status_code == 400, result.text
    assert "settings" in result.json["description"]
    assert services.tenants.load_config("acme").settings["messagesPerSecond"] == 80  # type: ignore[union-attr]
