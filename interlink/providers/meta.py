"""Meta's WhatsApp Cloud API (Graph): send, mark read, media lookup, download and upload.

One :class:`GraphClient` per business number (``phone_number_id``) and access token. Calls are
single-shot; :func:`send_with_retry` is the small loop for what Meta says may succeed later.
Wire facts, under https://developers.facebook.com/documentation/business-messaging/whatsapp/:
``messages/send-messages`` (sending), ``support/error-codes`` (errors) and
``business-phone-numbers/media`` (media).

Failures: :class:`MetaError` (Graph answered with an error; ``kind`` is ``retry``, ``pair_rate`` or
``fatal``), :class:`SendUncertain` (a send went out and no answer came back),
:class:`TransientError` (nothing reached Meta, or an idempotent call timed out),
:class:`PermanentError` (a media URL was refused), :class:`ForbiddenFetch`, :class:`TooLarge`.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from interlink.providers.errors import (
    ForbiddenFetch,
    MetaError,
    PermanentError,
    SendUncertain,
    TooLarge,
    TransientError,
    request_not_sent,
    scrub,
)
from interlink.providers.fetch_policy import Target, fetch, hop_refusal, origin_of, target
from interlink.providers.retry import RetryPolicy, parse_retry_after
from interlink.telemetry import metrics
from interlink.tenancy.config import mask

log = logging.getLogger(__name__)

Timeout = float | tuple[float, float]

DEFAULT_TIMEOUT: Timeout = (5.0, 20.0)
"""(connect, read) seconds for every Graph call."""
DEFAULT_DOWNLOAD_TIMEOUT: Timeout = (5.0, 30.0)
"""(connect, read) seconds for media downloads; read is per chunk, not for the whole file."""
DEFAULT_MAX_MEDIA_BYTES = 100 * 1024 * 1024
"""WhatsApp's largest media: documents, up to 100 MB."""
MEDIA_URL_LIFETIME = 300.0
"""Seconds a URL from ``GET /{media-id}`` stays valid (Meta: 5 minutes)."""
MAX_REMEMBERED_URLS = 1024
"""Media URLs a client remembers as downloadable; the oldest are forgotten first."""
MAX_MEDIA_REDIRECTS = 3
"""Redirects a media download follows (Meta serves the URL it hands out directly; a little
slack, no loops)."""
THROUGHPUT_UPGRADE_WAIT = 60.0
"""Seconds to wait after 131057 (number in throughput upgrade, "up to a minute") without a
``Retry-After``."""

PHONE_NUMBER_FIELDS = "display_phone_number,verified_name,quality_rating"
"""What ``GraphClient.phone_number`` asks Graph for."""
RETRY_SEND_STATUSES = frozenset({429, 500, 502, 503, 504})
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """``GET /{media-id}``: ``url`` (valid ``MEDIA_URL_LIFETIME`` s, needs the Bearer token),
    ``mime_type``, ``sha256`` (base64, as Meta gives it), ``file_size`` in bytes or ``None``."""

    url: str
    mime_type: str
    sha256: str | None
    file_size: int | None


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_graph_error(response: requests.Response, *secrets: str) -> MetaError:
    """Graph's ``{"error": {"message", "type", "code", "error_subcode",
    "error_data": {"details"}, "fbtrace_id"}}`` as a :class:`MetaError`; a body that is not
    Graph's (a proxy's HTML page) gives ``code=None`` and a cut of its text. ``secrets`` are
    scrubbed from every text kept."""
    status = response.status_code
    body = _json(response)
    error = body.get("error") if isinstance(body, dict) else None
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    trace = response.headers.get("x-fb-trace-id")
    if not isinstance(error, dict):
        text = scrub((response.text or "").strip()[:120] or "no body", *secrets)
        return MetaError(
            None,
            None,
            f"HTTP {status}: {text}",
            None,
            status,
            fbtrace_id=trace,
            retry_after=retry_after,
        )
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    code = _int(error.get("code"))
    if code == 131057 and retry_after is None:
        retry_after = THROUGHPUT_UPGRADE_WAIT
    return MetaError(
        code,
        _int(error.get("error_subcode")),
        scrub(str(error.get("message") or error.get("type") or "error"), *secrets),
        scrub(str(details), *secrets) if details else None,
        status,
        fbtrace_id=str(error.get("fbtrace_id") or trace or "") or None,
        retry_after=retry_after,
    )


