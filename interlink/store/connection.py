"""Redis connections: one blocking pool per process, sized for greenlets.

redis-py's plain ``ConnectionPool`` raises ``MaxConnectionsError`` past 100 concurrent users;
under gevent hundreds of greenlets may want a connection at once, so they queue for one instead
(a ``BlockingConnectionPool``).

A standalone client's connections pack each command in one pass (:class:`CommandPacker`;
redis-py's cluster client takes no packer for its nodes). The pool's own check before each loan
(``can_read``, about 6 us of a 40 us GET) stays redis-py's: a cheaper one would have to read
its connection's private socket attribute.

With ``INTERLINK_REDIS_CLUSTER=true`` the client is redis-py's ``RedisCluster`` instead: it
learns the slot map from the node named in the URL and sends each command, script and pipeline
part to the node holding its keys' slot (every script's keys share one slot, see
:mod:`interlink.store.keys`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any, cast

import gevent
import redis
import redis.cluster
from redis.exceptions import NoScriptError

DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_POOL_TIMEOUT = 5.0
DEFAULT_SOCKET_TIMEOUT = 5.0

def connect(
    url: str,
    *,
    cluster: bool = False,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
) -> redis.Redis:
    """A client for ``url`` (``redis://``, ``rediss://`` or ``unix://``) over a blocking pool;
    with ``cluster``, a Redis Cluster client that starts from the node ``url`` names."""
    if cluster:
        client = redis.cluster.RedisCluster.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            health_check_interval=30,
        )
        # Typed as the plain client it stands in for: interlink uses only the commands, scripts,
        # non-transactional pipelines and pub/sub that both offer (tests/e2e/test_cluster*.py).
        return cast(redis.Redis, client)
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        health_check_interval=30,
    )
    # Only now is the encoding known (a URL may carry one): the packer encodes as the pool's
    # connections would, and no connection exists yet to have been made without it.
    pool.connection_kwargs["command_packer"] = CommandPacker(pool.get_encoder())
    return redis.Redis(connection_pool=pool)


def is_cluster(client: object) -> bool:
    """Whether ``client`` is a Redis Cluster client (see :func:`connect`)."""
    return isinstance(client, redis.cluster.RedisCluster)


def disconnect(client: redis.Redis) -> None:
    """Close every connection ``client`` holds (its pool, or each node's on a cluster)."""
    client.close()
    if is_cluster(client):
        cast(redis.cluster.RedisCluster, client).disconnect_connection_pools()
    else:
        client.connection_pool.disconnect()


def redacted(url: str) -> str:
    """``url`` fit for a log or error line: a password in its user part or its query is masked.

    It is shown at all so that the operator can spot a typo; but a mistyped URL is exactly the
    kind whose user part :func:`urlsplit` does not find, so then anything before an ``@`` goes.
    """
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # an unbalanced "[" in the host
        return "(not a URL)"
    if parts.query:
        parts = parts._replace(query="****")
    if password is not None:
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = f"{parts.username}:****@" if parts.username else "****@"
        parts = parts._replace(netloc=user + netloc)
    shown = urlunsplit(parts)
    if password is None and "@" in shown:
        scheme, sep, rest = shown.partition("://") if "://" in shown else ("", "", shown)
        shown = f"{scheme}{sep}****@{rest.rsplit('@', 1)[1]}"
    return shown


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


class CommandPacker:
    """Packs a command for redis-py's connections (their public ``command_packer`` argument) in
    one pass: the bytes redis-py's own Python packer sends, for less time (that one re-joins
    the whole command once per argument and encodes each through a chain of type checks;
    bench/redis_client.py: ~4 us less per pipeline of 3). bytes, str and int, nearly every argument interlink sends, are packed here; any
    other type goes through ``encoder`` as redis-py would (floats, bytearrays, memoryviews,
    int subclasses, and the ``DataError`` for a bool or a type it refuses).

    A command whose name holds spaces (``"CLIENT KILL"``) is split into words, as redis-py
    does. One buffer per command, however large: redis-py's pipeline packing still sends a
    large one as a chunk of its own."""

    __slots__ = ("_encode", "_encoding", "_errors")

    def __init__(self, encoder: Any) -> None:
        self._encode = encoder.encode
        self._encoding = encoder.encoding
        self._errors = encoder.encoding_errors

    def pack(self, *args: Any) -> list[bytes]:
        first = args[0]
        if isinstance(first, str):
            args = (*first.encode().split(), *args[1:])
        elif b" " in first:
            args = (*first.split(), *args[1:])
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            kind = type(arg)
            if kind is str:
                arg = arg.encode(self._encoding, self._errors)
            elif kind is int:
                arg = b"%d" % arg
            elif kind is not bytes:
                arg = self._encode(arg)
            out.append(b"$%d\r\n%b\r\n" % (len(arg), arg))
        return [b"".join(out)]


# Connection arguments that newer redis-py (7+) puts into a pool's ``connection_kwargs`` for its
# maintenance notifications (Redis Enterprise, RESP3): a pool-wide handler that may move every
# connection to another host and relax, then reset, its timeouts to the pool's. They are not part
# of redis-py's public connection arguments (5.x and 6.x refuse them), and a connection made
# outside the pool takes none of them: without them it has no maintenance handling at all.
_POOL_MAINTENANCE_ARGUMENTS = frozenset(
    {
        "maint_notifications_config",
        "maint_notifications_pool_handler",
        "oss_cluster_maint_notifications_handler",
        "orig_host_address",
        "orig_socket_timeout",
        "orig_socket_connect_timeout",
    }
)


def own_connection_options(pool: redis.ConnectionPool, timeout: float) -> dict[str, Any]:
    """Arguments for a connection of one's own, outside ``pool``: the pool's server, credentials
    and TLS settings, ``timeout`` for every wait, no PING before a command after an idle spell
    (a dead connection shows on the command itself), no pool maintenance handling. Only public
    connection arguments, so any redis-py from 5.0 takes them."""
    options = {
        name: value
        for name, value in pool.connection_kwargs.items()
        if name not in _POOL_MAINTENANCE_ARGUMENTS
    }
    options.update(socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=0)
    return options


class FastScript:
    """A Lua script called with many arguments: ``EVALSHA`` packed in one pass, loaded again when
    the server has lost it (a restart, ``SCRIPT FLUSH``). Errors are redis-py's own:
    ``ConnectionError``/``TimeoutError`` with the connection dropped, ``ResponseError`` for what
    the script raised. A call takes at most about ``timeout`` (default: the pool's socket
    timeout), then raises ``TimeoutError``.

    One caller at a time (a commit loop): the script keeps a connection of its own, because
    borrowing one from the pool costs more than a small script — the pool peeks at the socket for
    unread bytes and records connection metrics on every borrow.

    On a Redis Cluster client the call goes through redis-py's own script object instead, which
    sends it to the node of the keys' slot (following a slot's move) and refuses keys of several
    slots before sending anything; any number of callers then, each wait bounded by the socket
    timeout."""

    def __init__(self, client: redis.Redis, source: str, *, timeout: float | None = None) -> None:
        self.client = client
        self.source = source
        # Redis names a script by the SHA-1 of its source.
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
        self._cluster_script = client.register_script(source) if is_cluster(client) else None
        # Whether the own connection is open and clean (redis-py 5.0 has no public
        # ``is_connected``): set once a command went out, cleared whenever it is dropped.
        self._connected = False
        if self._cluster_script is not None:
            return
        pool = client.connection_pool
        self.timeout = float(
            timeout or pool.connection_kwargs.get("socket_timeout") or DEFAULT_SOCKET_TIMEOUT
        )
        self._connection = pool.connection_class(**own_connection_options(pool, self.timeout))

    def __call__(self, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        if self._cluster_script is not None:
            return self._cluster_script(keys=cast(Any, keys), args=cast(Any, args))
        started = time.monotonic()
        command = _packed("EVALSHA", self.sha, len(keys), *keys, *args)
        if self._connected:
            # The common case: one send and one reply, each wait bounded by the socket timeout
            # (a gevent.Timeout around every call cost more than the rest of the call).
            try:
                return self._execute_once(command)
            except (redis.ConnectionError, NoScriptError):
                # The server closed the connection (a restart) or lost the script: once more
                # below, as redis-py itself would. Not after a timeout: the script may have run.
                pass
        # Connecting, loading the script, a second attempt: rare, and together bounded by what
        # is left of the timeout.
        left = max(self.timeout - (time.monotonic() - started), 0.001)
        with gevent.Timeout(left, redis.TimeoutError("the store did not answer in time")):
            try:
                return self._execute_once(command)
            except NoScriptError:
                self._execute_once(_packed("SCRIPT", "LOAD", self.source))
                return self._execute_once(command)

    def close(self) -> None:
        self._connected = False
        if self._cluster_script is None:
            self._connection.disconnect()

    def _execute_once(self, command: bytes) -> Any:
        connection = self._connection
        try:
            connection.send_packed_command([command])
            self._connected = True
            return connection.read_response()
        except redis.ResponseError:
            raise
        except BaseException:
            # A broken socket, a timeout, a greenlet killed mid-reply: unread bytes may remain,
            # so this connection is never reused as it is (the next call connects again).
            self._connected = False
            connection.disconnect()
            raise
