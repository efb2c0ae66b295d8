"""Genesys Cloud: the client-credentials token, Open Messaging inbound calls, agent attachments.

Thin on purpose: these functions speak HTTP and classify failures; caching the token, deciding
what a failure means for a message and pacing across a tenant belong to the actors
(reference/genesys.md holds the wire facts cited below).

Failures (``interlink.providers.errors``): :class:`AuthError` credentials refused,
:class:`PermanentError` request refused (carries Genesys's ``code``), :class:`TransientError`
try again later (carries ``retry_after``), :class:`SendUncertain` may have been applied,
:class:`ForbiddenFetch` / :class:`TooLarge` for downloads.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from interlink.providers.errors import (
    AuthError,
    PermanentError,
    SendUncertain,
    TooLarge,
    TransientError,
    request_not_sent,
    scrub,
)
from interlink.providers.fetch_policy import Target, fetch, origin_of
from interlink.providers.pacing import Pacer
from interlink.providers.retry import RetryPolicy, parse_retry_after
from interlink.settings import Settings
from interlink.tenancy.config import GenesysCredentials, mask

log = logging.getLogger(__name__)

Timeout = float | tuple[float, float]

DEFAULT_TIMEOUT: Timeout = (5.0, 20.0)
"""(connect, read) seconds for every Genesys call."""
DEFAULT_MAX_ATTEMPTS = 4
"""Open Messaging calls in total per send, the first included (429, 408, 5xx, timeouts)."""
DEFAULT_POLICY = RetryPolicy(max_attempts=DEFAULT_MAX_ATTEMPTS, base=0.5, cap=10.0)
"""Backoff for Open Messaging calls: full jitter from 0.5 s, capped at 10 s; a ``Retry-After`` up
to 120 s is honoured exactly."""
DEFAULT_RETRY_UNCERTAIN = True
"""Whether a POST that timed out after being sent is retried (see :class:`OpenMessagingClient`)."""
DEFAULT_MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024
"""Genesys's attachment limit (reference/genesys.md §5)."""
DEFAULT_MAX_REDIRECTS = 3
"""A download link redirects once to a signed URL; allow a little slack, no loops."""

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
CORRELATION_HEADERS = ("Genesys-Correlation-Id", "ININ-Correlation-Id")
_DOWNLOAD_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Token:
    """A Genesys access token: ``access_token`` (secret), ``expires_in`` seconds as granted,
    ``obtained_at`` (``time.time()`` when the request was sent, so expiry errs early)."""

    access_token: str
    expires_in: int
    obtained_at: float

    @property
    def expires_at(self) -> float:
        return self.obtained_at + self.expires_in

    def __repr__(self) -> str:
        return (
            f"Token(access_token={mask(self.access_token)!r}, expires_in={self.expires_in!r}, "
            f"obtained_at={self.obtained_at!r})"
        )

    __str__ = __repr__


def correlation_id(response: requests.Response) -> str | None:
    """Genesys's request id: ``Genesys-Correlation-Id`` or ``ININ-Correlation-Id``."""
    for name in CORRELATION_HEADERS:
        value = response.headers.get(name)
        if value:
            return value
    return None


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def token_url(login_base: str) -> str:
    return login_base.rstrip("/") + "/oauth/token"


def fetch_token(
    session: requests.Session,
    login_base: str,
    creds: GenesysCredentials,
    *,
    timeout: Timeout = DEFAULT_TIMEOUT,
    clock: Callable[[], float] = time.time,
) -> Token:
    """Request a client-credentials token: ``POST {login_base}/oauth/token``.

    - ``session``: the caller's ``requests.Session`` (one per client object).
    - ``login_base``: e.g. ``Settings.genesys_login_base(region)``, ``https://login.mypurecloud.ie``.
    - ``creds``: the tenant's client id and secret (HTTP Basic, as every Genesys SDK does).
    - ``timeout``: (connect, read) seconds (``DEFAULT_TIMEOUT``).
    - ``clock``: wall-clock seconds for ``Token.obtained_at`` (default ``time.time``).

    One attempt, no retry (the token manager owns that). Raises :class:`AuthError` when Genesys
    refuses the credentials (400/401/403: wrong id or secret, deleted client, wrong region), with
    Genesys's ``error``/``description`` but never the secret; :class:`TransientError` for 408, 429,
    5xx, timeouts and connection failures (``retry_after`` from ``Retry-After``);
    :class:`PermanentError` for anything else (e.g. a 404 from a wrong login URL, a 200 without a
    token).
    """
    url = token_url(login_base)
    started = clock()
    try:
        response = session.post(
            url,
            auth=(creds.client_id, creds.client_secret),
            data={"grant_type": "client_credentials"},
            headers={"Accept": "application/json"},
            timeout=timeout,
        )
    except requests.RequestException as exc:
        raise TransientError(f"token request to {url} failed: {type(exc).__name__}") from exc
    cid = correlation_id(response)
    body = _json(response)
    status = response.status_code
    if status == 200:
        token = body.get("access_token") if isinstance(body, dict) else None
        try:
            expires_in = int(body["expires_in"]) if isinstance(body, dict) else 0
        except (KeyError, TypeError, ValueError):
            expires_in = 0
        if not isinstance(token, str) or not token or expires_in <= 0:
            raise PermanentError(
                status,
                "malformed.token.response",
                f"{url} answered 200 without a usable token",
                correlation_id=cid,
            )
        log.info(
            "genesys token obtained",
            extra={"client_id": creds.client_id, "expires_in": expires_in, "correlation_id": cid},
        )
        return Token(token, expires_in, started)
    error, description = _oauth_error(body, response.text)
    text = scrub(description, creds.client_secret)
    if status in (400, 401, 403):
        raise AuthError(
            status,
            error or "bad.credentials",
            f"Genesys refused the credentials of client {creds.client_id}: {text}",
            correlation_id=cid,
        )
    if status in RETRY_STATUSES:
        raise TransientError(
            f"token request answered {status}: {text}",
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            status=status,
            correlation_id=cid,
        )
    raise PermanentError(status, error, f"token request to {url}: {text}", correlation_id=cid)


