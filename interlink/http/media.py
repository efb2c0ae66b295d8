"""``GET /media/{token}``: the signed, expiring link through which Genesys fetches a WhatsApp
user's attachment. The token is the whole capability (no other credential is asked for); the file
streams from Meta, resolved with the tenant's own access token, and is never stored here."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import falcon
import requests

from interlink.providers.errors import MetaError, ProviderError
from interlink.providers.meta import GraphClient
from interlink.providers.session import new_session
from interlink.security import media_links
from interlink.services import Services
from interlink.telemetry import logs

log = logging.getLogger(__name__)

MAX_MEDIA_BYTES = 100 * 1024 * 1024  # WhatsApp's largest inbound file (documents)
MAX_FILENAME = 255
FALLBACK_TYPE = "application/octet-stream"
# The file name is the WhatsApp user's: nothing that can end or break out of a quoted header value.
_FILENAME_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\\ud800-\udfff]')
_MEDIA_TYPE = re.compile(r"[!-~]+/[!-~]+(?:[ \t]*;[ \t]*[!-~]+)*")


class Media:
    def __init__(self, services: Services) -> None:
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response, token: str) -> None:
        try:
            link = media_links.verify(token, self.services.secret_keys)
        except media_links.InvalidLink as exc:
            log.info("media link refused", extra={"reason": str(exc)})
            raise falcon.HTTPForbidden(
                title="Invalid link", description="The link is invalid or expired."
            ) from None
        logs.bind(link.tenant_id)  # for the rest of the request (reset by http.app.RequestLog)
        config = self.services.directory.config(link.tenant_id)
        if config is None or config.whatsapp is None:
            raise falcon.HTTPNotFound(title="Not found", description="The media is not available.")
        session = new_session()
        client = GraphClient(
            session,
            self.services.settings.meta_graph_url,
            config.whatsapp.phone_number_id,
            config.whatsapp.access_token,
        )
        try:
            info = client.media_url(link.media_id)
            chunks = client.download(info.url, max_bytes=MAX_MEDIA_BYTES)
        except MetaError as exc:
            session.close()
            if exc.http_status in (400, 404):
                raise falcon.HTTPNotFound(
                    title="Not found", description="Meta no longer has this media."
                ) from None
            raise _meta_unavailable() from None
        except ProviderError:
            session.close()
            raise _meta_unavailable() from None
        resp.content_type = _media_type(info.mime_type or link.mime)
        # The user's file, on our origin: never sniffed into something else, never a live page.
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Content-Security-Policy", "default-src 'none'; sandbox")
        if info.file_size:
            resp.content_length = info.file_size
        filename = _FILENAME_UNSAFE.sub("_", link.filename).strip()[:MAX_FILENAME]
        if filename:
            resp.downloadable_as = filename
        resp.stream = _closing(chunks, session)


def _media_type(value: str) -> str:
    """The type as Meta gave it when it is a well-formed header value, else a neutral one."""
    return value if _MEDIA_TYPE.fullmatch(value) else FALLBACK_TYPE


def _closing(chunks: Iterator[bytes], session: requests.Session) -> Iterator[bytes]:
    try:
        yield from chunks
    finally:
        session.close()


def _meta_unavailable() -> falcon.HTTPServiceUnavailable:
    """Meta being down is a 503 with Retry-After: Genesys retries the fetch."""
    return falcon.HTTPServiceUnavailable(
        title="Meta unavailable",
        description="Meta did not provide the media; retry later.",
        retry_after=30,
    )
