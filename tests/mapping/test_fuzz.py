"""Property-based fuzzing of the hostile edges (issue 13): real sample payloads with leaves and
subtrees replaced by what hypothesis makes (huge digit strings, wrong types, deep nesting, lone
surrogates and other unicode). The pure mappers may refuse only with their documented refusal
(MappingError, MediaRejected being one); the two webhooks never answer 500, signed or not.

Derandomized: the same examples every run, so CI is deterministic.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import falcon.testing
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlink.mapping import identity
from interlink.mapping.genesys_webhook import genesys_route, parse_genesys_notification
from interlink.mapping.inbound import InboundOptions, to_genesys_inbound
from interlink.mapping.meta_webhook import read_meta_webhook
from interlink.mapping.outbound import to_meta_sends
from interlink.mapping.receipts import failure_reasons, next_receipt
from interlink.mapping.wire import MappingError, unix_seconds
from interlink.security.signatures import genesys_signature, meta_signature
from interlink.services import Services
from tests.support.fuzz import paths, replaced

PAYLOADS = Path(__file__).parents[1] / "support" / "payloads"
SAMPLE_NUMBER = "106540352242922"
SAMPLE_INTEGRATION = "3c1a52e4-6f0b-4b4e-9a2f-1d2e3f4a5b6c"
META_SAMPLES = sorted(p.stem for p in PAYLOADS.glob("meta_*.json"))
GENESYS_SAMPLES = sorted(p.stem for p in PAYLOADS.glob("genesys_*.json"))

FAST = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
HTTP = settings(FAST, max_examples=150)


def load(name: str) -> Any:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


# -- what replaces a place of a payload ----------------------------------------------------------
digits = st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**17, max_value=10**4000),  # JSON carries up to 4,300 digits
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=3),
    digits,
    st.sampled_from(["", " ", "0", "-1", "1e999", "\uff11\uff12\uff13", "²", "\u0000", "x" * 5000]),
)
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
deep = st.integers(min_value=1, max_value=200).map(lambda n: json.loads("[" * n + "]" * n))


huge_digits = st.sampled_from([19, 4300, 4301, 5000]).map(lambda n: "9" * n)


def _leaves(body: Any) -> list[tuple[Any, ...]]:
    return [path for path in paths(body) if not isinstance(_at(body, path), dict | list)]


def _at(body: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        body = body[step]
    return body


@st.composite
def mutated(draw: st.DrawFn, samples: list[str]) -> Any:
    """A sample payload with one to three of its places replaced: half the time a leaf by a
    number string past the limits (times, sizes and codes are leaves), else any place by junk."""
    body = load(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        if draw(st.booleans()):
            place, value = draw(st.sampled_from(_leaves(body) or [()])), draw(huge_digits)
        else:
            place, value = draw(st.sampled_from(list(paths(body)))), draw(st.one_of(junk, deep))
        body = replaced(body, place, value)
    return body


# -- the pure mappers ----------------------------------------------------------------------------
def _inbound(element: Any, contact: Any, number: str) -> None:
    ids = identity.identifiers_of_message(element, contact)
    participant = identity.participant_id(ids.phone, ids.bsuid, None)
    to_genesys_inbound(
        element,
        contact,
        phone_number_id=number,
        participant=identity.genesys_participant(participant, ids.name),
        media_url_for=lambda ref: f"https://interlink.example/media/{ref.media_id[:20]}",
        options=InboundOptions(),
    )


def _status(element: Any, contact: Any) -> None:
    identity.identifiers_of_status(element, contact)
    next_receipt(None, str(element.get("status")))
    unix_seconds(element.get("timestamp"), "status.timestamp")
    failure_reasons(element)


def _each(call: Any, *args: Any) -> None:
    """One item's refusal is that item's: the next item is still tried."""
    try:
        call(*args)
    except MappingError:
        pass


@FAST
@given(body=mutated(META_SAMPLES))
def test_meta_mapping_refuses_only_with_mapping_error(body: Any) -> None:
    try:
        webhook = read_meta_webhook(body)
        updates = webhook.updates()
    except MappingError:
        return
    for update in updates:
        update.as_payload()
        assert update.user_key is None or isinstance(update.user_key, str)
        if update.kind == "message":
            _each(_inbound, update.element, update.contact, update.phone_number_id)
        elif update.kind == "status":
            _each(_status, update.element, update.contact)


@FAST
@given(body=mutated(GENESYS_SAMPLES))
def test_genesys_mapping_refuses_only_with_mapping_error(body: Any) -> None:
    _each(genesys_route, body)
    try:
        notification = parse_genesys_notification(body)
    except MappingError:
        return
    for recipient in ("+16505551234", "US.13491208655302741918"):
        _each(lambda r: to_meta_sends(notification, recipient=r, callback_data="gc-1"), recipient)


@st.composite
def one_huge_leaf(draw: st.DrawFn, samples: list[str]) -> Any:
    """A sample payload with exactly one leaf replaced by a digit string past the limits: the
    shape of a 4,301-digit ``contentSizeBytes`` or a 5,000-digit ``timestamp`` (past ``int()``'s
    digit limit), every leaf of every sample in reach."""
    body = load(draw(st.sampled_from(samples)))
    return replaced(body, draw(st.sampled_from(_leaves(body))), draw(huge_digits))


@FAST
@given(body=one_huge_leaf(META_SAMPLES))
def test_one_huge_number_in_a_meta_payload_is_a_mapping_error_at_most(body: Any) -> None:
    test_meta_mapping_refuses_only_with_mapping_error.hypothesis.inner_test(body)  # type: ignore[attr-defined]


@FAST
@given(body=one_huge_leaf(GENESYS_SAMPLES))
def test_one_huge_number_in_a_genesys_payload_is_a_mapping_error_at_most(body: Any) -> None:
    test_genesys_mapping_refuses_only_with_mapping_error.hypothesis.inner_test(body)  # type: ignore[attr-defined]


@FAST
@given(value=st.one_of(junk, digits))
def test_numbers_are_read_within_bounds(value: Any) -> None:
    from interlink.mapping.wire import unix_seconds, whole_number

    for read in (whole_number, unix_seconds):
        try:
            number = read(value, "field")
        except MappingError:
            continue
        assert abs(number) < 10**18


# -- the two webhooks ----------------------------------------------------------------------------
@pytest.fixture
def tenant(services: Services) -> dict[str, str]:
    secrets_of = {
        "app_secret": secrets.token_hex(16),
        "webhook_secret": secrets.token_urlsafe(24),
    }
    services.tenants.create("acme", name="Acme")
    services.tenants.set_whatsapp(
        "acme",
        access_token="EAA" + secrets.token_urlsafe(32),
        phone_number_id=SAMPLE_NUMBER,
        business_account_id="102290129340398",
        app_secret=secrets_of["app_secret"],
        verify_token=secrets.token_urlsafe(16),
    )
    services.tenants.set_genesys(
        "acme",
        client_id="client-acme",
        client_secret=secrets.token_urlsafe(32),
        region="mypurecloud.ie",
        integration_id=SAMPLE_INTEGRATION,
        webhook_secret=secrets_of["webhook_secret"],
    )
    return secrets_of


def _answer(client: falcon.testing.TestClient, path: str, raw: bytes, signature: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    result = client.simulate_post(path, body=raw, headers=headers)
    assert result.status_code != 500, result.text
    assert result.status_code < 500 or result.status_code == 503, result.text
    return result.status_code


# Per route: how a provider signs, with which of the tenant's secrets, and what an unsigned body
# may get (200 on Meta's: a body naming no number at all is acknowledged and ignored).
ROUTES: dict[str, tuple[Callable[[str, bytes], str], str, tuple[int, ...]]] = {
    "whatsapp": (meta_signature, "app_secret", (200, 400, 401, 403, 404)),
    "genesys": (genesys_signature, "webhook_secret", (400, 401, 404)),
}


def _post_fuzzed(
    client: falcon.testing.TestClient,
    tenant: dict[str, str],
    route: str,
    body: Any,
    signed: bool,
    with_path: bool,
) -> None:
    sign, secret, unsigned_statuses = ROUTES[route]
    raw = json.dumps(body).encode()
    path = f"/webhooks/{route}/acme" if with_path else f"/webhooks/{route}"
    status = _answer(client, path, raw, sign(tenant[secret], raw) if signed else None)
    if not signed:
        assert status in unsigned_statuses, status


@HTTP
@given(
    body=one_huge_leaf(META_SAMPLES) | mutated(META_SAMPLES),
    signed=st.booleans(),
    with_path=st.booleans(),
)
def test_the_meta_webhook_never_answers_500(
    client: falcon.testing.TestClient,
    tenant: dict[str, str],
    body: Any,
    signed: bool,
    with_path: bool,
) -> None:
    _post_fuzzed(client, tenant, "whatsapp", body, signed, with_path)


@HTTP
@given(
    body=one_huge_leaf(GENESYS_SAMPLES) | mutated(GENESYS_SAMPLES),
    signed=st.booleans(),
    with_path=st.booleans(),
)
def test_the_genesys_webhook_never_answers_500(
    client: falcon.testing.TestClient,
    tenant: dict[str, str],
    body: Any,
    signed: bool,
    with_path: bool,
) -> None:
    _post_fuzzed(client, tenant, "genesys", body, signed, with_path)


@HTTP
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode), signed=st.booleans())
def test_arbitrary_bytes_never_make_a_500(
    client: falcon.testing.TestClient, tenant: dict[str, str], raw: bytes, signed: bool
) -> None:
    _answer(
        client,
        "/webhooks/whatsapp",
        raw,
        meta_signature(tenant["app_secret"], raw) if signed else None,
    )
    _answer(
        client,
        "/webhooks/genesys",
        raw,
        genesys_signature(tenant["webhook_secret"], raw) if signed else None,
    )
