"""The Genesys Cloud simulator refuses and accepts over HTTP what the real one does: OAuth logins,
Open Messaging schema refusals and their error codes, receipts, typing events, the agent driver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import falcon.testing
import pytest
import requests

from interlink.sim import SimServer, SimState, create_sim_app, env_for
from interlink.sim.genesys import GenesysOrg
from interlink.sim.sink import WebhookSink

REGION = "mypurecloud.ie"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_760_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    state: SimState
    clock: FakeClock
    client: falcon.testing.TestClient
    org: GenesysOrg
    other: GenesysOrg


def _org(state: SimState, name: str, lifetime: int = 86_400) -> GenesysOrg:
    return state.genesys.add_org(
        f"org-{name}-{secrets.token_hex(4)}",
        region=REGION,
        client_id=secrets.token_hex(16),
        client_secret=secrets.token_urlsafe(24),
        integration_ids=[secrets.token_hex(16)],
        webhook_secret=secrets.token_urlsafe(24),
        token_lifetime=lifetime,
    )


@pytest.fixture
def world() -> World:
    clock = FakeClock()
    state = SimState(clock=clock)
    client = falcon.testing.TestClient(create_sim_app(state))
    return World(state, clock, client, _org(state, "a", lifetime=600), _org(state, "b"))


def login(
    client: falcon.testing.TestClient,
    org: GenesysOrg,
    secret: str | None = None,
    region: str = REGION,
    grant: str = "client_credentials",
) -> falcon.testing.Result:
    basic = base64.b64encode(f"{org.client_id}:{secret or org.client_secret}".encode()).decode()
    return client.simulate_post(
        f"/genesys/{region}/login/oauth/token",
        headers={
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        body=f"grant_type={grant}",
    )


def token_of(world: World, org: GenesysOrg) -> str:
    result = login(world.client, org)
    assert result.status_code == 200, result.text
    return str(result.json["access_token"])


def integration(org: GenesysOrg) -> str:
    return next(iter(org.integration_ids))


def inbound(
    world: World,
    token: str | None,
    body: dict[str, Any],
    *,
    org: GenesysOrg | None = None,
    what: str = "message",
    query: str = "",
) -> falcon.testing.Result:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return world.client.simulate_post(
        f"/genesys/{REGION}/api/api/v2/conversations/messages/{integration(org or world.org)}/inbound/open/{what}",
        query_string=query,
        headers=headers,
        body=json.dumps(body),
    )


def message(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": {
            "messageId": "wamid.x",
            "time": "2026-01-02T10:00:00.000Z",
            "from": {"id": "user-1", "idType": "Opaque", "nickname": "Ana"},
        },
        "text": "Hi, I need help",
    }
    body.update(overrides)
    return body


def test_env_for_points_the_three_bases_at_the_simulator() -> None:
    env = env_for("http://127.0.0.1:9001/")
    assert env["INTERLINK_GENESYS_LOGIN_URL"].replace("{region}", REGION) + "/oauth/token" == (
        f"http://127.0.0.1:9001/genesys/{REGION}/login/oauth/token"
    )
    assert env["INTERLINK_GENESYS_API_URL"] == "http://127.0.0.1:9001/genesys/{region}/api"
    assert env["INTERLINK_META_GRAPH_URL"] == "http://127.0.0.1:9001/meta/v25.0"


def test_login_issues_a_token_recorded_with_its_owner_and_expiry(world: World) -> None:
    result = login(world.client, world.org)
    assert result.status_code == 200
    assert result.json["token_type"] == "bearer"
    assert result.json["expires_in"] == 600
    issued = world.state.genesys.tokens[result.json["access_token"]]
    assert (issued.org_id, issued.client_id) == (world.org.org_id, world.org.client_id)
    assert issued.expires_at == world.clock.now + 600
    record = world.state.requests(kind="genesys.token", tenant=world.org.org_id)[-1]
    assert record.authorization is not None and record.authorization.startswith("Basic ")


@pytest.mark.parametrize(
    ("case", "status", "error"),
    [
        ("wrong secret", 401, "invalid_client"),
        ("other region", 401, "invalid_client"),
        ("password grant", 400, "unsupported_grant_type"),
    ],
)
def test_login_refuses_like_the_real_one(world: World, case: str, status: int, error: str) -> None:
    if case == "wrong secret":
        result = login(world.client, world.org, secret=secrets.token_urlsafe(24))
    elif case == "other region":
        result = login(world.client, world.org, region="mypurecloud.de")
    else:
        result = login(world.client, world.org, grant="password")
    assert result.status_code == status
    assert result.json["error"] == error
    assert result.json["description"]
    assert not world.state.genesys.tokens


PREFETCH = "prefetchConversationId=true"


def test_inbound_message_accepted_with_a_stable_conversation(world: World) -> None:
    token = token_of(world, world.org)
    first = inbound(world, token, message(), query=PREFETCH)
    second = inbound(world, token, message(text="again"), query=PREFETCH)
    assert first.status_code == second.status_code == 200
    assert first.json["conversationId"] == second.json["conversationId"]
    assert first.json["id"] != second.json["id"]
    assert first.json["channel"]["from"]["id"] == "user-1"
    assert first.json["channel"]["messageId"] == "wamid.x"
    other_user = inbound(
        world,
        token,
        message(channel={**message()["channel"], "from": {"id": "user-2", "idType": "Opaque"}}),
        query=PREFETCH,
    )
    assert other_user.json["conversationId"] != first.json["conversationId"]
    assert [m.from_id for m in world.state.genesys.messages_from(integration(world.org))] == [
        "user-1",
        "user-1",
        "user-2",
    ]


@pytest.mark.parametrize("query", ["", "prefetchConversationId=false", "prefetchConversationId=1"])
def test_inbound_message_names_its_conversation_only_when_asked(world: World, query: str) -> None:
    """The real service answers without ``conversationId`` unless the call asks for it with
    ``?prefetchConversationId=true``; a simulator that always named it hid a client that never
    asked (the conversation → tenant map stayed empty in production)."""
    token = token_of(world, world.org)
    unasked = inbound(world, token, message(), query=query)
    assert unasked.status_code == 200, unasked.text
    assert "conversationId" not in unasked.json
    assert unasked.json["id"]
    asked = inbound(world, token, message(text="again"), query=PREFETCH)
    assert asked.json["conversationId"] == world.state.genesys.conversation_id(
        integration(world.org), "user-1"
    )


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda b: b["channel"].pop("time"), "missing.open.channel.date"),
        (lambda b: b["channel"].update(time="yesterday"), "invalid.value"),
        (lambda b: b["channel"]["from"].update(idType="WhatsApp"), "invalid.value"),
        (lambda b: b["channel"]["from"].pop("id"), "constraint.validation"),
        (lambda b: b.pop("text"), "constraint.validation"),
        (
            lambda b: b.update(
                content=[
                    {
                        "attachment": {
                            "mediaType": "Sticker",
                            "url": "http://x/y",
                            "mime": "image/webp",
                        }
                    }
                ]
            ),
            "invalid.value",
        ),
        (lambda b: b.update(metadata={"nested": {"a": "b"}}), "bad.request"),
    ],
)
def test_inbound_message_schema_refusals(world: World, mutate: Any, code: str) -> None:
    token = token_of(world, world.org)
    body = message()
    mutate(body)
    result = inbound(world, token, body)
    assert result.status_code == 400
    assert result.json["code"] == code
    assert result.json["status"] == 400
    assert not world.state.genesys.received


def test_missing_text_and_content_gets_the_schema_message(world: World) -> None:
    body = message()
    body.pop("text")
    result = inbound(world, token_of(world, world.org), body)
    assert "should have required property 'content'" in result.json["message"]


def test_attachment_message_accepted(world: World) -> None:
    body = message(
        content=[
            {"attachment": {"mediaType": "Image", "url": "http://x/a.jpg", "mime": "image/jpeg"}}
        ]
    )
    body.pop("text")
    result = inbound(world, token_of(world, world.org), body)
    assert result.status_code == 200
    assert result.json["content"][0]["attachment"]["mediaType"] == "Image"


def test_bad_missing_and_expired_tokens_get_401(world: World) -> None:
    assert inbound(world, None, message()).json["code"] == "authentication.required"
    assert inbound(world, secrets.token_urlsafe(32), message()).status_code == 401
    token = token_of(world, world.org)
    assert inbound(world, token, message()).status_code == 200
    world.clock.now += 601  # past expires_in
    expired = inbound(world, token, message())
    assert expired.status_code == 401
    assert expired.json["code"] == "credentials.expired"


def test_expire_tokens_now(world: World) -> None:
    token = token_of(world, world.org)
    other = token_of(world, world.other)
    assert world.state.genesys.expire_tokens(org_id=world.org.org_id) == 1
    assert inbound(world, token, message()).status_code == 401
    assert inbound(world, other, message(), org=world.other).status_code == 200
    fresh = token_of(world, world.org)
    assert inbound(world, fresh, message()).status_code == 200


def test_token_of_another_org_is_forbidden_and_unknown_integration_not_found(world: World) -> None:
    foreign = token_of(world, world.other)
    result = inbound(world, foreign, message())
    assert result.status_code == 403
    assert result.json["code"] == "not.authorized"
    unknown = world.client.simulate_post(
        f"/genesys/{REGION}/api/api/v2/conversations/messages/{secrets.token_hex(16)}/inbound/open/message",
        headers={"Authorization": f"Bearer {foreign}", "Content-Type": "application/json"},
        body=json.dumps(message()),
    )
    assert unknown.status_code == 404
    assert not world.state.genesys.received


def test_receipts_accept_delivered_and_failed_only(world: World) -> None:
    token = token_of(world, world.org)
    sent = world.state.genesys.outbound_message(
        integration(world.org), {"id": "user-1", "idType": "Opaque"}, text="hello"
    )
    receipt = {
        "id": sent.id,
        "channel": {"to": {"id": "user-1", "idType": "Opaque"}, "time": "2026-01-02T10:00:05.000Z"},
        "status": "Failed",
        "isFinalReceipt": True,
        "reasons": [{"code": "MessageExpired", "message": "WhatsApp 131047"}],
    }
    assert inbound(world, token, receipt, what="receipt").status_code == 200
    assert world.state.genesys.receipts_for(sent.id)[0]["reasons"][0]["code"] == "MessageExpired"
    read = inbound(world, token, {**receipt, "status": "Read"}, what="receipt")
    assert read.status_code == 400 and read.json["code"] == "invalid.value"
    bad_reason = inbound(
        world, token, {**receipt, "reasons": [{"code": "Oops", "message": "x"}]}, what="receipt"
    )
    assert bad_reason.status_code == 400
    no_time = json.loads(json.dumps(receipt))
    no_time["channel"].pop("time")
    assert (
        inbound(world, token, no_time, what="receipt").json["code"] == "missing.open.channel.date"
    )
    assert len(world.state.genesys.receipts_for(sent.id)) == 1


def test_typing_event(world: World) -> None:
    token = token_of(world, world.org)
    event = {
        "channel": {"from": {"id": "user-1", "idType": "Opaque"}, "time": "2026-01-02T10:00:00Z"},
        "events": [{"eventType": "Typing", "typing": {"type": "On"}}],
    }
    assert inbound(world, token, event, what="event").status_code == 200
    assert (
        inbound(
            world, token, {**event, "events": [{"eventType": "Presence"}]}, what="event"
        ).status_code
        == 400
    )


def test_request_log_keeps_bearer_and_body(world: World) -> None:
    token = token_of(world, world.org)
    inbound(world, token, message())
    record = world.state.requests(kind="genesys.message", tenant=world.org.org_id)[-1]
    assert record.authorization == f"Bearer {token}"
    assert record.body["text"] == "Hi, I need help"
    assert record.status == 200
    listed = world.client.simulate_get("/_sim/requests", params={"kind": "genesys.message"}).json
    assert (
        listed["count"] == 1 and listed["items"][0]["headers"]["authorization"] == f"Bearer {token}"
    )


@pytest.fixture
def served() -> Iterator[tuple[SimServer, WebhookSink]]:
    with SimServer(SimState()) as server, WebhookSink() as sink:
        yield server, sink


def test_agent_driver_signs_with_base64_hmac_and_serves_its_attachment(
    served: tuple[SimServer, WebhookSink],
) -> None:
    server, sink = served
    state = server.state
    org = _org(state, "agent")
    org.webhook_url = sink.url
    integration_id = integration(org)
    attachment = state.agent.attachment(
        integration_id,
        data=b"\x89PNG" + secrets.token_bytes(64),
        mime="image/png",
        filename="x.png",
    )
    delivery = state.agent.send(
        integration_id, "user-1", text="Olá, posso ajudar?", attachment=attachment
    )
    assert delivery.status == 200
    captured = sink.wait_for(1)[0]
    expected = (
        "sha256="
        + base64.b64encode(
            hmac.new(org.webhook_secret.encode(), captured.raw, hashlib.sha256).digest()
        ).decode()
    )
    assert captured.headers["x-hub-signature-256"] == expected
    body = json.loads(captured.raw)
    assert body["text"] == "Olá, posso ajudar?"
    assert body["channel"]["to"] == {"id": "user-1", "idType": "Opaque"}
    assert (
        body["direction"] == "Outbound"
        and body["id"] == body["channel"]["messageId"] == delivery.message_id
    )
    url = body["content"][0]["attachment"]["url"]
    assert url.startswith(f"{server.url}/genesys/{org.region}/api-downloads/api/v2/downloads/")
    redirect = requests.get(url, allow_redirects=False, timeout=5)
    assert redirect.status_code == 302
    fetched = requests.get(url, timeout=5)
    assert (
        fetched.status_code == 200
        and fetched.content == state.genesys.downloads[attachment["id"]].data
    )
    assert fetched.headers["Content-Type"] == "image/png"
    forged = redirect.headers["Location"].replace("signature=", "signature=0")
    assert requests.get(forged, timeout=5).status_code == 403
    assert state.requests(kind="genesys.webhook", tenant=org.org_id)[-1].status == 200


def test_agent_driver_over_http(served: tuple[SimServer, WebhookSink]) -> None:
    server, sink = served
    org = _org(server.state, "http")
    result = requests.post(
        f"{server.url}/_sim/genesys/agent/messages",
        json={
            "integrationId": integration(org),
            "toId": "user-9",
            "text": "hi",
            "webhookUrl": sink.url,
        },
        timeout=5,
    ).json()
    assert result["status"] == 200 and result["messageId"]
    assert json.loads(sink.wait_for(1)[0].raw)["channel"]["to"]["id"] == "user-9"


def test_registration_over_http_then_login(served: tuple[SimServer, WebhookSink]) -> None:
    server, _ = served
    client_id, client_secret = secrets.token_hex(8), secrets.token_urlsafe(16)
    created = requests.post(
        f"{server.url}/_sim/genesys/orgs",
        json={
            "orgId": "org-http",
            "region": "usw2.pure.cloud",
            "clientId": client_id,
            "clientSecret": client_secret,
            "integrationIds": ["int-1"],
            "tokenLifetime": 300,
        },
        timeout=5,
    )
    assert created.status_code == 201
    login_url = server.env()["INTERLINK_GENESYS_LOGIN_URL"].replace("{region}", "usw2.pure.cloud")
    token = requests.post(
        login_url + "/oauth/token",
        auth=(client_id, client_secret),
        data={"grant_type": "client_credentials"},
        timeout=5,
    )
    assert token.status_code == 200 and token.json()["expires_in"] == 300
    tokens = requests.get(f"{server.url}/_sim/genesys/orgs/org-http/tokens", timeout=5).json()[
        "items"
    ]
    assert tokens[0]["token"] == token.json()["access_token"] and not tokens[0]["expired"]
    expired = requests.post(
        f"{server.url}/_sim/genesys/tokens/expire", json={"orgId": "org-http"}, timeout=5
    ).json()
    assert expired == {"expired": 1}
