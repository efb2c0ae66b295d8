"""The connection a FastScript keeps for itself, seen from the server: what it sends is only what
the caller asked for (no idle PING, no maintenance handshake), on any redis-py from 5.0. And the
pool's connections: their check before a loan (one poll) still finds a connection the server
closed or one left with a reply unread."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from interlink.store.connection import (
    CommandPacker,
    FastScript,
    connect,
    own_connection_options,
)


@pytest.fixture
def spy(redis_url: str) -> Iterator[redis.Redis]:
    """A separate client that reads the server's counters (its own health check is off)."""
    client = redis.Redis.from_url(redis_url, health_check_interval=0)
    yield client
    client.close()


def _resp3(url: str) -> str:
    return url + ("&" if "?" in url else "?") + "protocol=3"


def _calls(spy: redis.Redis) -> dict[str, int]:
    return {name: stats["calls"] for name, stats in spy.info("commandstats").items()}


def _errors(spy: redis.Redis) -> int:
    # redis-py 5.0 leaves an errorstats line unparsed ("count=1"); newer ones give a dict.
    return sum(
        int(stats.partition("=")[2]) if isinstance(stats, str) else stats["count"]
        for stats in spy.info("errorstats").values()
    )


def test_the_scripts_connection_sends_no_idle_ping(redis_url: str, spy: redis.Redis) -> None:
    # The pool PINGs a connection idle for longer than this before using it; the script must not.
    pool = redis.BlockingConnectionPool.from_url(redis_url, health_check_interval=1)
    client = redis.Redis(connection_pool=pool)
    script = FastScript(client, "return 7")
    try:
        assert script([], []) == 7  # connects and loads the script
        time.sleep(1.3)
        before = _calls(spy)
        assert script([], []) == 7
        after = _calls(spy)
    finally:
        script.close()
        pool.disconnect()
    assert after.get("cmdstat_ping", 0) == before.get("cmdstat_ping", 0)
    assert after["cmdstat_evalsha"] == before["cmdstat_evalsha"] + 1


def test_connecting_the_script_attempts_no_maintenance_handshake(
    redis_url: str, spy: redis.Redis
) -> None:
    # redis-py 7+ asks a RESP3 server for maintenance notifications on each pool connection
    # (``CLIENT MAINT_NOTIFICATIONS``, an error reply from a server without them); the pool's
    # handler would then move the connection and reset its timeouts to the pool's.
    pool = redis.BlockingConnectionPool.from_url(_resp3(redis_url))
    client = redis.Redis(connection_pool=pool)
    script = FastScript(client, "return 1", timeout=0.75)
    try:
        script([], [])  # a first call of a new script: one NOSCRIPT error reply, then loaded
        errors = _errors(spy)
        script.close()
        assert script([], []) == 1  # connects again, the script already loaded
        assert _errors(spy) == errors
    finally:
        script.close()
        pool.disconnect()


def test_own_connection_options_keep_the_server_and_set_only_public_arguments(
    redis_url: str,
) -> None:
    pool = redis.BlockingConnectionPool.from_url(
        _resp3(redis_url), socket_timeout=5, health_check_interval=30
    )
    options = own_connection_options(pool, 0.25)
    assert options["socket_timeout"] == options["socket_connect_timeout"] == 0.25
    assert options["health_check_interval"] == 0
    assert (options.get("host"), options.get("port"), options.get("path")) == (
        pool.connection_kwargs.get("host"),
        pool.connection_kwargs.get("port"),
        pool.connection_kwargs.get("path"),
    )
    # What newer redis-py adds for its pool maintenance (5.x and 6.x refuse these names).
    assert not {name for name in options if name.startswith(("maint_", "oss_", "orig_"))}
    # The connection class takes them: a command over it works.
    connection = pool.connection_class(**options)
    try:
        connection.send_command("PING")
        assert connection.read_response() in (b"PONG", "PONG", True)
    finally:
        connection.disconnect()


def _with_query(url: str, query: str) -> str:
    return url + ("&" if "?" in url else "?") + query


