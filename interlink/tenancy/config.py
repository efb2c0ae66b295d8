"""What a tenant is, as the actors see it: decrypted configuration, immutable, secrets masked in reprs.

The admin API stores tenants encrypted in Redis (``interlink.store.tenants``); a tenant actor holds
one :class:`TenantConfig` and replaces it whole on reload, so a message started on one version
finishes on it. The attribute names are those of the field declarations in
:mod:`interlink.tenancy.validation`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def mask(secret: str | None) -> str | None:
    """``"****" + last 4``: enough to tell two secrets apart, not to use one."""
    if secret is None:
        return None
    return "****" + secret[-4:]


@dataclass(frozen=True, slots=True)
class GenesysCredentials:
    client_id: str
    client_secret: str = field(repr=False)
    region: str
    integration_id: str
    webhook_secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class WhatsAppConfig:
    phone_number_id: str
    business_account_id: str
    access_token: str = field(repr=False)
    app_secret: str = field(repr=False)
    verify_token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class TenantConfig:
    tenant_id: str
    version: int
    name: str = ""
    genesys_org_id: str = ""
    genesys_org_name: str = ""
    genesys_region: str = ""
    genesys: GenesysCredentials | None = None
    whatsapp: WhatsAppConfig | None = None
    settings: dict[str, object] = field(default_factory=dict)
    created_at: str = ""  # ISO 8601 UTC with milliseconds, as the admin API shows it
    updated_at: str = ""

    def genesys_login(self) -> tuple[str, str, str] | None:
        """What a Genesys token is granted for: when it changes, the cached token must go."""
        g = self.genesys
        return (g.client_id, g.client_secret, g.region) if g else None

    def credentials_fingerprint(self) -> tuple[object, ...]:
        """Changes exactly when a credential of either side changes."""
        w = self.whatsapp
        return (self.genesys_login(), w and (w.access_token, w.phone_number_id))
