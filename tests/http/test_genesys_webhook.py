"""Genesys's Open Messaging webhook through real HTTP against the real Valkey: tenant resolution
(conversation mapping, then integration id), base64 signatures per tenant, the durable accept with
dedupe on ``id``, and every refusal of issues #5/#6 — never a 500."""

from __future__ import annotations

import copy
import json
import secrets
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import falcon.testing
import gevent
import pytest
import redis
from gevent.pywsgi import WSGIServer

from interlink.http.app import create_app
from interlink.http.bodies import GENESYS_BODY_LIMIT
from interlink.inbox import Entry, Inbox
from interlink.inbox.entry import decode
from interlink.security.signatures import genesys_signature, meta_signature
from interlink.services import Services
from interlink.store import keys
from interlink.telemetry import metrics
from interlink.tenancy.directory import TenantDirectory
from tests.support.fuzz import paths, replaced

Client = falcon.testing.TestClient
PAYLOADS = Path(__file__).parents[1] / "support" / "payloads"
SAMPLE_INTEGRATION = "3c1a52e4-6f0b-4b4e-9a2f-1d2e3f4a5b6c"
HOOK = "/webhooks/genesys"


@dataclass(frozen=True)
class GcTenant:
    tenant_id: str
    integration_id: str
    webhook_secret: str
    client_secret: str


@pytest.fixture(autouse=True)
def _admin_token_hidden(hidden: list[str], services: Services) -> None:
    hidden.append(services.admin_token)


def add_tenant(services: Services, hidden: list[str], tenant_id: str) -> GcTenant:
    tenant = GcTenant(
        tenant_id=tenant_id,
        integration_id=str(uuid.uuid4()),
        webhook_secret=secrets.token_urlsafe(24),
        client_secret=secrets.token_urlsafe(32),
    )
    services.tenants.create(tenant_id, name=tenant_id.title())
    services.tenants.set_genesys(
        tenant_id,
        client_id=f"client-{tenant_id}",
        client_secret=tenant.client_secret,
        region="mypurecloud.ie",
        integration_id=tenant.integration_id,
        webhook_secret=tenant.webhook_secret,
    )
    hidden += [tenant.webhook_secret, tenant.client_secret]
    return tenant


@pytest.fixture
def acme(services: Services, hidden: list[str]) -> GcTenant:
    return add_tenant(services, hidden, "acme")


@pytest.fixture
def globex(services: Services, hidden: list[str]) -> GcTenant:
    return add_tenant(services, hidden, "globex")


def sample(name: str, integration_id: str, *, message_id: str | None = None) -> dict[str, Any]:
    """A sample of tests/support/payloads with the integration id replaced (and a fresh ``id``, so that
    tests do not dedupe against each other unless they mean to)."""
    text = (PAYLOADS / f"{name}.json").read_text().replace(SAMPLE_INTEGRATION, integration_id)
    body: dict[str, Any] = json.loads(text)
    if "id" in body:
        body["id"] = body["channel"]["messageId"] = message_id or uuid.uuid4().hex
    return body


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


def post(
    client: Client,
    raw: bytes,
    secret: str | None,
    *,
    path: str = HOOK,
    signature: str | None = None,
) -> falcon.testing.Result:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    elif secret is not None:
        headers["X-Hub-Signature-256"] = genesys_signature(secret, raw)
    result = client.simulate_post(path, body=raw, headers=headers)
    assert result.status_code != 500, result.text
    return result


def stored(redis_client: redis.Redis) -> list[Entry]:
    return [
        decode(raw_id.decode() if isinstance(raw_id, bytes) else raw_id, fields)
        for raw_id, fields in redis_client.xrange(keys.inbox(0))
    ]


def counter(name: str, **labels: str) -> float:
    return metrics.value(name, **labels)