def _oauth_error(body: Any, raw: str) -> tuple[str | None, str]:
    """OAuth errors are ``{"error", "description"}`` (or ``error_description``); API errors are
    ``{"code", "message"}``; proxies answer HTML. Return (code, human text)."""
    if isinstance(body, dict):
        code = body.get("error") or body.get("code")
        text = body.get("description") or body.get("error_description") or body.get("message")
        return (str(code) if code else None), str(text or code or "no description")
    return None, (raw or "empty body").strip()


class _Unauthorized(Exception):
    """A 401 inside one attempt: re-authenticate once."""

    def __init__(self, error: PermanentError) -> None:
        super().__init__(str(error))
        self.error = error


class OpenMessagingClient:
    """Open Messaging inbound calls for one integration: messages, receipts, typing events.

    - ``session``: a ``requests.Session`` owned by this client.
    - ``api_base``: ``Settings.genesys_api_base(region)``, e.g. ``https://api.mypurecloud.ie``.
    - ``integration_id``: the tenant's Open Messaging integration.
    - ``token_provider``: returns the current access token (the token manager's cache).
    - ``on_unauthorized``: called with a token Genesys answered 401 to, so the token manager
      drops it; the next ``token_provider()`` must then give a fresh one.
    - ``timeout``: (connect, read) seconds per request (``DEFAULT_TIMEOUT``).
    - ``sleep``: waits between retries (``time.sleep``, which yields under gevent).
    - ``policy``: retry schedule (``DEFAULT_POLICY``: ``DEFAULT_MAX_ATTEMPTS`` calls).
    - ``pacer``: if given, every HTTP request first takes a slot (``genesys_pacer()`` per token).
    - ``retry_uncertain``: whether to retry a POST that timed out after it was sent
      (``DEFAULT_RETRY_UNCERTAIN``).

    What each call does on failure:
    - 401: ``on_unauthorized(token)``, then one more try with ``token_provider()``; a second 401
      raises :class:`AuthError`. Errors of ``token_provider`` itself propagate unchanged.
    - 429: waits ``Retry-After`` (or the backoff) and retries; 408, 5xx, connection failures and
      timeouts: backoff with full jitter and retry. Out of attempts → :class:`TransientError`.
    - other 4xx → :class:`PermanentError` with Genesys's ``code`` (``missing.open.channel.date``,
      ``invalid.value``, ``request.entity.too.large``, ...), no retry.

    The duplicate risk, and the choice made: a read timeout means Genesys may have accepted the
    POST. Genesys offers no idempotency key and does not document deduplicating
    ``channel.messageId`` (we send the wamid there, so it could). Retrying (the default) gives
    at-least-once: at worst the agent sees a customer message twice. Not retrying could lose the
    message, which "nothing lost" forbids. Receipts and typing events are harmless to repeat.
    With ``retry_uncertain=False`` such a timeout on :meth:`send_inbound` raises
    :class:`SendUncertain` instead (receipts and events are always retried).
    """

    def __init__(
        self,
        session: requests.Session,
        api_base: str,
        integration_id: str,
        token_provider: Callable[[], str],
        on_unauthorized: Callable[[str], None],
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        policy: RetryPolicy = DEFAULT_POLICY,
        pacer: Pacer | None = None,
        retry_uncertain: bool = DEFAULT_RETRY_UNCERTAIN,
    ) -> None:
        self.session = session
        self.api_base = api_base.rstrip("/")
        self.integration_id = integration_id
        self._token_provider = token_provider
        self._on_unauthorized = on_unauthorized
        self.timeout = timeout
        self._sleep = sleep
        self.policy = policy
        self.pacer = pacer
        self.retry_uncertain = retry_uncertain

    def __repr__(self) -> str:
        return f"OpenMessagingClient({self.api_base!r}, integration_id={self.integration_id!r})"

    def url(self, kind: str) -> str:
        """``{api_base}/api/v2/conversations/messages/{integrationId}/inbound/open/{kind}``."""
        return (
            f"{self.api_base}/api/v2/conversations/messages/{self.integration_id}"
            f"/inbound/open/{kind}"
        )

    def send_inbound(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Post a customer message (``OpenInboundNormalizedMessage``); returns Genesys's
        normalized message (``id``, ``conversationId`` when prefetched, ...)."""
        return self._post("message", body)

    def send_receipt(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Post a ``Delivered``/``Failed`` receipt for an agent message. The returned receipt
        can itself say ``Failed`` (with reasons) on HTTP success: callers check it."""
        return self._post("receipt", body)

    def send_event(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Post a typing event (``{"channel": {...}, "events": [{"eventType": "Typing"}]}``)."""
        return self._post("event", body)

    def _post(self, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
        url = self.url(kind)
        reauthenticated = False

        def attempt() -> dict[str, Any]:
            nonlocal reauthenticated
            token = self._token_provider()
            try:
                return self._post_once(url, kind, body, token)
            except _Unauthorized as unauthorized:
                if reauthenticated:
                    raise AuthError(
                        401,
                        unauthorized.error.code,
                        unauthorized.error.message,
                        correlation_id=unauthorized.error.correlation_id,
                    ) from None
                reauthenticated = True
                log.info(
                    "genesys answered 401; refreshing the token once",
                    extra={"correlation_id": unauthorized.error.correlation_id},
                )
                self._on_unauthorized(token)
                token = self._token_provider()
                try:
                    return self._post_once(url, kind, body, token)
                except _Unauthorized as again:
                    raise AuthError(
                        401,
                        again.error.code,
                        f"a fresh token was refused too: {again.error.message}",
                        correlation_id=again.error.correlation_id,
                    ) from None

        return self.policy.run(attempt, sleep=self._sleep)

    def _post_once(
        self, url: str, kind: str, body: Mapping[str, Any], token: str
    ) -> dict[str, Any]:
        if self.pacer is not None:
            self.pacer.acquire()
        try:
            response = self.session.post(
                url,
                json=body,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            name = type(exc).__name__
            if not self.retry_uncertain and kind == "message" and not request_not_sent(exc):
                raise SendUncertain(
                    f"inbound {kind} to Genesys: {name}, may have been applied"
                ) from exc
            raise TransientError(f"inbound {kind} to Genesys failed: {name}") from exc
        cid = correlation_id(response)
        status = response.status_code
        if 200 <= status < 300:
            log.debug("genesys %s accepted", kind, extra={"status": status, "correlation_id": cid})
            result = _json(response)
            return result if isinstance(result, dict) else {}
        code, message = _api_error(_json(response), response.text)
        message = scrub(message, token)
        if status == 401:
            raise _Unauthorized(PermanentError(status, code, message, correlation_id=cid))
        if status in RETRY_STATUSES:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            log.warning(
                "genesys %s answered %s",
                kind,
                status,
                extra={"code": code, "retry_after": retry_after, "correlation_id": cid},
            )
            raise TransientError(
                f"inbound {kind} answered {status} {code or 'error'}: {message}",
                retry_after=retry_after,
                status=status,
                correlation_id=cid,
            )
        log.warning(
            "genesys refused %s",
            kind,
            extra={"status": status, "code": code, "correlation_id": cid},
        )
        raise PermanentError(status, code, message, correlation_id=cid)


def _api_error(body: Any, raw: str) -> tuple[str | None, str]:
    """Genesys's ``ErrorBody``: ``{"message", "code", "status", "contextId", ...}``."""
    if isinstance(body, dict):
        code = body.get("code")
        message = body.get("message") or code or "no message"
        return (str(code) if code else None), str(message)
    return None, (raw or "empty body").strip()


_DOWNLOAD_PATH = re.compile(
    r"(?P<prefix>(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)*)/api/v2/downloads/[A-Za-z0-9_-]{1,200}\Z"
)
"""``/api/v2/downloads/{downloadId}`` (reference/genesys.md §3.2), under a mount prefix of plain
segments on a path-mounted API URL only (:class:`DownloadHosts`); no dot segments, no escapes."""


@dataclass(frozen=True, slots=True)
class DownloadHosts:
    """Where agent attachments may be downloaded from (INTERFACE.md "Outbound fetches").

    - ``origins``: ``scheme://host[:port]`` of ``https://api-downloads.{region}`` and of the
      configured API URL; only these get the token, may be ``http`` or use another port.
    - ``mount_origin``/``mount``: when ``INTERLINK_GENESYS_API_URL`` has a path (a simulator or a
      path-mounting proxy, never Genesys itself), downloads on that origin sit under the parent
      of that path (the simulator's ``/genesys/{region}/api-downloads/api/v2/downloads/{id}``
      under ``/genesys/{region}``). Otherwise the path is exactly ``/api/v2/downloads/{id}``.
    """

    origins: frozenset[str]
    mount_origin: str | None = None
    mount: str = ""

    def admits(self, target: Target) -> bool:
        """Whether ``target`` is a download URL on one of these hosts."""
        if target.origin not in self.origins:
            return False
        found = _DOWNLOAD_PATH.match(target.path)
        if found is None:
            return False
        prefix = found.group("prefix")
        if target.origin != self.mount_origin:
            return prefix == ""
        return prefix == self.mount or prefix.startswith(self.mount + "/")


def genesys_download_hosts(settings: Settings, region: str) -> DownloadHosts:
    """The :class:`DownloadHosts` of ``region``: ``https://api-downloads.{region}`` and the
    origin of the configured API URL for ``region`` (a simulator's ``http://127.0.0.1:P`` in
    tests)."""
    downloads = origin_of(f"https://api-downloads.{region.lower()}")
    api_base = settings.genesys_api_base(region)
    api = origin_of(api_base)
    origins = frozenset(o for o in (downloads, api) if o)
    path = urlsplit(api_base).path.rstrip("/")
    if api is None or not path:
        return DownloadHosts(origins)
    return DownloadHosts(origins, api, path.rsplit("/", 1)[0])


def download_attachment(
    session: requests.Session,
    url: str,
    *,
    allowed_hosts: DownloadHosts,
    token: str,
    max_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
    timeout: Timeout = DEFAULT_TIMEOUT,
) -> tuple[bytes, str]:
    """Fetch an agent attachment named in an outbound webhook; returns (bytes, content type).

    - ``url``: the attachment URL from the payload. It must be a download URL on
      ``allowed_hosts`` (:func:`genesys_download_hosts`), read the way it will be sent
      (:mod:`interlink.providers.fetch_policy`), else :class:`ForbiddenFetch` and nothing is sent.
    - ``token``: a Genesys access token, sent as Bearer to download URLs on those hosts only.
    - ``max_bytes``: larger bodies raise :class:`TooLarge` (``DEFAULT_MAX_ATTACHMENT_BYTES``).
    - ``timeout``: (connect, read) seconds per request (``DEFAULT_TIMEOUT``).

    Trust rule for redirects: ``/api/v2/downloads/{id}`` answers with a redirect to a signed
    URL on a storage host. That redirect comes from Genesys, not from the payload, so it is
    followed (at most ``DEFAULT_MAX_REDIRECTS``), each hop checked by the fetch policy (https on
    the default port to a DNS name, or an exact allowed origin), and the token goes only to a
    hop that is itself a download URL on the allowed hosts. Errors: 401/403/404/410 →
    :class:`PermanentError` (link expired or not ours); 408/429/5xx, timeouts, broken
    connections → :class:`TransientError` (a GET: safe to retry).
    """
    response = fetch(
        session,
        url,
        trusted=allowed_hosts.origins,
        admit=allowed_hosts.admits,
        authorize=lambda _first, hop: allowed_hosts.admits(hop),
        authorization=f"Bearer {token}",
        timeout=timeout,
        max_redirects=DEFAULT_MAX_REDIRECTS,
        what="attachment download",
    )
    with response:
        return _read_body(response, max_bytes)


def _read_body(response: requests.Response, max_bytes: int) -> tuple[bytes, str]:
    status = response.status_code
    cid = correlation_id(response)
    if status in RETRY_STATUSES:
        raise TransientError(
            f"attachment download answered {status}",
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            status=status,
            correlation_id=cid,
        )
    if status != 200:
        raise PermanentError(status, None, "attachment download refused", correlation_id=cid)
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(max_bytes, status)
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(_DOWNLOAD_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(max_bytes, status)
            chunks.append(chunk)
    except requests.RequestException as exc:
        raise TransientError(f"attachment download broke off: {type(exc).__name__}") from exc
    mime = response.headers.get("Content-Type", "").strip() or "application/octet-stream"
    return b"".join(chunks), mime
