"""HTTP sessions that cost nothing until used.

Every tenant gets its own ``requests.Session`` (a shared one would share a cookie jar across
tenants), but a session with its connection pools weighs several KiB, and most of 10,000 resident
tenant trees are idle at any moment: the session is made on first use.
"""

from __future__ import annotations

from typing import Any, cast

import requests


class LazySession:
    def __init__(self) -> None:
        self._session: requests.Session | None = None

    def __getattr__(self, name: str) -> Any:
        if self._session is None:
            self._session = requests.Session()
        return getattr(self._session, name)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def lazy_session() -> requests.Session:
    """A session for the clients' ``session`` parameter, created on its first request."""
    return cast(requests.Session, LazySession())
