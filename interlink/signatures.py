"""Webhook signatures of Meta and Genesys: same header name, different encodings.

Both providers send ``X-Hub-Signature-256: sha256=<HMAC-SHA256(secret, raw body)>``, but Meta
writes the digest in lowercase **hex** and Genesys in **base64** (reference/whatsapp.md §2.2,
reference/genesys.md §3.3). The two verifiers are separate on purpose: a verifier that accepted
either encoding would make one provider's format valid at the other's door.

Verifiers hash the raw bytes as received (never re-serialised JSON), compare digests in constant
time, and are tolerant only of what does not change the value: surrounding whitespace, the case of
the ``sha256=`` prefix and, for hex, the case of the digits. Anything else — a missing prefix, the
other provider's encoding, padding errors, an empty secret — is simply ``False``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

_PREFIX = "sha256="
_DIGEST_SIZE = hashlib.sha256().digest_size


def _digest(secret: str, body: bytes) -> bytes:
    return hmac.digest(secret.encode(), body, "sha256")  # one-shot: OpenSSL, no HMAC object


def meta_signature(secret: str, body: bytes) -> str:
    """The header value Meta sends for ``body`` signed with the app secret: ``sha256=<hex>``."""
    return _PREFIX + _digest(secret, body).hex()


def genesys_signature(secret: str, body: bytes) -> str:
    """The header value Genesys sends for ``body`` signed with the webhook secret: ``sha256=<base64>``."""
    return _PREFIX + base64.b64encode(_digest(secret, body)).decode("ascii")


def _claimed_value(header: object) -> str | None:
    """The part after ``sha256=``, or None when the header is absent or not of that form."""
    if not isinstance(header, str):
        return None
    value = header.strip()
    if value[: len(_PREFIX)].lower() != _PREFIX:
        return None
    return value[len(_PREFIX) :].strip()


def verify_meta(secret: str, body: bytes, header: str | None) -> bool:
    """True when ``header`` is Meta's hex signature of ``body`` under ``secret``.

    Base64, a truncated digest or a missing ``sha256=`` prefix is False. An empty secret is False
    (an unconfigured tenant must not accept payloads anyone can sign).
    """
    claimed = _claimed_value(header)
    if not secret or claimed is None or len(claimed) != 2 * _DIGEST_SIZE:
        return False
    try:
        claimed_digest = bytes.fromhex(claimed)
    except ValueError:
        return False
    return hmac.compare_digest(claimed_digest, _digest(secret, body))


def verify_genesys(secret: str, body: bytes, header: str | None) -> bool:
    """True when ``header`` is Genesys's base64 signature of ``body`` under ``secret``.

    Strict standard base64 with padding (``validate=True``): hex, URL-safe base64 or a missing
    ``sha256=`` prefix is False. An empty secret is False.
    """
    claimed = _claimed_value(header)
    if not secret or claimed is None or not claimed.isascii():
        return False
    try:
        claimed_digest = base64.b64decode(claimed, validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(claimed_digest) != _DIGEST_SIZE:
        return False
    return hmac.compare_digest(claimed_digest, _digest(secret, body))
