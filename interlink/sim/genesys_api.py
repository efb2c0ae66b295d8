"""Genesys Cloud over HTTP: the login service, the Open Messaging inbound API and downloads.

URL shapes (``{region}`` is a region domain such as ``mypurecloud.ie``):

- ``POST /genesys/{region}/login/oauth/token`` — ``https://login.{region}/oauth/token``
- ``POST /genesys/{region}/api/api/v2/conversations/messages/{integrationId}/inbound/open/{message|receipt|event|structured/response}``
  — ``https://api.{region}/api/v2/...``
- ``GET /genesys/{region}/api/api/v2/conversations/messaging/integrations/open/{integrationId}``
  — the integration (``createStatus: Completed``), to a token of its org only
- ``GET /genesys/{region}/api-downloads/api/v2/downloads/{downloadId}`` — the agent attachment
  URL (``https://api-downloads.{region}/api/v2/downloads/{id}``); answers 302 to a signed URL
  ``/genesys/{region}/api-downloads/signed/{downloadId}?expires=&signature=`` that serves the
  bytes without a token (403 once expired or forged), as the real downloads API redirects.

Choices where the reference is silent (**unconfirmed** there):

- Bad client credentials: 401 ``{"error": "invalid_client", "description"}``; a missing or
  wrong ``grant_type``: 400 ``invalid_request`` / ``unsupported_grant_type``.
- A valid token of another org on an integration id it does not own: **403** ``not.authorized``
  (the real platform scopes entities to the token's org and may say 404; a 401 would wrongly
  make a client drop a good token and retry). An integration id no org owns: 404 ``not.found``.
- The inbound message answer carries ``conversationId`` only with
  ``?prefetchConversationId=true`` (the query value ``true``, any case), as the real one: a
  simulator that always named it hid a client that never asked.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from urllib.parse import parse_qs

import falcon

from interlink.sim import genesys as gs
from interlink.sim.state import SimState
from interlink.sim.web import apply_fault, genesys_answer, is_json, parse_json, read_raw, serve_as

GENESYS_BODY_LIMIT = 512_000  # Genesys's request.bytes.max; larger bodies get 413
LOGIN_BODY_LIMIT = 64 * 1024


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


def _oauth_error(resp: falcon.Response, status: int, error: str, description: str) -> None:
    resp.status = status
    resp.media = {"error": error, "description": description, "error_description": description}
    if status == 401:
        resp.set_header("WWW-Authenticate", 'Basic realm="oauth"')


class TokenResource:
    """Client-credentials grant: Basic (or form-posted) client id and secret."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response, region: str) -> None:
        serve_as(req, "genesys.token")
        raw = read_raw(req, LOGIN_BODY_LIMIT)
        if raw is None:
            _oauth_error(resp, 413, "invalid_request", "request too large")
            return
        form = {k: v[0] for k, v in parse_qs(raw.decode("latin-1")).items()}
        credentials = _basic_credentials(req.get_header("Authorization"))
        if credentials is None and "client_id" in form:
            credentials = (form["client_id"], form.get("client_secret", ""))  # client_secret_post
        req.context.sim_body = {k: ("****" if k == "client_secret" else v) for k, v in form.items()}
        org = self.state.genesys.org_for_client(credentials[0]) if credentials else None
        req.context.sim_tenant = org.org_id if org else ""
        if apply_fault(self.state, req, resp, "genesys.token", req.context.sim_tenant):
            return
        content_type = (req.content_type or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            _oauth_error(
                resp,
                400,
                "invalid_request",
                "form body (application/x-www-form-urlencoded) required",
            )
            return
        if credentials is None:
            _oauth_error(resp, 401, "invalid_client", "client authentication required")
            return
        grant = form.get("grant_type")
        if grant is None:
            _oauth_error(resp, 400, "invalid_request", "grant_type is required")
            return
        if grant != "client_credentials":
            _oauth_error(resp, 400, "unsupported_grant_type", f"unsupported grant type {grant}")
            return
        issued = self.state.genesys.login(region, *credentials)
        if issued is None:
            _oauth_error(resp, 401, "invalid_client", "client not found or bad client secret")
            return
        resp.media = {
            "access_token": issued.token,
            "token_type": "bearer",
            "expires_in": int(issued.expires_at - issued.issued_at),
        }


class InboundResource:
    """``…/{integrationId}/inbound/open/{message|receipt|event|structured/response}``."""

    CHECKS = {
        "message": gs.check_inbound_message,
        "receipt": gs.check_receipt,
        "event": gs.check_event,
        "structured/response": gs.check_structured_response,
    }

    def __init__(self, state: SimState, what: str) -> None:
        self.state = state
        self.what = what
        self.kind = (
            "genesys.structured_response" if what == "structured/response" else f"genesys.{what}"
        )

    def on_post(
        self, req: falcon.Request, resp: falcon.Response, region: str, integration_id: str
    ) -> None:
        resp.set_header("ININ-Correlation-Id", str(uuid.uuid4()))
        genesys = self.state.genesys
        org = genesys.org_for_integration(integration_id)
        serve_as(req, self.kind, org.org_id if org else "")
        raw = read_raw(req, GENESYS_BODY_LIMIT)
        if raw is not None:
            req.context.sim_body = parse_json(raw)
        if apply_fault(self.state, req, resp, self.kind, req.context.sim_tenant):
            return
        if raw is None:
            genesys_answer(
                resp,
                413,
                "request.entity.too.large",
                f"The request is over the limit of {GENESYS_BODY_LIMIT} bytes.",
            )
            return
        issued = genesys.authenticate(req.get_header("Authorization"), region)
        if isinstance(issued, gs.Refusal):
            genesys_answer(resp, issued.status, issued.code, issued.message)
            return
        if org is None:
            genesys_answer(resp, 404, "not.found", f"Integration {integration_id} not found.")
            return
        if org.org_id != issued.org_id:
            genesys_answer(
                resp,
                403,
                "not.authorized",
                "You are not authorized to perform the requested action.",
            )
            return
        if not is_json(req):
            genesys_answer(
                resp, 415, "unsupported.media.type", "Content-Type must be application/json."
            )
            return
        body = req.context.sim_body
        if not isinstance(body, dict):
            genesys_answer(
                resp,
                400,
                "bad.request",
                "The request could not be understood by the server due to malformed syntax.",
            )
            return
        refusal = self.CHECKS[self.what](body)
        if refusal is not None:
            genesys_answer(resp, refusal.status, refusal.code, refusal.message)
            return
        if self.what == "message":
            prefetch = (req.get_param("prefetchConversationId") or "").lower() == "true"
            resp.media = genesys.accept_message(org, integration_id, body, prefetch=prefetch)
        elif self.what == "structured/response":
            resp.media = genesys.accept_structured_response(org, integration_id, body)
        elif self.what == "receipt":
            resp.media = genesys.accept_receipt(org, integration_id, body)
        else:
            resp.media = {
                "channel": {"id": integration_id, **body["channel"]},
                "events": body["events"],
            }


class IntegrationResource:
    """``GET …/api/v2/conversations/messaging/integrations/open/{integrationId}``: the
    integration, to a token of its org; another org's integration is as unknown as one that
    does not exist (404: entities are scoped to the token's org)."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, region: str, integration_id: str
    ) -> None:
        resp.set_header("ININ-Correlation-Id", str(uuid.uuid4()))
        genesys = self.state.genesys
        org = genesys.org_for_integration(integration_id)
        serve_as(req, "genesys.integration", org.org_id if org else "")
        if apply_fault(self.state, req, resp, "genesys.integration", req.context.sim_tenant):
            return
        issued = genesys.authenticate(req.get_header("Authorization"), region)
        if isinstance(issued, gs.Refusal):
            genesys_answer(resp, issued.status, issued.code, issued.message)
            return
        if org is None or org.org_id != issued.org_id or org.region != region:
            genesys_answer(resp, 404, "not.found", f"Integration {integration_id} not found.")
            return
        resp.media = {
            "id": integration_id,
            "name": f"{org.org_id} open messaging",
            "outboundNotificationWebhookUrl": org.webhook_url or "",
            "recipient": {"id": integration_id},
            "status": "Active",
            "createStatus": "Completed",
            "selfUri": f"/api/v2/conversations/messaging/integrations/open/{integration_id}",
        }


class DownloadResource:
    """``GET …/api-downloads/api/v2/downloads/{id}`` → 302 to a signed, expiring URL."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, region: str, download_id: str
    ) -> None:
        genesys = self.state.genesys
        download = genesys.downloads.get(download_id)
        serve_as(req, "genesys.download", download.org_id if download else "")
        if apply_fault(self.state, req, resp, "genesys.download", req.context.sim_tenant):
            return
        if genesys.require_download_auth:
            issued = genesys.authenticate(req.get_header("Authorization"), region)
            if isinstance(issued, gs.Refusal):
                genesys_answer(resp, issued.status, issued.code, issued.message)
                return
            if download is not None and download.org_id != issued.org_id:
                genesys_answer(resp, 403, "not.authorized")
                return
        if download is None or download.region != region:
            genesys_answer(resp, 404, "not.found", "The requested download was not found.")
            return
        location = f"{req.prefix}/genesys/{region}/api-downloads/signed/{download_id}?{genesys.signed_download_query(download_id)}"
        resp.status = 302
        resp.set_header("Location", location)


