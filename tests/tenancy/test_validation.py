"""The tenant field declaration and its checks, pure: no store, no HTTP."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from interlink.tenancy.config import GenesysCredentials, TenantConfig, WhatsAppConfig
from interlink.tenancy.validation import (
    GENESYS,
    PLAIN_FIELDS,
    SETTINGS,
    SETTINGS_DEFAULTS,
    WHATSAPP,
    InvalidTenantData,
    check_plain,
    check_tenant_id,
    is_provider_id,
    is_tenant_id,
)


def _fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(cls)}


@pytest.mark.parametrize(
    ("declared", "cls"),
    [
        ((*PLAIN_FIELDS, SETTINGS), TenantConfig),
        (GENESYS.fields, GenesysCredentials),
        (WHATSAPP.fields, WhatsAppConfig),
    ],
)
def test_the_declaration_matches_the_decoded_config(declared: Any, cls: type) -> None:
    attrs = _fields(cls)
    for field in declared:
        assert field.attr in attrs, field
        # A secret never shows in the config's repr; nothing else is hidden.
        assert attrs[field.attr].repr is not field.secret, field
    if cls is not TenantConfig:
        assert {f.attr for f in declared} == set(attrs)


def test_tenant_ids() -> None:
    assert is_tenant_id("acme") and is_tenant_id("a" * 64) and not is_tenant_id("a" * 65)
    for bad in ("", "Acme", "-acme", "acme\n", "../acme", "acme/x", "\u0430cme", None, 7):
        assert not is_tenant_id(bad), bad
    for reserved in ("by-phone", "by-integration"):
        with pytest.raises(InvalidTenantData) as caught:
            check_tenant_id(reserved)
        assert caught.value.field == "tenantId"
    assert check_tenant_id("acme") == "acme"


def test_provider_ids() -> None:
    assert is_provider_id("106540352242922") and is_provider_id("a1b2-c3.d4:e5_f6")
    for bad in ("", "a/b", ".x", "x" * 129, "1\n", None):
        assert not is_provider_id(bad), bad


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": 7}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"name": "x" * 257}, "name"),
        ({"genesysOrgName": "\ud800"}, "genesysOrgName"),
        ({"genesysRegion": "mars.pure.cloud"}, "genesysRegion"),
        ({"version": "9"}, "version"),
    ],
)
def test_plain_fields_refused(values: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidTenantData) as caught:
        check_plain(values)
    assert caught.value.field == field


def test_plain_fields_accepted() -> None:
    assert check_plain({"name": "Acme", "genesysRegion": "aps1.mypurecloud.com"}) == {
        "name": "Acme",
        "genesysRegion": "aps1.pure.cloud",
    }
    assert check_plain({"genesysRegion": ""}) == {"genesysRegion": ""}


def _genesys(**overrides: Any) -> dict[str, Any]:
    return {
        "clientId": "client",
        "clientSecret": "s3cret-client-value",
        "region": "mypurecloud.ie",
        "integrationId": "0f1e2d3c-4b5a",
        "webhookSecret": "w" * 16,
        **overrides,
    }


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"webhookSecret": "x" * 15}, "webhookSecret", "longer than 15"),
        ({"clientSecret": "****abcd"}, "clientSecret", "masked"),
        ({"clientSecret": "short"}, "clientSecret", "at least 8"),
        ({"clientSecret": " padded-secret"}, "clientSecret", "blanks"),
        ({"integrationId": "a/b"}, "integrationId", "letters, digits"),
        ({"region": "nowhere"}, "region", "mypurecloud.com"),
        ({"clientId": ""}, "clientId", "empty"),
    ],
)
def test_section_refusals_name_the_field_never_the_value(
    overrides: dict[str, Any], field: str, message: str
) -> None:
    values = _genesys(**overrides)
    with pytest.raises(InvalidTenantData) as caught:
        GENESYS.check(values)
    assert caught.value.field == field and message in str(caught.value)
    if field != "region":
        assert str(values[field]) not in str(caught.value) or values[field] == ""


def test_a_section_is_written_whole() -> None:
    with pytest.raises(InvalidTenantData) as caught:
        GENESYS.check({k: v for k, v in _genesys().items() if k != "webhookSecret"})
    assert caught.value.field == "webhookSecret"
    assert list(GENESYS.check(_genesys())) == list(GENESYS.names)
    assert GENESYS.secrets == ("clientSecret", "webhookSecret")
    assert WHATSAPP.secrets == ("meta_access_token", "meta_app_secret", "webhook_verify_token")


def test_keyword_names_map_to_api_names() -> None:
    assert WHATSAPP.by_api_name({"phone_number_id": "1", "verify_token": "t"}) == {
        "whatsapp_phone_number_id": "1",
        "webhook_verify_token": "t",
    }
    with pytest.raises(TypeError):
        GENESYS.by_api_name({"clientSecret": "x"})  # the API name is not a keyword


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ([], "settings"),
        ({"nope": 1}, "settings"),
        ({"messagesPerSecond": True}, "settings.messagesPerSecond"),
        ({"messagesPerSecond": float("nan")}, "settings.messagesPerSecond"),
        ({"messagesPerSecond": 0}, "settings.messagesPerSecond"),
        ({"messagesPerSecond": 1001}, "settings.messagesPerSecond"),
        ({"reactionsAsText": "yes"}, "settings.reactionsAsText"),
        ({"fallbackTemplate": {"name": "x"}}, "settings.fallbackTemplate"),
        ({"fallbackTemplate": {"name": "X!", "language": "en"}}, "settings.fallbackTemplate.name"),
        (
            {"fallbackTemplate": {"name": "hello", "language": "english"}},
            "settings.fallbackTemplate.language",
        ),
        ({"welcomeText": ""}, "settings.welcomeText"),
        ({"welcomeText": ["hi"]}, "settings.welcomeText"),
        ({"welcomeText": "x" * 4097}, "settings.welcomeText"),
        ({"typingIndicator": 0}, "settings.typingIndicator"),
    ],
)
def test_settings_refused(value: Any, field: str) -> None:
    with pytest.raises(InvalidTenantData) as caught:
        SETTINGS.check(SETTINGS.name, value)
    assert caught.value.field == field


def test_settings_left_out_take_their_defaults() -> None:
    assert SETTINGS.check(SETTINGS.name, {}) == SETTINGS_DEFAULTS
    template = {"name": "hello_world", "language": "en_US"}
    assert SETTINGS.check(
        SETTINGS.name, {"messagesPerSecond": 5, "fallbackTemplate": template}
    ) == {
        **SETTINGS_DEFAULTS,
        "messagesPerSecond": 5,
        "fallbackTemplate": template,
    }


def test_a_welcome_text_and_typing_off_are_kept() -> None:
    checked = SETTINGS.check(
        SETTINGS.name,
        {"welcomeText": "Hello! An agent will answer soon.", "typingIndicator": False},
    )
    assert checked["welcomeText"] == "Hello! An agent will answer soon."
    assert checked["typingIndicator"] is False
