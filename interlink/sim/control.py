"""``/_sim/*``: configure the simulated world, read the request log, arm faults, drive the users
and agents. Unauthenticated on purpose: a test tool, meant to listen on 127.0.0.1 only.

| method and path | body → answer |
|---|---|
| ``GET /_sim/requests?kind=&tenant=&since=&limit=`` | ``{"items": [record...], "count"}`` |
| ``DELETE /_sim/requests`` | 204, log emptied |
| ``GET /_sim/faults`` / ``DELETE /_sim/faults`` / ``DELETE /_sim/faults/{id}`` | armed rules / 204 |
| ``POST /_sim/faults`` | a :class:`~interlink.sim.faults.FaultRule` (``route``, ``count``, ``tenant``, ``status``, ``retryAfter``, ``latency``, ``hang``, ``drop``, ``metaError``, ``genesysCode``, ``body``) → 201 rule |
| ``POST /_sim/genesys/orgs`` | ``{"orgId","region","clientId","clientSecret","integrationIds","webhookSecret","tokenLifetime","webhookUrl"}`` → 201 |
| ``GET /_sim/genesys/orgs/{orgId}/tokens`` | tokens issued to the org, with owner and expiry |
| ``POST /_sim/genesys/tokens/expire`` | ``{"orgId"?, "clientId"?}`` → ``{"expired": n}`` |
| ``POST /_sim/genesys/attachments`` | ``{"integrationId","dataBase64","mime","filename","mediaType"}`` → the ``attachment`` object |
| ``POST /_sim/genesys/agent/messages`` | ``{"integrationId","toId","idType"?,"text"?,"attachment"?,"webhookUrl"?}`` → delivery |
| ``GET /_sim/genesys/messages/{id}/receipts`` | receipts received for an agent message |
| ``POST /_sim/meta/numbers`` | ``{"phoneNumberId","accessToken","appSecret","displayPhoneNumber","wabaId","webhookUrl","enforceWindow","windowFailure","throughputMps","pairRate","autoStatuses"}`` → 201 |
| ``POST /_sim/meta/media`` | ``{"phoneNumberId","dataBase64","mimeType","filename"?}`` → ``{"id"}`` |
| ``POST /_sim/meta/windows`` | ``{"phoneNumberId","user","open": true|false|null}`` → 204 |
| ``POST /_sim/meta/users/messages`` | ``{"phoneNumberId","from":{"waId"?,"userId"?,"name"?},"messages":[{"kind", ...options}],"webhookUrl"?}`` → delivery with ``wamids`` |
| ``POST /_sim/meta/users/identity`` | ``{"phoneNumberId","from":{...},"newWaId"?,"newUserId"?}`` → the ``system`` webhook's delivery (``user_changed_number`` with ``newWaId``, else ``user_changed_user_id``); the old address stops reaching the user |
| ``POST /_sim/meta/templates`` | ``{"wabaId","name","language","bodyParameters"?,"headerParameters"?,"parameterNames"?}`` → 201; the account's template sends are checked against its templates from then on |
| ``POST /_sim/meta/statuses`` | ``{"statuses":[{"wamid","status","errorCode"?}],"webhookUrl"?}`` → delivery |
| ``GET /_sim/meta/sent?phoneNumberId=&to=`` | messages the business sent |
| ``GET /_sim/env`` | the ``INTERLINK_*`` upstream settings for this simulator |

A delivery: ``{"url","status" (what interlink answered; 0 = no answer),"responseBody","error",
"payload","headers","wamids","messageId"}``. Message options are those of
:func:`interlink.sim.whatsapp_payloads.message` in snake_case (``body``, ``caption``, ...), plus
``dataBase64``/``mimeType`` for media.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import falcon

from interlink.sim.faults import FaultSpecError, rule_from_json
from interlink.sim.meta import MetaTemplate
from interlink.sim.state import SimState
from interlink.sim.web import parse_json
from interlink.sim.whatsapp_payloads import WhatsAppUser

# A business number's options: their names on the wire (control API, simulate's config file)
# and as keyword arguments of MetaWorld.add_number.
NUMBER_OPTIONS = (
    ("displayPhoneNumber", "display_phone_number"),
    ("wabaId", "waba_id"),
    ("webhookUrl", "webhook_url"),
    ("enforceWindow", "enforce_window"),
    ("windowFailure", "window_failure"),
    ("throughputMps", "throughput_mps"),
    ("pairRate", "pair_rate"),
    ("autoStatuses", "auto_statuses"),
)

CONTROL_BODY_LIMIT = 64 * 1024 * 1024


def _body(req: falcon.Request) -> dict[str, Any]:
    value = parse_json(req.bounded_stream.read(CONTROL_BODY_LIMIT))
    if not isinstance(value, dict):
        raise falcon.HTTPBadRequest(title="Invalid body", description="Send a JSON object.")
    return value


def _required(body: dict[str, Any], name: str) -> Any:
    if body.get(name) in (None, ""):
        raise falcon.HTTPBadRequest(title="Missing field", description=f"{name} is required.")
    return body[name]


def _b64(body: dict[str, Any], name: str) -> bytes:
    try:
        return base64.b64decode(_required(body, name), validate=True)
    except (binascii.Error, TypeError):
        raise falcon.HTTPBadRequest(
            title="Invalid field", description=f"{name} must be base64."
        ) from None


def _lookup(action: Any, *args: Any, **kwargs: Any) -> Any:
    """Driver and world errors become 400/404 with the reason."""
    try:
        return action(*args, **kwargs)
    except KeyError as exc:
        raise falcon.HTTPNotFound(
            title="Not found", description=str(exc.args[0] if exc.args else exc)
        ) from None
    except ValueError as exc:
        raise falcon.HTTPBadRequest(title="Invalid request", description=str(exc)) from None


class RequestsResource:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        items = self.state.requests(
            kind=req.get_param("kind"),
            tenant=req.get_param("tenant"),
            since=req.get_param_as_int("since", default=0) or 0,
            limit=req.get_param_as_int("limit"),
        )
        resp.media = {"items": [item.to_json() for item in items], "count": len(items)}

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.state.recorder.clear()
        resp.status = 204


class FaultsResource:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"items": [rule.to_json() for rule in self.state.faults.active()]}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            rule = self.state.faults.add(rule_from_json(_body(req)))
        except FaultSpecError as exc:
            raise falcon.HTTPBadRequest(title="Invalid fault", description=str(exc)) from None
        resp.status = 201
        resp.media = rule.to_json()

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.state.faults.clear()
        resp.status = 204


class FaultResource:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_delete(self, req: falcon.Request, resp: falcon.Response, rule_id: int) -> None:
        if not self.state.faults.remove(rule_id):
            raise falcon.HTTPNotFound()
        resp.status = 204


class GenesysOrgsResource:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _body(req)
        org = _lookup(
            self.state.genesys.add_org,
            _required(body, "orgId"),
            region=_required(body, "region"),
            client_id=_required(body, "clientId"),
            client_secret=_required(body, "clientSecret"),
            integration_ids=body.get("integrationIds") or [],
            webhook_secret=body.get("webhookSecret") or "",
            token_lifetime=int(body.get("tokenLifetime") or 86_400),
            webhook_url=body.get("webhookUrl"),
        )
        resp.status = 201
        resp.media = {
            "orgId": org.org_id,
            "region": org.region,
            "clientId": org.client_id,
            "integrationIds": sorted(org.integration_ids),
            "tokenLifetime": org.token_lifetime,
            "webhookUrl": org.webhook_url,
        }


class GenesysTokensResource:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response, org_id: str) -> None:
        now = self.state.clock()
        resp.media = {
            "items": [
                {
                    "token": t.token,
                    "clientId": t.client_id,
                    "orgId": t.org_id,
                    "region": t.region,
                    "issuedAt": t.issued_at,
                    "expiresAt": t.expires_at,
                    "expired": t.expires_at <= now,
                }
                for t in self.state.genesys.tokens_of(org_id)
            ]
        }


class GenesysExpireResource:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _body(req)
        count = self.state.genesys.expire_tokens(
            org_id=body.get("orgId"), client_id=body.get("clientId")
        )
        resp.media = {"expired": count}


class GenesysAttachmentsResource:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _body(req)
        resp.status = 201
        resp.media = _lookup(
            self.state.agent.attachment,
            _required(body, "integrationId"),
            data=_b64(body, "dataBase64"),
            mime=_required(body, "mime"),
            filename=body.get("filename") or "file",
            media_type=body.get("mediaType") or "Image",
        )


class AgentMessagesResource:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _body(req)
        delivery = _lookup(
            self.state.agent.send,
            _required(body, "integrationId"),
            _required(body, "toId"),
            text=body.get("text"),
            attachment=body.get("attachment"),
            id_type=body.get("idType") or "Opaque",
            webhook_url=body.get("webhookUrl"),
        )
        resp.media = delivery.to_json()


class ReceiptsResource:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response, message_id: str) -> None:
        resp.media = {"items": self.state.genesys.receipts_for(message_id)}


class MetaNumbersResource:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _body(req)
        options: dict[str, Any] = {}
        for wire, name in NUMBER_OPTIONS:
            if wire in body:
                options[name] = body[wire]
        number = _lookup(
            self.state.meta.add_number,
            _required(body, "phoneNumberId"),
            access_token=_required(body, "accessToken"),
            app_secret=_required(body, "appSecret"),
            **options,
        )
        resp.status = 201
        resp.media = {"phoneNumberId": number.phone_number_id, "webhookUrl": number.webhook_url}


class MetaMediaResource:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _body(req)
        blob = self.state.meta.add_media(
            _required(body, "phoneNumberId"),
            _b64(body, "dataBase64"),
            _required(body, "mimeType"),
            body.get("filename"),
        )
        resp.status = 201
        resp.media = {"id": blob.id, "sha256": blob.sha256}


class MetaWindowsResource:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _body(req)
        self.state.meta.set_window(
            _required(body, "phoneNumberId"), _required(body, "user"), body.get("open")
        )
        resp.status = 204


class MetaTemplatesResource:
    """Approve a template for an account: its template sends are checked from then on."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _body(req)
        names = body.get("parameterNames") or []
        counts = [body.get(k, 0) for k in ("bodyParameters", "headerParameters")]
        if not isinstance(names, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts
        ):
            raise falcon.HTTPBadRequest(title="Invalid field", description="bad parameter counts")
        template = MetaTemplate(
            name=str(_required(body, "name")),
            language=str(_required(body, "language")),
            body_parameters=counts[0],
            header_parameters=counts[1],
            parameter_names=tuple(str(n) for n in names),
        )
        self.state.meta.add_template(str(_required(body, "wabaId")), template)
        resp.status = 201
        resp.media = {"name": template.name, "language": template.language}