# -- the accepted path ---------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["integration", "path"])
def test_an_agent_message_is_stored_before_the_2xx(
    client: Client, redis_client: redis.Redis, acme: GcTenant, variant: str
) -> None:
    body = sample("genesys_text", acme.integration_id)
    path = f"{HOOK}/acme" if variant == "path" else HOOK
    result = post(client, encode(body), acme.webhook_secret, path=path)
    assert result.status_code == 200
    assert result.json == {"accepted": 1, "duplicates": 0}
    [work] = stored(redis_client)
    assert (work.tenant_id, work.kind, work.conversation) == ("acme", "gc.message", "16505551234")
    assert work.payload == body


def test_dedupe_on_the_message_id(
    client: Client, redis_client: redis.Redis, acme: GcTenant, globex: GcTenant
) -> None:
    body = sample("genesys_text", acme.integration_id)
    raw = encode(body)
    duplicates = counter("interlink_items_duplicate_total")
    assert post(client, raw, acme.webhook_secret).json == {"accepted": 1, "duplicates": 0}
    second = post(client, raw, acme.webhook_secret)
    assert (second.status_code, second.json) == (200, {"accepted": 0, "duplicates": 1})
    # A retry with another time or text but the same id: the same message (Genesys's retry).
    retried = {
        **body,
        "text": "edited?",
        "channel": {**body["channel"], "time": "2026-03-25T13:21:00Z"},
    }
    third = post(client, encode(retried), acme.webhook_secret, path=f"{HOOK}/acme")
    assert third.json == {"accepted": 0, "duplicates": 1}
    assert redis_client.xlen(keys.inbox(0)) == 1
    assert counter("interlink_items_duplicate_total") == duplicates + 2
    # The same id at another tenant is another message.
    other = sample("genesys_text", globex.integration_id, message_id=body["id"])
    assert post(client, encode(other), globex.webhook_secret).json == {
        "accepted": 1,
        "duplicates": 0,
    }
    assert [w.tenant_id for w in stored(redis_client)] == ["acme", "globex"]


@pytest.mark.parametrize("variant", ["integration", "path"])
def test_receipts_events_and_unknown_types_are_2xx_and_not_forwarded(
    client: Client, redis_client: redis.Redis, acme: GcTenant, variant: str
) -> None:
    path = f"{HOOK}/acme" if variant == "path" else HOOK
    receipt = sample("genesys_receipt", acme.integration_id)
    typing = sample("genesys_typing", acme.integration_id)
    future = {**sample("genesys_text", acme.integration_id), "type": "Hologram"}
    inbound_text = {**sample("genesys_text", acme.integration_id), "direction": "Inbound"}
    failed_receipt = {
        **receipt,
        "status": "Failed",
        "reasons": [{"code": "RateLimited", "message": "slow down"}],
    }
    typing_off = {**typing, "events": [{"eventType": "Typing", "typing": {"type": "Off"}}]}
    for body in (receipt, typing_off, future, inbound_text, failed_receipt):
        result = post(client, encode(body), acme.webhook_secret, path=path)
        assert 200 <= result.status_code < 300, (body["type"], result.text)
        assert result.json["accepted"] == 0
        assert result.json["ignored"] == body["type"]
    assert stored(redis_client) == []
    # An agent's typing goes to the conversation, which shows it to the user.
    result = post(client, encode(typing), acme.webhook_secret, path=path)
    assert result.json == {"accepted": 1, "duplicates": 0}
    [entry] = stored(redis_client)
    assert entry.kind == "gc.message" and entry.payload["type"] == "Event"


@pytest.mark.parametrize("variant", ["integration", "path"])
def test_structured_with_text_is_forwarded(
    client: Client, redis_client: redis.Redis, acme: GcTenant, variant: str
) -> None:
    path = f"{HOOK}/acme" if variant == "path" else HOOK
    body = sample("genesys_structured", acme.integration_id)
    result = post(client, encode(body), acme.webhook_secret, path=path)
    assert (result.status_code, result.json) == (200, {"accepted": 1, "duplicates": 0})
    [work] = stored(redis_client)
    assert work.kind == "gc.message"
    assert work.payload["type"] == "Structured"
    assert work.payload["text"] == "Your order 67 has shipped."


