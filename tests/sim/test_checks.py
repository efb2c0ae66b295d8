"""What ``interlink tenants check`` reads from the simulators answers as the real services do:
the number and its account's subscription from Graph, the integration from Genesys, and each is
refused to a wrong token (401) and for an id the caller cannot see."""

from __future__ import annotations

import base64
import secrets

import falcon.testing
import pytest

from interlink.sim import SimState, create_sim_app
from interlink.sim.genesys import GenesysOrg
from interlink.sim.meta import MetaNumber

GRAPH = "/meta/v25.0"
REGION = "mypurecloud.ie"
INTEGRATIONS = f"/genesys/{REGION}/api/api/v2/conversations/messaging/integrations/open"


@pytest.fixture
def state() -> SimState:
    return SimState()


@pytest.fixture
def client(state: SimState) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_sim_app(state))


def number(state: SimState, **options: object) -> MetaNumber:
    return state.meta.add_number(
        str(10**14 + secrets.randbelow(10**14)),
        access_token=secrets.token_urlsafe(32),
        app_secret=secrets.token_hex(16),
        **options,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_graph_answers_the_number_to_its_token(
    state: SimState, client: falcon.testing.TestClient
) -> None:
    n = number(state, display_phone_number="15550100", verified_name="Acme")

    got = client.simulate_get(
        f"{GRAPH}/{n.phone_number_id}",
        params={"fields": "display_phone_number,verified_name,quality_rating"},
        headers=bearer(n.access_token),
    )

    assert got.status_code == 200
    assert got.json == {
        "display_phone_number": "15550100",
        "verified_name": "Acme",
        "quality_rating": "GREEN",
        "id": n.phone_number_id,
    }


def test_graph_refuses_the_number_to_a_wrong_token(
    state: SimState, client: falcon.testing.TestClient
) -> None:
    n, other = number(state), number(state)
    path = f"{GRAPH}/{n.phone_number_id}"

    unknown = client.simulate_get(path, headers=bearer("EAA" + secrets.token_urlsafe(20)))
    missing = client.simulate_get(path)
    foreign = client.simulate_get(path, headers=bearer(other.access_token))

    assert unknown.status_code == missing.status_code == 401
    assert unknown.json["error"]["code"] == missing.json["error"]["code"] == 190
    assert foreign.status_code == 400
    assert foreign.json["error"]["code"] == 100
    assert foreign.json["error"]["error_subcode"] == 33
    assert "Unsupported get request" in foreign.json["error"]["error_data"]["details"]


def test_subscribed_apps_lists_the_app_once_a_webhook_is_set(
    state: SimState, client: falcon.testing.TestClient
) -> None:
    n = number(state, waba_id="200000000000001")
    path = f"{GRAPH}/{n.waba_id}/subscribed_apps"

    assert client.simulate_get(path, headers=bearer(n.access_token)).json == {"data": []}
    n.webhook_url = "http://127.0.0.1:1/webhooks/whatsapp"
    apps = client.simulate_get(path, headers=bearer(n.access_token)).json["data"]
    assert len(apps) == 1 and "whatsapp_business_api_data" in apps[0]

    assert client.simulate_get(path).json["error"]["code"] == 190
    other = number(state, waba_id="200000000000002")
    foreign = client.simulate_get(path, headers=bearer(other.access_token))
    assert foreign.status_code == 400 and foreign.json["error"]["code"] == 100


def org(state: SimState, name: str) -> GenesysOrg:
    return state.genesys.add_org(
        name,
        region=REGION,
        client_id=f"{name}-client",
        client_secret=secrets.token_urlsafe(24),
        integration_ids=[secrets.token_hex(8)],
    )


def token(client: falcon.testing.TestClient, o: GenesysOrg) -> str:
    basic = base64.b64encode(f"{o.client_id}:{o.client_secret}".encode()).decode()
    got = client.simulate_post(
        f"/genesys/{REGION}/login/oauth/token",
        body="grant_type=client_credentials",
        headers={
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert got.status_code == 200, got.text
    return str(got.json["access_token"])


def test_genesys_answers_the_integration_to_its_org(
    state: SimState, client: falcon.testing.TestClient
) -> None:
    o = org(state, "acme")
    (integration_id,) = o.integration_ids

    got = client.simulate_get(f"{INTEGRATIONS}/{integration_id}", headers=bearer(token(client, o)))

    assert got.status_code == 200
    assert got.json["id"] == integration_id
    assert got.json["createStatus"] == "Completed"


def test_genesys_refuses_a_wrong_token_and_unknown_or_foreign_integrations(
    state: SimState, client: falcon.testing.TestClient
) -> None:
    o, other = org(state, "acme"), org(state, "globex")
    (integration_id,) = o.integration_ids
    path = f"{INTEGRATIONS}/{integration_id}"

    wrong = client.simulate_get(path, headers=bearer(secrets.token_urlsafe(20)))
    assert wrong.status_code == 401 and wrong.json["code"] == "bad.credentials"
    assert client.simulate_get(path).json["code"] == "authentication.required"

    good = bearer(token(client, o))
    unknown = client.simulate_get(f"{INTEGRATIONS}/{secrets.token_hex(8)}", headers=good)
    assert unknown.status_code == 404 and unknown.json["code"] == "not.found"
    foreign = client.simulate_get(path, headers=bearer(token(client, other)))
    assert foreign.status_code == 404 and foreign.json["code"] == "not.found"
