"""Webhook signatures, checked against HMACs computed here independently (hashlib/hmac/base64)."""

import base64
import hashlib
import hmac

import pytest

from interlink.security.signatures import (
    genesys_signature,
    meta_signature,
    verify_genesys,
    verify_meta,
)

SECRET = "app-secret-0123456789"
BODY = '{"object":"whatsapp_business_account","entry":[{"id":"1","name":"José @ café"}]}'.encode()


def independent_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def independent_b64(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def test_signatures_match_independent_hmacs() -> None:
    assert meta_signature(SECRET, BODY) == "sha256=" + independent_hex(SECRET, BODY)
    assert genesys_signature(SECRET, BODY) == "sha256=" + independent_b64(SECRET, BODY)


def test_known_vector() -> None:
    # RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
    digest = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert meta_signature("Jefe", b"what do ya want for nothing?") == "sha256=" + digest
    assert genesys_signature("Jefe", b"what do ya want for nothing?") == (
        "sha256=" + base64.b64encode(bytes.fromhex(digest)).decode()
    )


@pytest.mark.parametrize("length", [0, 1, 32, 63, 64, 65, 200])
def test_every_secret_length_matches_hmac(length: int) -> None:
    # Secrets longer than SHA-256's 64-byte block are hashed first (RFC 2104); the key pads are
    # cached per secret, so a second body under the same secret must not reuse the first's state.
    secret = ("s3cr\u00e9t-" * 30)[:length] or "x"
    for body in (b"", BODY, BODY * 100):
        assert meta_signature(secret, body) == "sha256=" + independent_hex(secret, body)
        assert verify_meta(secret, body, meta_signature(secret, body))


def test_verify_meta_accepts_its_own_format_with_tolerances() -> None:
    hexdigest = independent_hex(SECRET, BODY)
    assert verify_meta(SECRET, BODY, "sha256=" + hexdigest)
    assert verify_meta(SECRET, BODY, "  SHA256=" + hexdigest.upper() + " \r\n")
    assert verify_meta(SECRET, BODY, "Sha256=" + hexdigest)


def test_verify_genesys_accepts_its_own_format_with_tolerances() -> None:
    b64 = independent_b64(SECRET, BODY)
    assert verify_genesys(SECRET, BODY, "sha256=" + b64)
    assert verify_genesys(SECRET, BODY, " SHA256=" + b64 + "\n")


def test_each_verifier_refuses_the_other_encoding() -> None:
    assert not verify_meta(SECRET, BODY, "sha256=" + independent_b64(SECRET, BODY))
    assert not verify_genesys(SECRET, BODY, "sha256=" + independent_hex(SECRET, BODY))


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha1=" + "0" * 40,
        "0" * 64,
        "sha256=" + "0" * 64,
        "sha256=zz" + "0" * 62,
        "sha256=" + "0" * 63,
        "sha256=" + "0" * 66,
        "sha256=é" + "0" * 63,
    ],
)
def test_verify_meta_refuses_malformed_or_wrong(header: str | None) -> None:
    assert not verify_meta(SECRET, BODY, header)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha256=AAAA",
        "sha256=" + "A" * 43,
        "sha256=" + "A" * 43 + "=",
        "sha256=" + "!" * 44,
        "sha256=é" + "A" * 43,
    ],
)
def test_verify_genesys_refuses_malformed_or_wrong(header: str | None) -> None:
    assert not verify_genesys(SECRET, BODY, header)


def test_genesys_refuses_urlsafe_base64_and_missing_prefix() -> None:
    # Pick a body whose digest has '+' or '/' so that the URL-safe form differs.
    for n in range(200):
        body = BODY + str(n).encode()
        b64 = independent_b64(SECRET, body)
        if "+" in b64 or "/" in b64:
            break
    urlsafe = b64.replace("+", "-").replace("/", "_")
    assert not verify_genesys(SECRET, body, "sha256=" + urlsafe)
    assert not verify_genesys(SECRET, body, b64)
    assert not verify_meta(SECRET, body, independent_hex(SECRET, body))


def test_wrong_secret_body_or_empty_secret() -> None:
    good_meta = meta_signature(SECRET, BODY)
    good_genesys = genesys_signature(SECRET, BODY)
    assert not verify_meta("other-secret", BODY, good_meta)
    assert not verify_meta(SECRET, BODY + b" ", good_meta)
    assert not verify_genesys("other-secret", BODY, good_genesys)
    assert not verify_genesys(SECRET, BODY[:-1], good_genesys)
    assert not verify_meta("", BODY, meta_signature("", BODY))
    assert not verify_genesys("", BODY, genesys_signature("", BODY))


def test_non_string_header_is_false() -> None:
    assert not verify_meta(SECRET, BODY, 123)  # type: ignore[arg-type]
    assert not verify_genesys(SECRET, BODY, b"sha256=")  # type: ignore[arg-type]
