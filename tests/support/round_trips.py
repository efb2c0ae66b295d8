"""A Redis client that counts its round trips: every request it writes to the server (one
command, or a whole pipeline) is one. Real redis-py over a real socket; only the count is added."""

from __future__ import annotations

from typing import Any

import redis


class RoundTrips:
    def __init__(self) -> None:
        self.count = 0

    def since(self, before: int) -> int:
        return self.count - before


def counting_client(url: str) -> tuple[redis.Redis, RoundTrips]:
    """A client of ``url`` and the count of its round trips (its connection's handshake
    excluded)."""
    trips = RoundTrips()
    pool = redis.ConnectionPool.from_url(url)
    base: Any = pool.connection_class

    class Counting(base):  # type: ignore[misc, valid-type]
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            trips.count += 1
            super().send_packed_command(command, check_health)

    pool.connection_class = Counting
    client = redis.Redis(connection_pool=pool)
    client.ping()  # the handshake (HELLO, CLIENT SETINFO) happens here, not in a test's count
    trips.count = 0
    return client, trips
