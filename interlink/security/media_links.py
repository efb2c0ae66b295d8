"""Signed, expiring links through which Genesys fetches a WhatsApp user's attachment.

A link names one tenant and one Meta media id and carries its own expiry, all under an HMAC made
with a key derived from the master secret key, so the link alone is the capability: no other
credential, nothing stored, and nothing about it can be changed without breaking the signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass

import msgpack

DEFAULT_LIFETIME = 7 * 24 * 3600  # Meta keeps inbound media ids for 7 days
_CONTEXT = b"interlink/media-link/v1"
_URLSAFE = re.compile(r"[A-Za-z0-9_-]*")


class InvalidLink(Exception):
    """Forged, truncated, expired or for another key: the reason stays in logs, not in replies."""


@dataclass(frozen=True, slots=True)
class MediaLink:
    tenant_id: str
    media_id: str
    mime: str
    filename: str
    expires_at: int


def _key(master: bytes) -> bytes:
    return hmac.new(master, _CONTEXT, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """Strict: only the URL-safe alphabet, no padding, and the one encoding ``_b64`` makes of
    those bytes (base64 decoders skip foreign characters and ignore a last character's unused
    bits, so otherwise several tokens would stand for one link)."""
    if not _URLSAFE.fullmatch(text):
        raise ValueError("not URL-safe base64")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not the canonical encoding")
    return data


def sign(link: MediaLink, master_keys: tuple[bytes, ...]) -> str:
    """The token for ``link``, signed with the newest master key."""
    payload = msgpack.packb(
        [link.tenant_id, link.media_id, link.mime, link.filename, link.expires_at],
        use_bin_type=True,
    )
    mac = hmac.new(_key(master_keys[0]), payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def make(
    tenant_id: str,
    media_id: str,
    master_keys: tuple[bytes, ...],
    *,
    mime: str = "",
    filename: str = "",
    lifetime: int = DEFAULT_LIFETIME,
    now: float | None = None,
) -> str:
    expires_at = int((time.time() if now is None else now) + lifetime)
    return sign(MediaLink(tenant_id, media_id, mime, filename, expires_at), master_keys)


def verify(token: str, master_keys: tuple[bytes, ...], *, now: float | None = None) -> MediaLink:
    """The link a token stands for, or InvalidLink. Any of the master keys may have signed it
    (key rotation keeps links issued before it working until they expire)."""
    if len(token) > 2048 or token.count(".") != 1:
        raise InvalidLink("malformed")
    encoded, _, encoded_mac = token.partition(".")
    try:
        payload, mac = _unb64(encoded), _unb64(encoded_mac)
    except ValueError:
        raise InvalidLink("malformed") from None
    if not any(
        hmac.compare_digest(mac, hmac.new(_key(k), payload, hashlib.sha256).digest())
        for k in master_keys
    ):
        raise InvalidLink("bad signature")
    try:
        tenant_id, media_id, mime, filename, expires_at = msgpack.unpackb(payload, raw=False)
        link = MediaLink(str(tenant_id), str(media_id), str(mime), str(filename), int(expires_at))
    except (ValueError, TypeError, msgpack.UnpackException):
        raise InvalidLink("malformed") from None
    if link.expires_at < (time.time() if now is None else now):
        raise InvalidLink("expired")
    return link
