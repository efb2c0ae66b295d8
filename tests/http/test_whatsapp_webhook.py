"""Meta's webhook through real HTTP (Falcon's TestClient on the whole app, a real socket where the
transport matters) against the real Valkey: the handshake, every refusal of issues #5/#6 ("bad input
it must survive"), and the durable accept checked in the inbox stream itself."""

from __future__ import annotations

import copy
import json
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import falcon.testing
import gevent
import pytest
import redis
from gevent.pywsgi import WSGIServer

from interlink.http.app import create_app
from interlink.http.bodies import META_BODY_LIMIT
from interlink.inbox import Entry
from interlink.inbox.entry import decode
from interlink.security.signatures import genesys_signature, meta_signature
from interlink.services import Services
from interlink.store import keys
from interlink.telemetry import metrics
from interlink.tenancy.changes import ReloadListener
from interlink.tenancy.directory import TenantDirectory
from tests.support.fuzz import paths, replaced

Client = falcon.testing.TestClient
PAYLOADS = Path(__file__).parents[1] / "support" / "payloads"
SAMPLE_NUMBER = "106540352242922"  # the phone number id in every sample payload
HOOK = "/webhooks/whatsapp"


# -- tenants, bodies, the stream -----------------------------------------------------------------
@dataclass(frozen=True)
class WaTenant:
    tenant_id: str
    phone: str
    app_secret: str
    verify_token: str
    access_token: str


@pytest.fixture(autouse=True)
def _admin_token_hidden(hidden: list[str], services: Services) -> None:
    hidden.append(services.admin_token)


def add_tenant(
    services: Services, hidden: list[str], tenant_id: str, phone: str | None = None
) -> WaTenant:
    tenant = WaTenant(
        tenant_id=tenant_id,
        phone=phone or str(10**14 + secrets.randbelow(9 * 10**14)),
        app_secret=secrets.token_hex(16),
        verify_token=secrets.token_urlsafe(16),
        access_token="EAA" + secrets.token_urlsafe(48),
    )
    services.tenants.create(tenant_id, name=tenant_id.title())
    services.tenants.set_whatsapp(
        tenant_id,
        access_token=tenant.access_token,
        phone_number_id=tenant.phone,
        business_account_id=str(10**14 + secrets.randbelow(10**14)),
        app_secret=tenant.app_secret,
        verify_token=tenant.verify_token,
    )
    hidden += [tenant.app_secret, tenant.verify_token, tenant.access_token]
    return tenant


@pytest.fixture
def acme(services: Services, hidden: list[str]) -> WaTenant:
    return add_tenant(services, hidden, "acme")


@pytest.fixture
def globex(services: Services, hidden: list[str]) -> WaTenant:
    return add_tenant(services, hidden, "globex")


def sample(name: str, phone: str) -> dict[str, Any]:
    """A sample payload of tests/support/payloads with every phone number id replaced by ``phone``."""
    body: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    for entry in body["entry"]:
        for change in entry["changes"]:
            metadata = change.get("value", {}).get("metadata", {})
            if metadata.get("phone_number_id") == SAMPLE_NUMBER:
                metadata["phone_number_id"] = phone
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
    headers: dict[str, str] | None = None,
) -> falcon.testing.Result:
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if signature is not None:
        all_headers["X-Hub-Signature-256"] = signature
    elif secret is not None:
        all_headers["X-Hub-Signature-256"] = meta_signature(secret, raw)
    result = client.simulate_post(path, body=raw, headers=all_headers)
    assert result.status_code != 500, result.text
    return result


def stored(redis_client: redis.Redis) -> list[Entry]:
    """Every entry of the (single) shard's inbox stream, in order."""
    entries = redis_client.xrange(keys.inbox(0))
    return [
        decode(raw_id.decode() if isinstance(raw_id, bytes) else raw_id, fields)
        for raw_id, fields in entries
    ]


def counter(name: str, **labels: str) -> float:
    """A counter's value as /metrics shows it (0 before its first increment)."""
    return metrics.value(name, **labels)


def handshake(
    client: Client, token: str, *, path: str = HOOK, mode: str = "subscribe", challenge: str = ""
) -> falcon.testing.Result:
    params = {"hub.mode": mode, "hub.verify_token": token, "hub.challenge": challenge}
    result = client.simulate_get(path, params=params)
    assert result.status_code != 500, result.text
    return result


