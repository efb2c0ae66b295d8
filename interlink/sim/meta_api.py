"""Meta's Graph API over HTTP: sends, mark-as-read, media upload, media URL and download.

URL shapes (``{version}`` is any ``vNN.0``; interlink's ``INTERLINK_META_GRAPH_URL`` is
``{base}/meta/v25.0``):

- ``POST /meta/{version}/{phone-number-id}/messages``
- ``POST /meta/{version}/{phone-number-id}/media`` (multipart: ``messaging_product``, ``file``, ``type``)
- ``GET|DELETE /meta/{version}/{media-id}[?phone_number_id=]``
- ``GET /meta/{version}/{phone-number-id}[?fields=]`` (the number: ``display_phone_number``,
  ``verified_name``, ``quality_rating``) and ``GET /meta/{version}/{waba-id}/subscribed_apps``
- ``GET /meta/lookaside/whatsapp_business/attachments/?mid=&ext=&hash=`` — the download URL
  ``GET /{media-id}`` hands out (``https://lookaside.fbsbx.com/...`` in real life): needs the
  same Bearer token (401 without, code 190), expires after ``state.meta.media_url_ttl`` (404).

Tokens are per phone number: a missing or unknown token is 401 code 190; a token of another
number is 400 code 100 subcode 33, as Graph answers for objects a token cannot see.
"""

from __future__ import annotations

import logging
from typing import Any

import falcon
import gevent

from interlink.sim.meta import UPLOAD_MIME_TYPES, GraphRefusal, MetaNumber, SentMessage
from interlink.sim.state import SimState
from interlink.sim.web import apply_fault, graph_answer, is_json, parse_json, read_raw, serve_as

log = logging.getLogger(__name__)

SEND_BODY_LIMIT = 1024 * 1024
UPLOAD_LIMIT = 100 * 1024 * 1024  # documents up to 100 MB, WhatsApp's largest media
ASYNC_STATUS_DELAY = 0.005


def _refuse(resp: falcon.Response, refusal: GraphRefusal) -> None:
    graph_answer(resp, refusal.code, details=refusal.details, subcode=refusal.subcode)


class MessagesResource:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_post(
        self, req: falcon.Request, resp: falcon.Response, version: str, node_id: str
    ) -> None:
        phone_number_id = node_id
        serve_as(req, "meta.messages", phone_number_id)
        raw = read_raw(req, SEND_BODY_LIMIT)
        if raw is not None:
            req.context.sim_body = parse_json(raw)
        if apply_fault(self.state, req, resp, "meta.messages", phone_number_id):
            return
        number = self.state.meta.authorize(req.get_header("Authorization"), phone_number_id)
        if isinstance(number, GraphRefusal):
            _refuse(resp, number)
            return
        body = req.context.sim_body
        if raw is None or not is_json(req) or not isinstance(body, dict):
            graph_answer(resp, 100, details="The request body must be a JSON object.")
            return
        if body.get("status") == "read":
            self._mark_read(resp, number, body)
            return
        refusal = self.state.meta.check_send(number, body)
        if refusal is not None:
            _refuse(resp, refusal)
            return
        to = str(body.get("to") or body.get("recipient"))
        window_closed = body.get("type") != "template" and not self.state.meta.window_open(
            number, to
        )
        if window_closed and number.window_failure == "sync":
            graph_answer(resp, 131047)
            return
        refusal = self.state.meta.check_limits(number, to)
        if refusal is not None:
            _refuse(resp, refusal)
            return
        sent = self.state.meta.record_sent(number, body)
        contact: dict[str, Any] = {"input": to}
        if "." in sent.to:
            contact["user_id"] = sent.to
        else:
            contact["wa_id"] = sent.to
        resp.media = {
            "messaging_product": "whatsapp",
            "contacts": [contact],
            "messages": [{"id": sent.wamid}],
        }
        if window_closed:
            self._later(sent, [("failed", 131047)], number)
        elif self.state.meta.is_retired(to):
            self._later(sent, [("failed", 131026)], number)
        elif number.auto_statuses:
            self._later(sent, [(name, None) for name in number.auto_statuses], number)

    def _mark_read(self, resp: falcon.Response, number: MetaNumber, body: dict[str, Any]) -> None:
        message_id = body.get("message_id")
        if body.get("messaging_product") != "whatsapp":
            graph_answer(resp, 100, details="The parameter messaging_product is required.")
        elif self.state.meta.received_wamids.get(str(message_id)) != number.phone_number_id:
            graph_answer(resp, 100, details="Invalid parameter message_id.")
        elif "typing_indicator" in body and body["typing_indicator"] != {"type": "text"}:
            graph_answer(resp, 100, details="Invalid parameter typing_indicator.")
        else:
            if "typing_indicator" in body:
                self.state.meta.record_typing(number, str(message_id))
            resp.media = {"success": True}

    def _later(
        self, sent: SentMessage, updates: list[tuple[str, int | None]], number: MetaNumber
    ) -> None:
        """Statuses the user side sends by itself after the answer (async failures, auto statuses)."""
        if not number.webhook_url:
            return

        def deliver() -> None:
            for name, code in updates:
                try:
                    self.state.user.status(sent.wamid, name, error_code=code)
                except Exception:
                    log.exception("simulated status webhook failed")

        gevent.spawn_later(ASYNC_STATUS_DELAY, deliver)