def test_attachments_and_missing_direction_are_forwarded(
    client: Client, redis_client: redis.Redis, acme: GcTenant
) -> None:
    image = sample("genesys_image", acme.integration_id)
    document = sample("genesys_document", acme.integration_id)
    undirected = sample("genesys_text", acme.integration_id)
    del undirected["direction"]
    for body in (image, document, undirected):
        assert post(client, encode(body), acme.webhook_secret).json["accepted"] == 1
    assert [w.payload["id"] for w in stored(redis_client)] == [
        image["id"],
        document["id"],
        undirected["id"],
    ]


# -- signatures ----------------------------------------------------------------------------------
def _signature_cases(acme: GcTenant, globex: GcTenant, raw: bytes) -> dict[str, str | None]:
    good = genesys_signature(acme.webhook_secret, raw)
    digest = good.removeprefix("sha256=")
    reserialised = json.dumps(json.loads(raw), separators=(",", ":")).encode()
    return {
        "unsigned": None,
        "empty": "",
        "prefix only": "sha256=",
        "no prefix": digest,
        "hex instead of base64": meta_signature(acme.webhook_secret, raw),
        "url-safe alphabet": "sha256=" + digest.replace("+", "-").replace("/", "_") + "-",
        "no padding": good.rstrip("="),
        "truncated": good[:-4],
        "junk appended": good + "AAAA",
        "another tenant's secret": genesys_signature(globex.webhook_secret, raw),
        "over a re-serialised body": genesys_signature(acme.webhook_secret, reserialised),
        "with the client secret": genesys_signature(acme.client_secret, raw),
        "non-ascii": "sha256=" + "é" * 44,
    }


@pytest.mark.parametrize("variant", ["integration", "path"])
def test_bad_signatures_are_401_and_nothing_is_stored(
    client: Client, redis_client: redis.Redis, acme: GcTenant, globex: GcTenant, variant: str
) -> None:
    path = f"{HOOK}/acme" if variant == "path" else HOOK
    raw = json.dumps(sample("genesys_text", acme.integration_id), indent=2).encode()
    failures = counter("interlink_webhook_signature_failures_total", provider="genesys")
    cases = _signature_cases(acme, globex, raw)
    for name, signature in cases.items():
        if signature is None:
            result = post(client, raw, None, path=path)
        else:
            result = post(client, raw, None, path=path, signature=signature)
        assert result.status_code == 401, (name, result.status_code, result.text)
    assert stored(redis_client) == []
    assert counter("interlink_webhook_signature_failures_total", provider="genesys") == (
        failures + len(cases)
    )
    assert post(client, raw, acme.webhook_secret, path=path).status_code == 200


def test_receipts_and_events_need_a_signature_too(
    client: Client, redis_client: redis.Redis, acme: GcTenant
) -> None:
    for name in ("genesys_receipt", "genesys_typing"):
        raw = encode(sample(name, acme.integration_id))
        assert post(client, raw, None).status_code == 401
        assert post(client, raw, None, path=f"{HOOK}/acme").status_code == 401


# -- tenant resolution ---------------------------------------------------------------------------
def test_unknown_integration_id_is_404(
    client: Client, redis_client: redis.Redis, acme: GcTenant
) -> None:
    """INTERFACE.md "Refusals": unknown integration → 404 (Genesys then fails the chat, which
    is what a webhook pointed at the wrong deployment should do)."""
    for integration in (str(uuid.uuid4()), "", "../acme", "x" * 500, "\ud800"):
        body = sample("genesys_text", acme.integration_id)
        body["channel"]["id"] = body["channel"]["from"]["id"] = integration
        result = post(client, encode(body), acme.webhook_secret)
        assert result.status_code == 404, (integration[:20], result.text)
        assert result.json["title"] == "Unknown tenant"
    typing = sample("genesys_typing", acme.integration_id)
    del typing["channel"]["id"]
    assert post(client, encode(typing), acme.webhook_secret).status_code == 404
    assert stored(redis_client) == []