# -- GET: the handshake --------------------------------------------------------------------------
def test_handshake_echoes_the_challenge_as_plain_text(client: Client, acme: WaTenant) -> None:
    result = handshake(client, acme.verify_token, challenge="1158201444")
    assert result.status_code == 200
    assert result.text == "1158201444"
    assert result.headers["content-type"].startswith("text/plain")


def test_handshake_on_the_path_variant_only_for_its_own_tenant(
    client: Client, acme: WaTenant, globex: WaTenant
) -> None:
    own = handshake(client, acme.verify_token, path=f"{HOOK}/acme", challenge="42")
    assert (own.status_code, own.text) == (200, "42")
    assert own.headers["content-type"].startswith("text/plain")
    assert (
        handshake(client, acme.verify_token, path=f"{HOOK}/globex", challenge="42").status_code
        == 403
    )
    assert (
        handshake(client, acme.verify_token, path=f"{HOOK}/nobody", challenge="42").status_code
        == 403
    )
    assert handshake(client, globex.verify_token, path=f"{HOOK}/globex", challenge="7").text == "7"


@pytest.mark.parametrize(
    "params",
    [
        {
            "hub.mode": "subscribe",
            "hub.verify_token": "not-a-token-of-anyone",
            "hub.challenge": "1",
        },
        {"hub.mode": "unsubscribe", "hub.verify_token": "TOKEN", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": "TOKEN"},  # no challenge
        {"hub.mode": "subscribe", "hub.challenge": "1"},  # no token
        {"hub.verify_token": "TOKEN", "hub.challenge": "1"},  # no mode
        {"hub.mode": "subscribe", "hub.verify_token": "TOKEN", "hub.challenge": "x" * 1025},
        {"hub.mode": "subscribe", "hub.verify_token": "TOKEN ", "hub.challenge": "1"},
        {},
    ],
)
def test_handshake_refusals_are_403(client: Client, acme: WaTenant, params: dict[str, str]) -> None:
    query = {k: v.replace("TOKEN", acme.verify_token) for k, v in params.items()}
    result = client.simulate_get(HOOK, params=query)
    assert result.status_code == 403, result.text
    assert acme.verify_token not in result.text


def test_handshake_with_hostile_query_strings_is_403(client: Client, acme: WaTenant) -> None:
    for query in (
        "hub.mode=subscribe&hub.verify_token=%ED%A0%80&hub.challenge=1",  # a lone surrogate
        "hub.mode=subscribe&hub.verify_token=%FF%FE&hub.challenge=1",  # not UTF-8
        "hub.mode=subscribe&hub.verify_token=%00&hub.challenge=1",
        "hub.mode=subscribe&hub.verify_token=a&hub.verify_token=b&hub.challenge=1",
    ):
        result = client.simulate_get(HOOK, query_string=query)
        assert result.status_code == 403, (query, result.status_code)


@pytest.mark.parametrize("challenge", ["%ED%A0%80", "%FF%FE", "%00", "%0D%0A", "%C3%A9", "a+b"])
def test_handshake_with_an_odd_challenge_is_never_a_500(
    client: Client, acme: WaTenant, challenge: str
) -> None:
    query = f"hub.mode=subscribe&hub.verify_token={acme.verify_token}&hub.challenge={challenge}"
    result = client.simulate_get(HOOK, query_string=query)
    assert result.status_code == 200
    assert result.headers["content-type"].startswith("text/plain")


def test_handshake_of_a_deleted_tenant_is_403(
    client: Client, services: Services, acme: WaTenant
) -> None:
    assert handshake(client, acme.verify_token, challenge="1").status_code == 200
    services.tenants.delete("acme")
    assert handshake(client, acme.verify_token, challenge="1").status_code == 403
    assert (
        handshake(client, acme.verify_token, path=f"{HOOK}/acme", challenge="1").status_code == 403
    )


# -- POST: signatures ----------------------------------------------------------------------------
def test_a_signed_notification_is_stored_before_the_200(
    client: Client, redis_client: redis.Redis, acme: WaTenant
) -> None:
    body = sample("meta_text", acme.phone)
    result = post(client, encode(body), acme.app_secret)
    assert result.status_code == 200
    assert result.json == {"accepted": 1, "duplicates": 0}
    [work] = stored(redis_client)
    message = body["entry"][0]["changes"][0]["value"]["messages"][0]
    assert (work.tenant_id, work.kind, work.conversation) == ("acme", "wa.message", "16505551234")
    assert work.payload["element"] == message
    assert work.payload["contact"]["profile"]["name"] == "Sheena Nelson"


def _signature_cases(acme: WaTenant, globex: WaTenant, raw: bytes) -> dict[str, str | None]:
    good = meta_signature(acme.app_secret, raw)
    digest_hex = good.removeprefix("sha256=")
    reserialised = json.dumps(json.loads(raw), separators=(",", ":"), sort_keys=True).encode()
    return {
        "missing": None,
        "empty": "",
        "prefix only": "sha256=",
        "no prefix": digest_hex,
        "other algorithm": "sha1=" + digest_hex[:40],
        "not hex": "sha256=" + "zz" * 32,
        "truncated": good[:-2],
        "too long": good + "00",
        "base64 of the right digest": genesys_signature(acme.app_secret, raw),
        "another tenant's secret": meta_signature(globex.app_secret, raw),
        "over a re-serialised body": meta_signature(acme.app_secret, reserialised),
        "over an empty body": meta_signature(acme.app_secret, b""),
        "two headers' worth": f"{good}, {good}",
        "non-ascii": "sha256=" + "é" * 64,
    }


@pytest.mark.parametrize("variant", ["phone", "path"])
def test_bad_signatures_are_401_and_nothing_is_stored(
    client: Client, redis_client: redis.Redis, acme: WaTenant, globex: WaTenant, variant: str
) -> None:
    raw = json.dumps(sample("meta_text", acme.phone), indent=2).encode()
    path = f"{HOOK}/acme" if variant == "path" else HOOK
    failures = counter("interlink_webhook_signature_failures_total", provider="meta")
    cases = _signature_cases(acme, globex, raw)
    for name, signature in cases.items():
        if signature is None:
            result = post(client, raw, None, path=path)
        else:
            result = post(client, raw, None, path=path, signature=signature)
        assert result.status_code == 401, (name, result.status_code, result.text)
        assert result.json["title"] == "Invalid signature"
    assert stored(redis_client) == []
    assert counter("interlink_webhook_signature_failures_total", provider="meta") == failures + len(
        cases
    )
    # The same body, correctly signed, is taken: the refusals were about the signatures alone.
    assert post(client, raw, acme.app_secret, path=path).status_code == 200
    assert len(stored(redis_client)) == 1


def test_signature_tolerates_only_what_does_not_change_the_value(
    client: Client, redis_client: redis.Redis, acme: WaTenant
) -> None:
    raw = encode(sample("meta_text", acme.phone))
    good = meta_signature(acme.app_secret, raw)
    variant = "SHA256=" + good.removeprefix("sha256=").upper()
    assert post(client, raw, None, signature=f"  {variant} ").status_code == 200


# -- POST: tenant resolution ---------------------------------------------------------------------
def test_unknown_phone_number_id_is_404(
    client: Client, redis_client: redis.Redis, acme: WaTenant
) -> None:
    raw = encode(sample("meta_text", "999999999999999"))
    result = post(client, raw, acme.app_secret)
    assert result.status_code == 404
    assert result.json["title"] == "Unknown tenant"
    for junk in ("", " ", "../acme", "a" * 300, "1\n2"):
        assert post(client, encode(sample("meta_text", junk)), acme.app_secret).status_code in (
            400,
            404,
        )
    assert stored(redis_client) == []


def test_a_batch_mixing_tenants_is_403_and_nothing_is_stored(
    client: Client, redis_client: redis.Redis, acme: WaTenant, globex: WaTenant
) -> None:
    body = sample("meta_text", acme.phone)
    foreign = sample("meta_reaction", globex.phone)
    body["entry"].append(foreign["entry"][0])
    for variant in (HOOK, f"{HOOK}/acme"):
        result = post(client, encode(body), acme.app_secret, path=variant)
        assert result.status_code == 403, (variant, result.text)
    # The second change of one entry naming the other tenant's number: the same.
    body = sample("meta_text", acme.phone)
    body["entry"][0]["changes"].append(foreign["entry"][0]["changes"][0])
    assert post(client, encode(body), acme.app_secret).status_code == 403
    assert post(client, encode(body), acme.app_secret, path=f"{HOOK}/acme").status_code == 403
    assert stored(redis_client) == []


def test_a_body_naming_only_another_tenants_number_needs_that_tenants_signature(
    client: Client, redis_client: redis.Redis, acme: WaTenant, globex: WaTenant
) -> None:
    raw = encode(sample("meta_text", globex.phone))
    assert post(client, raw, acme.app_secret).status_code == 401
    assert stored(redis_client) == []


def test_path_variant_with_a_payload_of_another_tenant_is_refused(
    client: Client, redis_client: redis.Redis, acme: WaTenant, globex: WaTenant
) -> None:
    raw = encode(sample("meta_text", globex.phone))
    # Signed by the tenant of the path, naming the other's number: the tenants disagree.
    result = post(client, raw, acme.app_secret, path=f"{HOOK}/acme")
    assert result.status_code == 403
    # Signed by the other tenant (its genuine payload replayed at our door): the path's tenant
    # checks the signature first (module docstring), and it is not its.
    assert post(client, raw, globex.app_secret, path=f"{HOOK}/acme").status_code == 401
    # A number nobody owns, signed by the path's tenant: not this tenant's either.
    raw = encode(sample("meta_text", "999999999999999"))
    assert post(client, raw, acme.app_secret, path=f"{HOOK}/acme").status_code == 403
    assert stored(redis_client) == []


@pytest.mark.parametrize(
    "tenant_id", ["nobody", "ACME", "acme%0A", "a" * 65, "-acme", "acme.json", "%E2%80%8Bacme"]
)
def test_path_variant_with_an_unknown_or_invalid_tenant_is_404(
    client: Client, redis_client: redis.Redis, acme: WaTenant, tenant_id: str
) -> None:
    raw = encode(sample("meta_text", acme.phone))
    assert post(client, raw, acme.app_secret, path=f"{HOOK}/{tenant_id}").status_code == 404
    assert stored(redis_client) == []


def test_a_tenant_without_whatsapp_configuration_is_404(
    client: Client, services: Services, redis_client: redis.Redis
) -> None:
    services.tenants.create("bare", name="Bare")
    raw = encode(sample("meta_text", "106540352242922"))
    assert post(client, raw, "whatever-secret", path=f"{HOOK}/bare").status_code == 404
    assert stored(redis_client) == []


def test_a_deleted_tenant_is_404_on_both_variants(
    client: Client, services: Services, redis_client: redis.Redis, acme: WaTenant
) -> None:
    raw = encode(sample("meta_text", acme.phone))
    result = client.simulate_delete(
        "/api/tenants/acme", headers={"Authorization": f"Bearer {services.admin_token}"}
    )
    assert result.status_code == 204
    assert post(client, raw, acme.app_secret).status_code == 404
    assert post(client, raw, acme.app_secret, path=f"{HOOK}/acme").status_code == 404
    assert stored(redis_client) == []


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        gevent.sleep(0.01)


def test_a_tenant_deleted_while_cached_is_refused_once_its_event_arrives(
    client: Client, services: Services, redis_client: redis.Redis, acme: WaTenant
) -> None:
    """As a shard runs it: the directory holds the tenant, the change event drops it."""
    tenants = services.directory
    listener = ReloadListener(
        redis_client,
        on_change=lambda tenant_id, version, kind: tenants.invalidate(tenant_id),
        on_resync=lambda: tenants.invalidate(None),
    )
    listener.start()
    try:
        channel = keys.tenant_events()
        wait_for(lambda: dict(redis_client.pubsub_numsub(channel)).get(channel.encode(), 0) >= 1)
        first = encode(sample("meta_text", acme.phone))
        assert post(client, first, acme.app_secret).status_code == 200  # cached from here on
        seen = listener.events
        result = client.simulate_delete(
            "/api/tenants/acme", headers={"Authorization": f"Bearer {services.admin_token}"}
        )
        assert result.status_code == 204
        wait_for(lambda: listener.events > seen)
        again = sample("meta_reaction", acme.phone)
        assert post(client, encode(again), acme.app_secret).status_code == 404
        assert post(client, encode(again), acme.app_secret, path=f"{HOOK}/acme").status_code == 404
    finally:
        listener.stop()
    assert len(stored(redis_client)) == 1


# -- POST: shapes --------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["phone", "path"])
def test_malformed_json_is_400(
    client: Client, redis_client: redis.Redis, acme: WaTenant, variant: str
) -> None:
    path = f"{HOOK}/acme" if variant == "path" else HOOK
    for raw in (
        b"",
        b"{",
        b'{"object": "whatsapp_business_account", "entry": [}',
        b"\xff\xfe{}",
        b"NaN-ish",
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the JSON decoder goes
        b'{"a": ' * 50_000 + b"1" + b"}" * 50_000,
    ):
        result = post(client, raw, acme.app_secret, path=path)
        assert result.status_code == 400, (raw[:40], result.status_code)
    assert stored(redis_client) == []


@pytest.mark.parametrize("variant", ["phone", "path"])
def test_wrong_object_or_envelope_is_400(
    client: Client, redis_client: redis.Redis, acme: WaTenant, variant: str
) -> None:
    path = f"{HOOK}/acme" if variant == "path" else HOOK
    body = sample("meta_text", acme.phone)
    bodies: list[Any] = [
        {**body, "object": "page"},
        {**body, "object": "instagram"},
        {k: v for k, v in body.items() if k != "object"},
        {**body, "entry": {"not": "a list"}},
        {**body, "entry": ["not an object"]},
        [body],
        "whatsapp_business_account",
        None,
        42,
    ]
    for candidate in bodies:
        result = post(client, encode(candidate), acme.app_secret, path=path)
        assert result.status_code == 400, (
            candidate if not isinstance(candidate, dict) else "",
            result.text,
        )
    assert stored(redis_client) == []


def test_other_fields_are_200_and_nothing_is_stored(
    client: Client, redis_client: redis.Redis, acme: WaTenant
) -> None:
    template = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "time": 1749416383,
                "changes": [
                    {
                        "field": "message_template_status_update",
                        "value": {
                            "event": "APPROVED",
                            "message_template_id": 594425479261596,
                            "message_template_name": "order_update",
                            "message_template_language": "en_US",
                            "reason": "NONE",
                        },
                    }
                ],
            }
        ],
    }
    with_number = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "smb_message_echoes",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": acme.phone,
                            },
                            "message_echoes": [{"id": "wamid.ECHO", "type": "text"}],
                        },
                    }
                ],
            }
        ],
    }
    # Named by its number: resolved and signed as usual.
    result = post(client, encode(with_number), acme.app_secret)
    assert (result.status_code, result.json) == (200, {"accepted": 0, "duplicates": 0})
    # Account-level fields name no number: through the tenant's own URL ...
    result = post(client, encode(template), acme.app_secret, path=f"{HOOK}/acme")
    assert (result.status_code, result.json) == (200, {"accepted": 0, "duplicates": 0})
    assert post(client, encode(template), None, path=f"{HOOK}/acme").status_code == 401
    # ... and through the shared one, where no tenant can be told: nothing to do, and nothing
    # Meta should keep redelivering.
    result = post(client, encode(template), acme.app_secret)
    assert (result.status_code, result.json["accepted"]) == (200, 0)
    # A `messages` change must name its number: without it the envelope is malformed.
    broken = copy.deepcopy(with_number)
    broken["entry"][0]["changes"][0]["field"] = "messages"
    del broken["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"]
    assert post(client, encode(broken), acme.app_secret).status_code == 400
    assert post(client, encode(broken), acme.app_secret, path=f"{HOOK}/acme").status_code == 400
    assert stored(redis_client) == []


