"""Logging on stderr: one JSON object per line (``json``) or a readable line (``text``).

Fields passed with ``extra={...}`` are kept as fields. Callers never pass secrets; tokens and keys
have masked reprs besides, so an accidental ``%r`` shows nothing usable.

Every line about one tenant carries its ``tenant`` field (the contract): where a tenant's work
starts (a webhook once its tenant is known, an actor's loop) the tenant is bound to the current
context with :func:`bind`, and the formatters add the bound fields to every record that does not
carry them itself. Under gevent each greenlet has its own context, which starts empty: an actor's
greenlet binds its tenant once for its whole life; a request's binding is reset when it ends.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from interlink.tenancy.validation import is_tenant_id

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

# The fields bound to the current context: ``tenant`` and, where known, ``wamid`` and
# ``genesysMessageId``. An immutable mapping, replaced (never mutated) by bind(): a context copied
# by a greenlet or a task cannot see its parent's later changes.
_EMPTY: Mapping[str, str] = {}
_bound: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "interlink_log_fields", default=_EMPTY
)
MAX_FIELD = 200  # a bound value comes from outside (an id in a path or a payload): cut it

Token = contextvars.Token


def bind(
    tenant: str | None = None,
    *,
    wamid: str | None = None,
    genesys_message_id: str | None = None,
) -> Token[Mapping[str, str]]:
    """Add fields to every later log line of this context; :func:`reset` with the token undoes it."""
    fields = dict(_bound.get())
    for name, value in (
        ("tenant", tenant),
        ("wamid", wamid),
        ("genesysMessageId", genesys_message_id),
    ):
        if value is not None:
            fields[name] = str(value)[:MAX_FIELD]
    return _bound.set(fields)


def reset(token: Token[Mapping[str, str]]) -> None:
    _bound.reset(token)


def clear() -> Token[Mapping[str, str]]:
    """Start this context without bound fields (a request on a kept-alive connection)."""
    return _bound.set(_EMPTY)


@contextmanager
def bound(
    tenant: str | None = None,
    *,
    wamid: str | None = None,
    genesys_message_id: str | None = None,
) -> Iterator[None]:
    token = bind(tenant, wamid=wamid, genesys_message_id=genesys_message_id)
    try:
        yield
    finally:
        _bound.reset(token)


def current() -> Mapping[str, str]:
    """The fields bound to the current context."""
    return _bound.get()


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    own = {k: v for k, v in vars(record).items() if k not in _STANDARD}
    context = _bound.get()
    if not context:
        return own
    # A record's own fields win: a supervisor logging about tenant B while bound to nothing, or
    # a caller naming another tenant on purpose, is not overwritten.
    return {**context, **own}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{time.strftime('%H:%M:%S', time.localtime(record.created))} {record.levelname:<7} {record.getMessage()}"
        if extra:
            line += f"  {extra}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


access_log = logging.getLogger("interlink.access")
MAX_ROUTE = 200


def route_of(template: str | None, path: str) -> str:
    """What an access line names: the route template when one matched (``/media/{token}`` shows
    no token), else the path cut short; a media path never shows its token either way."""
    if template:
        return template[:MAX_ROUTE]
    if path.startswith("/media/"):
        return "/media/…"
    return path[:MAX_ROUTE]


class RequestLog:
    """Falcon middleware: every request starts with no bound log fields (a kept-alive
    connection's greenlet would otherwise keep the previous request's tenant), binds the tenant
    of a ``{tenantId}``/``{tenant_id}`` route, and ends with its binding undone and, when
    ``access`` is on, one access line (never the query string)."""

    TENANT_PARAMS = ("tenantId", "tenant_id")

    def __init__(self, access: bool = False) -> None:
        self.access = access

    def process_request(self, req: Any, resp: Any) -> None:
        req.context.log_token = clear()
        req.context.log_started = time.perf_counter()

    def process_resource(self, req: Any, resp: Any, resource: Any, params: dict[str, Any]) -> None:
        for name in self.TENANT_PARAMS:
            value = params.get(name)
            if isinstance(value, str) and is_tenant_id(value):
                bind(value)
                return

    def process_response(self, req: Any, resp: Any, resource: Any, req_succeeded: bool) -> None:
        token = getattr(req.context, "log_token", None)
        try:
            if self.access:
                started = getattr(req.context, "log_started", None)
                access_log.info(
                    "request",
                    extra={
                        "method": str(req.method)[:16],
                        "route": route_of(req.uri_template, req.path),
                        "status": resp.status_code,
                        "ms": round((time.perf_counter() - started) * 1000, 2)
                        if started is not None
                        else None,
                    },
                )
        finally:
            if token is not None:
                reset(token)