def _sender(body: dict[str, Any]) -> WhatsAppUser:
    """The WhatsApp user a control request speaks for: ``from {waId, userId, name}``."""
    sender = body.get("from") or {}
    user: WhatsAppUser = _lookup(
        WhatsAppUser,
        wa_id=sender.get("waId"),
        user_id=sender.get("userId"),
        name=sender.get("name"),
    )
    return user


class UserIdentityResource:
    """A user changes number (``newWaId``, with ``newUserId`` when they have a BSUID) or only
    their business-scoped id (``newUserId``): the system webhook, and the old address retired."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _body(req)
        phone_number_id = _required(body, "phoneNumberId")
        user = _sender(body)
        if body.get("newWaId"):
            delivery, _ = _lookup(
                self.state.user.change_number,
                phone_number_id,
                user,
                str(body["newWaId"]),
                new_user_id=body.get("newUserId"),
            )
        else:
            delivery, _ = _lookup(
                self.state.user.change_user_id,
                phone_number_id,
                user,
                str(_required(body, "newUserId")),
            )
        resp.media = delivery.to_json()


_MESSAGE_OPTION_NAMES = {
    "dataBase64": "data",
    "mimeType": "mime_type",
    "includeMediaUrl": "include_media_url",
}


class UserMessagesResource:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _body(req)
        phone_number_id = _required(body, "phoneNumberId")
        user = _sender(body)
        items = []
        for spec in body.get("messages") or [{"kind": "text", "body": "hello"}]:
            options = {_MESSAGE_OPTION_NAMES.get(k, k): v for k, v in spec.items() if k != "kind"}
            if "data" in options:
                options["data"] = _b64(options, "data")
            items.append(
                _lookup(
                    self.state.user.build_message,
                    phone_number_id,
                    user,
                    spec.get("kind", "text"),
                    **options,
                )
            )
        delivery = _lookup(
            self.state.user.send, phone_number_id, user, items, webhook_url=body.get("webhookUrl")
        )
        resp.media = delivery.to_json()


class StatusesResource:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _body(req)
        updates: list[Any] = []
        for item in body.get("statuses") or []:
            update = (_required(item, "wamid"), _required(item, "status"))
            updates.append((*update, int(item["errorCode"])) if item.get("errorCode") else update)
        delivery = _lookup(self.state.user.statuses, updates, webhook_url=body.get("webhookUrl"))
        resp.media = delivery.to_json()


class SentResource:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        sent = self.state.meta.sent_to(_required_param(req, "phoneNumberId"), req.get_param("to"))
        resp.media = {
            "items": [
                {
                    "wamid": s.wamid,
                    "to": s.to,
                    "type": s.type,
                    "body": s.body,
                    "time": s.time,
                    "statuses": s.statuses,
                }
                for s in sent
            ]
        }


def _required_param(req: falcon.Request, name: str) -> str:
    value = req.get_param(name)
    if not value:
        raise falcon.HTTPBadRequest(title="Missing parameter", description=f"{name} is required.")
    return value


class EnvResource:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        from interlink.sim.state import env_for

        resp.media = env_for(req.prefix)


def add_routes(app: falcon.App, state: SimState) -> None:
    app.add_route("/_sim/requests", RequestsResource(state))
    app.add_route("/_sim/faults", FaultsResource(state))
    app.add_route("/_sim/faults/{rule_id:int}", FaultResource(state))
    app.add_route("/_sim/genesys/orgs", GenesysOrgsResource(state))
    app.add_route("/_sim/genesys/orgs/{org_id}/tokens", GenesysTokensResource(state))
    app.add_route("/_sim/genesys/tokens/expire", GenesysExpireResource(state))
    app.add_route("/_sim/genesys/attachments", GenesysAttachmentsResource(state))
    app.add_route("/_sim/genesys/agent/messages", AgentMessagesResource(state))
    app.add_route("/_sim/genesys/messages/{message_id}/receipts", ReceiptsResource(state))
    app.add_route("/_sim/meta/numbers", MetaNumbersResource(state))
    app.add_route("/_sim/meta/media", MetaMediaResource(state))
    app.add_route("/_sim/meta/windows", MetaWindowsResource(state))
    app.add_route("/_sim/meta/users/messages", UserMessagesResource(state))
    app.add_route("/_sim/meta/users/identity", UserIdentityResource(state))
    app.add_route("/_sim/meta/templates", MetaTemplatesResource(state))
    app.add_route("/_sim/meta/statuses", StatusesResource(state))
    app.add_route("/_sim/meta/sent", SentResource(state))
    app.add_route("/_sim/env", EnvResource(state))