class SignedDownloadResource:
    """The signed URL a download redirects to: bytes without a token, until it expires."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, region: str, download_id: str
    ) -> None:
        genesys = self.state.genesys
        download = genesys.downloads.get(download_id)
        serve_as(req, "genesys.download.file", download.org_id if download else "")
        expires = req.get_param("expires") or ""
        signature = req.get_param("signature") or ""
        if download is None or not genesys.check_signed_download(download_id, expires, signature):
            resp.status = 403
            resp.content_type = "application/xml"
            resp.text = "<Error><Code>AccessDenied</Code><Message>Request has expired or is not signed</Message></Error>"
            return
        resp.content_type = download.mime
        resp.set_header("Content-Disposition", f'attachment; filename="{download.filename}"')
        resp.data = download.data


def add_routes(app: falcon.App, state: SimState) -> None:
    app.add_route("/genesys/{region}/login/oauth/token", TokenResource(state))
    prefix = "/genesys/{region}/api/api/v2/conversations/messages/{integration_id}/inbound/open/"
    for what in InboundResource.CHECKS:
        app.add_route(prefix + what, InboundResource(state, what))
    app.add_route(
        "/genesys/{region}/api/api/v2/conversations/messaging/integrations/open/{integration_id}",
        IntegrationResource(state),
    )
    app.add_route(
        "/genesys/{region}/api-downloads/api/v2/downloads/{download_id}", DownloadResource(state)
    )
    app.add_route(
        "/genesys/{region}/api-downloads/signed/{download_id}", SignedDownloadResource(state)
    )
