"""The tenant registry in Redis: records with encrypted secrets, lookup indexes, API keys, events.

Layout (key names in :mod:`interlink.store.keys`):

- ``tenant(id)``: a hash. Plain fields under their API names (``name``, ``genesysOrgId`` ...),
  ``version``, ``createdAt``/``updatedAt``, and two JSON sections ``genesys`` and ``whatsapp`` in
  which every secret is a :mod:`interlink.security.secrets` ciphertext bound to the tenant and field.
  ``ix:phone``, ``ix:integration`` and ``ix:verify`` remember what the tenant is indexed under.
- ``tenant_ids()``: sorted set of ids, all scored 0, so ``ZRANGEBYLEX`` pages through them.
- ``index_phone()``, ``index_integration()``, ``index_verify_token()``: hashes value -> tenant id
  (the verify index is keyed by the token's sha256, never the token).
- ``api_key(keyId)`` (hash ``tenantId``, ``sha256``, ``createdAt``) and ``tenant_api_keys(id)``.

Every write is one Lua script, so a record and its indexes change together: a reader never sees
half a change, concurrent writers are serialised by Redis (last write wins, each bumps ``version``
by exactly one), and the change event is published from inside the same step.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import re
import secrets as stdlib_secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from interlink.providers.pacing import META_MESSAGES_PER_SECOND
from interlink.security.secrets import SecretBox, sha256_hex
from interlink.store import keys
from interlink.tenancy.config import GenesysCredentials, TenantConfig, WhatsAppConfig, mask
from interlink.tenancy.regions import UnknownRegion, normalize_region

log = logging.getLogger(__name__)

TENANT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
# Provider ids: Meta phone number ids are digits, Genesys integration ids UUIDs. Anything that could
# act as a path or a key separator is refused.
PROVIDER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
# Ids that would collide with the literal routes /api/tenants/by-phone/... and /by-integration/...
RESERVED_TENANT_IDS = frozenset({"by-phone", "by-integration"})
MAX_TEXT = 256
MAX_SECRET = 4096
MIN_SECRET = 8  # the mask shows the last 4 characters: a shorter secret would be half shown
MIN_WEBHOOK_SECRET = 16  # Genesys: "longer than 15 characters"
DEFAULT_PAGE = 50
MAX_PAGE = 200

PLAIN_FIELDS = ("name", "genesysOrgId", "genesysOrgName", "genesysRegion")
# Per-tenant behaviour, with its default: the whole object is replaced by a PATCH of "settings".
SETTINGS: dict[str, object] = {
    "messagesPerSecond": META_MESSAGES_PER_SECOND,  # the business number's throughput
    "reactionsAsText": True,  # a user's reaction reaches the agent as a short text, else nothing
    # {"name", "language"} of an approved template with one body parameter: an agent's text
    # outside the 24-hour window goes out in it, instead of failing with MessageExpired.
    "fallbackTemplate": None,
}
_TEMPLATE_NAME = re.compile(r"[a-z0-9_]{1,512}")
_TEMPLATE_LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Za-z]{2,4})?")
MAX_MESSAGES_PER_SECOND = 1000  # Meta's highest throughput tier
GENESYS_SECRETS = ("clientSecret", "webhookSecret")
WHATSAPP_SECRETS = ("meta_access_token", "meta_app_secret", "webhook_verify_token")

CREATED, UPDATED, CREDENTIALS, DELETED = "created", "updated", "credentials", "deleted"
KEEP = "*"  # index argument meaning "leave this index as it is" (no valid id starts with "*")

# KEYS: record, ids, idx phone, idx integration, idx verify.
# ARGV: tenant, mode (create|update), kind, now, channel, phone, integration, verify, field/value...
# Index arguments: KEEP, "" (remove) or the new value. Conflicts are checked before any write.
_WRITE = """
local rec = KEYS[1]
local tenant, mode, kind, now, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local exists = redis.call('EXISTS', rec) == 1
if mode == 'create' and exists then return {'exists'} end
if mode == 'update' and not exists then return {'missing'} end
local fields = {'ix:phone', 'ix:integration', 'ix:verify'}
local names = {'phone', 'integration', 'verify'}
for i = 1, 3 do
  local new = ARGV[5 + i]
  if new ~= '*' and new ~= '' then
    local owner = redis.call('HGET', KEYS[2 + i], new)
    if owner and owner ~= tenant then return {'conflict', names[i]} end
  end
