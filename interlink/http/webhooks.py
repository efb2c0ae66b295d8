"""What the two providers' webhooks share: refusals, reading hostile bodies, and the durable accept.

Redis failing under any of it rises to the app's error handlers (``interlink.http.errors``)."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, NoReturn, TypeVar

import falcon
import msgpack
import redis

from interlink.inbox import BACKLOGGED, DUPLICATE, Entry, InboxUnavailable, Kind
from interlink.mapping.wire import MappingError
from interlink.services import Services
from interlink.telemetry import metrics
from interlink.tenancy.validation import is_tenant_id

log = logging.getLogger(__name__)

RETRY_AFTER_OVERLOADED = 5

# The largest and smallest integers msgpack (the inbox's encoding) can carry.
_INT_MAX, _INT_MIN = 2**64 - 1, -(2**63)
_SURROGATE = re.compile("[\ud800-\udfff]")

T = TypeVar("T")


def counted(provider: str, resp: falcon.Response, handle: Callable[[], None]) -> None:
    """Run a webhook's ``handle`` and count its answer (``interlink_webhooks_total``) and the time
    it took (``interlink_webhook_ack_seconds``), whether it stored the items or refused them."""
    started = time.perf_counter()
    status = 500
    try:
        handle()
        status = falcon.http_status_to_code(resp.status)
    except falcon.HTTPError as exc:
        status = falcon.http_status_to_code(exc.status)
        raise
    except (redis.RedisError, InboxUnavailable):  # the app's error handler answers 503
        status = 503
        raise
    finally:
        metrics.webhook_answered(provider, status, time.perf_counter() - started)


def known_tenant_id(tenant_id: str) -> str:
    """The path's tenant id, or the 404 of an unknown tenant before any lookup."""
    if not is_tenant_id(tenant_id):
        refuse_unknown("No such tenant.")
    return tenant_id


def refuse_unknown(description: str) -> NoReturn:
    raise falcon.HTTPNotFound(title="Unknown tenant", description=description)


def client_error(
    services: Services, route: str, reason: str, title: str, description: str
) -> falcon.HTTPBadRequest:
    """A 400 for what a client sent, counted by route and reason instead of logged: a stream of
    malformed requests costs a counter increment each, never a log line (let alone a traceback)."""
    metrics.CLIENT_ERRORS.labels(route, reason).inc()
    return falcon.HTTPBadRequest(title=title, description=description)


def parsed_json(services: Services, route: str, raw: bytes) -> Any:
    """The body as JSON, or a 400. ``json`` itself refuses integer literals past 4,300 digits
    (a ValueError) and nesting past the recursion limit."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise client_error(
            services, route, "malformed_json", "Malformed JSON", "The body is not valid JSON."
        ) from None


def mapped(services: Services, route: str, read: Callable[[], T]) -> T:
    """``read()`` (a pure reader of a hostile body), or a 400 when it refuses the body.

    MappingError is the readers' documented refusal and says which field is wrong. Any other
    exception is a reader's bug, but one a client's bytes set off: still the client's request,
    so a 400 counted apart (``reason="unexpected"``) with one log line naming the exception's
    type, not a 500 with a traceback per request."""
    try:
        return read()
    except MappingError as exc:  # a ValueError too: checked first so the description says why
        raise client_error(
            services, route, "invalid_shape", "Invalid notification", str(exc)
        ) from None
    except Exception as exc:  # a pure reader has no I/O: nothing here is the store's trouble
        log.warning(
            "webhook body refused by an unexpected error",
            extra={"route": route, "error": type(exc).__name__},
        )
        raise client_error(
            services, route, "unexpected", "Invalid notification", "The body cannot be read."
        ) from None


class Accepted(NamedTuple):
    """What a webhook answers once its items are stored: how many were new, how many seen."""

    accepted: int
    duplicates: int

    def reply(self, resp: falcon.Response) -> None:
        # Formatted, not serialised through Falcon's media handlers: this is every webhook's
        # answer, and two counts need no JSON encoder.
        resp.data = b'{"accepted": %d, "duplicates": %d}' % self


def accept_items(services: Services, items: Sequence[Entry]) -> Accepted:
    """Store every item (made by :func:`storable_item`) durably, or answer so that the provider
    retries the whole request: 429 when a tenant has too much unfinished work; when Redis does not
    answer, ``InboxUnavailable`` rises to its error handler (503)."""
    results = services.inbox.accept(items)  # InboxUnavailable: a 503 (interlink.http.errors)
    if BACKLOGGED in results:
        raise falcon.HTTPTooManyRequests(
            title="Tenant overloaded",
            description="Too much unfinished work for this tenant; retry later.",
            retry_after=RETRY_AFTER_OVERLOADED,
        )
    duplicates = results.count(DUPLICATE)
    accepted = len(results) - duplicates
    metrics.ITEMS_ACCEPTED.inc(accepted)
    if duplicates:  # rare; an increment takes a lock (a gevent one in a shard), even by 0
        metrics.ITEMS_DUPLICATE.inc(duplicates)
    return Accepted(accepted, duplicates)


def storable_item(
    tenant_id: str, kind: Kind, payload: dict[str, Any], *, conversation: str | None, dedupe: str
) -> Entry | None:
    """An inbox entry with its payload packed once. Valid JSON may hold what msgpack and Redis
    cannot: integers beyond 64 bits, lone surrogates in strings. Such values are rewritten (the
    integer as its decimal text, the surrogate as U+FFFD) — the same way every time, so a
    redelivery is still recognised — rather than letting one signed body stall the shared inbox
    commit. None (logged) when even that fails."""
    try:
        # ``tenant_id`` and ``kind`` are ours; the other texts come from the provider.
        (conversation or "").encode()
        dedupe.encode()
        return Entry(
            tenant_id,
            kind,
            payload,
            conversation,
            dedupe,
            msgpack.packb(payload, use_bin_type=True),
        )
    except (ValueError, OverflowError, TypeError):  # UnicodeEncodeError is a ValueError
        pass
    try:
        payload = _clean(payload)
    except RecursionError:
        log.warning(
            "webhook item cannot be stored; dropped", extra={"tenant": tenant_id, "kind": kind}
        )
        return None
    log.info("webhook item made storable", extra={"tenant": tenant_id, "kind": kind})
    return Entry(
        tenant_id,
        kind,
        payload,
        conversation=None if conversation is None else _clean(conversation),
        dedupe=_clean(dedupe),
    )


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return value if _INT_MIN <= value <= _INT_MAX else str(value)
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return str(value)
