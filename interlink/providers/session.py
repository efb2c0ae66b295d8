"""HTTP sessions that cost nothing until used.

Every tenant gets its own ``requests.Session`` (a shared one would share a cookie jar across
tenants), but a session with its connection pools weighs several KiB, and most of 10,000 resident
tenant trees are idle at any moment: the session is made on first use.
"""

from __future__ import annotations

import os
from typing import Any, cast

import requests

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


class LazySession:
    def __init__(self) -> None:
        self._session: requests.Session | None = None

    def __getattr__(self, name: str) -> Any:
        if self._session is None:
            self._session = new_session()
        return getattr(self._session, name)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def new_session() -> requests.Session:
    """A session that reads the environment only when it has to.

    With ``trust_env`` requests looks up proxy variables and ``~/.netrc`` on every request, a
    large share of a call to a local peer. Every call here carries its own auth, so
    the environment matters only for proxies: when none is configured, it is not consulted.
    """
    session = requests.Session()
    session.trust_env = any(
        os.environ.get(v) or os.environ.get(v.upper()) for v in _PROXY_VARIABLES
    )
    return session


def lazy_session() -> requests.Session:
    """A session for the clients' ``session`` parameter, created on its first request."""
    return cast(requests.Session, LazySession())
