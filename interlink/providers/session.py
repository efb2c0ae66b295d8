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
building: about a millisecond of CPU per call) and drives the host's ``urllib3`` pool directly,
with the same request on the wire (method, path, headers, body bytes) and failures raised as the
``requests`` exceptions callers already handle. Anything else (streamed downloads,
calls through a configured proxy) goes through ``requests`` unchanged, on the same pools' hosts.
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
import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.exceptions import SSLError as Urllib3SSLError

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
POOL_HOSTS = 32
"""Provider hosts kept pooled per process (Graph, Genesys login and API per region)."""
POOL_CONNECTIONS = 128
"""Kept-alive connections per host. More may be open at once under a burst; the surplus is
closed after use instead of kept, so idle sockets stay bounded whatever the tenant count."""


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
    ``headers`` (case-insensitive), ``content``, ``text``, ``json()``."""

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
        self._origins: dict[str, tuple[Any, int]] = {}

    def close(self) -> None:
        pass

    def post(
        self, url: str | bytes, data: Any = None, json: Any = None, **kwargs: Any
    ) -> Any:
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
        return self.post_bytes(cast(str, url), body, headers, kwargs.get("timeout"), content_type)

    def post_bytes(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str] | None = None,
        timeout: Any = None,
        content_type: str = "application/json",
    ) -> FastResponse:
        """POST ``body`` as it is through the host's pool; the answer read whole."""
        pool, path_at = self._pool(url)
        sent = {
            "User-Agent": self._user_agent,
            "Accept-Encoding": "gzip, deflate",
            "Accept": "*/*",
            "Connection": "keep-alive",
            "Content-Type": content_type,
            **(headers or {}),
            "Content-Length": str(len(body)),
        }
        if isinstance(timeout, tuple):
            pool_timeout = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        else:
            pool_timeout = urllib3.Timeout(connect=timeout, read=timeout)
        try:
            answer = pool.urlopen(
                "POST",
                url[path_at:] or "/",
                body=body,
                headers=sent,
                retries=False,
                redirect=False,
                timeout=pool_timeout,
                assert_same_host=False,
                preload_content=True,
            )
        except HTTPError as exc:
            raise _as_requests_error(exc) from exc
        return FastResponse(answer.status, answer.headers, answer.data, url)

    def _pool(self, url: str) -> tuple[Any, int]:
        """The host's connection pool and where the path starts in ``url``; made once per
        origin (scheme, host, port) through ``requests``' own pool manager, so the fast and the
        ordinary calls share connections."""
        end = url.find("/", url.find("//") + 2)
        origin = url if end < 0 else url[:end]
        found = self._origins.get(origin)
        if found is None:
            manager = self._adapter.poolmanager
            found = (manager.connection_from_url(origin), len(origin))
            if len(self._origins) < POOL_HOSTS * 4:
                self._origins[origin] = found
        return found


def _plain_auth(auth: Any) -> bool:
    """None, or a (user, password) pair of strings: HTTP Basic, as requests sends it."""
    return auth is None or (
        isinstance(auth, tuple) and len(auth) == 2 and all(isinstance(a, str) for a in auth)
    )


def _plain_form(data: Any) -> bool:
    return isinstance(data, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    )


def _as_requests_error(exc: HTTPError) -> requests.RequestException:
    """The ``requests`` exception the same failure raises through ``requests``, its reason kept
    where :func:`interlink.providers.errors.request_not_sent` looks for it."""
    # NewConnectionError is a ConnectTimeoutError in urllib3 2: test it first, as requests does.
    if isinstance(exc, NewConnectionError):
        return requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "", exc))  # type: ignore[arg-type]
    if isinstance(exc, ConnectTimeoutError):
        return requests.ConnectTimeout(urllib3.exceptions.MaxRetryError(None, "", exc))  # type: ignore[arg-type]
    if isinstance(exc, ReadTimeoutError):
        return requests.ReadTimeout(exc)
    if isinstance(exc, Urllib3SSLError):
        return requests.exceptions.SSLError(exc)
    if isinstance(exc, ProtocolError):
        return requests.ConnectionError(exc)
    return requests.ConnectionError(exc)


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
