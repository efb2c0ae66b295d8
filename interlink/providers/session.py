"""One HTTP session per process, its connections pooled per provider host, shared by all tenants.

10,000 tenants each with their own ``requests.Session`` would each keep their own keep-alive
connections to the same two provider hosts (tens of thousands of sockets and TLS handshakes, and
about 50 KiB each). Here one :class:`PooledSession` serves the whole shard: a bounded pool of
kept-alive connections per host, whatever the tenant count. Nothing of one tenant can cross to
another through it: every call carries its own credentials, and the cookie jar refuses every
cookie (a shared jar would otherwise replay one tenant's cookies in another's requests).

The hot path, a JSON POST (an Open Messaging call, a Graph send) or a form POST (a tenant's
first token), skips ``requests``' per-call
machinery (settings merging, cookie handling, URL re-parsing, ``Retry`` objects, response
building: about a millisecond of CPU per call) and urllib3's too (a fifth of the shard's CPU at
400 msg/s): it goes through :mod:`interlink.providers.http11`, with the same request on the wire
(method, path, headers, body bytes) and failures raised as the ``requests`` exceptions callers
already handle. Its kept-alive connections are its own, one pool per origin. Anything else
(streamed downloads, calls through a configured proxy) goes through ``requests`` unchanged, on
``requests``' own pools.
"""

from __future__ import annotations

import http.cookiejar
import json as jsonlib
import logging
import os
from typing import Any, cast
from urllib.parse import urlencode

import requests
import requests.adapters
import requests.auth

from interlink.providers.http11 import Client

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
POOL_HOSTS = 64
"""Provider hosts kept pooled per process (Graph, Genesys login and API per region)."""
POOL_CONNECTIONS = 128
"""Kept-alive connections per host (per origin on the hot path). More may be open at once under
a burst; the surplus is closed after use instead of kept, so idle sockets stay bounded whatever
the tenant count."""


class _QuietPoolFull(logging.Filter):
    """urllib3 warns each time a burst's surplus connection is closed instead of kept ("pool is
    full, discarding connection"): by design here, so not worth a warning per request."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Connection pool is full")


logging.getLogger("urllib3.connectionpool").addFilter(_QuietPoolFull())


def new_session() -> requests.Session:
    """A session that reads the environment only when it has to.

    With ``trust_env`` requests looks up proxy variables and ``~/.netrc`` on every request, a
    large share of a call to a local peer. Every call here carries its own auth, so
    the environment matters only for proxies: when none is configured, it is not consulted.
    """
    session = requests.Session()
    session.trust_env = _proxies_configured()
    return session


def _proxies_configured() -> bool:
    return any(os.environ.get(v) or os.environ.get(v.upper()) for v in _PROXY_VARIABLES)


class FastResponse:
    """What callers read of a ``requests.Response`` on the hot path: ``status_code``,
    ``headers`` (case-insensitive: :class:`interlink.providers.http11.Headers`), ``content``,
    ``text``, ``json()``."""

    __slots__ = ("content", "headers", "status_code", "url")

    def __init__(self, status_code: int, headers: Any, content: bytes, url: str) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.url = url

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    def close(self) -> None:
        pass


class PooledSession(requests.Session):
    """The process's shared session (see the module docstring); ``close()`` leaves it open for
    the other tenants: the pools go with the process."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = _proxies_configured()
        self.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=POOL_HOSTS, pool_maxsize=POOL_CONNECTIONS
        )
        self.mount("https://", adapter)
        self.mount("http://", adapter)
        self._adapter = adapter
        self._user_agent = requests.utils.default_user_agent()
        self._http = Client(max_idle=POOL_CONNECTIONS, max_origins=POOL_HOSTS)

    def close(self) -> None:
        pass

    def post(self, url: str | bytes, data: Any = None, json: Any = None, **kwargs: Any) -> Any:
        fast = (
            not self.trust_env
            and isinstance(url, str)
            and set(kwargs) <= {"headers", "timeout", "auth"}
            and _plain_auth(kwargs.get("auth"))
        )
        if fast and json is not None and data is None:
            body = jsonlib.dumps(json, allow_nan=False).encode("utf-8")
            content_type = "application/json"
        elif fast and json is None and _plain_form(data):
            # A form (the OAuth token request): encoded as requests encodes a dict.
            body = urlencode(list(data.items())).encode("ascii")
            content_type = "application/x-www-form-urlencoded"
        else:
            return super().post(url, data=data, json=json, **kwargs)
        headers = dict(kwargs.get("headers") or {})
        auth = kwargs.get("auth")
        if auth is not None:
            headers["Authorization"] = requests.auth._basic_auth_str(*auth)
        try:
            return self.post_bytes(
                cast(str, url), body, headers, kwargs.get("timeout"), content_type
            )
        except requests.exceptions.InvalidURL:
            # Not a URL the lean client takes (no connection was made): requests' reading.
            return super().post(url, data=data, json=json, **kwargs)

    def post_bytes(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str] | None = None,
        timeout: Any = None,
        content_type: str = "application/json",
    ) -> FastResponse:
        """POST ``body`` as it is over a kept-alive connection to the host; the answer read
        whole."""
        sent = self.request_headers(headers, content_type, len(body))
        status, fields, content = self._http.post(url, sent, body, timeout)
        return FastResponse(status, fields, content, url)

    def request_headers(
        self, headers: dict[str, str] | None, content_type: str, length: int
    ) -> dict[str, str]:
        """The header fields of a POST, in the order ``requests`` sends them."""
        return {
            "User-Agent": self._user_agent,
            "Accept-Encoding": "gzip, deflate",
            "Accept": "*/*",
            "Connection": "keep-alive",
            "Content-Type": content_type,
            **(headers or {}),
            "Content-Length": str(length),
        }


def _plain_auth(auth: Any) -> bool:
    """None, or a (user, password) pair of strings: HTTP Basic, as requests sends it."""
    return auth is None or (
        isinstance(auth, tuple) and len(auth) == 2 and all(isinstance(a, str) for a in auth)
    )


def _plain_form(data: Any) -> bool:
    return isinstance(data, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    )


_SHARED: PooledSession | None = None


def shared_session() -> requests.Session:
    """The process's :class:`PooledSession`, made on first use."""
    global _SHARED
    if _SHARED is None:
        _SHARED = PooledSession()
    return cast(requests.Session, _SHARED)


def lazy_session() -> requests.Session:
    """The session a tenant's actors use: the process's shared one (the name stays for callers
    that made one per actor when each tenant had its own)."""
    return shared_session()