class MediaUploadResource:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_post(
        self, req: falcon.Request, resp: falcon.Response, version: str, node_id: str
    ) -> None:
        phone_number_id = node_id
        serve_as(req, "meta.media.upload", phone_number_id)
        if apply_fault(self.state, req, resp, "meta.media.upload", phone_number_id):
            return
        number = self.state.meta.authorize(req.get_header("Authorization"), phone_number_id)
        if isinstance(number, GraphRefusal):
            _refuse(resp, number)
            return
        if req.content_length is not None and req.content_length > UPLOAD_LIMIT:
            graph_answer(resp, 131053, details="Media file is too large.")
            return
        if not (req.content_type or "").lower().startswith("multipart/form-data"):
            graph_answer(resp, 100, details="Upload as multipart/form-data.")
            return
        fields: dict[str, str] = {}
        file_data, file_type, filename = None, None, None
        try:
            for part in req.get_media():
                if part.name == "file":
                    file_data, file_type, filename = (
                        part.get_data(),
                        part.content_type,
                        part.filename,
                    )
                else:
                    fields[part.name] = part.get_text() or ""
        except falcon.HTTPError:
            graph_answer(resp, 100, details="Malformed multipart body.")
            return
        req.context.sim_body = {
            **fields,
            "file": {
                "filename": filename,
                "content_type": file_type,
                "size": len(file_data or b""),
            },
        }
        if fields.get("messaging_product") != "whatsapp":
            graph_answer(resp, 100, details="The parameter messaging_product is required.")
            return
        if not file_data:
            graph_answer(resp, 100, details="The parameter file is required.")
            return
        mime = (fields.get("type") or file_type or "").split(";")[0].strip().lower()
        if mime not in UPLOAD_MIME_TYPES:
            graph_answer(
                resp,
                131053,
                details=f"Param file must be a file with one of the supported types; got {mime!r}.",
            )
            return
        full_type = fields.get("type") or file_type or mime
        blob = self.state.meta.add_media(number.phone_number_id, file_data, full_type, filename)
        resp.media = {"id": blob.id}