def test_the_conversation_mapping_wins_over_the_integration_id(
    client: Client, redis_client: redis.Redis, acme: GcTenant, globex: GcTenant
) -> None:
    body = sample("genesys_text", acme.integration_id)  # acme's integration id ...
    redis_client.set(
        keys.genesys_conversation(body["conversationId"]), "globex"
    )  # ... globex's chat
    raw = encode(body)
    assert post(client, raw, acme.webhook_secret).status_code == 401
    result = post(client, raw, globex.webhook_secret)
    assert (result.status_code, result.json["accepted"]) == (200, 1)
    [work] = stored(redis_client)
    assert work.tenant_id == "globex"
    # With the path: the tenant of the path must be the one the mapping names.
    again = sample("genesys_text", acme.integration_id)
    again["conversationId"] = body["conversationId"]
    assert post(client, encode(again), acme.webhook_secret, path=f"{HOOK}/acme").status_code == 403


def test_a_mapping_without_an_integration_id_finds_the_tenant(
    client: Client, redis_client: redis.Redis, acme: GcTenant
) -> None:
    body = sample("genesys_text", "not-a-known-integration")
    redis_client.set(keys.genesys_conversation(body["conversationId"]), "acme")
    assert post(client, encode(body), acme.webhook_secret).json["accepted"] == 1


def test_path_variant_with_a_payload_of_another_tenant(
    client: Client, redis_client: redis.Redis, acme: GcTenant, globex: GcTenant
) -> None:
    raw = encode(sample("genesys_text", globex.integration_id))
    # Signed by the path's tenant, naming the other's integration: they disagree.
    result = post(client, raw, acme.webhook_secret, path=f"{HOOK}/acme")
    assert result.status_code == 403
    # The other's genuine request replayed at our door: our secret does not verify it.
    assert post(client, raw, globex.webhook_secret, path=f"{HOOK}/acme").status_code == 401
    assert stored(redis_client) == []


@pytest.mark.parametrize("tenant_id", ["nobody", "ACME", "acme%0A", "a" * 65, "by-phone"])
def test_path_variant_with_an_unknown_or_invalid_tenant_is_404(
    client: Client, redis_client: redis.Redis, acme: GcTenant, tenant_id: str
) -> None:
    raw = encode(sample("genesys_text", acme.integration_id))
    assert post(client, raw, acme.webhook_secret, path=f"{HOOK}/{tenant_id}").status_code == 404
    assert stored(redis_client) == []


def test_a_tenant_without_genesys_credentials_is_404(
    client: Client, services: Services, redis_client: redis.Redis
) -> None:
    services.tenants.create("bare", name="Bare")
    raw = encode(sample("genesys_text", str(uuid.uuid4())))
    assert post(client, raw, "a-webhook-secret-16+", path=f"{HOOK}/bare").status_code == 404
    redis_client.set(keys.genesys_conversation(json.loads(raw)["conversationId"]), "bare")
    assert post(client, raw, "a-webhook-secret-16+").status_code == 404
    assert stored(redis_client) == []


def test_a_deleted_tenant_is_404(
    client: Client, services: Services, redis_client: redis.Redis, acme: GcTenant
) -> None:
    body = sample("genesys_text", acme.integration_id)
    result = client.simulate_delete(
        "/api/tenants/acme", headers={"Authorization": f"Bearer {services.admin_token}"}
    )
    assert result.status_code == 204
    raw = encode(body)
    assert post(client, raw, acme.webhook_secret).status_code == 404
    assert post(client, raw, acme.webhook_secret, path=f"{HOOK}/acme").status_code == 404
    # A conversation mapping left behind by the deleted tenant leads nowhere either.
    redis_client.set(keys.genesys_conversation(body["conversationId"]), "acme")
    assert post(client, raw, acme.webhook_secret).status_code == 404
    assert stored(redis_client) == []