def test_a_pooled_connection_the_server_closed_is_replaced_before_use(
    redis_url: str, spy: redis.Redis
) -> None:
    # As after a Redis restart: the pool's idle connection was closed by the server. No retry is
    # configured, so a command sent over it would fail; the check must see the close first.
    client = connect(redis_url)
    try:
        client.set("quick-check", "1")
        own = client.client_id()
        spy.client_kill_filter(_id=own)
        gevent.sleep(0.05)  # the close reaches this side
        assert client.get("quick-check") in (b"1", "1")
        assert client.client_id() != own
    finally:
        client.close()
        client.connection_pool.disconnect()


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_pooled_connection_with_a_reply_unread_is_not_loaned_as_is(
    redis_url: str, protocol: int
) -> None:
    if protocol == 3 and redis.VERSION < (6,):
        # Seen on 5.0: a RESP3 handshake with the URL's password is refused. interlink never
        # asks redis-py 5.x for RESP3 (its default is RESP2).
        pytest.skip("redis-py 5.x: RESP3 with a password in the URL does not authenticate")
    client = connect(_with_query(redis_url, f"protocol={protocol}"))
    try:
        client.set("quick-check", "right")
        # A command whose reply nobody reads, on the connection the pool loans next.
        # redis-py before 5.3 requires a command name, later ones deprecate it.
        connection = client.connection_pool.get_connection(
            *(("ECHO",) if redis.VERSION < (5, 3) else ())
        )
        connection.send_command("ECHO", "left over")
        gevent.sleep(0.05)  # the reply arrives
        client.connection_pool.release(connection)
        value = client.get("quick-check")
    finally:
        client.close()
        client.connection_pool.disconnect()
    if protocol == 3 and redis.VERSION >= (7,) and value in (b"left over", "left over"):
        # redis-py 7+ with maintenance notifications (RESP3) loans such a connection by design
        # (its own check's answer is ignored then): not ours to change, but not made worse.
        pytest.skip("redis-py ignores unread data on RESP3 pools with maintenance notifications")
    assert value in (b"right", "right")


_ARGUMENTS = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=20),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.binary(max_size=20).map(bytearray),
    st.binary(max_size=20).map(memoryview),
)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(["GET", "CLIENT KILL", b"SET", b"CONFIG  GET", "XADD\tx"]),
    arguments=st.lists(_ARGUMENTS, max_size=8),
)
def test_the_packer_sends_the_bytes_redis_py_would(name: str | bytes, arguments: list) -> None:
    encoder = redis.connection.Encoder("utf-8", "strict", False)
    theirs = redis.connection.PythonRespSerializer(6000, encoder.encode)
    ours = CommandPacker(encoder)

    def outcome(pack: Any) -> bytes | type[Exception]:
        try:
            return b"".join(bytes(chunk) for chunk in pack(name, *arguments))
        except redis.DataError as exc:  # what this redis-py refuses (a bytearray on 5.0)
            return type(exc)

    assert outcome(ours.pack) == outcome(theirs.pack)


def test_the_packer_refuses_what_redis_py_refuses_and_keeps_the_urls_encoding() -> None:
    packer = CommandPacker(redis.connection.Encoder("latin-1", "strict", False))
    with pytest.raises(redis.DataError):
        packer.pack("SET", "k", True)
    with pytest.raises(redis.DataError):
        packer.pack("SET", "k", None)
    assert packer.pack("SET", "k", "é") == [b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n\xe9\r\n"]


def test_commands_and_pipelines_through_the_packer_reach_the_server_intact(
    redis_client: redis.Redis,
) -> None:
    assert isinstance(
        redis_client.connection_pool.connection_kwargs.get("command_packer"), CommandPacker
    )
    big = bytes(range(256)) * 40  # past redis-py's 6,000-byte chunking
    redis_client.set("packed:str", "héllo wörld")
    redis_client.hset("packed:h", mapping={"n": 12, "f": 1.5, "b": big, "m": memoryview(b"mv")})
    pipe = redis_client.pipeline(transaction=False)
    pipe.get("packed:str")
    pipe.hgetall("packed:h")
    pipe.config_get("maxmemory")  # a command name of two words
    text, fields, config = pipe.execute()
    assert text == "héllo wörld".encode()
    assert fields == {b"n": b"12", b"f": b"1.5", b"b": big, b"m": b"mv"}
    assert "maxmemory" in {k.decode() if isinstance(k, bytes) else k for k in config}
