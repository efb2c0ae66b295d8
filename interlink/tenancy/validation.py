"""What a tenant is made of, and the checks an administrator's input must pass.

The fields are declared once, here: :data:`PLAIN_FIELDS` (top-level strings), :data:`SETTINGS`
(the per-tenant behaviour object) and the two credential sections :data:`GENESYS` and
:data:`WHATSAPP`. The admin API's accepted and required fields, the record the store writes, the
masked view and the decoded :class:`interlink.tenancy.config.TenantConfig` are all derived from
these declarations. Every check raises :class:`InvalidTenantData` naming the field, never its value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from interlink.providers.pacing import META_MESSAGES_PER_SECOND
from interlink.tenancy.regions import UnknownRegion, normalize_region

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
MAX_MESSAGES_PER_SECOND = 1000  # Meta's highest throughput tier

# Per-tenant behaviour, with its default: the whole object is replaced by a PATCH of "settings".
SETTINGS_DEFAULTS: dict[str, object] = {
    "messagesPerSecond": META_MESSAGES_PER_SECOND,  # the business number's throughput
    "reactionsAsText": True,  # a user's reaction reaches the agent as a short text, else nothing
    # {"name", "language"} of an approved template with one body parameter: an agent's text
    # outside the 24-hour window goes out in it, instead of failing with MessageExpired.
    "fallbackTemplate": None,
    # A text sent to a user who opens the chat for the first time (request_welcome); None: none.
    "welcomeText": None,
    # An agent's typing shows WhatsApp's typing indicator, which also marks the user's last
    # message read; False: neither.
    "typingIndicator": True,
}
MAX_WELCOME_TEXT = 4096  # a WhatsApp text's limit
_TEMPLATE_NAME = re.compile(r"[a-z0-9_]{1,512}")
_TEMPLATE_LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Za-z]{2,4})?")
_MASKED = re.compile(r"\*{4}.{0,4}", re.DOTALL)


class InvalidTenantData(Exception):
    """A field is missing or malformed (HTTP 400); ``str()`` names the field, never its value."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


# -- ids -----------------------------------------------------------------------------------------
def is_tenant_id(value: object) -> bool:
    """``^[a-z0-9][a-z0-9_-]{0,63}$`` matched in full (``$`` alone would allow a trailing newline)."""
    return isinstance(value, str) and TENANT_ID.fullmatch(value) is not None


def check_tenant_id(value: object) -> str:
    """A tenant id a new tenant may take: well formed and not one of the reserved route words."""
    if not is_tenant_id(value):
        raise InvalidTenantData("tenantId", "must match ^[a-z0-9][a-z0-9_-]{0,63}$")
    assert isinstance(value, str)
    if value in RESERVED_TENANT_IDS:
        raise InvalidTenantData("tenantId", f"{value!r} is reserved")
    return value


def is_provider_id(value: object) -> bool:
    return isinstance(value, str) and PROVIDER_ID.fullmatch(value) is not None


# -- field checks: (field name, value) -> the value to store ---------------------------------------
def provider_id(field: str, value: object) -> str:
    if not is_provider_id(value):
        raise InvalidTenantData(
            field,
            "must be 1-128 letters, digits, '.', ':', '_' or '-' (starting with a letter or digit)",
        )
    assert isinstance(value, str)
    return value


