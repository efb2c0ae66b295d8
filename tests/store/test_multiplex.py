"""The conversations' shared connection: the requests of one hub turn in one write, each caller
its own replies parsed as the client's pipeline parses them, and a failure that never shifts a
reply to the wrong caller."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
import redis

from interlink.store import multiplex
from interlink.store.multiplex import Multiplexer, Pipe
from tests.support.round_trips import RoundTrips, counting_client


@pytest.fixture
def counted(redis_url: str) -> Iterator[tuple[redis.Redis, RoundTrips]]:
    client, trips = counting_client(redis_url)
    yield client, trips
    client.close()


def key() -> str:
    return f"test:mux:{secrets.token_hex(6)}"


def test_the_requests_of_one_turn_go_in_one_write_and_each_gets_its_own_replies(
    counted: tuple[redis.Redis, RoundTrips],
) -> None:
    client, trips = counted
    names = [key() for _ in range(20)]

    def one(n: int) -> list[Any]:
        pipe = multiplex.pipeline(client)
        pipe.set(names[n], str(n))
        pipe.get(names[n])
        return pipe.execute()

    before = trips.count
    workers = [gevent.spawn(one, n) for n in range(20)]
    gevent.joinall(workers, raise_error=True)
    assert [w.value for w in workers] == [[True, str(n).encode()] for n in range(20)]
    assert trips.since(before) == 1
    assert trips.commands == 2 * 20


def test_replies_are_parsed_as_the_clients_own_pipeline_parses_them(
    redis_client: redis.Redis,
) -> None:
    h, s = key(), key()

    def commands(pipe: Any) -> None:
        pipe.hset(h, mapping={"a": "1", "b": "2"})
        pipe.hgetall(h)
        pipe.hmget(h, ["a", "missing"])
        pipe.set(s, "x", ex=60, get=True)
        pipe.set(s, "y", nx=True)
        pipe.exists(s, h)
        pipe.expire(h, 60)
        pipe.get(key())

    ours = multiplex.pipeline(redis_client)
    commands(ours)
    first = ours.execute()
    redis_client.delete(h, s)
    theirs = redis_client.pipeline(transaction=False)
    commands(theirs)
    assert first == theirs.execute()


def test_a_commands_error_is_its_callers_alone(redis_client: redis.Redis) -> None:
    text = key()
    redis_client.set(text, "not a hash")

    def wrong() -> None:
        pipe = multiplex.pipeline(redis_client)
        pipe.hget(text, "field")
        pipe.get(text)
        pipe.execute()

    def right() -> list[Any]:
        pipe = multiplex.pipeline(redis_client)
        pipe.get(text)
        return pipe.execute()

    failing, fine = gevent.spawn(wrong), gevent.spawn(right)
    gevent.joinall([failing, fine])
    assert isinstance(failing.exception, redis.ResponseError)
    assert "WRONGTYPE" in str(failing.exception)
    assert fine.value == [b"not a hash"]
    assert right() == [b"not a hash"]  # every reply was read: nothing is left to shift


def test_a_caller_killed_while_waiting_leaves_the_connection_in_place(
    redis_client: redis.Redis,
) -> None:
    name = key()
    redis_client.set(name, "v")

    def slow() -> None:
        pipe = multiplex.pipeline(redis_client)
        pipe.get(name)
        pipe.execute()

    victim = gevent.spawn(slow)
    gevent.sleep(0)  # its request is on its way
    victim.kill()
    pipe = multiplex.pipeline(redis_client)
    pipe.set(name, "w")
    pipe.get(name)
    assert pipe.execute() == [True, b"w"]


def test_the_first_caller_killed_before_it_wrote_still_lets_the_others_go(
    redis_client: redis.Redis,
) -> None:
    name = key()

    def ask(value: str) -> list[Any]:
        pipe = multiplex.pipeline(redis_client)
        pipe.set(name, value)
        return pipe.execute()

    first, second = gevent.spawn(ask, "1"), gevent.spawn(ask, "2")
    gevent.sleep(0)  # the first is the one that writes, and waits for the others of the turn
    first.kill()
    assert second.get(timeout=5) == [True]


def test_a_lost_connection_fails_what_was_written_on_it_and_the_next_request_reconnects(
    redis_client: redis.Redis, redis_url: str
) -> None:
    mux = Multiplexer(redis_client)
    pipe = Pipe(mux)
    pipe.client_setname("interlink-mux-test")
    pipe.execute()
    killer = redis.Redis.from_url(redis_url)
    try:
        waiting = Pipe(mux)
        waiting.blpop([key()], timeout=5)  # held by the server until the connection goes
        caller = gevent.spawn(waiting.execute)
        gevent.sleep(0.2)
        for info in killer.client_list():
            if info.get("name") == "interlink-mux-test":
                killer.client_kill_filter(_id=info["id"])
        with pytest.raises(redis.ConnectionError):
            caller.get(timeout=5)
        again = Pipe(mux)
        again.ping()
        assert again.execute() == [True]
    finally:
        killer.close()
        mux.close()


def test_an_answer_that_does_not_come_in_time_is_a_timeout_error(
    redis_client: redis.Redis,
) -> None:
    mux = Multiplexer(redis_client, timeout=0.2)
    try:
        waiting = Pipe(mux)
        waiting.blpop([key()], timeout=2)
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            waiting.execute()
        assert time.monotonic() - started < 1.5
        after = Pipe(mux)
        after.ping()
        assert after.execute() == [True]
    finally:
        mux.close()
