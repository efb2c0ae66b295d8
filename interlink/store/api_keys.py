"""Tenant-scoped API keys: issued once, stored as a sha256 only, checked in one round trip.

A key reads ``ilk_<keyId>_<secret>``: ``keyId`` is 16 hex digits naming the hash ``api_key(keyId)``
(``tenantId``, ``sha256``, ``createdAt``); ``tenant_api_keys(id)`` is the set of a tenant's key
ids, so deleting the tenant deletes its keys in the same step (see ``tenant_delete.lua``).

API keys are access, not configuration: issuing or revoking one does not bump the tenant's
version nor publish an event.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from dataclasses import dataclass

import redis

from interlink.security.secrets import sha256_hex
from interlink.store import keys
from interlink.store.tenants import TenantNotFound, as_text, lua, now

log = logging.getLogger(__name__)

API_KEY_PREFIX = "ilk_"
_API_KEY = re.compile(r"ilk_([0-9a-f]{16})_[A-Za-z0-9_-]{43}")
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_ISSUE = lua("api_key_issue.lua")
_REVOKE = lua("api_key_revoke.lua")


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key_id: str
    key: str

    def __repr__(self) -> str:
        return f"IssuedKey(key_id={self.key_id!r}, key='****')"


class ApiKeys:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._issue = client.register_script(_ISSUE)
        self._revoke = client.register_script(_REVOKE)

    def issue_key(self, tenant_id: str) -> IssuedKey:
        """A new key for the tenant, shown this once; TenantNotFound if it does not exist."""
        key_id = secrets.token_hex(8)
        key = f"{API_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        done = self._issue(
            keys=[keys.tenant(tenant_id), keys.tenant_api_keys(tenant_id), keys.api_key(key_id)],
            args=[tenant_id, key_id, sha256_hex(key), now()],
        )
        if not done:
            raise TenantNotFound(f"tenant {tenant_id} does not exist")
        log.info("api key issued", extra={"tenant": tenant_id, "keyId": key_id})
        return IssuedKey(key_id, key)

    def revoke_key(self, tenant_id: str, key_id: str) -> bool:
        """False when the key does not exist or belongs to another tenant."""
        if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
            return False
        done = self._revoke(
            keys=[keys.api_key(key_id), keys.tenant_api_keys(tenant_id)], args=[tenant_id, key_id]
        )
        if done:
            log.info("api key revoked", extra={"tenant": tenant_id, "keyId": key_id})
        return bool(done)

    def check_key(self, key: str) -> str | None:
        """The tenant a key belongs to, or None (unknown, revoked, or its tenant deleted)."""
        match = _API_KEY.fullmatch(key) if isinstance(key, str) else None
        if match is None:
            return None
        tenant_id, digest = self.redis.hmget(keys.api_key(match.group(1)), ["tenantId", "sha256"])
        if tenant_id is None or digest is None:
            return None
        if not hmac.compare_digest(as_text(digest), sha256_hex(key)):
            return None
        return as_text(tenant_id)