def _string(field: str, value: object) -> str:
    """A string that UTF-8 can encode: JSON can carry lone surrogates no store or reply can."""
    if not isinstance(value, str):
        raise InvalidTenantData(field, "must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidTenantData(field, "must be valid Unicode text") from None
    return value


def text(field: str, value: object) -> str:
    """Up to ``MAX_TEXT`` characters of printable text, possibly empty."""
    value = _string(field, value)
    if len(value) > MAX_TEXT:
        raise InvalidTenantData(field, f"must be at most {MAX_TEXT} characters")
    if any(ch < " " for ch in value):
        raise InvalidTenantData(field, "must not contain control characters")
    return value


def required_text(field: str, value: object) -> str:
    """As :func:`text`, and not blank."""
    if isinstance(value, str) and not value.strip():
        raise InvalidTenantData(field, "must not be empty")
    return text(field, value)


def region(field: str, value: object) -> str:
    """A Genesys Cloud region, normalised to its current domain."""
    try:
        return normalize_region(_string(field, value))
    except UnknownRegion as exc:
        raise InvalidTenantData(field, str(exc)) from None


def optional_region(field: str, value: object) -> str:
    """A region, or "" for none."""
    return "" if value == "" else region(field, value)


def secret(field: str, value: object, minimum: int = MIN_SECRET) -> str:
    value = _string(field, value)
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


def webhook_secret(field: str, value: object) -> str:
    return secret(field, value, MIN_WEBHOOK_SECRET)


def settings(field: str, value: object) -> dict[str, object]:
    """A ``settings`` object: known keys only, each of its type and range; a key left out takes
    its default."""
    if not isinstance(value, dict):
        raise InvalidTenantData(field, "must be an object")
    unknown = [str(k)[:40] for k in value if k not in SETTINGS_DEFAULTS]
    if unknown:
        raise InvalidTenantData(
            field, f"unknown keys {unknown[:5]}; known: {', '.join(SETTINGS_DEFAULTS)}"
        )
    rate = value.get("messagesPerSecond", SETTINGS_DEFAULTS["messagesPerSecond"])
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate != rate:  # NaN
        raise InvalidTenantData(f"{field}.messagesPerSecond", "must be a number")
    if not 0 < rate <= MAX_MESSAGES_PER_SECOND:
        raise InvalidTenantData(
            f"{field}.messagesPerSecond", f"must be above 0 and at most {MAX_MESSAGES_PER_SECOND}"
        )
    reactions = value.get("reactionsAsText", SETTINGS_DEFAULTS["reactionsAsText"])
    if not isinstance(reactions, bool):
        raise InvalidTenantData(f"{field}.reactionsAsText", "must be true or false")
    template = value.get("fallbackTemplate")
    if template is not None:
        if not isinstance(template, dict) or set(template) != {"name", "language"}:
            raise InvalidTenantData(
                f"{field}.fallbackTemplate", 'must be null or {"name", "language"}'
            )
        name, language = template["name"], template["language"]
        if not isinstance(name, str) or not _TEMPLATE_NAME.fullmatch(name):
            raise InvalidTenantData(
                f"{field}.fallbackTemplate.name", "must be a template name: a-z, 0-9, _"
            )
        if not isinstance(language, str) or not _TEMPLATE_LANGUAGE.fullmatch(language):
            raise InvalidTenantData(
                f"{field}.fallbackTemplate.language", "must be a language code such as en_US"
            )
        template = {"name": name, "language": language}
    welcome = value.get("welcomeText")
    if welcome is not None:
        if not isinstance(welcome, str) or not welcome.strip():
            raise InvalidTenantData(f"{field}.welcomeText", "must be null or a non-blank text")
        if len(welcome) > MAX_WELCOME_TEXT:
            raise InvalidTenantData(
                f"{field}.welcomeText", f"must be at most {MAX_WELCOME_TEXT} characters"
            )
    typing = value.get("typingIndicator", SETTINGS_DEFAULTS["typingIndicator"])
    if not isinstance(typing, bool):
        raise InvalidTenantData(f"{field}.typingIndicator", "must be true or false")
    return {
        "messagesPerSecond": rate,
        "reactionsAsText": reactions,
        "fallbackTemplate": template,
        "welcomeText": welcome,
        "typingIndicator": typing,
    }


# -- the declaration -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Field:
    """One field of a tenant: its API (and record) name, the attribute of the decoded config
    that holds it, and its check."""

    name: str
    attr: str
    check: Callable[[str, Any], Any]
    secret: bool = False  # encrypted at rest, masked in every view
    json_type: type = str  # the JSON type a request body must carry


@dataclass(frozen=True, slots=True)
class Section:
    """A credential section: written whole, stored as one JSON object under ``name``."""

    name: str
    fields: tuple[Field, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.secret)

    def check(self, values: Mapping[str, Any]) -> dict[str, str]:
        """Every field checked, keyed by API name in declaration order; a missing one is invalid."""
        checked: dict[str, str] = {}
        for f in self.fields:
            if f.name not in values:
                raise InvalidTenantData(f.name, "is required")
            checked[f.name] = f.check(f.name, values[f.name])
        return checked

    def by_api_name(self, values_by_attr: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments named after the config's attributes, renamed to the API's names."""
        renamed = {f.attr: f.name for f in self.fields}
        unknown = [k for k in values_by_attr if k not in renamed]
        if unknown:
            raise TypeError(f"unexpected {self.name} arguments: {', '.join(unknown)}")
        return {renamed[k]: v for k, v in values_by_attr.items()}


# The tenant's own strings, top-level in the record and the view; ``name`` is required.
PLAIN_FIELDS = (
    Field("name", "name", required_text),
    Field("genesysOrgId", "genesys_org_id", text),
    Field("genesysOrgName", "genesys_org_name", text),
    Field("genesysRegion", "genesys_region", optional_region),
)
SETTINGS = Field("settings", "settings", settings, json_type=dict)
GENESYS = Section(
    "genesys",
    (
        Field("clientId", "client_id", required_text),
        Field("clientSecret", "client_secret", secret, secret=True),
        Field("region", "region", region),
        Field("integrationId", "integration_id", provider_id),
        Field("webhookSecret", "webhook_secret", webhook_secret, secret=True),
    ),
)
WHATSAPP = Section(
    "whatsapp",
    (
        Field("meta_access_token", "access_token", secret, secret=True),
        Field("whatsapp_phone_number_id", "phone_number_id", provider_id),
        Field("whatsapp_business_account_id", "business_account_id", provider_id),
        Field("meta_app_secret", "app_secret", secret, secret=True),
        Field("webhook_verify_token", "verify_token", secret, secret=True),
    ),
)
# What a view adds to the declared fields: set by the store, never by a request.
RECORD_FIELDS = ("tenantId", "version", "createdAt", "updatedAt")


def check_plain(values: Mapping[str, Any]) -> dict[str, str]:
    """The plain fields given, checked; InvalidTenantData names an unknown field."""
    declared = {f.name: f for f in PLAIN_FIELDS}
    checked: dict[str, str] = {}
    for name, value in values.items():
        if name not in declared:
            raise InvalidTenantData(name, "is not a field that can be changed")
        checked[name] = declared[name].check(name, value)
    return checked
