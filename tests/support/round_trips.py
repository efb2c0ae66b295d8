"""A Redis client that counts its round trips: every request it writes to the server (one
command, or a whole pipeline) is one; and the commands in them, read from the bytes on the wire.
Real redis-py over a real socket; only the counts are added."""

from __future__ import annotations

from typing import Any

import redis

from interlink.store import multiplex


class RoundTrips:
    def __init__(self) -> None:
        self.count = 0
        self.commands = 0  # commands sent, each a RESP array on the wire

    def since(self, before: int) -> int:
        return self.count - before


def commands_in(request: bytes) -> int:
    """How many commands ``request`` holds: each is a RESP array of bulk strings
    (``*<n>\\r\\n`` then n times ``$<len>\\r\\n<bytes>\\r\\n``), which is all redis-py sends."""
    count, at = 0, 0
    while at < len(request):
        if request[at : at + 1] != b"*":
            raise AssertionError(f"not a RESP array at byte {at}: {request[at : at + 20]!r}")
        end = request.index(b"\r\n", at)
        args, at = int(request[at + 1 : end]), end + 2
        for _ in range(args):
            if request[at : at + 1] != b"$":
                raise AssertionError(f"not a bulk string at byte {at}")
            end = request.index(b"\r\n", at)
            at = end + 2 + int(request[at + 1 : end]) + 2
        count += 1
    return count


def counting_client(url: str) -> tuple[redis.Redis, RoundTrips]:
    """A client of ``url`` and the count of its round trips and commands (its connection's
    handshake excluded)."""
    trips = RoundTrips()
    pool = redis.ConnectionPool.from_url(url)
    base: Any = pool.connection_class

    class Counting(base):  # type: ignore[misc, valid-type]
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            trips.count += 1
            chunks = [command] if isinstance(command, str | bytes | memoryview) else command
            trips.commands += commands_in(
                b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)
            )
            super().send_packed_command(command, check_health)

    pool.connection_class = Counting
    client = redis.Redis(connection_pool=pool)
    client.ping()  # the handshake (HELLO, CLIENT SETINFO) happens here, not in a test's count
    warm = multiplex.pipeline(client)  # and the conversations' shared connection's
    warm.ping()
    warm.execute()
    trips.count = trips.commands = 0
    return client, trips