end
for i = 1, 3 do
  local new = ARGV[5 + i]
  if new ~= '*' then
    local old = redis.call('HGET', rec, fields[i])
    if old and old ~= new and redis.call('HGET', KEYS[2 + i], old) == tenant then
      redis.call('HDEL', KEYS[2 + i], old)
    end
    if new == '' then
      redis.call('HDEL', rec, fields[i])
    else
      redis.call('HSET', KEYS[2 + i], new, tenant)
      redis.call('HSET', rec, fields[i], new)
    end
  end
end
if #ARGV > 8 then redis.call('HSET', rec, unpack(ARGV, 9)) end
if mode == 'create' then
  redis.call('HSET', rec, 'tenantId', tenant, 'createdAt', now)
  redis.call('ZADD', KEYS[2], 0, tenant)
end
redis.call('HSET', rec, 'updatedAt', now)
local version = redis.call('HINCRBY', rec, 'version', 1)
redis.call('PUBLISH', channel, cjson.encode({tenantId = tenant, version = version, kind = kind}))
return {'ok', version}
"""

# KEYS: record, ids, idx phone, idx integration, idx verify, the tenant's key set.
# ARGV: tenant, channel, api key name prefix.
_DELETE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local fields = {'ix:phone', 'ix:integration', 'ix:verify'}
for i = 1, 3 do
  local old = redis.call('HGET', KEYS[1], fields[i])
  if old and redis.call('HGET', KEYS[2 + i], old) == ARGV[1] then
    redis.call('HDEL', KEYS[2 + i], old)
  end
end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[6])) do redis.call('DEL', ARGV[3] .. id) end
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0') + 1
redis.call('DEL', KEYS[1], KEYS[6])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[2], cjson.encode({tenantId = ARGV[1], version = version, kind = 'deleted'}))
return {'ok', version}
"""

# KEYS: record, the tenant's key set, the key. ARGV: tenant, key id, sha256, now.
# Only for a tenant that exists at that instant: no key outlives a concurrent DELETE.
_ISSUE_KEY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[3], 'tenantId', ARGV[1], 'sha256', ARGV[3], 'createdAt', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""

# KEYS: the key, the tenant's key set. ARGV: tenant, key id.
_REVOKE_KEY = """
if redis.call('HGET', KEYS[1], 'tenantId') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
return 1
"""

API_KEY_PREFIX = "ilk_"
_API_KEY = re.compile(r"ilk_([0-9a-f]{16})_[A-Za-z0-9_-]{43}")


class TenantError(Exception):
    """Base of the registry's refusals; ``str()`` is safe to show (no secret ever)."""


class InvalidTenantData(TenantError):
    """A field is missing or malformed (HTTP 400)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class TenantNotFound(TenantError):
    """No such tenant, or it was deleted (HTTP 404)."""


class TenantExists(TenantError):
    """A tenant with that id exists already (HTTP 409)."""


class IndexConflict(TenantError):
    """A phone number id, integration id or verify token belongs to another tenant (HTTP 409)."""

    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(f"{field} is already used by another tenant")


# -- validation ----------------------------------------------------------------------------------
def is_tenant_id(value: object) -> bool:
    """``^[a-z0-9][a-z0-9_-]{0,63}$`` matched in full (``$`` alone would allow a trailing newline)."""
    return isinstance(value, str) and TENANT_ID.fullmatch(value) is not None


def check_tenant_id(value: object) -> str:
    if not is_tenant_id(value):
        raise InvalidTenantData("tenantId", "must match ^[a-z0-9][a-z0-9_-]{0,63}$")
    assert isinstance(value, str)
    if value in RESERVED_TENANT_IDS:
        raise InvalidTenantData("tenantId", f"{value!r} is reserved")
    return value


def is_provider_id(value: object) -> bool:
    return isinstance(value, str) and PROVIDER_ID.fullmatch(value) is not None


def _provider_id(field: str, value: str) -> str:
    if not is_provider_id(value):
        raise InvalidTenantData(
            field,
            "must be 1-128 letters, digits, '.', ':', '_' or '-' (starting with a letter or digit)",
        )
    return value


def _encodable(field: str, value: str) -> None:
    """JSON can carry lone UTF-16 surrogates that no store or reply can encode: refuse them."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidTenantData(field, "must be valid Unicode text") from None