class MediaResource:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def _find(self, req: falcon.Request, resp: falcon.Response, media_id: str, route: str) -> Any:
        meta = self.state.meta
        blob = meta.media.get(media_id)
        serve_as(req, route, blob.owner if blob else "")
        if apply_fault(self.state, req, resp, route, req.context.sim_tenant):
            return None
        number = meta.number_for_token(req.get_header("Authorization"))
        if number is None:
            graph_answer(resp, 190)
            return None
        restrict = req.get_param("phone_number_id")
        if (
            blob is None
            or blob.owner != number.phone_number_id
            or (restrict and restrict != blob.owner)
        ):
            graph_answer(
                resp,
                100,
                subcode=33,
                details=f"Unsupported get request. Object with ID '{media_id}' does not exist, cannot be "
                "loaded due to missing permissions, or does not support this operation.",
            )
            return None
        return blob

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, version: str, node_id: str
    ) -> None:
        if node_id in self.state.meta.numbers:
            self._phone_number(req, resp, node_id)
            return
        media_id = node_id
        blob = self._find(req, resp, media_id, "meta.media.get")
        if blob is None:
            return
        url = f"{req.prefix}/meta/lookaside/whatsapp_business/attachments/?{self.state.meta.media_url_query(blob.id)}"
        resp.media = {
            "messaging_product": "whatsapp",
            "url": url,
            "mime_type": blob.mime_type,
            "sha256": blob.sha256,
            "file_size": str(len(blob.data)),  # a string on the wire
            "id": blob.id,
        }

    def _phone_number(self, req: falcon.Request, resp: falcon.Response, node_id: str) -> None:
        """``GET /{phone-number-id}[?fields=]``: only with that number's token (190 for an
        unknown token, 100/33 for another number's, as for every object a token cannot see)."""
        serve_as(req, "meta.phone_number", node_id)
        if apply_fault(self.state, req, resp, "meta.phone_number", node_id):
            return
        number = self.state.meta.authorize(req.get_header("Authorization"), node_id)
        if isinstance(number, GraphRefusal):
            _refuse(resp, _as_get(number))
            return
        info = {
            "display_phone_number": number.display_phone_number,
            "verified_name": number.verified_name,
            "quality_rating": number.quality_rating,
            "code_verification_status": "VERIFIED",
            "platform_type": "CLOUD_API",
        }
        wanted = [f for f in (req.get_param("fields") or "").split(",") if f]
        if wanted:
            info = {k: v for k, v in info.items() if k in wanted}
        resp.media = {**info, "id": number.phone_number_id}

    def on_delete(
        self, req: falcon.Request, resp: falcon.Response, version: str, node_id: str
    ) -> None:
        media_id = node_id
        blob = self._find(req, resp, media_id, "meta.media.delete")
        if blob is None:
            return
        self.state.meta.media.pop(blob.id, None)
        resp.media = {"success": True}


class SubscribedAppsResource:
    """``GET /{waba-id}/subscribed_apps``: the app of the account's numbers, when it has a
    webhook URL, with a token of one of the account's numbers."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, version: str, node_id: str
    ) -> None:
        serve_as(req, "meta.subscribed_apps", node_id)
        if apply_fault(self.state, req, resp, "meta.subscribed_apps", node_id):
            return
        number = self.state.meta.number_for_token(req.get_header("Authorization"))
        if number is None:
            graph_answer(resp, 190)
            return
        if number.waba_id != node_id:
            _refuse(resp, _unknown_object(node_id))
            return
        subscribed = any(
            n.webhook_url for n in self.state.meta.numbers.values() if n.waba_id == node_id
        )
        app = {"whatsapp_business_api_data": {"id": "1" + node_id[-8:], "name": "interlink"}}
        resp.media = {"data": [app] if subscribed else []}


def _unknown_object(node_id: str) -> GraphRefusal:
    return GraphRefusal(
        100,
        f"Unsupported get request. Object with ID '{node_id}' does not exist, cannot be loaded "
        "due to missing permissions, or does not support this operation.",
        subcode=33,
    )


def _as_get(refusal: GraphRefusal) -> GraphRefusal:
    """``authorize`` words its refusal for a post; a GET names itself."""
    if refusal.details and refusal.details.startswith("Unsupported post request."):
        return GraphRefusal(
            refusal.code, refusal.details.replace("post", "get", 1), refusal.subcode
        )
    return refusal


class MediaDownloadResource:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        meta = self.state.meta
        media_id = req.get_param("mid") or ""
        blob = meta.media.get(media_id)
        serve_as(req, "meta.media.download", blob.owner if blob else "")
        if apply_fault(self.state, req, resp, "meta.media.download", req.context.sim_tenant):
            return
        number = meta.number_for_token(req.get_header("Authorization"))
        if number is None:
            graph_answer(resp, 190)
            return
        valid = meta.check_media_url(
            media_id, req.get_param("ext") or "", req.get_param("hash") or ""
        )
        if blob is None or not valid or blob.owner != number.phone_number_id:
            resp.status = 404  # an expired or foreign URL: fetch a new one
            resp.content_type = "text/plain"
            resp.text = "Not Found"
            return
        resp.content_type = blob.mime_type
        resp.data = blob.data


def add_routes(app: falcon.App, state: SimState) -> None:
    app.add_route("/meta/lookaside/whatsapp_business/attachments", MediaDownloadResource(state))
    app.add_route("/meta/{version}/{node_id}/messages", MessagesResource(state))
    app.add_route("/meta/{version}/{node_id}/media", MediaUploadResource(state))
    app.add_route("/meta/{version}/{node_id}/subscribed_apps", SubscribedAppsResource(state))
    app.add_route("/meta/{version}/{node_id}", MediaResource(state))