class GraphClient:
    """The Graph API for one business number.

    - ``session``: a ``requests.Session`` owned by this client.
    - ``graph_base``: ``Settings.meta_graph_url``, version included
      (``https://graph.facebook.com/v25.0``).
    - ``phone_number_id``: the business number sending and owning media.
    - ``access_token``: the tenant's Meta token (Bearer); never in a repr, log or error.
    - ``timeout``: (connect, read) seconds per call (``DEFAULT_TIMEOUT``).
    - ``clock``: monotonic seconds, to age remembered media URLs (``time.monotonic``).

    Trust rule for downloads (the outbound-fetch rules, docs/security.md): :meth:`download` fetches
    only URLs this client got from :meth:`media_url` in the last ``MEDIA_URL_LIFETIME`` seconds; a
    ``url`` inside a webhook payload is never fetched directly: resolve the media id. Every URL and
    redirect hop passes :mod:`interlink.providers.fetch_policy` (https on the default port to a DNS
    name, or the exact Graph origin); the token goes only to the Graph origin and to the origin of
    the URL Graph named, never to a host a redirect introduces.
    """

    def __init__(
        self,
        session: requests.Session,
        graph_base: str,
        phone_number_id: str,
        access_token: str,
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.graph_base = graph_base.rstrip("/")
        self.phone_number_id = phone_number_id
        self._token = access_token
        self.timeout = timeout
        self._clock = clock
        self._media_urls: OrderedDict[str, float] = OrderedDict()
        graph_origin = origin_of(self.graph_base)
        self._graph_origins = frozenset({graph_origin} if graph_origin else ())

    def __repr__(self) -> str:
        return (
            f"GraphClient({self.graph_base!r}, phone_number_id={self.phone_number_id!r}, "
            f"access_token={mask(self._token)!r})"
        )

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def _url(self, *parts: str) -> str:
        return "/".join([self.graph_base, *(quote(p, safe="") for p in parts)])

    def _error(self, response: requests.Response, what: str) -> MetaError:
        error = parse_graph_error(response, self._token)
        log.warning(
            "graph %s failed",
            what,
            extra={
                "code": error.code,
                "http_status": error.http_status,
                "kind": error.kind,
                "fbtrace_id": error.fbtrace_id,
                "phone_number_id": self.phone_number_id,
            },
        )
        return error

    def send(self, body: Mapping[str, Any]) -> str:
        """``POST {graph_base}/{phone_number_id}/messages`` with ``body`` as given; returns the
        wamid (``messages[0].id``). A 200 means accepted, not delivered.

        Single shot. Raises :class:`MetaError` for an error answer; :class:`TransientError` when
        the connection could not even be made (nothing sent: safe to retry);
        :class:`SendUncertain` when the request went out and the answer was lost (read timeout,
        dropped connection, a 200 without an id): Meta may deliver it, a retry may send it twice.
        """
        url = self._url(self.phone_number_id, "messages")
        started = time.monotonic()
        try:
            response = self.session.post(url, json=body, headers=self._auth, timeout=self.timeout)
        except requests.RequestException as exc:
            metrics.provider_request("whatsapp", started, None)
            name = type(exc).__name__
            if request_not_sent(exc):
                raise TransientError(f"graph send not sent: {name}") from exc
            raise SendUncertain(f"graph send: {name} after sending; it may have gone out") from exc
        metrics.provider_request("whatsapp", started, response.status_code)
        if response.status_code != 200:
            raise self._error(response, "send")
        body_out = _json(response)
        try:
            wamid = body_out["messages"][0]["id"]
        except (KeyError, IndexError, TypeError):
            wamid = None
        if not isinstance(wamid, str) or not wamid:
            raise SendUncertain(
                "graph send answered 200 without a message id",
                correlation_id=response.headers.get("x-fb-trace-id"),
            )
        log.debug(
            "graph send accepted",
            extra={"wamid": wamid, "fbtrace_id": response.headers.get("x-fb-trace-id")},
        )
        return wamid

    def mark_read(self, message_id: str, *, typing: bool = False) -> None:
        """Mark an inbound message (and those before it) read; with ``typing`` also show
        "typing..." to the user (up to 25 s or until our next message). Safe to repeat: a
        timeout raises :class:`TransientError`; an error answer :class:`MetaError`."""
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": message_id,
        }
        if typing:
            body["typing_indicator"] = {"type": "text"}
        self._call("POST", self._url(self.phone_number_id, "messages"), "mark_read", json=body)

    def media_url(self, media_id: str) -> MediaInfo:
        """``GET {graph_base}/{media_id}?phone_number_id=...`` (the query keeps the lookup to
        media of this number: one tenant cannot resolve another's media id). The URL is
        remembered as downloadable. ``file_size`` arrives as a string; it is parsed."""
        data = self._call(
            "GET",
            self._url(media_id),
            "media_url",
            params={"phone_number_id": self.phone_number_id},
        )
        url = data.get("url")
        if not isinstance(url, str) or not self._usable(url):
            raise PermanentError(200, "media.url.invalid", "Graph returned no usable media URL")
        self._remember(url)
        return MediaInfo(
            url=url,
            mime_type=str(data.get("mime_type") or "application/octet-stream"),
            sha256=data.get("sha256") if isinstance(data.get("sha256"), str) else None,
            file_size=_int(data.get("file_size")),
        )

    def _remember(self, url: str) -> None:
        now = self._clock()
        self._media_urls[url] = now
        self._media_urls.move_to_end(url)
        while self._media_urls:
            oldest_url, seen = next(iter(self._media_urls.items()))
            if len(self._media_urls) <= MAX_REMEMBERED_URLS and now - seen <= MEDIA_URL_LIFETIME:
                break
            del self._media_urls[oldest_url]

    def _usable(self, url: str) -> bool:
        """The first check of a URL Graph hands out, so a bad one fails at lookup, not later."""
        found = target(url)
        return found is not None and hop_refusal(found, self._graph_origins) is None

    def _may_fetch(self, url: str) -> bool:
        seen = self._media_urls.get(url)
        return seen is not None and self._clock() - seen <= MEDIA_URL_LIFETIME

    def _authorize(self, first: Target, hop: Target) -> bool:
        return hop.origin == first.origin or hop.origin in self._graph_origins

    def download(
        self,
        url: str,
        *,
        max_bytes: int = DEFAULT_MAX_MEDIA_BYTES,
        timeout: Timeout = DEFAULT_DOWNLOAD_TIMEOUT,
    ) -> Iterator[bytes]:
        """Start downloading a media URL from :meth:`media_url`; returns an iterator of chunks.

        The request and its status check happen now: :class:`ForbiddenFetch` for a URL this
        client did not get from Graph (see the trust rule), :class:`PermanentError` for 401/403/
        404/410 (the URL expired: call :meth:`media_url` again), :class:`TransientError` for
        429/5xx and network failures, :class:`TooLarge` when ``Content-Length`` exceeds
        ``max_bytes`` (``DEFAULT_MAX_MEDIA_BYTES``). While iterating, :class:`TooLarge` when the
        body grows past ``max_bytes`` and :class:`TransientError` if the connection breaks.
        Iterate to the end or ``close()`` the iterator: either releases the connection.
        """
        if not self._may_fetch(url):
            raise ForbiddenFetch("media URL did not come from the Graph API")
        response = fetch(
            self.session,
            url,
            trusted=self._graph_origins,
            admit=lambda _first: True,  # remembered from Graph: the policy's own rules remain
            authorize=self._authorize,
            authorization=self._auth["Authorization"],
            timeout=timeout,
            max_redirects=MAX_MEDIA_REDIRECTS,
            what="media download",
        )
        try:
            _check_download(response, max_bytes)
        except Exception:
            response.close()
            raise
        return _stream(response, max_bytes)

    def download_bytes(self, url: str, *, max_bytes: int = DEFAULT_MAX_MEDIA_BYTES) -> bytes:
        """:meth:`download`, joined into one ``bytes``."""
        return b"".join(self.download(url, max_bytes=max_bytes))

    def upload(self, data: bytes, mime: str, filename: str) -> str:
        """``POST {graph_base}/{phone_number_id}/media`` (multipart: ``messaging_product``,
        ``type``, ``file``); returns the media id to send with ``{"id": ...}``. An upload
        repeated after a timeout only leaves an unused media id: timeouts raise
        :class:`TransientError`."""
        result = self._call(
            "POST",
            self._url(self.phone_number_id, "media"),
            "upload",
            data={"messaging_product": "whatsapp", "type": mime},
            files={"file": (filename, data, mime)},
        )
        media_id = result.get("id")
        if not isinstance(media_id, str) or not media_id:
            raise TransientError("graph upload answered without a media id", status=200)
        return media_id

    def phone_number(self, fields: str = PHONE_NUMBER_FIELDS) -> dict[str, Any]:
        """``GET {graph_base}/{phone_number_id}?fields=...``: the number as Graph sees it with
        this token (``display_phone_number``, ``verified_name``, ``quality_rating``). A wrong
        token is a :class:`MetaError` (190), a number the token cannot see one with code 100."""
        return self._call(
            "GET", self._url(self.phone_number_id), "phone_number", params={"fields": fields}
        )

    def subscribed_apps(self, waba_id: str) -> list[dict[str, Any]]:
        """``GET {graph_base}/{waba_id}/subscribed_apps``: the apps receiving the account's
        webhooks (``data[].whatsapp_business_api_data``)."""
        data = self._call("GET", self._url(waba_id, "subscribed_apps"), "subscribed_apps")
        apps = data.get("data")
        return [a for a in apps if isinstance(a, dict)] if isinstance(apps, list) else []

    def _call(self, method: str, url: str, what: str, **kwargs: Any) -> dict[str, Any]:
        """An idempotent (or harmless to repeat) call: network failures are transient."""
        try:
            response = self.session.request(
                method, url, headers=self._auth, timeout=self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise TransientError(f"graph {what} failed: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise self._error(response, what)
        data = _json(response)
        return data if isinstance(data, dict) else {}


def _check_download(response: requests.Response, max_bytes: int) -> None:
    status = response.status_code
    if status in RETRY_SEND_STATUSES:
        raise TransientError(
            f"media download answered {status}",
            status=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status != 200:
        raise PermanentError(
            status, "media.download.refused", "media URL refused or expired; resolve the id again"
        )
    declared = _int(response.headers.get("Content-Length"))
    if declared is not None and declared > max_bytes:
        raise TooLarge(max_bytes, status)


def _stream(response: requests.Response, max_bytes: int) -> Iterator[bytes]:
    size = 0
    try:
        for chunk in response.iter_content(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(max_bytes, response.status_code)
            yield chunk
    except requests.RequestException as exc:
        raise TransientError(f"media download broke off: {type(exc).__name__}") from exc
    finally:
        response.close()


def is_retryable_send(exc: Exception) -> bool:
    """What :func:`send_with_retry` retries: :class:`MetaError` of kind ``retry`` and
    :class:`TransientError` (from :meth:`GraphClient.send`, the request never left). Never
    :class:`SendUncertain`, ``pair_rate`` or ``fatal``."""
    if isinstance(exc, MetaError):
        return exc.kind == "retry"
    return isinstance(exc, TransientError)


DEFAULT_SEND_POLICY = RetryPolicy(max_attempts=4, base=1.0, cap=30.0, retry_on=is_retryable_send)
"""Four sends at most; full-jitter backoff from 1 s up to 30 s; ``Retry-After`` up to 120 s."""


def send_with_retry(
    client: GraphClient,
    body: Mapping[str, Any],
    policy: RetryPolicy = DEFAULT_SEND_POLICY,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """:meth:`GraphClient.send` retried under ``policy`` (default ``DEFAULT_SEND_POLICY``,
    whose ``retry_on`` is :func:`is_retryable_send`), sleeping with ``sleep`` (default
    ``time.sleep``). Returns the wamid; raises the last error when retries run out, and at once
    for anything else: :class:`SendUncertain` (never resent blindly), ``pair_rate`` (the caller
    penalizes that recipient: ``KeyedPacer.penalize``) and ``fatal`` errors."""
    return policy.run(lambda: client.send(body), sleep=sleep)
