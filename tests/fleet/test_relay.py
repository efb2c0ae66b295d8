"""The control relay against a real Valkey: requests reach the shard asked and its reply comes
back, a shard that does not answer is a timeout (and never acts on the stale request later),
heartbeats tell which shards are live, and hostile list contents are dropped."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import msgpack
import pytest
import redis

from interlink.fleet.relay import ControlRelay, OwnerDown, RelayTimeout
from interlink.store import keys


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        gevent.sleep(0.01)


class Shard:
    """One shard's relay with a handler that records what it was asked."""

    def __init__(self, client: redis.Redis, shard_id: int, count: int, **options: Any) -> None:
        self.asked: list[dict[str, Any]] = []
        self.relay = ControlRelay(client, shard_id, count, self.handle, **options)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        self.asked.append(request)
        if request.get("type") == "slow":
            gevent.sleep(2.0)
        return {"status": 200, "body": {"answeredBy": self.relay.shard_id, "echo": request}}


@pytest.fixture
def shards(redis_client: redis.Redis) -> Iterator[Callable[..., Shard]]:
    started: list[Shard] = []

    def start(shard_id: int, count: int = 3, *, listen: bool = True, **options: Any) -> Shard:
        shard = Shard(redis_client, shard_id, count, **options)
        if listen:
            shard.relay.start()
        started.append(shard)
        return shard

    yield start
    for shard in started:
        shard.relay.stop()


def test_a_request_reaches_the_shard_asked_and_its_reply_comes_back(
    shards: Callable[..., Shard],
) -> None:
    zero, one, two = shards(0), shards(1), shards(2)
    request = {"kind": "tenant", "tenant": "acme", "type": "stats", "args": {"raw": b"\x00\xff"}}
    answer = zero.relay.ask(1, request)
    assert answer["status"] == 200 and answer["body"]["answeredBy"] == 1
    # What the owner gets is the request and who sent it; bytes survive (msgpack bodies).
    assert one.asked == [{**request, "from": 0}]
    assert zero.asked == [] and two.asked == []
    # Many at once, each answered by its own shard and matched to its own caller.
    jobs = [gevent.spawn(zero.relay.ask, n % 3, {"kind": "x", "n": n}) for n in range(30)]
    gevent.joinall(jobs, raise_error=True)
    assert [j.value["body"]["echo"]["n"] for j in jobs] == list(range(30))
    assert [j.value["body"]["answeredBy"] for j in jobs] == [n % 3 for n in range(30)]


def test_a_slow_answer_does_not_hold_up_the_next(shards: Callable[..., Shard]) -> None:
    zero, _ = shards(0), shards(1)
    slow = gevent.spawn(zero.relay.ask, 1, {"type": "slow"})
    gevent.sleep(0.05)
    started = time.monotonic()
    assert zero.relay.ask(1, {"type": "quick"})["status"] == 200
    assert time.monotonic() - started < 1.0  # not behind the slow one's 2 s
    slow.join(timeout=5)
    assert slow.value["status"] == 200


def test_a_shard_that_does_not_answer_is_a_timeout_and_never_acts_later(
    redis_client: redis.Redis, shards: Callable[..., Shard]
) -> None:
    zero = shards(0)
    one = shards(1, listen=False)
    one.relay.beat()  # alive, but not reading its requests (stuck)
    started = time.monotonic()
    with pytest.raises(RelayTimeout) as raised:
        zero.relay.ask(1, {"kind": "tenant", "type": "stop"}, timeout=0.3)
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 1.5
    assert raised.value.shard_id == 1 and "shard 1 did not answer within 0.3 s" in str(raised.value)
    # The asker takes its request back: when shard 1 reads again it finds nothing to do, and
    # the operator told 504 does not find the tenant stopped behind their back.
    assert redis_client.llen(keys.control_requests(1)) == 0
    one.relay.start()
    gevent.sleep(0.2)
    assert one.asked == []
    assert zero.relay.ask(1, {"kind": "ping"})["status"] == 200


