"""The control endpoint: look into the actor tree and send admin messages to it (operator only).

Bodies are JSON or msgpack; the reply uses the request's type. Every ask has a deadline: a tenant
that does not answer in time gets 504 with what the supervisor knows of it.

Any shard takes a message for any tenant: one for a tenant another shard owns is relayed to the
owner through Redis (:mod:`interlink.fleet.relay`), which answers as if asked directly; every
tenant reply names the shard that gave it (``"shard"``). ``GET /control/actors?all=1`` gathers
the view of every live shard the same way. Shard messages stay with the shard asked.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from typing import Any

import falcon
import msgpack
import pykka
import redis

from interlink.actors.messages import (
    SHARD_MESSAGES,
    TENANT_MESSAGES,
    Control,
    GetTenant,
    Snapshot,
    TenantControl,
)
from interlink.fleet.relay import RelayTimeout
from interlink.http.auth import require_operator
from interlink.http.bodies import ADMIN_BODY_LIMIT, read_body
from interlink.http.tenants import tenant_id_param
from interlink.services import Services
from interlink.tenancy.ownership import owner

log = logging.getLogger(__name__)

ASK_TIMEOUT = 5.0
SNAPSHOT_TIMEOUT = 3.0
DEAD_LETTER_TYPES = ("dead-letters", "replay-dead-letters", "drop-dead-letters")
MAX_LIMIT = 10_000
STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")


def _stream_id(text: str) -> bool:
    """A Redis stream id: two unsigned 64-bit integers (a longer number is an error in Redis)."""
    return bool(STREAM_ID.fullmatch(text)) and all(int(part) < 2**64 for part in text.split("-"))


def _media_type(req: falcon.Request) -> str:
    return (req.content_type or "").split(";")[0].strip().lower()


def decode_message(req: falcon.Request, known: tuple[str, ...]) -> tuple[Control, str]:
    """Size, then type, then shape. Returns the message and the media type to answer in."""
    raw = read_body(req, ADMIN_BODY_LIMIT)
    media = _media_type(req)
    try:
        if media == "application/json":
            body = json.loads(raw)
        elif media in MSGPACK_TYPES:
            body = msgpack.unpackb(raw, raw=False, strict_map_key=True)
        else:
            raise falcon.HTTPUnsupportedMediaType(
                title="Unsupported media type",
                description="Send application/json or application/msgpack.",
            )
    # RecursionError: 64 KiB of "[" nests deeper than the json module can parse.
    except (ValueError, RecursionError, msgpack.UnpackException, msgpack.ExtraData):
        raise falcon.HTTPBadRequest(
            title="Malformed body", description=f"The body is not valid {media}."
        ) from None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise falcon.HTTPBadRequest(
            title="Invalid message", description='The body must be an object with a string "type".'
        )
    if body["type"] not in known:
        raise falcon.HTTPBadRequest(
            title="Unknown message type",
            description=f"{body['type'][:40]!r} is not one of: {', '.join(known)}.",
        )
    args = {k: v for k, v in body.items() if k != "type"}
    if body["type"] in DEAD_LETTER_TYPES:
        check_dead_letter_args(args)
    return Control(body["type"], args), (
        "application/msgpack" if media in MSGPACK_TYPES else "application/json"
    )


def check_dead_letter_args(args: dict[str, Any]) -> None:
    """``limit`` (1 to 10,000) and ``ids`` (stream entry ids) are checked at the door: a bad one
    is the caller's 400, not an error deep in the tenant actor or in Redis."""
    limit = args.get("limit", 1)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise falcon.HTTPBadRequest(
            title="Invalid message",
            description=f'"limit" must be an integer from 1 to {MAX_LIMIT}.',
        )
    ids = args.get("ids")
    if ids is not None and (
        not isinstance(ids, list)
        or len(ids) > MAX_LIMIT
        or not all(isinstance(i, str) and _stream_id(i) for i in ids)
    ):
        raise falcon.HTTPBadRequest(
            title="Invalid message",
            description='"ids" must be a list of dead-letter ids such as "1700000000000-0".',
        )


def reply(resp: falcon.Response, media: str, message: Control, result: dict[str, Any]) -> None:
    body = {"ok": True, "type": message.type, **result}
    resp.content_type = media
    if media == "application/msgpack":
        resp.data = msgpack.packb(body, use_bin_type=True)
    else:
        resp.text = json.dumps(body)