def test_system_errors_and_invalid_elements_are_200_and_not_stored(
    client: Client, redis_client: redis.Redis, acme: WaTenant
) -> None:
    errors = sample("meta_system_errors", acme.phone)
    result = post(client, encode(errors), acme.app_secret)
    assert (result.status_code, result.json["accepted"]) == (200, 0)
    body = sample("meta_text", acme.phone)
    value = body["entry"][0]["changes"][0]["value"]
    value["messages"].insert(0, {"from": "1", "type": "text"})  # no id: one bad element
    value["messages"].insert(0, "not an object")
    value["statuses"] = [{"id": "wamid.X"}]  # no status
    result = post(client, encode(body), acme.app_secret)
    assert (result.status_code, result.json) == (200, {"accepted": 1, "duplicates": 0})
    assert [w.payload["element"]["id"] for w in stored(redis_client)] == [
        value["messages"][2]["id"]
    ]


# -- bodies over 3 MiB ---------------------------------------------------------------------------
def test_a_body_over_3_mib_is_413_before_it_is_parsed(
    client: Client, redis_client: redis.Redis, acme: WaTenant
) -> None:
    junk = b"{" * (META_BODY_LIMIT + 1)  # would be a 400 if it were parsed
    for path in (HOOK, f"{HOOK}/acme"):
        result = post(client, junk, acme.app_secret, path=path)
        assert result.status_code == 413, result.text
    at_limit = encode(sample("meta_text", acme.phone))
    at_limit += b" " * (META_BODY_LIMIT - len(at_limit))
    assert len(at_limit) == META_BODY_LIMIT
    assert post(client, at_limit, acme.app_secret).status_code == 200
    assert len(stored(redis_client)) == 1


