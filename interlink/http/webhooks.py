"""What the two providers' webhooks share: tenant lookups, refusals, and the durable accept."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NoReturn

import falcon

from interlink.services import Services
from interlink.store.inbox import BACKLOGGED, DUPLICATE, InboxUnavailable, Item
from interlink.tenant_directory import TenantDirectory

TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
RETRY_AFTER_OVERLOADED = 5
RETRY_AFTER_UNAVAILABLE = 5


def directory(services: Services) -> TenantDirectory:
    found = services.extras.get("directory")
    if found is None:
        found = services.extras["directory"] = TenantDirectory(services.tenants)
    assert isinstance(found, TenantDirectory)
    return found


def valid_tenant_id(tenant_id: str) -> None:
    if not TENANT_ID.match(tenant_id):
        refuse_unknown("No such tenant.")


def refuse_unknown(description: str) -> NoReturn:
    raise falcon.HTTPNotFound(title="Unknown tenant", description=description)


def accept_items(services: Services, items: Sequence[Item]) -> dict[str, Any]:
    """Store every item durably, or answer so that the provider retries the whole request:
    429 when a tenant has too much unfinished work, 503 when Redis does not answer."""
    try:
        results = services.inbox.accept(items)
    except InboxUnavailable:
        services.metrics.counter(
            "interlink_webhook_unavailable_total", "Webhooks refused: store down."
        ).inc()
        raise falcon.HTTPServiceUnavailable(
            title="Store unavailable",
            description="The message store does not answer; retry later.",
            retry_after=RETRY_AFTER_UNAVAILABLE,
        ) from None
    if BACKLOGGED in results:
        raise falcon.HTTPTooManyRequests(
            title="Tenant overloaded",
            description="Too much unfinished work for this tenant; retry later.",
            retry_after=RETRY_AFTER_OVERLOADED,
        )
    duplicates = results.count(DUPLICATE)
    accepted = len(results) - duplicates
    counter = services.metrics.counter(
        "interlink_items_accepted_total", "Webhook items stored durably."
    )
    counter.inc(accepted)
    return {"accepted": accepted, "duplicates": duplicates}
