"""The admin API's shape of a tenant: every declared field, secrets masked to their last four."""

from __future__ import annotations

import secrets

from interlink.tenancy.config import GenesysCredentials, TenantConfig, WhatsAppConfig
from interlink.tenancy.views import tenant_view


def test_the_view_masks_every_secret_and_shows_everything_else() -> None:
    genesys = GenesysCredentials(
        client_id="client",
        client_secret=secrets.token_urlsafe(32),
        region="mypurecloud.ie",
        integration_id="integration-1",
        webhook_secret=secrets.token_urlsafe(24),
    )
    whatsapp = WhatsAppConfig(
        phone_number_id="106540352242922",
        business_account_id="102290129340398",
        access_token="EAA" + secrets.token_urlsafe(60),
        app_secret=secrets.token_hex(16),
        verify_token=secrets.token_urlsafe(16),
    )
    config = TenantConfig(
        tenant_id="acme",
        version=3,
        name="Acme",
        genesys_region="mypurecloud.ie",
        genesys=genesys,
        whatsapp=whatsapp,
        settings={"reactionsAsText": False},
        created_at="2026-01-01T00:00:00.000Z",
        updated_at="2026-01-02T00:00:00.000Z",
    )
    view = tenant_view(config)
    assert list(view) == [
        "tenantId",
        "name",
        "genesysOrgId",
        "genesysOrgName",
        "genesysRegion",
        "version",
        "createdAt",
        "updatedAt",
        "genesys",
        "whatsapp",
        "settings",
    ]
    assert view["version"] == 3 and view["updatedAt"] == "2026-01-02T00:00:00.000Z"
    assert view["genesys"] == {
        "clientId": "client",
        "clientSecret": "****" + genesys.client_secret[-4:],
        "region": "mypurecloud.ie",
        "integrationId": "integration-1",
        "webhookSecret": "****" + genesys.webhook_secret[-4:],
    }
    assert view["whatsapp"] == {
        "meta_access_token": "****" + whatsapp.access_token[-4:],
        "whatsapp_phone_number_id": "106540352242922",
        "whatsapp_business_account_id": "102290129340398",
        "meta_app_secret": "****" + whatsapp.app_secret[-4:],
        "webhook_verify_token": "****" + whatsapp.verify_token[-4:],
    }
    text = repr(view)
    for secret in (genesys.client_secret, whatsapp.access_token, whatsapp.verify_token):
        assert secret not in text


def test_sections_not_configured_are_null() -> None:
    view = tenant_view(TenantConfig(tenant_id="bare", version=1, name="Bare"))
    assert view["genesys"] is None and view["whatsapp"] is None
