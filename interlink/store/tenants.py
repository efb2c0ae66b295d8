"""The tenant registry in Redis: records with encrypted secrets, lookup indexes, change events.

Layout (key names in :mod:`interlink.store.keys`; field names declared in
:mod:`interlink.tenancy.validation`):

- ``tenant(id)``: a hash. Plain fields under their API names (``name``, ``genesysOrgId`` ...),
  ``version``, ``createdAt``/``updatedAt``, ``settings`` (JSON) and two JSON sections ``genesys``
  and ``whatsapp`` in which every secret is a :mod:`interlink.security.secrets` ciphertext bound to
  the tenant and field. ``ix:phone``, ``ix:integration`` and ``ix:verify`` remember what the
  tenant is indexed under.
- ``tenant_ids()``: sorted set of ids, all scored 0, so ``ZRANGEBYLEX`` pages through them.
- ``index_phone()``, ``index_integration()``, ``index_verify_token()``: hashes value -> tenant id
  (the verify index is keyed by the token's sha256, never the token).

Every write is one Lua script (``tenant_write.lua``, ``tenant_delete.lua`` beside this module), so
a record and its indexes change together: a reader never sees half a change, concurrent writers are
serialised by Redis (last write wins, each bumps ``version`` by exactly one), and the change event
is published from inside the same step. API keys live in :mod:`interlink.store.api_keys`; deleting
a tenant deletes its keys in the same step.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import redis

from interlink.security.secrets import SecretBox, sha256_hex
from interlink.store import keys
from interlink.tenancy.config import GenesysCredentials, TenantConfig, WhatsAppConfig
from interlink.tenancy.validation import (
    GENESYS,
    PLAIN_FIELDS,
    SETTINGS,
    SETTINGS_DEFAULTS,
    WHATSAPP,
    InvalidTenantData,
    Section,
    check_plain,
    check_tenant_id,
    is_provider_id,
    is_tenant_id,
)
from interlink.tenancy.views import tenant_view

log = logging.getLogger(__name__)

DEFAULT_PAGE = 50
MAX_PAGE = 200
CREATED, UPDATED, CREDENTIALS, DELETED = "created", "updated", "credentials", "deleted"
KEEP = "*"  # index argument meaning "leave this index as it is" (no valid id starts with "*")
# The section field each index holds, by the name the write script reports a conflict under.
INDEXED_FIELDS = {
    "phone": "whatsapp_phone_number_id",
    "integration": "integrationId",
    "verify": "webhook_verify_token",  # indexed by its sha256
}


def lua(name: str) -> str:
    """A script shipped beside this module (``package_data`` ships ``*.lua``)."""
    return resources.files("interlink.store").joinpath(name).read_text(encoding="utf-8")


_WRITE = lua("tenant_write.lua")
_DELETE = lua("tenant_delete.lua")


class TenantNotFound(Exception):
    """No such tenant, or it was deleted (HTTP 404)."""


class TenantExists(Exception):
    """A tenant with that id exists already (HTTP 409)."""


class IndexConflict(Exception):
    """A phone number id, integration id or verify token belongs to another tenant (HTTP 409)."""

    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(f"{field} is already used by another tenant")


def now() -> str:
    """The store's timestamps: ISO 8601 UTC with milliseconds and a ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _encode_cursor(tenant_id: str) -> str:
    return base64.urlsafe_b64encode(tenant_id.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
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
    ``version_of``) cost one Redis round trip each. The admin reads and writes return the
    tenant in the admin API's shape, secrets masked (:func:`interlink.tenancy.views.tenant_view`).
    """

    def __init__(self, client: redis.Redis, secret_keys: Sequence[bytes]) -> None:
        self.redis = client
        self.box = SecretBox(secret_keys)
        self._write = client.register_script(_WRITE)
        self._delete = client.register_script(_DELETE)

    def __repr__(self) -> str:
        return f"TenantStore({self.box!r})"

    # -- writes ----------------------------------------------------------------------------------
    def create(self, tenant_id: str, **plain: str) -> dict[str, Any]:
        """Create a tenant at version 1 (event ``created``); TenantExists if the id is taken.

        Keywords: the plain fields by attribute (``name`` required; ``genesys_org_id``,
        ``genesys_org_name``, ``genesys_region`` default to "").
        """
        check_tenant_id(tenant_id)
        by_attr = {f.attr: f for f in PLAIN_FIELDS}
        unknown = [k for k in plain if k not in by_attr]
        if unknown:
            raise TypeError(f"unexpected tenant fields: {', '.join(unknown)}")
        if "name" not in plain:
            raise InvalidTenantData("name", "is required")
        fields = check_plain({f.name: plain.get(f.attr, "") for f in PLAIN_FIELDS})
        self._apply(tenant_id, "create", CREATED, fields)
        return self._require_view(tenant_id)

    def update(self, tenant_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Change plain fields and the ``settings`` object (replaced whole: a key left out takes
        its default), keyed by API name.

        Even an empty change is a change: the version is bumped and ``updated`` published, so a
        PATCH is never silently lost.
        """
        plain = {k: v for k, v in changes.items() if k != SETTINGS.name}
        fields = check_plain(plain)
        if SETTINGS.name in changes:
            fields[SETTINGS.name] = json.dumps(
                SETTINGS.check(SETTINGS.name, changes[SETTINGS.name])
            )
        self._apply(tenant_id, "update", UPDATED, fields)
        return self._require_view(tenant_id)

    def set_section(
        self, tenant_id: str, section: Section, values: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Replace the tenant's Genesys credentials or WhatsApp configuration (keyed by API name;
        event ``credentials``); IndexConflict when an indexed value belongs to another tenant."""
        checked = section.check(values)
        indexes = {
            index: (sha256_hex(checked[field]) if index == "verify" else checked[field])
            for index, field in INDEXED_FIELDS.items()
            if field in checked
        }
        for name in section.secrets:
            checked[name] = self.box.encrypt(checked[name], tenant_id=tenant_id, field=name)
        self._apply(
            tenant_id, "update", CREDENTIALS, {section.name: json.dumps(checked)}, **indexes
        )
        return self._require_view(tenant_id)

    def set_genesys(self, tenant_id: str, **credentials: str) -> dict[str, Any]:
        """:meth:`set_section` of ``genesys``, keyword per :class:`GenesysCredentials` attribute."""
        return self.set_section(tenant_id, GENESYS, GENESYS.by_api_name(credentials))

    def set_whatsapp(self, tenant_id: str, **config: str) -> dict[str, Any]:
        """:meth:`set_section` of ``whatsapp``, keyword per :class:`WhatsAppConfig` attribute."""
        return self.set_section(tenant_id, WHATSAPP, WHATSAPP.by_api_name(config))

    def delete(self, tenant_id: str) -> int:
        """Remove the tenant, its indexes and API keys; publish ``deleted``. Returns the version
        announced in the event. TenantNotFound if it does not exist."""
        result = self._delete(
            keys=[*_record_keys(tenant_id), keys.tenant_api_keys(tenant_id)],
            args=[tenant_id, keys.tenant_events(), keys.api_key("")],
        )
        if result[0] == b"missing":
            raise TenantNotFound(f"tenant {tenant_id} does not exist")
        version = int(result[1])
        # A tenant created again under this id starts without the old one's operator hold.
        self.redis.hdel(keys.holds(), tenant_id)
        log.info(
            "tenant changed", extra={"tenant": tenant_id, "kind": DELETED, "version": version}
        )
        return version

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
        args = [tenant_id, mode, kind, now(), keys.tenant_events(), phone, integration, verify]
        for field, value in fields.items():
            args += [field, value]
        result = self._write(
            keys=_record_keys(tenant_id),
            args=args,
        )
        outcome = result[0]
        if outcome == b"exists":
            raise TenantExists(f"tenant {tenant_id} exists already")
        if outcome == b"missing":
            raise TenantNotFound(f"tenant {tenant_id} does not exist")
        if outcome == b"conflict":
            raise IndexConflict(INDEXED_FIELDS[as_text(result[1])])
        version = int(result[1])
        log.info("tenant changed", extra={"tenant": tenant_id, "kind": kind, "version": version})
        return version

    # -- reads -----------------------------------------------------------------------------------
    def _record(self, tenant_id: str) -> dict[str, str] | None:
        if not is_tenant_id(tenant_id):
            return None
        return _decoded(self.redis.hgetall(keys.tenant(tenant_id)))

    def get(self, tenant_id: str) -> dict[str, Any] | None:
        """The tenant in the API's shape, secrets masked; None if unknown. May raise SecretError."""
        config = self.load_config(tenant_id)
        return None if config is None else tenant_view(config)

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
        start = "-" if cursor is None else "(" + _decode_cursor(cursor)
        found = self.redis.zrangebylex(keys.tenant_ids(), start, "+", 0, limit + 1)
        ids = [as_text(i) for i in found]
        page, more = ids[:limit], len(ids) > limit
        with self.redis.pipeline(transaction=False) as pipe:
            for tenant_id in page:
                pipe.hgetall(keys.tenant(tenant_id))
            records = pipe.execute()
        items = []
        for tenant_id, raw in zip(page, records, strict=True):
            record = _decoded(raw)
            if record is not None:  # else deleted since the range was read
                items.append(tenant_view(self._config(tenant_id, record)))
        return items, (_encode_cursor(page[-1]) if more and page else None)

    def load_config(self, tenant_id: str) -> TenantConfig | None:
        """The decrypted configuration at its version (one round trip); None if unknown/deleted.

        Raises :class:`interlink.security.secrets.SecretError` when a secret cannot be decrypted
        (its master key is no longer configured, or the record was tampered with).
        """
        record = self._record(tenant_id)
        return None if record is None else self._config(tenant_id, record)

    def _config(self, tenant_id: str, record: Mapping[str, str]) -> TenantConfig:
        genesys = self._section(tenant_id, record, GENESYS)
        whatsapp = self._section(tenant_id, record, WHATSAPP)
        return TenantConfig(
            tenant_id=tenant_id,
            version=int(record["version"]),
            genesys=GenesysCredentials(**genesys) if genesys else None,
            whatsapp=WhatsAppConfig(**whatsapp) if whatsapp else None,
            settings={**SETTINGS_DEFAULTS, **json.loads(record.get(SETTINGS.name) or "{}")},
            created_at=record.get("createdAt", ""),
            updated_at=record.get("updatedAt", ""),
            **{f.attr: record.get(f.name, "") for f in PLAIN_FIELDS},
        )

    def _section(
        self, tenant_id: str, record: Mapping[str, str], section: Section
    ) -> dict[str, str] | None:
        """The section decrypted and keyed by the config's attribute names; None if unset."""
        raw = record.get(section.name)
        if not raw:
            return None
        stored = json.loads(raw)
        return {
            f.attr: (
                self.box.decrypt(stored[f.name], tenant_id=tenant_id, field=f.name)
                if f.secret
                else stored[f.name]
            )
            for f in section.fields
        }

    def region_of(self, tenant_id: str) -> str:
        """The tenant's ``genesysRegion``; TenantNotFound if unknown, InvalidTenantData if unset."""
        if not is_tenant_id(tenant_id):
            raise TenantNotFound(f"tenant {tenant_id!r} does not exist")
        version, region = self.redis.hmget(keys.tenant(tenant_id), ["version", "genesysRegion"])
        if version is None:
            raise TenantNotFound(f"tenant {tenant_id} does not exist")
        if not region:
            raise InvalidTenantData("region", "is required (the tenant has no genesysRegion)")
        return as_text(region)

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
        return None if raw is None else as_text(raw)

    def _index(self, index: str, value: str) -> str | None:
        if not is_provider_id(value):
            return None
        raw = self.redis.hget(index, value)
        return None if raw is None else as_text(raw)


def as_text(value: bytes | str) -> str:
    """A reply as text (redis-py types replies as either; this client's are bytes)."""
    return value.decode() if isinstance(value, bytes) else value


def _decoded(raw: Mapping[bytes | str, bytes | str]) -> dict[str, str] | None:
    """A record as text; None when there is none (every record has a ``version``)."""
    record = {as_text(k): as_text(v) for k, v in raw.items()}
    return record if "version" in record else None


def _record_keys(tenant_id: str) -> list[str]:
    """What a write of the tenant's record touches: the record, the id set, the three indexes."""
    return [
        keys.tenant(tenant_id),
        keys.tenant_ids(),
        keys.index_phone(),
        keys.index_integration(),
        keys.index_verify_token(),
    ]
