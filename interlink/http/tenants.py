"""Tenant administration routes: parse, check, hand over.

Every route is behind :class:`interlink.http.auth.AuthMiddleware`. The operator may do anything; a
tenant key may read and change its own tenant (``GET``/``PATCH`` it, set its Genesys credentials
and WhatsApp configuration, look itself up by phone or integration id) and nothing else: creating,
listing and deleting tenants and issuing or revoking keys need the operator token.

Bodies: strict. A field that is not part of the resource is a 400 naming it (a typo such as
``client_secret`` for ``clientSecret`` must not pass silently), a value of the wrong JSON type is a
400, a body over 64 KiB a 413. Error descriptions name fields, never their values. The registry's
refusals (invalid field, unknown tenant, conflicts) and the store being down rise to the app's
error handlers (``interlink.http.errors``).
"""

from __future__ import annotations

from typing import Any

import falcon

from interlink.http.auth import principal_of, require_operator, require_tenant
from interlink.http.bodies import json_body
from interlink.store.api_keys import ApiKeys
from interlink.store.tenants import DEFAULT_PAGE, MAX_PAGE, TenantStore
from interlink.tenancy.validation import (
    GENESYS,
    PLAIN_FIELDS,
    RECORD_FIELDS,
    SETTINGS,
    WHATSAPP,
    is_provider_id,
    is_tenant_id,
)

PLAIN_NAMES = tuple(f.name for f in PLAIN_FIELDS)
TENANT_FIELDS = ("tenantId", *PLAIN_NAMES)
PATCH_FIELDS = (*PLAIN_NAMES, SETTINGS.name)
OBJECT_FIELDS = (SETTINGS.name,)  # JSON objects; every other accepted field is a string
# Fields of the tenant shape a client may echo back in a PATCH (read-modify-write); ignored.
READ_ONLY_FIELDS = (*RECORD_FIELDS, GENESYS.name, WHATSAPP.name)
# A PUT without a region takes the tenant's genesysRegion.
GENESYS_REQUIRED = tuple(name for name in GENESYS.names if name != "region")


def _names(fields: list[str]) -> str:
    """Field names for an error message, a few and short: a hostile body may send thousands."""
    shown = [repr(f[:40]) for f in fields[:5]]
    return ", ".join(shown) + (", ..." if len(fields) > 5 else "")


