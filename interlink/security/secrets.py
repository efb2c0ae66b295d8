"""Secrets at rest: AES-256-GCM under the master key(s), each ciphertext bound to its tenant and field.

Format of one stored secret (text, so it fits in a JSON record)::

    "v1." + base64url( 0x01 | key id (4 bytes) | nonce (12 bytes) | ciphertext + tag (16 bytes) )

- The first byte is the format version; the key id is derived from the key itself, so the keys may
  be listed in any order and a reader knows at once which key it needs.
- Associated data = the header bytes + tenant id + field name: a ciphertext copied into another
  tenant's record (or into another field of the same tenant) fails authentication instead of
  handing one tenant's secret to another.
- Rotation (``INTERLINK_SECRET_KEY=new,old``): the first key encrypts every new write; any listed
  key decrypts. A ciphertext whose key is no longer listed raises :class:`MissingSecretKey`, whose
  message names the key id and the fix, and never the secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT_VERSION = 1
PREFIX = "v1."
KEY_BYTES = 32
KEY_ID_BYTES = 4
# Random per write: safe far beyond any realistic count of writes (GCM's limit is ~2**32 per key).
NONCE_BYTES = 12
HEADER_BYTES = 1 + KEY_ID_BYTES
_AAD_LABEL = b"interlink/secret/v1\x00"


class SecretError(Exception):
    """A stored secret cannot be read. Messages name tenants, fields and key ids, never values."""


class MissingSecretKey(SecretError):
    """The secret was written under a master key that is not configured any more."""


class CorruptSecret(SecretError):
    """Malformed, tampered with, or bound to another tenant or field."""


def key_id(key: bytes) -> bytes:
    """A short public fingerprint of a master key (HMAC of a constant: reveals nothing of it)."""
    return hmac.new(key, b"interlink key id", hashlib.sha256).digest()[:KEY_ID_BYTES]


def sha256_hex(value: str) -> str:
    """For values looked up by equality but never shown (verify tokens, API keys)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _aad(header: bytes, tenant_id: str, field: str) -> bytes:
    return _AAD_LABEL + header + tenant_id.encode() + b"\x00" + field.encode()


class SecretBox:
    """Encrypts and decrypts tenant secrets with the configured master keys (first one writes)."""

    __slots__ = ("_ciphers", "_write_id")

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one master key is needed (INTERLINK_SECRET_KEY)")
        if any(len(k) != KEY_BYTES for k in keys):
            raise ValueError(f"every master key must be {KEY_BYTES} bytes")
        self._ciphers = {key_id(k): AESGCM(k) for k in reversed(keys)}
        self._write_id = key_id(keys[0])

    def __repr__(self) -> str:
        return f"SecretBox(keys={len(self._ciphers)}, write_key_id={self._write_id.hex()})"

    @property
    def write_key_id(self) -> str:
        return self._write_id.hex()

    def encrypt(self, plaintext: str, *, tenant_id: str, field: str) -> str:
        header = bytes([FORMAT_VERSION]) + self._write_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._write_id].encrypt(
            nonce, plaintext.encode("utf-8"), _aad(header, tenant_id, field)
        )
        text = base64.urlsafe_b64encode(header + nonce + sealed).decode("ascii")
        return PREFIX + text.rstrip("=")

    def decrypt(self, token: str, *, tenant_id: str, field: str) -> str:
        raw = _decode(token, tenant_id, field)
        header = raw[:HEADER_BYTES]
        nonce = raw[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES]
        sealed = raw[HEADER_BYTES + NONCE_BYTES :]
        cipher = self._ciphers.get(header[1:])
        if cipher is None:
            raise MissingSecretKey(
                f"{field} of tenant {tenant_id} was encrypted with master key {header[1:].hex()}, "
                "which is not configured; list it after the new key in INTERLINK_SECRET_KEY (new,old)"
            )
        try:
            return cipher.decrypt(nonce, sealed, _aad(header, tenant_id, field)).decode("utf-8")
        except (InvalidTag, UnicodeDecodeError):
            raise CorruptSecret(
                f"{field} of tenant {tenant_id} does not authenticate (tampered, or copied from "
                "another tenant or field)"
            ) from None

    def needs_rewrap(self, token: str) -> bool:
        """True when ``token`` was written with a key other than the current write key."""
        try:
            raw = _decode(token, "", "")
        except CorruptSecret:
            return False
        return raw[1:HEADER_BYTES] != self._write_id


def _decode(token: str, tenant_id: str, field: str) -> bytes:
    if not isinstance(token, str) or not token.startswith(PREFIX):
        raise CorruptSecret(f"{field} of tenant {tenant_id} is not in a known secret format")
    body = token[len(PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise CorruptSecret(f"{field} of tenant {tenant_id} is not valid base64") from None
    if len(raw) < HEADER_BYTES + NONCE_BYTES + 16 or raw[0] != FORMAT_VERSION:
        raise CorruptSecret(f"{field} of tenant {tenant_id} has an unknown secret format")
    return raw