def test_a_deleted_tenants_conversation_mapping_yields_to_the_integrations_new_owner(
    client: Client, services: Services, redis_client: redis.Redis, hidden: list[str]
) -> None:
    old = add_tenant(services, hidden, "acme")
    body = sample("genesys_text", old.integration_id)
    redis_client.set(keys.genesys_conversation(body["conversationId"]), "acme")
    services.tenants.delete("acme")
    services.directory.invalidate("acme")
    # The same Genesys integration, moved to a tenant made afterwards.
    new = add_tenant(services, hidden, "initech")
    services.tenants.set_genesys(
        "initech",
        client_id="client-initech",
        client_secret=new.client_secret,
        region="mypurecloud.ie",
        integration_id=old.integration_id,
        webhook_secret=new.webhook_secret,
    )
    raw = encode(body)
    assert post(client, raw, old.webhook_secret).status_code == 401
    result = post(client, raw, new.webhook_secret)
    assert (result.status_code, result.json["accepted"]) == (200, 1)
    assert [work.tenant_id for work in stored(redis_client)] == ["initech"]


# -- shapes and sizes ----------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["integration", "path"])
def test_malformed_bodies_are_400(
    client: Client, redis_client: redis.Redis, acme: GcTenant, variant: str
) -> None:
    path = f"{HOOK}/acme" if variant == "path" else HOOK
    text = sample("genesys_text", acme.integration_id)
    no_to = copy.deepcopy(text)
    del no_to["channel"]["to"]
    for raw in (
        b"",
        b"{",
        b"\xff\xfe",
        b"[" * 200_000 + b"]" * 200_000,
        b"null",
        b"[]",
        b'"Text"',
        encode({k: v for k, v in text.items() if k != "type"}),
        encode({**text, "type": 7}),
        encode({**text, "channel": "not an object"}),
        encode({**text, "text": ["not", "a", "string"]}),
        encode({**text, "id": None}),
        encode(no_to),
    ):
        result = post(client, raw, acme.webhook_secret, path=path)
        assert result.status_code == 400, (raw[:60], result.status_code, result.text)
    assert stored(redis_client) == []


def test_a_body_over_512000_bytes_is_413(
    client: Client, redis_client: redis.Redis, acme: GcTenant
) -> None:
    junk = b"{" * (GENESYS_BODY_LIMIT + 1)
    for path in (HOOK, f"{HOOK}/acme"):
        assert post(client, junk, acme.webhook_secret, path=path).status_code == 413
    at_limit = encode(sample("genesys_text", acme.integration_id))
    at_limit += b" " * (GENESYS_BODY_LIMIT - len(at_limit))
    assert post(client, at_limit, acme.webhook_secret).status_code == 200
    assert len(stored(redis_client)) == 1


@pytest.fixture
def live_app(services: Services) -> Iterator[tuple[str, int]]:
    server = WSGIServer(("127.0.0.1", 0), create_app(services), log=None)
    server.start()
    try:
        yield server.address[0], server.address[1]
    finally:
        server.stop(timeout=1)


@pytest.mark.parametrize("path", [HOOK, f"{HOOK}/acme"])
def test_a_declared_length_over_the_limit_is_413_without_reading_the_body(
    live_app: tuple[str, int], acme: GcTenant, path: str
) -> None:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {GENESYS_BODY_LIMIT + 1}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    with socket.create_connection(live_app, timeout=5) as sock:
        sock.sendall(head)
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert time.monotonic() - started < 2


def test_odd_but_authentic_values_are_stored_not_500(
    client: Client, redis_client: redis.Redis, acme: GcTenant
) -> None:
    body = sample("genesys_text", acme.integration_id)
    body["conversationId"] = "\ud800"  # not a key Redis can be asked for
    body["text"] = "half an emoji \ud83d"
    body["channel"]["to"]["id"] = "1650\udc005551234"
    body["extra"] = 10**40
    result = post(client, encode(body), acme.webhook_secret)
    assert (result.status_code, result.json["accepted"]) == (200, 1)
    [work] = stored(redis_client)
    assert work.payload["text"] == "half an emoji \ufffd"
    assert work.payload["extra"] == str(10**40)
    assert post(client, encode(body), acme.webhook_secret).json["duplicates"] == 1


JUNK: list[Any] = [None, True, -1, 10**30, 1.5, "", "\ud800", [], {}, "x" * 5000, [None, {}]]