class _Base:
    def __init__(self, services: Services) -> None:
        self.services = services

    def supervisor(self) -> pykka.ActorRef[Any]:
        ref = self.services.supervisor
        if ref is None or not ref.is_alive():
            raise falcon.HTTPServiceUnavailable(
                title="Not running", description="The supervisor is not running.", retry_after=1
            )
        return ref

    def ask(self, ref: pykka.ActorRef[Any], message: Any, timeout: float | None = None) -> Any:
        """``ref``'s answer within ``timeout`` (default ``ASK_TIMEOUT``, read at call time), or
        504 when it is late, 503 when the actor died before answering (or, through the app's
        error handler, when it could not reach the store)."""
        if timeout is None:
            timeout = ASK_TIMEOUT
        try:
            return ref.ask(message, timeout=timeout)
        except pykka.Timeout:
            raise falcon.HTTPGatewayTimeout(
                title="No answer in time",
                description=f"The actor did not answer within {timeout:g} s.",
            ) from None
        except pykka.ActorDeadError:
            raise falcon.HTTPServiceUnavailable(
                title="Actor stopped",
                description="The actor stopped before answering.",
                retry_after=1,
            ) from None
        except ValueError as exc:
            # Control handlers refuse bad arguments with a ValueError (their messages are ours
            # and carry no secret): the caller's mistake, answered as one.
            raise falcon.HTTPBadRequest(
                title="Invalid message", description=str(exc)[:200]
            ) from None


class Actors(_Base):
    """``GET /control/actors``: the shard's tree, each tenant asked in parallel under one deadline.
    With ``?all=1``: ``{"shards": [...]}``, that view of every live shard in shard order (a shard
    that does not answer in time: ``{"shard": {"id"}, "error": {"title", "description"}}``)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        require_operator(req)
        relay = self.services.relay
        if not req.get_param_as_bool("all", default=False):
            resp.media = self.view()
        elif relay is None:
            resp.media = {"shards": [self.view()]}
        else:
            views = []
            local = functools.partial(answer_relayed, self.services)
            for shard_id, answer in relay.gather({"kind": "actors"}, local):
                if isinstance(answer, RelayTimeout):
                    error = {"title": "No answer in time", "description": str(answer)}
                    views.append({"shard": {"id": shard_id}, "error": error})
                elif answer["status"] == 200:
                    views.append(answer["body"])
                else:
                    error = {"title": answer["title"], "description": answer["description"]}
                    views.append({"shard": {"id": shard_id}, "error": error})
            resp.media = {"shards": views}

    def view(self) -> dict[str, Any]:
        snapshot = self.ask(self.supervisor(), Snapshot())
        futures = []
        for entry in snapshot["tenants"]:
            ref = entry.pop("ref", None)
            future = None
            if ref is not None and entry["state"] == "active":
                try:
                    future = ref.ask(Control("stats"), block=False)
                except pykka.ActorDeadError:
                    future = None
            futures.append((entry, future))
        deadline = time.monotonic() + SNAPSHOT_TIMEOUT
        tenants = []
        for entry, future in futures:
            detail: dict[str, Any] = {"version": None, "conversations": 0, "actors": []}
            if future is not None:
                try:
                    detail = future.get(timeout=max(0.0, deadline - time.monotonic()))
                except pykka.Timeout:
                    detail = {**detail, "timedOut": True}
                except Exception:  # the tenant died meanwhile: report what the supervisor knows
                    detail = {**detail, "state": "restarting"}
            tenants.append(
                {
                    "tenantId": entry["tenantId"],
                    "state": detail.pop("state", entry["state"]),
                    **{k: v for k, v in detail.items() if k != "tenantId"},
                    "restarts": entry.get("restarts", 0),
                    "lastError": entry.get("lastError"),
                }
            )
        return {"shard": snapshot["shard"], "tenants": tenants}


class TenantMessages(_Base):
    """``POST /control/tenants/{tenantId}/messages``: answered here when this shard owns the
    tenant, else relayed to its owner."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, tenant_id: str) -> None:
        require_operator(req)
        tenant_id_param(tenant_id)
        message, media = decode_message(req, TENANT_MESSAGES)
        self.check_known(tenant_id)
        settings = self.services.settings
        # The owner under the count the fleet agreed on, which this shard's accepting side
        # follows (during a change of the count it may differ from this shard's own).
        shard = owner(tenant_id, self.services.inbox.shard_count)
        relay = self.services.relay
        if shard == settings.shard_id or relay is None:
            result = self.run(tenant_id, message)
        else:
            result = relayed(relay.ask, shard, tenant_id, message)
        reply(resp, media, message, result)

    def check_known(self, tenant_id: str) -> None:
        if self.services.tenants.version_of(tenant_id) is None:
            raise falcon.HTTPNotFound(
                title="Unknown tenant", description=f"No tenant {tenant_id!r}."
            )

    def run(self, tenant_id: str, message: Control) -> dict[str, Any]:
        """The message handled on this shard (the owner): the reply, with this shard's id."""
        supervisor = self.supervisor()
        # The operator's decision is stored before it is applied: it holds across restarts.
        if message.type == "stop":
            self.services.holds.hold(tenant_id)
        elif message.type == "start":
            self.services.holds.release(tenant_id)
        result = self.ask(supervisor, TenantControl(tenant_id, message))
        if result is None:
            result = self.ask(self.tenant_ref(supervisor, tenant_id), message)
        return {**result, "shard": self.services.settings.shard_id}

    def tenant_ref(self, supervisor: pykka.ActorRef[Any], tenant_id: str) -> pykka.ActorRef[Any]:
        """The tenant's actor, activated if it is merely idle. An operator's question must not
        undo an operator's decision: a stopped or failed tenant (409) and the tenants of a
        draining shard (503) are not woken up by it; ``start`` is the way back."""
        ref = self.ask(supervisor, GetTenant(tenant_id, activate=False))
        if ref is not None:
            return ref
        # Not running here: find out why before activating (only the first message pays this).
        snapshot = self.ask(supervisor, Snapshot())
        state = next(
            (t["state"] for t in snapshot["tenants"] if t["tenantId"] == tenant_id), "idle"
        )
        if state in ("stopped", "failed"):
            raise _not_running(tenant_id, state)
        if snapshot["shard"].get("draining"):
            raise falcon.HTTPServiceUnavailable(
                title="Shard draining",
                description="This shard is draining: it activates no tenant any more.",
                retry_after=30,
            )
        ref = self.ask(supervisor, GetTenant(tenant_id, activate=True))
        if ref is None:  # it failed between our two questions
            raise _not_running(tenant_id, "failed")
        return ref


