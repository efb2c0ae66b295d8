"""Which URLs the bridge may fetch on a provider's or a payload's say-so, and one guarded GET.

The attack this closes: Python's ``urllib.parse`` and urllib3 (what ``requests`` connects with)
disagree on some URLs. ``http://127.0.0.1:18701\\@api.example/x`` is ``api.example`` to
``urlsplit`` but ``127.0.0.1:18701`` to urllib3, so a check made with one and a request sent with
the other lets a payload aim the bridge, token attached, at any address. Here a URL is
prepared once by ``requests`` and every decision is made on that prepared URL, read the way the
transport reads it; the same prepared request is what gets sent. Redirects are followed by hand,
each hop checked the same way, and the ``Authorization`` header is set per hop, never inherited.

Rules (the contract's outbound-fetch rules; docs/security.md states them for operators):
- a URL (and a ``Location``) holding a backslash, an ``@`` (userinfo), a control character,
  whitespace or a non-ASCII character is refused before it is parsed;
- scheme ``https``, or the exact origin of a configured service (``http`` allowed there: a
  simulator in tests);
- the default port of the scheme, unless the origin is exactly a configured one;
- a host outside the configured origins must be a DNS name: no IP literal in any notation
  (``127.1``, ``0x7f.1``, ``2130706433``, ``[::1]``) and no ``localhost``;
- no dot segments (``.``/``..``) left in the path;
- the first URL must also pass the caller's ``admit`` rule, and a hop gets the caller's
  ``Authorization`` only when the caller's ``authorize`` rule says so for that very hop.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from interlink.providers.errors import ForbiddenFetch, PermanentError, TransientError

Timeout = float | tuple[float, float]

DEFAULT_PORTS = {"http": 80, "https": 443}
_UNSAFE = re.compile(r"[^\x21-\x7e]|[\\@]")
"""Anything outside printable ASCII, a backslash or an ``@``: the characters parsers split on
differently (or strip silently) are refused rather than interpreted."""
_DNS_LAST_LABEL = re.compile(r"[a-z][a-z0-9-]*\.?\Z")
"""A DNS name ends in a label starting with a letter; every numeric IPv4 spelling does not."""


@dataclass(frozen=True, slots=True)
class Target:
    """What a prepared request connects to and asks for, as the transport reads it.

    ``origin`` is ``scheme://host`` plus ``:port`` when the port is not the scheme's default;
    ``path`` is the path as sent on the request line (no query)."""

    scheme: str
    host: str
    port: int
    path: str
    origin: str


def has_unsafe_characters(url: str) -> bool:
    return _UNSAFE.search(url) is not None


def target(url: str) -> Target | None:
    """Parse a URL the way ``requests`` will send it; ``None`` when it is not a plain
    ``http(s)://host[:port]/path`` URL (userinfo, unsafe characters, parsers disagreeing).

    ``url`` should be a prepared URL (``PreparedRequest.url``): requests connects to the
    ``urlsplit`` reading of it and urllib3's ``parse_url`` normalised it, so both readings are
    taken and must agree on scheme, host, port and path."""
    if has_unsafe_characters(url):
        return None
    try:
        parsed = parse_url(url)
        split = urlsplit(url)
        split_port = split.port
    except (LocationParseError, ValueError):
        return None
    scheme = (parsed.scheme or "").lower()
    host = (parsed.host or "").lower()
    if scheme not in DEFAULT_PORTS or not host or parsed.auth is not None:
        return None
    port = parsed.port or DEFAULT_PORTS[scheme]
    path = split.path or "/"
    if (
        split.scheme.lower() != scheme
        or (split.hostname or "") != host.strip("[]")
        or (split_port or DEFAULT_PORTS[scheme]) != port
        or (parsed.path or "/") != path  # parse_url removed a dot segment
    ):
        return None
    origin = f"{scheme}://{host}" + ("" if port == DEFAULT_PORTS[scheme] else f":{port}")
    return Target(scheme, host, port, path, origin)


@functools.lru_cache(maxsize=256)
def origin_of(url: str) -> str | None:
    """The origin of a configured URL (``Settings``), normalised as :attr:`Target.origin`.
    Remembered: every tenant's clients ask it of the same few configured URLs as they start,
    and ``requests`` takes ~180 us to prepare one."""
    try:
        prepared = requests.Request("GET", url).prepare()
    except (requests.RequestException, LocationParseError, ValueError):
        return None
    found = target(prepared.url or "")
    return found.origin if found else None


def hop_refusal(hop: Target, trusted: frozenset[str]) -> str | None:
    """Why ``hop`` may not be fetched at all (``None`` when it may). ``trusted``: the exact
    origins of configured services, the only ones allowed ``http``, another port or an IP."""
    if hop.origin in trusted:
        return None
    if hop.scheme != "https":
        return "not https"
    if hop.port != DEFAULT_PORTS["https"]:
        return "not the default port"
    if not _DNS_LAST_LABEL.search(hop.host) or hop.host.rstrip(".") == "localhost":
        return "not a DNS host name"
    return None


def _prepare(session: requests.Session, url: str) -> tuple[requests.PreparedRequest, Target | None]:
    if has_unsafe_characters(url):
        return requests.PreparedRequest(), None
    try:
        prepared = session.prepare_request(requests.Request("GET", url))
    except (requests.RequestException, LocationParseError, ValueError):
        return requests.PreparedRequest(), None
    return prepared, target(prepared.url or "")


def fetch(
    session: requests.Session,
    url: str,
    *,
    trusted: frozenset[str],
    admit: Callable[[Target], bool],
    authorize: Callable[[Target, Target], bool],
    authorization: str,
    timeout: Timeout,
    max_redirects: int,
    what: str,
) -> requests.Response:
    """GET ``url`` and its redirects under the rules above; returns the first non-redirect
    response, streaming and open (the caller reads it and closes it).

    - ``trusted``: exact origins of configured services (see :func:`hop_refusal`).
    - ``admit(first)``: whether the first URL may be fetched at all.
    - ``authorize(first, hop)``: whether ``hop`` (the first included) gets ``authorization``
      as its ``Authorization`` header.
    - ``max_redirects``: redirects followed at most; one more is :class:`PermanentError`.
    - ``what``: names the fetch in error messages (which never carry the URL: signed URLs and
      payload text stay out of logs).

    Raises :class:`ForbiddenFetch` before sending anything to a URL or hop the rules refuse,
    :class:`TransientError` for network failures (a GET: safe to retry).
    """
    first: Target | None = None
    for _ in range(max_redirects + 1):
        prepared, hop = _prepare(session, url)
        if hop is None:
            raise ForbiddenFetch(f"{what}: malformed or ambiguous URL refused")
        if first is None:
            if not admit(hop):
                raise ForbiddenFetch(f"{what}: {hop.origin}{hop.path[:60]} may not be fetched")
            first = hop
        refusal = hop_refusal(hop, trusted)
        if refusal:
            raise ForbiddenFetch(f"{what}: {hop.origin} refused ({refusal})")
        # Set or removed per hop: a session default or ~/.netrc must not put one on a hop either.
        if authorize(first, hop):
            prepared.headers["Authorization"] = authorization
        else:
            prepared.headers.pop("Authorization", None)
        options = session.merge_environment_settings(prepared.url, {}, True, None, None)
        try:
            response = session.send(prepared, allow_redirects=False, timeout=timeout, **options)
        except requests.RequestException as exc:
            raise TransientError(f"{what} failed: {type(exc).__name__}") from exc
        if not response.is_redirect:
            return response
        location = response.headers.get("Location", "")
        response.close()
        if has_unsafe_characters(location):
            raise ForbiddenFetch(f"{what}: redirect to a malformed or ambiguous URL refused")
        url = urljoin(prepared.url or "", location)
    raise PermanentError(None, "too.many.redirects", f"{what} redirected too often")