def _text(field: str, value: str, *, required: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidTenantData(field, "must be a string")
    _encodable(field, value)
    if required and not value.strip():
        raise InvalidTenantData(field, "must not be empty")
    if len(value) > MAX_TEXT:
        raise InvalidTenantData(field, f"must be at most {MAX_TEXT} characters")
    if any(ch < " " for ch in value):
        raise InvalidTenantData(field, "must not contain control characters")
    return value


_MASKED = re.compile(r"\*{4}.{0,4}", re.DOTALL)


def _settings(value: object) -> dict[str, object]:
    """A ``settings`` object: known keys only, each of its type and range."""
    if not isinstance(value, dict):
        raise InvalidTenantData("settings", "must be an object")
    unknown = [str(k)[:40] for k in value if k not in SETTINGS]
    if unknown:
        raise InvalidTenantData(
            "settings", f"unknown keys {unknown[:5]}; known: {', '.join(SETTINGS)}"
        )
    rate = value.get("messagesPerSecond", SETTINGS["messagesPerSecond"])
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate != rate:  # NaN
        raise InvalidTenantData("settings.messagesPerSecond", "must be a number")
    if not 0 < rate <= MAX_MESSAGES_PER_SECOND:
        raise InvalidTenantData(
            "settings.messagesPerSecond", f"must be above 0 and at most {MAX_MESSAGES_PER_SECOND}"
        )
    reactions = value.get("reactionsAsText", SETTINGS["reactionsAsText"])
    if not isinstance(reactions, bool):
        raise InvalidTenantData("settings.reactionsAsText", "must be true or false")
    template = value.get("fallbackTemplate")
    if template is not None:
        if not isinstance(template, dict) or set(template) != {"name", "language"}:
            raise InvalidTenantData(
                "settings.fallbackTemplate", 'must be null or {"name", "language"}'
            )
        name, language = template["name"], template["language"]
        if not isinstance(name, str) or not _TEMPLATE_NAME.fullmatch(name):
            raise InvalidTenantData(
                "settings.fallbackTemplate.name", "must be a template name: a-z, 0-9, _"
            )
        if not isinstance(language, str) or not _TEMPLATE_LANGUAGE.fullmatch(language):
            raise InvalidTenantData(
                "settings.fallbackTemplate.language", "must be a language code such as en_US"
            )
        template = {"name": name, "language": language}
    return {"messagesPerSecond": rate, "reactionsAsText": reactions, "fallbackTemplate": template}


def _stored_settings(record: Mapping[str, str]) -> dict[str, object]:
    return {**SETTINGS, **json.loads(record.get("settings") or "{}")}


def _secret(field: str, value: str, minimum: int = MIN_SECRET) -> str:
    if not isinstance(value, str):
        raise InvalidTenantData(field, "must be a string")
    _encodable(field, value)
    if _MASKED.fullmatch(value):
        # A GET-then-PUT round trip would otherwise store the mask as the secret.
        raise InvalidTenantData(field, "looks like a masked value; send the secret itself")
    if len(value) < minimum:
        qualifier = "longer than 15" if minimum == MIN_WEBHOOK_SECRET else f"at least {minimum}"
        raise InvalidTenantData(field, f"must be {qualifier} characters")
    if len(value) > MAX_SECRET:
        raise InvalidTenantData(field, f"must be at most {MAX_SECRET} characters")
    if value != value.strip() or any(ch < " " for ch in value):
        raise InvalidTenantData(field, "must not contain blanks at the ends or control characters")
    return value


def _region(field: str, value: str) -> str:
    if not isinstance(value, str):
        raise InvalidTenantData(field, "must be a string")
    try:
        return normalize_region(value)
    except UnknownRegion as exc:
        raise InvalidTenantData(field, str(exc)) from None


# -- the store -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class IssuedKey:
    key_id: str
    key: str

    def __repr__(self) -> str:
        return f"IssuedKey(key_id={self.key_id!r}, key='****')"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _str(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _encode_cursor(tenant_id: str) -> str:
    return base64.urlsafe_b64encode(tenant_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The last id of the previous page; InvalidTenantData for anything we did not hand out."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError):
        raise InvalidTenantData("cursor", "is not a cursor this API returned") from None
    if not is_tenant_id(text):
        raise InvalidTenantData("cursor", "is not a cursor this API returned")
    return text


class TenantStore:
    """Reads and writes tenants. Hot-path reads (``load_config``, ``tenant_for_*``,
    ``version_of``, ``check_key``) cost one Redis round trip each."""

    def __init__(self, client: redis.Redis, secret_keys: Sequence[bytes]) -> None:
        self.redis = client
        self.box = SecretBox(secret_keys)
        self._write = client.register_script(_WRITE)
        self._delete = client.register_script(_DELETE)
        self._issue_key = client.register_script(_ISSUE_KEY)
        self._revoke_key = client.register_script(_REVOKE_KEY)

    def __repr__(self) -> str:
        return f"TenantStore({self.box!r})"

    # -- writes ----------------------------------------------------------------------------------
    def create(
        self,
        tenant_id: str,
        *,
        name: str,
        genesys_org_id: str = "",
        genesys_org_name: str = "",
        genesys_region: str = "",
    ) -> dict[str, Any]:
        """Create a tenant at version 1 (event ``created``); TenantExists if the id is taken."""
        check_tenant_id(tenant_id)
        fields = {
            "name": _text("name", name, required=True),
            "genesysOrgId": _text("genesysOrgId", genesys_org_id),
            "genesysOrgName": _text("genesysOrgName", genesys_org_name),
            "genesysRegion": _region("genesysRegion", genesys_region) if genesys_region else "",
        }
        self._apply(tenant_id, "create", CREATED, fields)
        return self._require_view(tenant_id)

    def update(self, tenant_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Change plain fields (``name``, ``genesysOrgId``, ``genesysOrgName``, ``genesysRegion``)
        and the ``settings`` object (replaced whole: a key left out takes its default).

        Even an empty change is a change: the version is bumped and ``updated`` published, so a
        PATCH is never silently lost.
        """
        fields: dict[str, str] = {}
        for field, value in changes.items():
            if field == "settings":
                fields[field] = json.dumps(_settings(value))
                continue
            if field not in PLAIN_FIELDS:
                raise InvalidTenantData(field, "is not a field that can be changed")
            if field == "genesysRegion":
                fields[field] = _region(field, value) if value != "" else ""
            else:
                fields[field] = _text(field, value, required=field == "name")
        self._apply(tenant_id, "update", UPDATED, fields)
        return self._require_view(tenant_id)

    def set_genesys(
        self,
        tenant_id: str,
        *,
        client_id: str,
        client_secret: str,
        region: str,
        integration_id: str,
        webhook_secret: str,
    ) -> dict[str, Any]:
        """Replace the Genesys credentials (event ``credentials``); IndexConflict when the
        integration id belongs to another tenant."""
        section = {
            "clientId": _text("clientId", client_id, required=True),
            "clientSecret": _secret("clientSecret", client_secret),
            "region": _region("region", region),
            "integrationId": _provider_id("integrationId", integration_id),
            "webhookSecret": _secret("webhookSecret", webhook_secret, MIN_WEBHOOK_SECRET),
        }
        self._encrypt(tenant_id, section, GENESYS_SECRETS)
        self._apply(
            tenant_id,
            "update",
            CREDENTIALS,
            {"genesys": json.dumps(section)},
            integration=integration_id,
        )
        return self._require_view(tenant_id)

    def set_whatsapp(
        self,
        tenant_id: str,
        *,
        access_token: str,
        phone_number_id: str,
        business_account_id: str,
        app_secret: str,
        verify_token: str,
    ) -> dict[str, Any]:
        """Replace the WhatsApp configuration (event ``credentials``); IndexConflict when the
        phone number id or the verify token belongs to another tenant."""
        section = {
            "meta_access_token": _secret("meta_access_token", access_token),
            "whatsapp_phone_number_id": _provider_id("whatsapp_phone_number_id", phone_number_id),
            "whatsapp_business_account_id": _provider_id(
                "whatsapp_business_account_id", business_account_id
            ),
            "meta_app_secret": _secret("meta_app_secret", app_secret),
            "webhook_verify_token": _secret("webhook_verify_token", verify_token),
        }
        self._encrypt(tenant_id, section, WHATSAPP_SECRETS)
        self._apply(
            tenant_id,
            "update",
            CREDENTIALS,
            {"whatsapp": json.dumps(section)},
            phone=phone_number_id,
            verify=sha256_hex(verify_token),
        )
        return self._require_view(tenant_id)

    def delete(self, tenant_id: str) -> int:
        """Remove the tenant, its indexes and API keys; publish ``deleted``. Returns the version
        announced in the event. TenantNotFound if it does not exist."""
        result = self._delete(
            keys=[
                keys.tenant(tenant_id),
                keys.tenant_ids(),
                keys.index_phone(),
                keys.index_integration(),
                keys.index_verify_token(),
                keys.tenant_api_keys(tenant_id),
            ],
            args=[tenant_id, keys.tenant_events(), keys.api_key("")],
        )
        if _str(result[0]) == "missing":
            raise TenantNotFound(f"tenant {tenant_id} does not exist")
        version = int(result[1])
        log.info(
            "tenant changed", extra={"tenantId": tenant_id, "kind": DELETED, "version": version}
        )
        return version

    def _encrypt(self, tenant_id: str, section: dict[str, str], names: tuple[str, ...]) -> None:
        for name in names:
            section[name] = self.box.encrypt(section[name], tenant_id=tenant_id, field=name)

    def _apply(
        self,
        tenant_id: str,
        mode: str,
        kind: str,
        fields: Mapping[str, str],
        *,
        phone: str = KEEP,
        integration: str = KEEP,
        verify: str = KEEP,
    ) -> int:
        if not is_tenant_id(tenant_id):
            raise TenantNotFound(f"tenant {tenant_id!r} does not exist")
        args: list[str] = [
            tenant_id,
            mode,
            kind,
            _now(),
            keys.tenant_events(),
            phone,
            integration,
            verify,
        ]
        for field, value in fields.items():
            args += [field, value]
        result = self._write(
            keys=[
                keys.tenant(tenant_id),
                keys.tenant_ids(),
                keys.index_phone(),
                keys.index_integration(),
                keys.index_verify_token(),
            ],
            args=args,
        )
        outcome = _str(result[0])
        if outcome == "exists":
            raise TenantExists(f"tenant {tenant_id} exists already")
        if outcome == "missing":
            raise TenantNotFound(f"tenant {tenant_id} does not exist")
        if outcome == "conflict":
            field = {
                "phone": "whatsapp_phone_number_id",
                "integration": "integrationId",
                "verify": "webhook_verify_token",
            }[_str(result[1])]
            raise IndexConflict(field)
        version = int(result[1])
        log.info("tenant changed", extra={"tenantId": tenant_id, "kind": kind, "version": version})
        return version

    # -- reads for the admin API -----------------------------------------------------------------
    def _record(self, tenant_id: str) -> dict[str, str] | None:
        if not is_tenant_id(tenant_id):
            return None
        raw = self.redis.hgetall(keys.tenant(tenant_id))
        if not raw or b"version" not in raw:
            return None
        return {_str(k): _str(v) for k, v in raw.items()}

    def get(self, tenant_id: str) -> dict[str, Any] | None:
        """The tenant in the API's shape, secrets masked; None if unknown. May raise SecretError."""
        record = self._record(tenant_id)
        return None if record is None else self._view(tenant_id, record)

    def _require_view(self, tenant_id: str) -> dict[str, Any]:
        view = self.get(tenant_id)
        if view is None:  # deleted between our write and this read
            raise TenantNotFound(f"tenant {tenant_id} does not exist")
        return view

    def list_page(
        self, limit: int = DEFAULT_PAGE, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of tenants ordered by id, and the cursor of the next page (None at the end)."""
        limit = max(1, min(MAX_PAGE, limit))
        start = "-" if cursor is None else "(" + decode_cursor(cursor)
        ids = [_str(i) for i in self.redis.zrangebylex(keys.tenant_ids(), start, "+", 0, limit + 1)]
        page, more = ids[:limit], len(ids) > limit
        with self.redis.pipeline(transaction=False) as pipe:
            for tenant_id in page:
                pipe.hgetall(keys.tenant(tenant_id))
            records = pipe.execute()
        items = []
        for tenant_id, raw in zip(page, records, strict=True):
            if raw:  # deleted since the range was read
                items.append(self._view(tenant_id, {_str(k): _str(v) for k, v in raw.items()}))
        return items, (_encode_cursor(page[-1]) if more and page else None)

    def _view(self, tenant_id: str, record: Mapping[str, str]) -> dict[str, Any]:
        genesys = whatsapp = None
        if record.get("genesys"):
            genesys = json.loads(record["genesys"])
            for name in GENESYS_SECRETS:
                genesys[name] = mask(self._reveal(tenant_id, genesys, name))
        if record.get("whatsapp"):
            whatsapp = json.loads(record["whatsapp"])
            for name in WHATSAPP_SECRETS:
                whatsapp[name] = mask(self._reveal(tenant_id, whatsapp, name))
        return {
            "tenantId": tenant_id,
            "name": record.get("name", ""),
            "genesysOrgId": record.get("genesysOrgId", ""),
            "genesysOrgName": record.get("genesysOrgName", ""),
            "genesysRegion": record.get("genesysRegion", ""),
            "version": int(record["version"]),
            "createdAt": record.get("createdAt", ""),
            "updatedAt": record.get("updatedAt", ""),
            "genesys": genesys,
            "whatsapp": whatsapp,
            "settings": _stored_settings(record),
        }

    def _reveal(self, tenant_id: str, section: Mapping[str, str], name: str) -> str:
        return self.box.decrypt(section[name], tenant_id=tenant_id, field=name)

    # -- hot path --------------------------------------------------------------------------------
    def load_config(self, tenant_id: str) -> TenantConfig | None:
        """The decrypted configuration at its version (one round trip); None if unknown/deleted.

        Raises :class:`interlink.security.secrets.SecretError` when a secret cannot be decrypted
        (its master key is no longer configured, or the record was tampered with).
        """
        record = self._record(tenant_id)
        if record is None:
            return None
        genesys = whatsapp = None
        if record.get("genesys"):
            g = json.loads(record["genesys"])
            genesys = GenesysCredentials(
                client_id=g["clientId"],
                client_secret=self._reveal(tenant_id, g, "clientSecret"),
                region=g["region"],
                integration_id=g["integrationId"],
                webhook_secret=self._reveal(tenant_id, g, "webhookSecret"),
            )
        if record.get("whatsapp"):
            w = json.loads(record["whatsapp"])
            whatsapp = WhatsAppConfig(
                phone_number_id=w["whatsapp_phone_number_id"],
                business_account_id=w["whatsapp_business_account_id"],
                access_token=self._reveal(tenant_id, w, "meta_access_token"),
                app_secret=self._reveal(tenant_id, w, "meta_app_secret"),
                verify_token=self._reveal(tenant_id, w, "webhook_verify_token"),
            )
        return TenantConfig(
            tenant_id=tenant_id,
            version=int(record["version"]),
            name=record.get("name", ""),
            genesys_org_id=record.get("genesysOrgId", ""),
            genesys_org_name=record.get("genesysOrgName", ""),
            genesys_region=record.get("genesysRegion", ""),
            genesys=genesys,
            whatsapp=whatsapp,
            settings=_stored_settings(record),
        )

    def region_of(self, tenant_id: str) -> str:
        """The tenant's ``genesysRegion`` ("" if unset); TenantNotFound if unknown."""
        if not is_tenant_id(tenant_id):
            raise TenantNotFound(f"tenant {tenant_id!r} does not exist")
        version, region = self.redis.hmget(keys.tenant(tenant_id), ["version", "genesysRegion"])
        if version is None:
            raise TenantNotFound(f"tenant {tenant_id} does not exist")
        if not region:
            raise InvalidTenantData("region", "is required (the tenant has no genesysRegion)")
        return _str(region)

    def version_of(self, tenant_id: str) -> int | None:
        if not is_tenant_id(tenant_id):
            return None
        raw = self.redis.hget(keys.tenant(tenant_id), "version")
        return None if raw is None else int(raw)

    def tenant_for_phone(self, phone_number_id: str) -> str | None:
        return self._index(keys.index_phone(), phone_number_id)

    def tenant_for_integration(self, integration_id: str) -> str | None:
        return self._index(keys.index_integration(), integration_id)

    def tenant_for_verify_token(self, token: str) -> str | None:
        if not isinstance(token, str) or not token:
            return None
        raw = self.redis.hget(keys.index_verify_token(), sha256_hex(token))
        return None if raw is None else _str(raw)

    def _index(self, index: str, value: str) -> str | None:
        if not is_provider_id(value):
            return None
        raw = self.redis.hget(index, value)
        return None if raw is None else _str(raw)

    # -- API keys --------------------------------------------------------------------------------
    def issue_key(self, tenant_id: str) -> IssuedKey:
        """A new tenant-scoped key ``ilk_<keyId>_<secret>``; only its sha256 is stored.

        API keys are access, not configuration: issuing or revoking one does not bump the
        tenant's version nor publish an event.
        """
        key_id = stdlib_secrets.token_hex(8)
        key = f"{API_KEY_PREFIX}{key_id}_{stdlib_secrets.token_urlsafe(32)}"
        done = self._issue_key(
            keys=[keys.tenant(tenant_id), keys.tenant_api_keys(tenant_id), keys.api_key(key_id)],
            args=[tenant_id, key_id, sha256_hex(key), _now()],
        )
        if not done:
            raise TenantNotFound(f"tenant {tenant_id} does not exist")
        log.info("api key issued", extra={"tenantId": tenant_id, "keyId": key_id})
        return IssuedKey(key_id, key)

    def revoke_key(self, tenant_id: str, key_id: str) -> bool:
        """False when the key does not exist or belongs to another tenant."""
        if not re.fullmatch(r"[0-9a-f]{16}", key_id or ""):
            return False
        done = self._revoke_key(
            keys=[keys.api_key(key_id), keys.tenant_api_keys(tenant_id)], args=[tenant_id, key_id]
        )
        if done:
            log.info("api key revoked", extra={"tenantId": tenant_id, "keyId": key_id})
        return bool(done)

    def check_key(self, key: str) -> str | None:
        """The tenant a key belongs to, or None (unknown, revoked, or its tenant deleted)."""
        match = _API_KEY.fullmatch(key) if isinstance(key, str) else None
        if match is None:
            return None
        tenant_id, digest = self.redis.hmget(keys.api_key(match.group(1)), ["tenantId", "sha256"])
        if tenant_id is None or digest is None:
            return None
        if not hmac.compare_digest(_str(digest).encode(), sha256_hex(key).encode()):
            return None
        return _str(tenant_id)