@pytest.mark.parametrize(
    "name", ["genesys_text", "genesys_image", "genesys_receipt", "genesys_typing"]
)
def test_no_junk_anywhere_in_a_signed_body_is_a_500(
    client: Client, redis_client: redis.Redis, acme: GcTenant, name: str
) -> None:
    body = sample(name, acme.integration_id)
    seen: set[int] = set()
    for path in paths(body):
        for junk in JUNK:
            raw = encode(replaced(body, path, junk))
            for where in (HOOK, f"{HOOK}/acme"):
                result = post(client, raw, acme.webhook_secret, path=where)
                assert result.status_code in (200, 400, 404), (path, junk, result.text)
                seen.add(result.status_code)
    assert 200 in seen and 400 in seen
    assert all(w.tenant_id == "acme" for w in stored(redis_client))


# -- Redis down ----------------------------------------------------------------------------------
def assert_503(result: falcon.testing.Result) -> None:
    assert result.status_code == 503, result.text
    assert int(result.headers["retry-after"]) > 0


def test_redis_down_is_503_with_retry_after(down: Services, acme: GcTenant) -> None:
    client = falcon.testing.TestClient(create_app(down))
    raw = encode(sample("genesys_text", acme.integration_id))
    assert_503(post(client, raw, acme.webhook_secret))  # conversation mapping, integration id
    assert_503(post(client, raw, acme.webhook_secret, path=f"{HOOK}/acme"))  # the tenant
    typing = sample("genesys_typing", acme.integration_id)  # no conversation id: integration only
    assert_503(post(client, encode(typing), acme.webhook_secret))


def test_a_failed_mapping_lookup_is_503_not_a_guess_from_the_integration_id(
    services: Services,
    down: Services,
    redis_client: redis.Redis,
    acme: GcTenant,
    globex: GcTenant,
) -> None:
    """The conversation is globex's (mapping) on acme's integration; the directory knows the
    integration (cached) and the inbox works, but the mapping cannot be read. Falling back to the
    integration would check globex's signature against acme's secret: a 401, which fails the
    chat. A 503 makes Genesys retry."""
    body = sample("genesys_text", acme.integration_id)
    redis_client.set(keys.genesys_conversation(body["conversationId"]), "globex")
    warm = TenantDirectory(services.tenants)
    assert warm.by_integration(acme.integration_id) == "acme"
    assert warm.config("acme") is not None and warm.config("globex") is not None
    down.directory = warm
    down.__dict__["inbox"] = Inbox(redis_client, 1)  # only the mapping lookup fails
    client = falcon.testing.TestClient(create_app(down))
    raw = encode(body)
    assert_503(post(client, raw, globex.webhook_secret))
    assert stored(redis_client) == []


def test_redis_down_after_the_lookups_is_503(
    client: Client, services: Services, down: Services, redis_client: redis.Redis, acme: GcTenant
) -> None:
    warm = TenantDirectory(services.tenants)
    assert warm.config("acme") is not None
    down.directory = warm
    down.inbox.timeout = 2.0
    broken = falcon.testing.TestClient(create_app(down))
    raw = encode(sample("genesys_text", acme.integration_id))
    assert_503(post(broken, raw, acme.webhook_secret, path=f"{HOOK}/acme"))
    # A receipt is not stored, but whether its conversation is this tenant's cannot be told.
    receipt = encode(sample("genesys_receipt", acme.integration_id))
    assert_503(post(broken, receipt, acme.webhook_secret, path=f"{HOOK}/acme"))
    # Genesys's retry, once Redis is back, is taken.
    assert post(client, raw, acme.webhook_secret).json == {"accepted": 1, "duplicates": 0}
    assert len(stored(redis_client)) == 1


def test_concurrent_deliveries_of_one_message_store_it_once(
    client: Client, redis_client: redis.Redis, acme: GcTenant
) -> None:
    raw = encode(sample("genesys_text", acme.integration_id))
    results = []

    def send() -> None:
        results.append(post(client, raw, acme.webhook_secret).json)

    gevent.joinall([gevent.spawn(send) for _ in range(10)])
    assert sorted(r["accepted"] for r in results) == [0] * 9 + [1]
    assert sum(r["duplicates"] for r in results) == 9
    assert redis_client.xlen(keys.inbox(0)) == 1