def test_a_shard_without_a_heartbeat_is_refused_at_once_and_nothing_piles_up(
    redis_client: redis.Redis, shards: Callable[..., Shard]
) -> None:
    zero = shards(0)
    started = time.monotonic()
    for _ in range(5):
        with pytest.raises(OwnerDown) as raised:
            zero.relay.ask(2, {"kind": "tenant", "type": "stats"}, timeout=5)
    assert time.monotonic() - started < 1.0
    assert isinstance(raised.value, RelayTimeout)  # answered 504 like a timeout
    assert "shard 2 is down (no heartbeat)" in str(raised.value)
    assert redis_client.llen(keys.control_requests(2)) == 0
    shards(2)
    wait_for(lambda: redis_client.exists(keys.shard_alive(2)))
    assert zero.relay.ask(2, {"kind": "ping"})["status"] == 200


def test_hostile_requests_are_dropped_and_the_listener_carries_on(
    redis_client: redis.Redis, shards: Callable[..., Shard]
) -> None:
    zero, one = shards(0), shards(1)
    future = int(time.time() * 1000) + 60_000
    for raw in (
        b"\xc1 not msgpack",
        msgpack.packb([1, 2, 3]),
        msgpack.packb({"deadline": future}),  # no id
        # An id that would name another key than this shard's own reply list.
        msgpack.packb({"id": "x}:../il:v1:tenant:acme", "deadline": future, "kind": "x"}),
    ):
        redis_client.rpush(keys.control_requests(1), raw)
    assert zero.relay.ask(1, {"kind": "ping"})["status"] == 200
    assert [r["kind"] for r in one.asked] == ["ping"]
    assert not redis_client.exists(keys.tenant("acme"))


def test_heartbeats_tell_the_live_shards(
    redis_client: redis.Redis, shards: Callable[..., Shard]
) -> None:
    zero = shards(0, 2, heartbeat_interval=0.05, heartbeat_ttl=0.3)
    one = shards(1, 2, heartbeat_interval=0.05, heartbeat_ttl=0.3)
    wait_for(lambda: zero.relay.live_shards() == [0, 1])
    one.relay.stop()  # a clean stop says so at once
    assert zero.relay.live_shards() == [0]

    # A shard of an older, larger fleet is still seen while it runs; once its heartbeat
    # expired (killed, no clean stop) it is gone, and forgotten.
    old = shards(5, 6, listen=False, heartbeat_ttl=0.3)
    old.relay.beat()
    assert zero.relay.live_shards() == [0, 5]
    wait_for(lambda: zero.relay.live_shards() == [0])
    assert redis_client.smembers(keys.shard_ids()) == {b"0", b"1"}


def test_gather_asks_every_live_shard_and_reports_the_silent_one(
    shards: Callable[..., Shard],
) -> None:
    zero, two = shards(0, 3, timeout=0.5), shards(2, 3)
    silent = shards(1, 3, listen=False)  # it beats, but nobody answers for it
    silent.relay.beat()
    wait_for(lambda: zero.relay.live_shards() == [0, 1, 2])
    local: list[dict[str, Any]] = []

    def here(request: dict[str, Any]) -> dict[str, Any]:
        local.append(request)
        return {"status": 200, "body": {"answeredBy": "here"}}

    started = time.monotonic()
    views = zero.relay.gather({"kind": "actors"}, here)
    assert time.monotonic() - started < 1.5  # in parallel, one deadline
    assert [shard for shard, _ in views] == [0, 1, 2]
    assert views[0][1] == {"status": 200, "body": {"answeredBy": "here"}}
    assert isinstance(views[1][1], RelayTimeout)
    assert views[2][1]["body"]["answeredBy"] == 2  # type: ignore[index]
    assert local == [{"kind": "actors"}] and zero.asked == [] and len(two.asked) == 1
