"""Secrets at rest: AES-GCM format, binding to tenant and field, rotation, no leaks."""

from __future__ import annotations

import base64
import secrets

import pytest

from interlink.security.secrets import (
    FORMAT_VERSION,
    CorruptSecret,
    MissingSecretKey,
    SecretBox,
    key_id,
)


def _raw(token: str) -> bytes:
    body = token.removeprefix("v1.")
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def test_round_trip_and_format() -> None:
    key = secrets.token_bytes(32)
    box = SecretBox([key])
    plaintext = secrets.token_urlsafe(24)
    token = box.encrypt(plaintext, tenant_id="acme", field="clientSecret")
    assert token.startswith("v1.")
    raw = _raw(token)
    assert raw[0] == FORMAT_VERSION
    assert raw[1:5] == key_id(key)
    assert plaintext not in token and plaintext.encode() not in raw
    assert box.decrypt(token, tenant_id="acme", field="clientSecret") == plaintext


def test_every_write_uses_a_fresh_nonce() -> None:
    box = SecretBox([secrets.token_bytes(32)])
    a = box.encrypt("same value here", tenant_id="t", field="f")
    b = box.encrypt("same value here", tenant_id="t", field="f")
    assert a != b


@pytest.mark.parametrize(
    ("tenant_id", "field"), [("other", "clientSecret"), ("acme", "webhookSecret")]
)
def test_a_ciphertext_is_bound_to_its_tenant_and_field(tenant_id: str, field: str) -> None:
    box = SecretBox([secrets.token_bytes(32)])
    token = box.encrypt("s3cret-value-123", tenant_id="acme", field="clientSecret")
    with pytest.raises(CorruptSecret) as caught:
        box.decrypt(token, tenant_id=tenant_id, field=field)
    assert "s3cret" not in str(caught.value)


def test_tampering_is_detected() -> None:
    box = SecretBox([secrets.token_bytes(32)])
    token = box.encrypt("s3cret-value-123", tenant_id="acme", field="f")
    raw = bytearray(_raw(token))
    raw[-1] ^= 1
    forged = "v1." + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(CorruptSecret):
        box.decrypt(forged, tenant_id="acme", field="f")


@pytest.mark.parametrize(
    "token",
    ["", "plain", "v1.", "v1.!!!!", "v1.AAAA", "v2.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
)
def test_garbage_is_refused_cleanly(token: str) -> None:
    box = SecretBox([secrets.token_bytes(32)])
    with pytest.raises(CorruptSecret):
        box.decrypt(token, tenant_id="acme", field="f")


def test_rotation_reads_with_any_key_and_writes_with_the_first() -> None:
    key_a, key_b = secrets.token_bytes(32), secrets.token_bytes(32)
    old = SecretBox([key_a]).encrypt("written-under-a", tenant_id="acme", field="f")
    rotated = SecretBox([key_b, key_a])
    assert rotated.decrypt(old, tenant_id="acme", field="f") == "written-under-a"
    assert rotated.needs_rewrap(old)
    new = rotated.encrypt("written-under-b", tenant_id="acme", field="f")
    assert _raw(new)[1:5] == key_id(key_b)
    assert not rotated.needs_rewrap(new)

    only_b = SecretBox([key_b])
    assert only_b.decrypt(new, tenant_id="acme", field="f") == "written-under-b"
    with pytest.raises(MissingSecretKey) as caught:
        only_b.decrypt(old, tenant_id="acme", field="f")
    message = str(caught.value)
    assert key_id(key_a).hex() in message and "INTERLINK_SECRET_KEY" in message
    assert "written-under-a" not in message


def test_bad_keys_are_refused_and_repr_shows_no_key() -> None:
    with pytest.raises(ValueError):
        SecretBox([])
    with pytest.raises(ValueError):
        SecretBox([b"short"])
    key = secrets.token_bytes(32)
    text = repr(SecretBox([key]))
    assert key.hex() not in text and base64.urlsafe_b64encode(key).decode()[:20] not in text
    assert "keys=1" in text
