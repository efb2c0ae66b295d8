"""What every Genesys call shares: the timeout, the statuses worth retrying, the correlation id
and a lenient read of the JSON body."""

from __future__ import annotations

from typing import Any

import requests

from interlink.providers.errors import TransientError
from interlink.providers.retry import parse_retry_after

Timeout = float | tuple[float, float]

DEFAULT_TIMEOUT: Timeout = (5.0, 20.0)
"""(connect, read) seconds for every Genesys call."""

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
CORRELATION_HEADERS = ("Genesys-Correlation-Id", "ININ-Correlation-Id")


def correlation_id(response: requests.Response) -> str | None:
    """Genesys's request id: ``Genesys-Correlation-Id`` or ``ININ-Correlation-Id``."""
    for name in CORRELATION_HEADERS:
        value = response.headers.get(name)
        if value:
            return value
    return None


def json_body(response: requests.Response) -> Any:
    """The decoded JSON body, or ``None`` when it is not JSON (a proxy's HTML page, empty)."""
    try:
        return response.json()
    except ValueError:
        return None


def retry_later(response: requests.Response, message: str) -> TransientError:
    """The error of an answer in ``RETRY_STATUSES``: retried after its ``Retry-After``."""
    return TransientError(
        message,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        status=response.status_code,
        correlation_id=correlation_id(response),
    )