def test_the_path_variant_refuses_an_integration_of_no_tenant(
    client: Client, redis_client: redis.Redis, acme: GcTenant
) -> None:
    # Signed with acme's own secret, but naming an integration nobody owns: nothing is processed.
    raw = encode(sample("genesys_text", "integration-of-nobody"))
    result = post(client, raw, acme.webhook_secret, path=f"{HOOK}/acme")
    assert result.status_code == 404
    assert stored(redis_client) == []


def test_valid_json_of_the_wrong_shape_is_titled_as_such(client: Client, acme: GcTenant) -> None:
    raw = encode({"type": "Text", "channel": None})
    result = post(client, raw, acme.webhook_secret, path=f"{HOOK}/acme")
    assert result.status_code == 400
    assert result.json["title"] == "Invalid notification"


# -- bounded before the signature (issue 13, finding 3) ------------------------------------------
@pytest.mark.parametrize("where", [HOOK, f"{HOOK}/acme"])
def test_a_huge_number_in_an_unsigned_body_is_401_and_logs_no_error(
    client: Client, redis_client: redis.Redis, acme: GcTenant, caplog: Any, where: str
) -> None:
    body = sample("genesys_image", acme.integration_id)
    body["content"][0]["attachment"]["contentSizeBytes"] = "9" * 4301  # past int()'s limit
    raw = encode(body)
    caplog.clear()
    assert post(client, raw, None, path=where).status_code == 401
    assert [r for r in caplog.records if r.levelno >= 40] == []
    assert not any(r.exc_info for r in caplog.records)
    # Signed, the same body is malformed: 400 with the field named, counted, not logged.
    before = counter("interlink_client_errors_total", route="genesys", reason="invalid_shape")
    result = post(client, raw, acme.webhook_secret, path=where)
    assert result.status_code == 400
    assert "contentSizeBytes" in result.json["description"]
    after = counter("interlink_client_errors_total", route="genesys", reason="invalid_shape")
    assert after == before + 1
    assert [r for r in caplog.records if r.levelno >= 40] == []
    assert stored(redis_client) == []


def test_an_unsigned_body_is_read_only_for_its_tenant(
    client: Client, redis_client: redis.Redis, acme: GcTenant
) -> None:
    """Before the signature only the fields naming the tenant are read: whatever else is wrong
    with an unsigned body is answered 401, and it learns nothing of what the shape check says."""
    body = sample("genesys_text", acme.integration_id)
    for junk in ({**body, "type": 7}, {**body, "text": ["x"]}, {**body, "id": None}):
        assert post(client, encode(junk), None).status_code == 401
    assert post(client, encode({**body, "channel": "x"}), None).status_code == 400
    assert stored(redis_client) == []


# -- the cached conversation mapping -------------------------------------------------------------
def _on_conversation(integration_id: str, conversation_id: str) -> bytes:
    body = sample("genesys_text", integration_id)
    body["conversationId"] = conversation_id
    return encode(body)


def test_a_known_conversation_is_read_from_redis_once(
    client: Client, redis_client: redis.Redis, acme: GcTenant
) -> None:
    """Found once, the conversation's tenant is this process's to remember: the mapping is not
    read again (here it is even gone from Redis, and the integration id names nobody)."""
    conversation = str(uuid.uuid4())
    redis_client.set(keys.genesys_conversation(conversation), "acme")
    first = _on_conversation("not-a-known-integration", conversation)
    assert post(client, first, acme.webhook_secret).json["accepted"] == 1
    redis_client.delete(keys.genesys_conversation(conversation))
    for _ in range(3):
        raw = _on_conversation("not-a-known-integration", conversation)
        assert post(client, raw, acme.webhook_secret).json["accepted"] == 1
        path = f"{HOOK}/acme"
        raw = _on_conversation("not-a-known-integration", conversation)
        assert post(client, raw, acme.webhook_secret, path=path).json["accepted"] == 1
    assert [work.tenant_id for work in stored(redis_client)] == ["acme"] * 7