def _not_running(tenant_id: str, state: str) -> falcon.HTTPConflict:
    return falcon.HTTPConflict(
        title=f"Tenant {state}",
        description=f"Tenant {tenant_id!r} is {state}; send 'start' first.",
    )


class ShardMessages(_Base):
    """``POST /control/shard/messages``."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        require_operator(req)
        message, media = decode_message(req, SHARD_MESSAGES)
        reply(resp, media, message, self.ask(self.supervisor(), message, timeout=30.0))


def relayed(ask: Any, shard: int, tenant_id: str, message: Control) -> dict[str, Any]:
    """``message`` for ``tenant_id`` asked of its owner ``shard`` through the relay: the owner's
    reply, or its error as ours; 504 when it does not answer in time."""
    request = {
        "kind": "tenant",
        "tenant": tenant_id,
        "type": message.type,
        "args": dict(message.args),
    }
    try:
        answer = ask(shard, request)
    except RelayTimeout as exc:
        raise falcon.HTTPGatewayTimeout(
            title="No answer in time",
            description=f"Shard {shard}, which owns tenant {tenant_id!r}, did not answer within "
            f"{exc.timeout:g} s.",
        ) from None
    if answer.get("status") == 200 and isinstance(answer.get("body"), dict):
        body: dict[str, Any] = answer["body"]
        return body
    raise _error_from(answer)


def _error_from(answer: dict[str, Any]) -> falcon.HTTPError:
    status = answer.get("status")
    if not isinstance(status, int) or not 400 <= status <= 599:
        status = 502
    headers = {}
    if isinstance(answer.get("retryAfter"), str):
        headers["Retry-After"] = answer["retryAfter"]
    return falcon.HTTPError(
        status,
        title=str(answer.get("title") or "Error"),
        description=str(answer.get("description") or ""),
        headers=headers or None,
    )


def answer_relayed(services: Services, request: dict[str, Any]) -> dict[str, Any]:
    """This shard's answer to a request another shard relayed: ``{"status": 200, "body"}``, or
    the error it would have answered directly as ``{"status", "title", "description"}``."""
    try:
        kind = request.get("kind")
        if kind == "actors":
            return {"status": 200, "body": Actors(services).view()}
        if kind == "tenant":
            return {"status": 200, "body": _relayed_tenant(services, request)}
        raise falcon.HTTPBadRequest(title="Unknown request", description="Not a relayed request.")
    except falcon.HTTPError as exc:
        answer: dict[str, Any] = {
            "status": exc.status_code,
            "title": exc.title,
            "description": exc.description or "",
        }
        retry_after = dict(exc.headers or {}).get("Retry-After")
        if retry_after is not None:
            answer["retryAfter"] = str(retry_after)
        return answer
    except redis.RedisError:
        return {
            "status": 503,
            "title": "Store unavailable",
            "description": "The tenant store is unreachable.",
            "retryAfter": "1",
        }
    except Exception:
        log.exception("relayed control request failed", extra={"kind": request.get("kind")})
        return {"status": 500, "title": "Internal error", "description": "See the shard's log."}


def _relayed_tenant(services: Services, request: dict[str, Any]) -> dict[str, Any]:
    tenant_id, kind, args = request.get("tenant"), request.get("type"), request.get("args")
    if not isinstance(tenant_id, str) or kind not in TENANT_MESSAGES or not isinstance(args, dict):
        raise falcon.HTTPBadRequest(title="Invalid message", description="Not a tenant message.")
    tenant_id_param(tenant_id)
    settings = services.settings
    if owner(tenant_id, settings.shard_count) != settings.shard_id:
        # The shards disagree on the owner (a change of the shard count under way): this one
        # must not start a second tree of the tenant.
        raise falcon.HTTPServiceUnavailable(
            title="Owner changing",
            description=f"Shard {settings.shard_id} does not own tenant {tenant_id!r}; "
            "try again once every shard runs with the same shard count.",
            retry_after=5,
        )
    resource = TenantMessages(services)
    resource.check_known(tenant_id)
    if kind in DEAD_LETTER_TYPES:
        check_dead_letter_args(args)
    return resource.run(tenant_id, Control(kind, args))
