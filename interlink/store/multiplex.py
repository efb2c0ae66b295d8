"""The conversations' round trips share one connection: the requests of every greenlet that asks
within one turn of the hub go out in one write, their replies come back in that order.

Each conversation makes one round trip before its provider call (its state, the step's check;
see :mod:`interlink.store.conversations`). Through the pool, each costs a loan (the pool peeks
at the socket for unread bytes, checks the process id, takes a lock), redis-py's pipeline
machinery and a write and a read of its own. When the inbox hands out a batch, hundreds of
conversations ask at once; here they share writes and reads, and nobody borrows anything.

Only plain commands go through here (no transactions, no blocking commands, no pub/sub): what
:class:`Pipe` records through redis-py's own command methods, whose replies are parsed by the
client's own response callbacks, as a pipeline of the client would. A Redis Cluster client keeps
its pipelines (its commands go to the nodes of their slots).
"""

from __future__ import annotations

import weakref
from collections import deque
from typing import Any

import gevent
import gevent.event
import redis
from redis.commands import CoreCommands

from interlink.store.connection import DEFAULT_SOCKET_TIMEOUT, is_cluster, own_connection_options

# Options redis-py's command methods may pass that are for reading the reply, not parsing it.
NEVER_DECODE = "NEVER_DECODE"
EMPTY_RESPONSE = "EMPTY_RESPONSE"
_NOT_FOR_PARSING = ("keys", NEVER_DECODE, EMPTY_RESPONSE)


class Pipe(CoreCommands):
    """Takes down commands as a non-transactional pipeline of the client would
    (``pipe.set(...)``); :meth:`execute` sends them with the other greenlets' of the same turn."""

    def __init__(self, mux: Multiplexer) -> None:
        self._mux = mux
        self.commands: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def execute_command(self, *args: Any, **options: Any) -> Pipe:
        self.commands.append((args, options))
        return self

    def __len__(self) -> int:
        return len(self.commands)

    def execute(self) -> list[Any]:
        """The replies, parsed; raises the first command's error, after every reply was read
        (as redis-py's pipeline does)."""
        if not self.commands:
            return []
        replies = self._mux.execute(self.commands)
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                raise reply
        return replies


class _Request:
    __slots__ = ("commands", "result")

    def __init__(self, commands: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> None:
        self.commands = commands
        self.result: gevent.event.AsyncResult = gevent.event.AsyncResult()


class Multiplexer:
    """One connection of its own (outside the client's pool, as :class:`FastScript`'s), a queue
    of requests waiting to be written and one of requests written, waiting for their replies.

    A connection that fails (Redis restarts, a timeout) fails every request written on it and not
    answered yet, with redis-py's own error; the next request connects again. A caller that gives
    up waiting (its greenlet killed) leaves its replies to be read and dropped: the connection
    never loses its place."""

    def __init__(self, client: redis.Redis, *, timeout: float | None = None) -> None:
        pool = client.connection_pool
        self.timeout = float(
            timeout or pool.connection_kwargs.get("socket_timeout") or DEFAULT_SOCKET_TIMEOUT
        )
        self._connection: Any = pool.connection_class(**own_connection_options(pool, self.timeout))
        self._callbacks = client.response_callbacks
        self._connected = False
        self._unsent: list[_Request] = []
        self._unanswered: deque[_Request] = deque()
        self._unsent_due = gevent.event.Event()
        self._replies_due = gevent.event.Event()
        self._writer: gevent.Greenlet | None = None
        self._reader: gevent.Greenlet | None = None

    def execute(self, commands: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
        request = _Request(commands)
        self._unsent.append(request)
        # The writer runs once the greenlets made ready in this turn (a batch the inbox handed
        # out) have added theirs: one write for all of them. Callers never touch the socket, so
        # one killed while it waits costs nobody else their request; a writer killed (a stop)
        # is replaced by the next request, whatever waits already.
        if self._writer is None or self._writer.dead:
            self._writer = gevent.spawn(self._write_loop)
        self._unsent_due.set()
        replies: list[Any] = request.result.get()
        return replies

    def _write_loop(self) -> None:
        while True:
            self._unsent_due.wait()
            self._unsent_due.clear()
            batch, self._unsent = self._unsent, []
            if batch:
                self._write(batch)

    def _write(self, batch: list[_Request]) -> None:
        connection = self._connection
        try:
            if not self._connected:
                connection.connect()
                self._connected = True
            packed = connection.pack_commands(
                [args for request in batch for args, _ in request.commands]
            )
            self._unanswered.extend(batch)
            # One write, however many requests (redis-py would write its chunks one by one).
            connection.send_packed_command([b"".join(packed)], check_health=False)
        except BaseException as exc:
            self._broken(exc)
            error = _as_redis_error(exc)
            for request in batch:
                if not request.result.ready():
                    request.result.set_exception(error)
            if not isinstance(exc, Exception):
                raise
            return
        if self._reader is None or self._reader.dead:
            self._reader = gevent.spawn(self._read_loop)
        self._replies_due.set()

    def _read_loop(self) -> None:
        connection = self._connection
        unanswered = self._unanswered
        callbacks = self._callbacks
        while True:
            if not unanswered:
                self._replies_due.clear()
                self._replies_due.wait()
                continue
            request = unanswered[0]
            replies: list[Any] = []
            try:
                for args, options in request.commands:
                    replies.append(_reply(connection, callbacks, args[0], options))
            except BaseException as exc:
                self._broken(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            unanswered.popleft()
            request.result.set(replies)

    def _broken(self, exc: BaseException) -> None:
        """The connection's place is lost: every request written on it fails, it is closed."""
        self._connected = False
        self._connection.disconnect()
        error = _as_redis_error(exc)
        while self._unanswered:
            request = self._unanswered.popleft()
            if not request.result.ready():
                request.result.set_exception(error)

    def close(self) -> None:
        for loop in (self._writer, self._reader):
            if loop is not None:
                loop.kill(block=False)
        self._broken(redis.ConnectionError("closed"))


def _reply(connection: Any, callbacks: Any, name: Any, options: dict[str, Any]) -> Any:
    """One reply, parsed as the client parses it; a command's error is returned, not raised."""
    try:
        response = connection.read_response(disable_decoding=NEVER_DECODE in options)
    except redis.ResponseError as exc:
        if EMPTY_RESPONSE in options:
            return options[EMPTY_RESPONSE]
        return exc
    if options:
        options = {k: v for k, v in options.items() if k not in _NOT_FOR_PARSING}
    callback = callbacks.get(name)
    return callback(response, **options) if callback is not None else response


def _as_redis_error(exc: BaseException) -> redis.RedisError:
    if isinstance(exc, redis.RedisError):
        return exc
    return redis.ConnectionError(f"the store connection failed: {type(exc).__name__}")


_SHARED: weakref.WeakKeyDictionary[Any, Multiplexer] = weakref.WeakKeyDictionary()


def pipeline(client: redis.Redis) -> Any:
    """A pipeline for one round trip of ``client``'s: through the client's :class:`Multiplexer`
    (made on first use), or the client's own non-transactional pipeline on a Redis Cluster."""
    if is_cluster(client):
        return client.pipeline(transaction=False)
    mux = _SHARED.get(client)
    if mux is None:
        mux = _SHARED[client] = Multiplexer(client)
    return Pipe(mux)  # type: ignore[abstract]  # redis-py 8 declares an attribute it does not use here
