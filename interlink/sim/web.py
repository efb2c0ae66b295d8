"""What every simulator resource shares: the request log, faults, dropped connections, raw bodies.

A resource names what it is serving with :func:`serve_as` (route kind, tenant, parsed body);
:class:`RecordingMiddleware` then writes one record per request when the answer is known, and
closes the connection without an answer when a fault asked for a drop.
"""

from __future__ import annotations

import json
import logging
import socket
from typing import Any

import falcon
import gevent

from interlink.sim.errors import META_CODE_FOR_STATUS, genesys_error, graph_error
from interlink.sim.faults import FaultRule
from interlink.sim.state import SimState

log = logging.getLogger(__name__)

#: WSGI environ key under which :class:`~interlink.sim.server.SimHandler` exposes itself.
HANDLER_KEY = "interlink.sim.handler"
DROPPED_STATUS = 502  # in-process only (no socket to close): the stand-in for a dropped connection


def serve_as(req: falcon.Request, kind: str, tenant: str = "") -> None:
    req.context.sim_kind = kind
    req.context.sim_tenant = tenant


def read_raw(req: falcon.Request, limit: int) -> bytes | None:
    """The raw body, or ``None`` when it is larger than ``limit`` (the caller answers 413)."""
    if req.content_length is not None and req.content_length > limit:
        return None
    data = req.bounded_stream.read(limit + 1)
    return None if len(data) > limit else data


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def is_json(req: falcon.Request) -> bool:
    content_type = (req.content_type or "").split(";")[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


def genesys_answer(
    resp: falcon.Response, status: int, code: str | None = None, message: str | None = None
) -> None:
    resp.status = status
    resp.media = genesys_error(status, code, message)


def graph_answer(
    resp: falcon.Response,
    code: int,
    *,
    details: str | None = None,
    status: int | None = None,
    subcode: int | None = None,
) -> None:
    http_status, body = graph_error(code, details=details, status=status, subcode=subcode)
    resp.status = http_status
    resp.media = body


def drop(req: falcon.Request, resp: falcon.Response) -> None:
    """End the request without an answer (in-process: a 502 with ``{"sim": "dropped"}``)."""
    req.context.sim_drop = True
    resp.status = DROPPED_STATUS
    resp.media = {"sim": "dropped"}


def apply_fault(
    state: SimState, req: falcon.Request, resp: falcon.Response, route: str, tenant: str
) -> bool:
    """Consume a matching fault rule, if armed; ``True`` when it answered the request itself."""
    rule = state.faults.take(route, tenant or None)
    if rule is None:
        return False
    req.context.sim_fault = rule.describe()
    if rule.latency:
        gevent.sleep(rule.latency)
    if not rule.responds:
        return False
    if rule.hang is not None:
        gevent.sleep(rule.hang)
        drop(req, resp)
    elif rule.drop:
        drop(req, resp)
    else:
        _fault_answer(rule, route, resp)
    return True


def _fault_answer(rule: FaultRule, route: str, resp: falcon.Response) -> None:
    if route.startswith("meta.") or (route == "*" and rule.meta_error is not None):
        code = rule.meta_error
        if code is None:
            code = META_CODE_FOR_STATUS.get(rule.status or 500, 131000)
        graph_answer(resp, code, status=rule.status)
    elif (
        route == "genesys.token"
        and rule.status is not None
        and rule.status < 500
        and rule.status != 429
    ):
        resp.status = rule.status
        resp.media = {
            "error": rule.genesys_code or "invalid_request",
            "description": "injected fault",
        }
    else:
        genesys_answer(resp, rule.status or 500, rule.genesys_code)
    if rule.retry_after is not None:
        resp.set_header("Retry-After", str(rule.retry_after))
    if rule.body is not None:
        resp.media = rule.body


class RecordingMiddleware:
    """One record per simulator request; dropped connections closed after the responder ran."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.sim_kind = None
        req.context.sim_tenant = ""
        req.context.sim_body = None
        req.context.sim_fault = None
        req.context.sim_drop = False

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        kind = req.context.sim_kind
        if kind is not None:
            self.state.recorder.record(
                time=self.state.clock(),
                kind=kind,
                tenant=req.context.sim_tenant,
                direction="in",
                method=req.method,
                path=req.path,
                query=req.query_string,
                headers={name.lower(): value for name, value in req.headers.items()},
                body=req.context.sim_body,
                status=0 if req.context.sim_drop else resp.status_code,
                fault=req.context.sim_fault,
            )
        if req.context.sim_drop:
            handler = req.env.get(HANDLER_KEY)
            if handler is not None and handler.socket is not None:
                try:
                    handler.socket.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # the client went first
                handler.close_connection = True
