"""The admin API's shape of a tenant: every declared field, each secret masked as ``****`` + its
last 4 characters (enough to tell two secrets apart, not to use one)."""

from __future__ import annotations

from typing import Any

from interlink.tenancy.config import GenesysCredentials, TenantConfig, WhatsAppConfig, mask
from interlink.tenancy.validation import GENESYS, PLAIN_FIELDS, SETTINGS, WHATSAPP, Section


def section_view(
    section: Section, values: GenesysCredentials | WhatsAppConfig | None
) -> dict[str, Any] | None:
    """The section keyed by API names, secrets masked; None when it is not configured."""
    if values is None:
        return None
    return {
        f.name: mask(getattr(values, f.attr)) if f.secret else getattr(values, f.attr)
        for f in section.fields
    }


def tenant_view(config: TenantConfig) -> dict[str, Any]:
    return {
        "tenantId": config.tenant_id,
        **{f.name: getattr(config, f.attr) for f in PLAIN_FIELDS},
        "version": config.version,
        "createdAt": config.created_at,
        "updatedAt": config.updated_at,
        GENESYS.name: section_view(GENESYS, config.genesys),
        WHATSAPP.name: section_view(WHATSAPP, config.whatsapp),
        SETTINGS.name: config.settings,
    }
