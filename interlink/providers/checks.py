"""``interlink tenants check``: prove a tenant's setup against the live providers.

Four checks, each one call, in order: a Genesys token for the tenant's OAuth client, its Open
Messaging integration readable with that token, the Meta number readable with the tenant's
token, and the WhatsApp Business Account's webhook subscription. The outcome is data (a list of
:class:`Check`), never an exception: a provider refusing is exactly what the operator asks about.

Details are built from the providers' error classes, whose text is scrubbed of the credentials
the request used, and from ids the operator already knows; never from a secret.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import requests

from interlink.providers.errors import AuthError, MetaError, ProviderError
from interlink.providers.genesys import OpenMessagingClient, fetch_token
from interlink.providers.meta import GraphClient
from interlink.settings import Settings
from interlink.tenancy.config import TenantConfig

CHECK_TIMEOUT = (5.0, 10.0)
"""(connect, read) seconds per provider call: an operator waits for the answer."""

GENESYS_TOKEN = "genesys-token"
GENESYS_INTEGRATION = "genesys-integration"
META_NUMBER = "meta-number"
META_WEBHOOK = "meta-webhook"
NAMES = (GENESYS_TOKEN, GENESYS_INTEGRATION, META_NUMBER, META_WEBHOOK)


@dataclass(frozen=True, slots=True)
class Check:
    """``ok`` is ``None`` when the check could not be made (not a failure)."""

    name: str
    ok: bool | None
    detail: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def passed(checks: list[Check]) -> bool:
    """All made checks passed; "not checkable" does not fail the tenant."""
    return all(c.ok is not False for c in checks)


def _failure(exc: ProviderError) -> str:
    if isinstance(exc, AuthError):
        return f"credentials refused: {exc}"
    return str(exc)


def check_genesys(
    config: TenantConfig, settings: Settings, session: requests.Session
) -> list[Check]:
    creds = config.genesys
    if creds is None:
        missing = "no Genesys credentials set"
        return [Check(GENESYS_TOKEN, False, missing), Check(GENESYS_INTEGRATION, False, missing)]
    try:
        token = fetch_token(
            session, settings.genesys_login_base(creds.region), creds, timeout=CHECK_TIMEOUT
        )
    except ProviderError as exc:
        return [
            Check(GENESYS_TOKEN, False, _failure(exc)),
            Check(GENESYS_INTEGRATION, False, "not tried: no token"),
        ]
    checks = [
        Check(
            GENESYS_TOKEN,
            True,
            f"client {creds.client_id} in {creds.region}, expires in {token.expires_in} s",
        )
    ]

    def refused(_token: str) -> None:
        pass  # a single call: nothing cached to drop

    client = OpenMessagingClient(
        session,
        settings.genesys_api_base(creds.region),
        creds.integration_id,
        lambda: token.access_token,
        refused,
        timeout=CHECK_TIMEOUT,
    )
    try:
        integration = client.get_integration()
    except ProviderError as exc:
        checks.append(Check(GENESYS_INTEGRATION, False, f"{creds.integration_id}: {_failure(exc)}"))
        return checks
    shown = ", ".join(
        f"{key} {integration[key]}"
        for key in ("name", "status", "createStatus")
        if isinstance(integration.get(key), str)
    )
    checks.append(Check(GENESYS_INTEGRATION, True, f"{creds.integration_id}: {shown or 'found'}"))
    return checks


def check_meta(config: TenantConfig, settings: Settings, session: requests.Session) -> list[Check]:
    whatsapp = config.whatsapp
    if whatsapp is None:
        missing = "no WhatsApp configuration set"
        return [Check(META_NUMBER, False, missing), Check(META_WEBHOOK, False, missing)]
    client = GraphClient(
        session,
        settings.meta_graph_url,
        whatsapp.phone_number_id,
        whatsapp.access_token,
        timeout=CHECK_TIMEOUT,
    )
    try:
        number = client.phone_number()
    except ProviderError as exc:
        return [
            Check(META_NUMBER, False, f"{whatsapp.phone_number_id}: {_failure(exc)}"),
            Check(META_WEBHOOK, None, "not checked: the number check failed"),
        ]
    shown = ", ".join(
        f"{key} {number[key]}"
        for key in ("display_phone_number", "verified_name", "quality_rating")
        if isinstance(number.get(key), str)
    )
    checks = [Check(META_NUMBER, True, f"{whatsapp.phone_number_id}: {shown or 'found'}")]
    waba = whatsapp.business_account_id
    try:
        apps = client.subscribed_apps(waba)
    except MetaError as exc:
        if exc.code in (10, 200) or exc.http_status == 403:
            # The token may lack whatsapp_business_management: the API does not let us look.
            checks.append(Check(META_WEBHOOK, None, f"not checkable: {exc}"))
        else:
            checks.append(Check(META_WEBHOOK, False, f"account {waba}: {exc}"))
        return checks
    except ProviderError as exc:
        checks.append(Check(META_WEBHOOK, False, f"account {waba}: {exc}"))
        return checks
    if apps:
        checks.append(Check(META_WEBHOOK, True, f"account {waba}: {len(apps)} app(s) subscribed"))
    else:
        checks.append(Check(META_WEBHOOK, False, f"account {waba}: no app subscribed to webhooks"))
    return checks


def run_checks(
    config: TenantConfig,
    settings: Settings,
    session_factory: Callable[[], requests.Session],
) -> list[Check]:
    """Every check of the tenant, Genesys's then Meta's, each side on its own session."""
    checks: list[Check] = []
    for side in (check_genesys, check_meta):
        session = session_factory()
        try:
            checks += side(config, settings, session)
        finally:
            session.close()
    return checks
