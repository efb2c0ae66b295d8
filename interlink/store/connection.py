"""Redis connections: one blocking pool per process, sized for greenlets.

redis-py's plain ``ConnectionPool`` raises ``MaxConnectionsError`` past 100 concurrent users;
under gevent hundreds of greenlets may want a connection at once, so they queue for one instead
(``reference/runtime.md`` finding 8).
"""

from __future__ import annotations

import redis

DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_POOL_TIMEOUT = 5.0
DEFAULT_SOCKET_TIMEOUT = 5.0


def connect(
    url: str,
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
) -> redis.Redis:
    """A client for ``url`` (``redis://``, ``rediss://`` or ``unix://``) over a blocking pool."""
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        health_check_interval=30,
    )
    return redis.Redis(connection_pool=pool)


def redacted(url: str) -> str:
    """The URL without its password, for log lines."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:****@" if parts.username else "****@"
    return urlunsplit((parts.scheme, user + netloc, parts.path, parts.query, parts.fragment))
