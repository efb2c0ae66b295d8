"""Webhook signatures of Meta and Genesys: same header name, different encodings.

Both providers send ``X-Hub-Signature-256: sha256=<HMAC-SHA256(secret, raw body)>``, but Meta
writes the digest in lowercase **hex** and Genesys in **base64** (Meta's
``webhooks/create-webhook-endpoint`` page under
https://developers.facebook.com/documentation/business-messaging/whatsapp/, and
https://developer.genesys.cloud/commdigital/digital/openmessaging/validate). The two verifiers
are separate on purpose: a verifier that accepted either encoding would make one provider's
format valid at the other's door.

Verifiers hash the raw bytes as received (never re-serialised JSON), compare digests in constant
time, and are tolerant only of what does not change the value: surrounding whitespace, the case of
the ``sha256=`` prefix and, for hex, the case of the digits. Anything else — a missing prefix, the
other provider's encoding, padding errors, an empty secret — is simply ``False``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
from typing import Any

_PREFIX = "sha256="
_DIGEST_SIZE = hashlib.sha256().digest_size


_BLOCK = hashlib.sha256().block_size
_INNER_PAD = bytes(x ^ 0x36 for x in range(256))
_OUTER_PAD = bytes(x ^ 0x5C for x in range(256))
_CACHED_KEYS = 16_384  # above the tenants one shard serves; a few hundred bytes each


@functools.lru_cache(maxsize=_CACHED_KEYS)
def _keyed(secret: str) -> tuple[Any, Any]:
    """The SHA-256 states after HMAC's inner and outer key pads (RFC 2104 §2), once per secret:
    a signature then costs two hash updates instead of setting up an HMAC each time."""
    key = secret.encode()
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return hashlib.sha256(key.translate(_INNER_PAD)), hashlib.sha256(key.translate(_OUTER_PAD))


def forget_secrets() -> None:
    """Drop the cached key pads: they are derived from secrets, and one may have been rotated or
    its tenant deleted (called whenever the tenant directory forgets a tenant)."""
    _keyed.cache_clear()


def _digest(secret: str, body: bytes) -> bytes:
    """HMAC-SHA256 of ``body`` under ``secret``."""
    inner_start, outer_start = _keyed(secret)
    inner = inner_start.copy()
    inner.update(body)
    outer = outer_start.copy()
    outer.update(inner.digest())
    digest: bytes = outer.digest()
    return digest


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
