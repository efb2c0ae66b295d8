"""Helpers every resource uses to treat input as hostile: bounded bodies, strict JSON."""

from __future__ import annotations

import json
from typing import Any

import falcon

KIB = 1024
ADMIN_BODY_LIMIT = 64 * KIB
GENESYS_BODY_LIMIT = 512_000  # Genesys's own request.bytes.max
META_BODY_LIMIT = 3 * KIB * KIB  # Meta's largest webhook payload


# The body is left unread (or half read): the connection cannot carry another request.
CLOSE = {"Connection": "close"}


def _too_large(limit: int) -> falcon.HTTPContentTooLarge:
    return falcon.HTTPContentTooLarge(
        title="Body too large", description=f"The body may be at most {limit} bytes.", headers=CLOSE
    )


def check_length(req: falcon.Request, limit: int) -> None:
    """413 from the declared length alone, before a byte of the body is read."""
    if req.content_length is not None and req.content_length > limit:
        raise _too_large(limit)


def read_body(req: falcon.Request, limit: int) -> bytes:
    """The raw body, read once; 413 when it is, or turns out to be, larger than ``limit``; 408
    when it does not arrive within the server's body timeout (``interlink.http.server``); 400
    when its chunked framing is malformed or it ends early. Each of these closes the connection."""
    check_length(req, limit)
    try:
        return _read(req, limit)
    except TimeoutError:
        raise falcon.HTTPError(
            falcon.HTTP_408,
            title="Request timeout",
            description="The body did not arrive in time.",
            headers=CLOSE,
        ) from None
    except (OSError, ValueError):
        # gevent's chunked decoder: IOError for bad framing or an early end, ValueError for a
        # chunk size with no digits.
        raise falcon.HTTPBadRequest(
            title="Malformed body",
            description="The body ended early or its chunked encoding is malformed.",
            headers=CLOSE,
        ) from None


def _read(req: falcon.Request, limit: int) -> bytes:
    # Without Content-Length (chunked transfer) read the decoded stream, never more than one
    # byte past the limit.
    length = req.content_length
    if length is not None:  # checked above: at most ``limit``; WSGI allows reading exactly it
        data: bytes = req.stream.read(length)
        if len(data) < length:
            raise OSError("body shorter than its Content-Length")
        return data
    data = req.stream.read(limit + 1)
    if len(data) > limit:
        raise _too_large(limit)
    return data


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object or a 400 that says what is wrong (never the body itself)."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise falcon.HTTPBadRequest(
            title="Malformed JSON", description="The body is not valid JSON."
        ) from None
    if not isinstance(value, dict):
        raise falcon.HTTPBadRequest(
            title="Invalid body", description="The body must be a JSON object."
        )
    return value


def require_json(req: falcon.Request) -> None:
    """415 unless the body is declared as JSON."""
    if req.content_type is None or not req.content_type.split(";")[0].strip().lower().endswith(
        "json"
    ):
        raise falcon.HTTPUnsupportedMediaType(
            title="Unsupported media type", description="Send the body as application/json."
        )


def json_body(req: falcon.Request, limit: int = ADMIN_BODY_LIMIT) -> dict[str, Any]:
    """Size first, then type, then shape: the order in which a hostile body is cheapest to refuse."""
    check_length(req, limit)
    require_json(req)
    return parse_json_object(read_body(req, limit))