@pytest.fixture
def live_app(services: Services) -> Iterator[str]:
    """The app on a real socket (gevent.pywsgi, as a shard serves it)."""
    server = WSGIServer(("127.0.0.1", 0), create_app(services), log=None)
    server.start()
    try:
        yield f"{server.address[0]}:{server.address[1]}"
    finally:
        server.stop(timeout=1)


def raw_exchange(address: str, head: bytes, timeout: float = 5.0) -> bytes:
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head)
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        return reply


@pytest.mark.parametrize("path", [HOOK, f"{HOOK}/acme"])
def test_a_declared_length_over_3_mib_is_413_without_reading_the_body(
    live_app: str, acme: WaTenant, path: str
) -> None:
    """Only the headers are sent: the answer comes from Content-Length alone."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"X-Hub-Signature-256: sha256={'0' * 64}\r\n"
        f"Content-Length: {META_BODY_LIMIT + 1}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    reply = raw_exchange(live_app, head)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert time.monotonic() - started < 2


# -- what must be accepted -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "conversation"),
    [
        ("meta_unknown_type", "16505551234"),
        ("meta_reaction_removed", "16505551234"),
        ("meta_text_bsuid_only", "US.13491208655302741918"),
        ("meta_text_phone_and_bsuid", None),
        ("meta_unsupported", None),
        ("meta_system", None),
        ("meta_order", None),
        ("meta_contacts", None),
        ("meta_location", None),
        ("meta_sticker", None),
        ("meta_voice", None),
    ],
)
def test_every_kind_of_message_is_accepted(
    client: Client,
    redis_client: redis.Redis,
    acme: WaTenant,
    name: str,
    conversation: str | None,
) -> None:
    body = sample(name, acme.phone)
    result = post(client, encode(body), acme.app_secret)
    assert result.status_code == 200, result.text
    [work] = stored(redis_client)
    element = body["entry"][0]["changes"][0]["value"]["messages"][0]
    assert work.kind == "wa.message"
    assert work.payload["element"] == element
    assert work.conversation
    if conversation is not None:
        assert work.conversation == conversation


def test_reaction_removal_has_no_emoji_and_is_stored_as_sent(
    client: Client, redis_client: redis.Redis, acme: WaTenant
) -> None:
    body = sample("meta_reaction_removed", acme.phone)
    assert post(client, encode(body), acme.app_secret).status_code == 200
    [work] = stored(redis_client)
    assert work.payload["element"]["type"] == "reaction"
    assert "emoji" not in work.payload["element"]["reaction"]
    assert work.payload["element"]["reaction"]["message_id"].startswith("wamid.")


def test_bsuid_only_users_are_keyed_by_their_bsuid(
    client: Client, redis_client: redis.Redis, acme: WaTenant
) -> None:
    body = sample("meta_text_bsuid_only", acme.phone)
    assert post(client, encode(body), acme.app_secret).status_code == 200
    [work] = stored(redis_client)
    assert "from" not in work.payload["element"]
    assert work.conversation == "US.13491208655302741918"
    assert work.payload["contact"]["user_id"] == "US.13491208655302741918"


@pytest.mark.parametrize("timestamp", ["1749416383", 1749416383, "1749416383.5", " 17 ", ""])
def test_timestamps_as_strings_or_numbers_are_accepted(
    client: Client, redis_client: redis.Redis, acme: WaTenant, timestamp: Any
) -> None:
    body = sample("meta_text", acme.phone)
    message = body["entry"][0]["changes"][0]["value"]["messages"][0]
    message["timestamp"] = timestamp
    status = sample("meta_status_read", acme.phone)["entry"][0]["changes"][0]["value"]
    status["statuses"][0]["timestamp"] = timestamp
    body["entry"][0]["changes"].append({"field": "messages", "value": status})
    result = post(client, encode(body), acme.app_secret)
    assert (result.status_code, result.json["accepted"]) == (200, 2)
    works = stored(redis_client)
    assert [w.payload["element"]["timestamp"] for w in works] == [timestamp, timestamp]


def test_duplicate_deliveries_are_200_counted_and_stored_once(
    client: Client, redis_client: redis.Redis, acme: WaTenant
) -> None:
    raw = encode(sample("meta_text", acme.phone))
    duplicates = counter("interlink_items_duplicate_total")
    first = post(client, raw, acme.app_secret)
    assert (first.status_code, first.json) == (200, {"accepted": 1, "duplicates": 0})
    second = post(client, raw, acme.app_secret)
    assert (second.status_code, second.json) == (200, {"accepted": 0, "duplicates": 1})
    # A redelivery through the other URL, re-serialised by Meta differently: still a duplicate.
    third = encode(json.loads(raw))
    again = post(
        client,
        json.dumps(json.loads(third), indent=1).encode(),
        acme.app_secret,
        path=f"{HOOK}/acme",
    )
    assert (again.status_code, again.json) == (200, {"accepted": 0, "duplicates": 1})
    assert redis_client.xlen(keys.inbox(0)) == 1
    assert counter("interlink_items_duplicate_total") == duplicates + 2


def test_the_same_wamid_for_two_tenants_is_two_items(
    client: Client, redis_client: redis.Redis, acme: WaTenant, globex: WaTenant
) -> None:
    assert post(client, encode(sample("meta_text", acme.phone)), acme.app_secret).status_code == 200
    result = post(client, encode(sample("meta_text", globex.phone)), globex.app_secret)
    assert result.json == {"accepted": 1, "duplicates": 0}
    assert [w.tenant_id for w in stored(redis_client)] == ["acme", "globex"]


def _batch(phone: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """3 entries x 2 changes x (3 messages + 2 statuses), and the (kind, id) of each in order."""
    entries, expected = [], []
    for e in range(3):
        changes = []
        for c in range(2):
            messages = [
                {
                    "from": f"1650555{e}{c}{m:02d}",
                    "id": f"wamid.E{e}C{c}M{m}",
                    "timestamp": str(1749416383 + m),
                    "type": "text",
                    "text": {"body": f"entry {e} change {c} message {m}"},
                }
                for m in range(3)
            ]
            statuses = [
                {
                    "id": f"wamid.OUT.E{e}C{c}S{s}",
                    "status": "delivered" if s == 0 else "read",
                    "timestamp": 1749416390 + s,
                    "recipient_id": f"1650555{e}{c}00",
                }
                for s in range(2)
            ]
            changes.append(
                {
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "15550783881",
                            "phone_number_id": phone,
                        },
                        "contacts": [
                            {"profile": {"name": f"U{e}{c}"}, "wa_id": f"1650555{e}{c}00"}
                        ],
                        "messages": messages,
                        "statuses": statuses,
                    },
                }
            )
            expected += [("wa.message", m["id"]) for m in messages]
            expected += [("wa.status", str(s["id"])) for s in statuses]
        entries.append({"id": f"WABA{e}", "changes": changes})
    return {"object": "whatsapp_business_account", "entry": entries}, expected


@pytest.mark.parametrize("path", [HOOK, f"{HOOK}/acme"])
def test_a_batch_is_stored_whole_and_in_order(
    client: Client, redis_client: redis.Redis, acme: WaTenant, path: str
) -> None:
    body, expected = _batch(acme.phone)
    result = post(client, encode(body), acme.app_secret, path=path)
    assert (result.status_code, result.json) == (200, {"accepted": 30, "duplicates": 0})
    works = stored(redis_client)
    assert [(w.kind, w.payload["element"]["id"]) for w in works] == expected
    assert {w.tenant_id for w in works} == {"acme"}
    assert works[0].payload["waba_id"] == "WABA0" and works[-1].payload["waba_id"] == "WABA2"
    # Delivered again: every item is recognised, none is added.
    again = post(client, encode(body), acme.app_secret, path=path)
    assert again.json == {"accepted": 0, "duplicates": 30}
    assert redis_client.xlen(keys.inbox(0)) == 30


def test_a_batch_of_a_thousand_updates(
    client: Client, redis_client: redis.Redis, acme: WaTenant
) -> None:
    body = sample("meta_text", acme.phone)
    value = body["entry"][0]["changes"][0]["value"]
    template = value["messages"][0]
    value["messages"] = [{**template, "id": f"wamid.{i}"} for i in range(1000)]
    result = post(client, encode(body), acme.app_secret)
    assert result.json == {"accepted": 1000, "duplicates": 0}
    assert [w.payload["element"]["id"] for w in stored(redis_client)] == [
        f"wamid.{i}" for i in range(1000)
    ]


# -- values a store cannot take as they are ------------------------------------------------------
def test_values_msgpack_cannot_pack_do_not_stall_the_inbox(
    client: Client, redis_client: redis.Redis, acme: WaTenant
) -> None:
    """A signed body with an integer beyond 64 bits, or a lone surrogate in a string, is stored
    (made storable), fast, and a request accepted at the same moment is not dragged down."""
    poison = sample("meta_text", acme.phone)
    message = poison["entry"][0]["changes"][0]["value"]["messages"][0]
    message["timestamp"] = 10**30
    message["text"]["body"] = "broken \ud800 text"
    message["from"] = "1650\udfff5551234"
    message["id"] = "wamid.POISON\ud800"
    innocent = sample("meta_reaction", acme.phone)
    results: dict[str, falcon.testing.Result] = {}

    def send(name: str, body: dict[str, Any]) -> None:
        results[name] = post(client, encode(body), acme.app_secret)

    started = time.monotonic()
    gevent.joinall([gevent.spawn(send, "poison", poison), gevent.spawn(send, "innocent", innocent)])
    assert time.monotonic() - started < 2
    assert results["innocent"].status_code == 200
    assert results["poison"].status_code == 200, results["poison"].text
    works = {w.payload["element"]["type"]: w for w in stored(redis_client)}
    assert set(works) == {"text", "reaction"}
    text = works["text"].payload["element"]
    assert text["text"]["body"] == "broken \ufffd text"
    assert str(text["timestamp"]) == str(10**30)
    # Redelivered: the made-storable item is recognised as the same one.
    assert post(client, encode(poison), acme.app_secret).json == {"accepted": 0, "duplicates": 1}


# -- nothing a signed sender writes is a 500 ------------------------------------------------------
JUNK: list[Any] = [None, True, -1, 10**30, 1.5, "", "\ud800", [], {}, "x" * 5000, [None, 1, "a"]]


@pytest.mark.parametrize("name", ["meta_text", "meta_status_failed", "meta_image"])
def test_no_junk_anywhere_in_a_signed_body_is_a_500(
    client: Client, redis_client: redis.Redis, acme: WaTenant, name: str
) -> None:
    body = sample(name, acme.phone)
    seen: set[int] = set()
    for path in paths(body):
        for junk in JUNK:
            raw = encode(replaced(body, path, junk))
            for where in (HOOK, f"{HOOK}/acme"):
                result = post(client, raw, acme.app_secret, path=where)
                assert result.status_code in (200, 400, 403, 404), (path, junk, result.text)
                seen.add(result.status_code)
    assert {200, 400} <= seen
    assert all(w.tenant_id == "acme" for w in stored(redis_client))


# -- Redis down ----------------------------------------------------------------------------------
def assert_503(result: falcon.testing.Result) -> None:
    assert result.status_code == 503, result.text
    assert int(result.headers["retry-after"]) > 0


def test_redis_down_is_503_with_retry_after(down: Services, acme: WaTenant) -> None:
    client = falcon.testing.TestClient(create_app(down))
    raw = encode(sample("meta_text", acme.phone))
    assert_503(post(client, raw, acme.app_secret))  # the phone number lookup
    assert_503(post(client, raw, acme.app_secret, path=f"{HOOK}/acme"))  # the tenant lookup
    assert_503(handshake(client, acme.verify_token, challenge="1"))  # the verify token lookup


def test_redis_down_after_the_lookups_is_503_with_retry_after(
    client: Client, services: Services, down: Services, redis_client: redis.Redis, acme: WaTenant
) -> None:
    """The directory still knows the tenant (cached), the store does not take the items."""
    raw = encode(sample("meta_text", acme.phone))
    warm = TenantDirectory(services.tenants)
    assert warm.by_phone(acme.phone) == "acme" and warm.config("acme") is not None
    down.directory = warm
    down.inbox.timeout = 2.0
    broken = falcon.testing.TestClient(create_app(down))
    assert_503(post(broken, raw, acme.app_secret))
    assert_503(post(broken, raw, acme.app_secret, path=f"{HOOK}/acme"))
    # The provider's retry, once Redis is back, is taken.
    assert post(client, raw, acme.app_secret).json == {"accepted": 1, "duplicates": 0}
    assert len(stored(redis_client)) == 1