def test_an_unknown_conversation_is_not_remembered_as_unknown(
    client: Client, redis_client: redis.Redis, acme: GcTenant
) -> None:
    conversation = str(uuid.uuid4())
    raw = _on_conversation("not-a-known-integration", conversation)
    assert post(client, raw, acme.webhook_secret).status_code == 404
    # The customer's first message is delivered a moment later: the mapping is written.
    redis_client.set(keys.genesys_conversation(conversation), "acme")
    assert post(client, raw, acme.webhook_secret).json["accepted"] == 1


def test_a_deleted_tenant_leaves_no_cached_conversation_behind(
    client: Client, services: Services, redis_client: redis.Redis, acme: GcTenant
) -> None:
    conversation = str(uuid.uuid4())
    redis_client.set(keys.genesys_conversation(conversation), "acme")
    raw = _on_conversation(acme.integration_id, conversation)
    assert post(client, raw, acme.webhook_secret).json["accepted"] == 1
    assert services.directory.cached_genesys_conversation(conversation) == "acme"
    result = client.simulate_delete(
        "/api/tenants/acme", headers={"Authorization": f"Bearer {services.admin_token}"}
    )
    assert result.status_code == 204
    assert services.directory.cached_genesys_conversation(conversation) is None
    raw = _on_conversation(acme.integration_id, conversation)
    assert post(client, raw, acme.webhook_secret).status_code == 404
    assert len(stored(redis_client)) == 1


@pytest.mark.parametrize("variant", ["integration", "path"])
def test_a_stale_cached_conversation_never_refuses_nor_misroutes(
    client: Client,
    services: Services,
    redis_client: redis.Redis,
    acme: GcTenant,
    globex: GcTenant,
    variant: str,
) -> None:
    """The mapping changed in Redis and no event told this process (an integration that moved
    from acme to globex, the event lost): the cached owner's signature check fails, so Redis is
    asked again before anything is refused, and the message goes to globex, once."""
    conversation = str(uuid.uuid4())
    redis_client.set(keys.genesys_conversation(conversation), "acme")
    raw = _on_conversation(globex.integration_id, conversation)
    assert post(client, raw, acme.webhook_secret).json["accepted"] == 1
    redis_client.set(keys.genesys_conversation(conversation), "globex")
    failures = counter("interlink_webhook_signature_failures_total", provider="genesys")
    path = f"{HOOK}/globex" if variant == "path" else HOOK
    raw = _on_conversation(globex.integration_id, conversation)
    assert post(client, raw, globex.webhook_secret, path=path).json["accepted"] == 1
    assert [work.tenant_id for work in stored(redis_client)] == ["acme", "globex"]
    assert services.directory.cached_genesys_conversation(conversation) == "globex"
    # Not a bad signature: nothing counted, nothing logged as one.
    assert counter("interlink_webhook_signature_failures_total", provider="genesys") == failures
    # acme's secret no longer routes it, cached or not.
    raw = _on_conversation(globex.integration_id, conversation)
    assert post(client, raw, acme.webhook_secret).status_code == 401
    assert post(client, raw, acme.webhook_secret, path=f"{HOOK}/acme").status_code == 403


def test_a_bad_signature_on_a_cached_conversation_is_one_401(
    client: Client, redis_client: redis.Redis, acme: GcTenant, globex: GcTenant
) -> None:
    conversation = str(uuid.uuid4())
    redis_client.set(keys.genesys_conversation(conversation), "acme")
    raw = _on_conversation(acme.integration_id, conversation)
    assert post(client, raw, acme.webhook_secret).json["accepted"] == 1
    failures = counter("interlink_webhook_signature_failures_total", provider="genesys")
    raw = _on_conversation(acme.integration_id, conversation)
    for secret in (globex.webhook_secret, acme.client_secret):
        assert post(client, raw, secret).status_code == 401
    assert counter("interlink_webhook_signature_failures_total", provider="genesys") == (
        failures + 2
    )
    assert len(stored(redis_client)) == 1
