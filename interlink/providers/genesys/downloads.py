"""Agent attachments: which URLs are Genesys download links, and the bounded download itself."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from interlink.providers.errors import PermanentError, TooLarge, TransientError
from interlink.providers.fetch_policy import Target, fetch, origin_of
from interlink.providers.genesys.wire import (
    DEFAULT_TIMEOUT,
    RETRY_STATUSES,
    Timeout,
    correlation_id,
    retry_later,
)
from interlink.settings import Settings

DEFAULT_MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024
"""Genesys's attachment limit: "send and receive attachments up to 25 MB"
(https://help.mypurecloud.com/articles/supported-content-profiles/)."""
DEFAULT_MAX_REDIRECTS = 3
"""A download link redirects once to a signed URL; allow a little slack, no loops."""

_DOWNLOAD_CHUNK = 64 * 1024


_DOWNLOAD_PATH = re.compile(
    r"(?P<prefix>(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)*)/api/v2/downloads/[A-Za-z0-9_-]{1,200}\Z"
)
"""``/api/v2/downloads/{downloadId}`` on the download host, under a mount prefix of plain
segments on a path-mounted API URL only (:class:`DownloadHosts`); no dot segments, no escapes."""


@dataclass(frozen=True, slots=True)
class DownloadHosts:
    """Where agent attachments may be downloaded from (the outbound-fetch rules of
    :mod:`interlink.providers.fetch_policy`).

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
        raise retry_later(response, f"attachment download answered {status}")
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