def read_fields(
    req: falcon.Request,
    accepted: tuple[str, ...],
    required: tuple[str, ...] = (),
    ignored: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The body's accepted fields (strings; objects for ``OBJECT_FIELDS``); 400 for unknown
    fields, wrong types, missing ones."""
    body = json_body(req)
    unknown = [k for k in body if k not in accepted and k not in ignored]
    if unknown:
        raise falcon.HTTPBadRequest(
            title="Unknown field",
            description=f"Not a field of this resource: {_names(unknown)}. "
            f"Accepted: {', '.join(accepted)}.",
        )
    wrong = [
        k
        for k in accepted
        if k in body and not isinstance(body[k], dict if k in OBJECT_FIELDS else str)
    ]
    if wrong:
        expected = (f"{k} an object" if k in OBJECT_FIELDS else f"{k} a string" for k in wrong)
        raise falcon.HTTPBadRequest(
            title="Wrong type", description=f"Must be: {', '.join(expected)}."
        )
    missing = [k for k in required if k not in body]
    if missing:
        raise falcon.HTTPBadRequest(
            title="Missing field", description=f"Required: {', '.join(missing)}."
        )
    fields = {k: body[k] for k in accepted if k in body}
    if "tenantId" in ignored and "tenantId" in body:
        fields["tenantId"] = body["tenantId"]  # checked against the path by the caller
    return fields


def tenant_id_param(raw: str) -> str:
    """The path's tenant id, or 400 before any lookup (``../``, ``%2F``, look-alike letters)."""
    if not is_tenant_id(raw):
        raise falcon.HTTPBadRequest(
            title="Invalid tenant id", description="A tenant id matches ^[a-z0-9][a-z0-9_-]{0,63}$."
        )
    return raw


class _Resource:
    def __init__(self, store: TenantStore) -> None:
        self.store = store

    def tenant(self, tenant_id: str) -> dict[str, Any]:
        view = self.store.get(tenant_id)
        if view is None:
            raise falcon.HTTPNotFound(title="Unknown tenant", description="No such tenant.")
        return view

    def show_own(self, req: falcon.Request, tenant_id: str | None) -> dict[str, Any]:
        """For look-ups by provider id: a tenant key sees only its own tenant; any other answer
        is the same 404 as an unknown id, so a key cannot probe who else is registered."""
        principal = principal_of(req)
        if tenant_id is None or (not principal.operator and principal.tenant_id != tenant_id):
            raise falcon.HTTPNotFound(title="Unknown tenant", description="No tenant has this id.")
        return self.tenant(tenant_id)


class TenantCollection(_Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        require_operator(req)
        body = read_fields(req, TENANT_FIELDS, required=("tenantId", "name"))
        view = self.store.create(
            body["tenantId"], **{f.attr: body[f.name] for f in PLAIN_FIELDS if f.name in body}
        )
        resp.status = falcon.HTTP_201
        resp.location = f"/api/tenants/{view['tenantId']}"
        resp.media = view

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        require_operator(req)
        limit = req.get_param_as_int("limit", min_value=1, max_value=MAX_PAGE, default=DEFAULT_PAGE)
        cursor = req.get_param("cursor") or None
        items, next_cursor = self.store.list_page(limit, cursor)
        resp.media = {"items": items, "nextCursor": next_cursor}


class TenantItem(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, tenantId: str) -> None:
        require_tenant(req, tenant_id_param(tenantId))
        resp.media = self.tenant(tenantId)

    def on_patch(self, req: falcon.Request, resp: falcon.Response, tenantId: str) -> None:
        require_tenant(req, tenant_id_param(tenantId))
        body = read_fields(req, PATCH_FIELDS, ignored=READ_ONLY_FIELDS)
        if body.pop("tenantId", tenantId) != tenantId:
            raise falcon.HTTPBadRequest(
                title="Invalid field", description="tenantId cannot be changed."
            )
        if not body:
            raise falcon.HTTPBadRequest(
                title="Nothing to change", description=f"Send one of: {', '.join(PATCH_FIELDS)}."
            )
        resp.media = self.store.update(tenantId, body)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, tenantId: str) -> None:
        require_operator(req)
        tenant_id_param(tenantId)
        self.store.delete(tenantId)
        resp.status = falcon.HTTP_204


class GenesysCredentialsResource(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, tenantId: str) -> None:
        require_tenant(req, tenant_id_param(tenantId))
        section = self.tenant(tenantId)[GENESYS.name]
        if section is None:
            raise falcon.HTTPNotFound(
                title="Not configured",
                description="No Genesys credentials are set for this tenant.",
            )
        resp.media = section

    def on_put(self, req: falcon.Request, resp: falcon.Response, tenantId: str) -> None:
        require_tenant(req, tenant_id_param(tenantId))
        body = read_fields(req, GENESYS.names, required=GENESYS_REQUIRED)
        body["region"] = body.get("region") or self.store.region_of(tenantId)
        view = self.store.set_section(tenantId, GENESYS, body)
        resp.media = view[GENESYS.name]


class WhatsAppConfigResource(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, tenantId: str) -> None:
        require_tenant(req, tenant_id_param(tenantId))
        section = self.tenant(tenantId)[WHATSAPP.name]
        if section is None:
            raise falcon.HTTPNotFound(
                title="Not configured",
                description="No WhatsApp configuration is set for this tenant.",
            )
        resp.media = section

    def on_post(self, req: falcon.Request, resp: falcon.Response, tenantId: str) -> None:
        require_tenant(req, tenant_id_param(tenantId))
        body = read_fields(req, WHATSAPP.names, required=WHATSAPP.names)
        view = self.store.set_section(tenantId, WHATSAPP, body)
        resp.media = view[WHATSAPP.name]

    on_put = on_post


class ByPhone(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, phoneNumberId: str) -> None:
        if not is_provider_id(phoneNumberId):
            raise falcon.HTTPBadRequest(
                title="Invalid phone number id", description="Letters, digits, '.', ':', '_', '-'."
            )
        tenant_id = self.store.tenant_for_phone(phoneNumberId)
        resp.media = self.show_own(req, tenant_id)


class ByIntegration(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, integrationId: str) -> None:
        if not is_provider_id(integrationId):
            raise falcon.HTTPBadRequest(
                title="Invalid integration id", description="Letters, digits, '.', ':', '_', '-'."
            )
        tenant_id = self.store.tenant_for_integration(integrationId)
        resp.media = self.show_own(req, tenant_id)


class Keys:
    def __init__(self, api_keys: ApiKeys) -> None:
        self.api_keys = api_keys

    def on_post(self, req: falcon.Request, resp: falcon.Response, tenantId: str) -> None:
        require_operator(req)
        tenant_id_param(tenantId)
        issued = self.api_keys.issue_key(tenantId)
        resp.status = falcon.HTTP_201
        resp.cache_control = ["no-store"]  # the key is shown this once
        resp.media = {"keyId": issued.key_id, "key": issued.key}


class KeyItem:
    def __init__(self, api_keys: ApiKeys) -> None:
        self.api_keys = api_keys

    def on_delete(
        self, req: falcon.Request, resp: falcon.Response, tenantId: str, keyId: str
    ) -> None:
        require_operator(req)
        tenant_id_param(tenantId)
        revoked = self.api_keys.revoke_key(tenantId, keyId)
        if not revoked:
            raise falcon.HTTPNotFound(
                title="Unknown key", description="No such key for this tenant."
            )
        resp.status = falcon.HTTP_204
