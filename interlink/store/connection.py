"""Redis connections: one blocking pool per process, sized for greenlets.

redis-py's plain ``ConnectionPool`` raises ``MaxConnectionsError`` past 100 concurrent users;
under gevent hundreds of greenlets may want a connection at once, so they queue for one instead
(``reference/runtime.md`` finding 8).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import redis
from redis.exceptions import NoScriptError

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


Arg = bytes | str | int


def _packed(*parts: Arg) -> bytes:
    """One command in RESP, built in one pass. redis-py's general encoder inspects and copies
    every argument on its own; a group commit has thousands of them."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        if isinstance(part, str):
            part = part.encode()
        elif isinstance(part, int):
            part = b"%d" % part
        out.append(b"$%d\r\n%b\r\n" % (len(part), part))
    return b"".join(out)


class FastScript:
    """A Lua script called with many arguments: ``EVALSHA`` packed in one pass, loaded again when
    the server has lost it (a restart, ``SCRIPT FLUSH``). Errors are redis-py's own:
    ``ConnectionError``/``TimeoutError`` with the connection dropped, ``ResponseError`` for what
    the script raised.

    One caller at a time (a commit loop): the script keeps a connection of its own, because
    borrowing one from the pool costs more than a small script — the pool peeks at the socket for
    unread bytes and records connection metrics on every borrow. ``timeout`` bounds each wait on
    that connection (the pool's socket timeout otherwise)."""

    def __init__(self, client: redis.Redis, source: str, *, timeout: float | None = None) -> None:
        self.client = client
        self.source = source
        # Redis names a script by the SHA-1 of its source.
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
        pool = client.connection_pool
        options = dict(pool.connection_kwargs)
        if timeout is not None:
            options.update(socket_timeout=timeout, socket_connect_timeout=timeout)
        self._connection = pool.connection_class(**options)  # connects when used

    def __call__(self, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        command = _packed("EVALSHA", self.sha, len(keys), *keys, *args)
        try:
            return self._execute(command)
        except NoScriptError:
            self.client.script_load(self.source)
            return self._execute(command)

    def _execute(self, command: bytes) -> Any:
        try:
            return self._execute_once(command)
        except redis.ConnectionError:
            # A connection the server closed (a restart): once more on a fresh one, as redis-py
            # itself would. Not after a timeout: the script may have run.
            return self._execute_once(command)

    def _execute_once(self, command: bytes) -> Any:
        connection = self._connection
        try:
            connection.send_packed_command([command])
            return connection.read_response()
        except redis.ResponseError:
            raise
        except BaseException:
            # A broken socket, a timeout, a greenlet killed mid-reply: unread bytes may remain,
            # so this connection is never reused as it is (the next call connects again).
            connection.disconnect()
            raise
