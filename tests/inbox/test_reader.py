"""The owner side of the durable inbox against a real Valkey: delivery in order, acks,
a restart taking back pending entries, refused deliveries offered again."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent
import pytest
import redis

from interlink.inbox import Entry, Inbox, InboxReader
from interlink.store import keys


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        gevent.sleep(0.01)


def item(n: int, tenant: str = "acme", dedupe: bool = True) -> Entry:
    return Entry(
        tenant,
        "wa.message",
        {"n": n, "text": f"hello {n}"},
        conversation="u1",
        dedupe=f"wamid.{n}" if dedupe else None,
    )


def test_the_reader_delivers_in_order_and_acks_remove_entries(redis_client: redis.Redis) -> None:
    inbox = Inbox(redis_client, 1)
    inbox.accept([item(n) for n in range(20)])
    got: list[Entry] = []
    reader = InboxReader(redis_client, 0, lambda w: got.append(w) or True)
    reader.start()
    try:
        wait_for(lambda: len(got) == 20)
        assert [w.payload["n"] for w in got] == list(range(20))
        assert (
            got[0].tenant_id == "acme"
            and got[0].conversation == "u1"
            and got[0].kind == "wa.message"
        )
        for work in got:
            reader.ack(work)
            reader.ack(work)  # twice: counted once
        wait_for(lambda: redis_client.xlen(keys.inbox(0)) == 0)
        wait_for(lambda: not redis_client.exists(keys.backlog(0, "acme")))
        wait_for(lambda: reader.inflight == {})  # forgotten once the ack call has returned
    finally:
        reader.stop()


def test_a_restarted_reader_takes_back_unacknowledged_entries_first(
    redis_client: redis.Redis,
) -> None:
    inbox = Inbox(redis_client, 1)
    inbox.accept([item(n) for n in range(10)])
    first: list[Entry] = []
    reader = InboxReader(redis_client, 0, lambda w: first.append(w) or True)
    reader.start()
    wait_for(lambda: len(first) == 10)
    for work in first[:4]:
        reader.ack(work)
    wait_for(lambda: redis_client.xlen(keys.inbox(0)) == 6)
    reader.stop()  # as if the shard died holding 4..9
    inbox.accept([item(n) for n in range(10, 12)])

    second: list[Entry] = []
    reader = InboxReader(redis_client, 0, lambda w: second.append(w) or True)
    reader.start()
    try:
        wait_for(lambda: len(second) == 8)
        assert [w.payload["n"] for w in second] == list(range(4, 12))
    finally:
        reader.stop()


def test_refused_deliveries_are_offered_again(redis_client: redis.Redis) -> None:
    inbox = Inbox(redis_client, 1)
    inbox.accept([item(1)])
    calls: list[int] = []

    def deliver(work: Entry) -> bool:
        calls.append(work.payload["n"])
        return len(calls) >= 3

    reader = InboxReader(redis_client, 0, deliver, rescan_interval=0.05)
    reader.start()
    try:
        wait_for(lambda: len(calls) >= 3)
        gevent.sleep(0.2)
        assert len(calls) == 3  # once accepted it is not offered again
    finally:
        reader.stop()


def _script_calls(client: redis.Redis) -> int:
    stats: dict[str, dict[str, int]] = client.info("commandstats")
    return stats.get("cmdstat_evalsha", {}).get("calls", 0)


def test_commit_stores_the_writes_and_acknowledges_in_one_shared_round_trip(
    redis_client: redis.Redis,
) -> None:
    inbox = Inbox(redis_client, 1)
    inbox.accept([item(n) for n in range(30)])
    got: list[Entry] = []
    reader = InboxReader(redis_client, 0, lambda w: got.append(w) or True)
    reader.start()
    try:
        wait_for(lambda: len(got) == 30)
        calls = _script_calls(redis_client)

        def commit(work: Entry) -> None:
            key = f"il:v1:test:{work.payload['n']}"
            reader.commit(work, lambda pipe: pipe.set(key, "1"))
            # Returned: the write is there, the entry acknowledged with it.
            assert redis_client.get(key) == b"1"
            assert not redis_client.xrange(keys.inbox(0), work.entry_id, work.entry_id)

        gevent.joinall([gevent.spawn(commit, work) for work in got], raise_error=True)
        # Thirty conversations, a few script calls between them (the first alone, the rest
        # gathered while it was under way).
        assert 1 <= _script_calls(redis_client) - calls <= 3
        assert redis_client.xlen(keys.inbox(0)) == 0
        assert not redis_client.exists(keys.backlog(0, "acme"))
        wait_for(lambda: reader.inflight == {})
        reader.commit(got[0], None)  # nothing to write: an acknowledgement (again: counted once)
    finally:
        reader.stop()


def test_at_the_memory_limit_acknowledgements_and_their_writes_go_through(
    redis_client: redis.Redis,
) -> None:
    """deploy/README.md asks for noeviction: at the limit Redis refuses writes, but the
    acknowledgements free memory (the entries go), so they and the few small writes that must
    go with them are let through (ack.lua's allow-oom) instead of every batch being refused."""
    inbox = Inbox(redis_client, 1)
    inbox.accept([item(1), item(2)])
    got: list[Entry] = []
    reader = InboxReader(redis_client, 0, lambda w: got.append(w) or True)
    reader.start()
    maxmemory = redis_client.config_get("maxmemory")["maxmemory"]
    policy = redis_client.config_get("maxmemory-policy")["maxmemory-policy"]
    try:
        wait_for(lambda: len(got) == 2)
        redis_client.config_set("maxmemory-policy", "noeviction")
        redis_client.config_set("maxmemory", 1)  # every write that needs memory is refused
        with pytest.raises(redis.ResponseError, match="maxmemory"):
            redis_client.set("il:v1:test:other", "1")
        committed = gevent.spawn(reader.commit, got[0], lambda pipe: pipe.set("il:v1:test:w", "1"))
        reader.ack(got[1])
        committed.get(timeout=5)
        wait_for(lambda: redis_client.xlen(keys.inbox(0)) == 0)
        assert redis_client.get("il:v1:test:w") == b"1"
        assert not redis_client.exists(keys.backlog(0, "acme"))
    finally:
        redis_client.config_set("maxmemory", maxmemory)
        redis_client.config_set("maxmemory-policy", policy)
        reader.stop()


def test_a_commit_the_reader_cannot_finish_raises_and_leaves_the_entry_pending(
    redis_client: redis.Redis,
) -> None:
    inbox = Inbox(redis_client, 1)
    inbox.accept([item(1)])
    got: list[Entry] = []
    reader = InboxReader(redis_client, 0, lambda w: got.append(w) or True)
    reader.start()
    try:
        wait_for(lambda: len(got) == 1)
        redis_client.execute_command("CLIENT", "PAUSE", 3000, "WRITE")  # the script waits
        waiting = gevent.spawn(reader.commit, got[0], lambda pipe: pipe.set("il:v1:test:w", "1"))
        gevent.sleep(0.3)
        reader.stop(timeout=0.5)  # gives up on it
        with pytest.raises(redis.ConnectionError):
            waiting.get(timeout=5)
        with pytest.raises(redis.ConnectionError):  # and on any later one at once
            reader.commit(got[0], lambda pipe: pipe.set("il:v1:test:w", "1"))
    finally:
        redis_client.execute_command("CLIENT", "UNPAUSE")
        reader.stop()
    gevent.sleep(0.1)
    assert redis_client.xlen(keys.inbox(0)) == 1
    assert not redis_client.exists("il:v1:test:w")


def test_an_entry_whose_writes_redis_refuses_fails_alone(redis_client: redis.Redis) -> None:
    """A write Redis refuses for good fails only its own conversation's commit, which raises
    its error; the other entries of the shard, in the same batch, are acknowledged."""
    inbox = Inbox(redis_client, 1)
    inbox.accept([item(n, tenant=f"t{n}") for n in range(6)])
    got: list[Entry] = []
    reader = InboxReader(redis_client, 0, lambda w: got.append(w) or True)
    reader.start()
    try:
        wait_for(lambda: len(got) == 6)
        bad = got[2]

        def commit(work: Entry) -> None:
            def write(pipe: Any) -> None:
                pipe.set(f"il:v1:test:{work.tenant_id}", "1")
                if work is bad:
                    pipe.execute_command("SET", "il:v1:test:bad")  # wrong number of arguments

            reader.commit(work, write)

        runs = {work.tenant_id: gevent.spawn(commit, work) for work in got}
        gevent.joinall(list(runs.values()), timeout=10)
        assert all(run.ready() for run in runs.values())
        assert isinstance(runs[bad.tenant_id].exception, redis.ResponseError)
        for work in got:
            if work is not bad:
                assert runs[work.tenant_id].successful()
                assert redis_client.get(f"il:v1:test:{work.tenant_id}") == b"1"
        pending = redis_client.xrange(keys.inbox(0))
        assert [_text_id(entry_id) for entry_id, _ in pending] == [bad.entry_id]
        # The loop goes on: the next commit is served.
        wait_for(lambda: len(reader.inflight) == 1)
        reader.ack(bad)
        wait_for(lambda: redis_client.xlen(keys.inbox(0)) == 0)
    finally:
        reader.stop()


@pytest.mark.parametrize("value", [None, True])
def test_a_value_redis_cannot_take_raises_in_the_conversation(
    redis_client: redis.Redis, value: Any
) -> None:
    """redis-py refuses None and a bool as an argument: so does a commit, in the caller, and
    the shard's acknowledgements go on."""
    inbox = Inbox(redis_client, 1)
    inbox.accept([item(1), item(2)])
    got: list[Entry] = []
    reader = InboxReader(redis_client, 0, lambda w: got.append(w) or True)
    reader.start()
    try:
        wait_for(lambda: len(got) == 2)
        with pytest.raises(redis.DataError):
            reader.commit(got[0], lambda pipe: pipe.set("il:v1:test:v", value))
        assert not redis_client.exists("il:v1:test:v")
        gevent.spawn(reader.commit, got[1], lambda pipe: pipe.set("il:v1:test:w", 1.5)).get(
            timeout=5
        )
        assert redis_client.get("il:v1:test:w") == b"1.5"
        assert reader.dead_since() is None
        assert [_text_id(entry_id) for entry_id, _ in redis_client.xrange(keys.inbox(0))] == [
            got[0].entry_id
        ]
    finally:
        reader.stop()


def _text_id(entry_id: Any) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def test_a_write_to_a_key_of_another_type_is_passed_over(redis_client: redis.Redis) -> None:
    """No retry mends it: holding every acknowledgement back for it would stop the shard."""
    inbox = Inbox(redis_client, 1)
    inbox.accept([item(1)])
    got: list[Entry] = []
    reader = InboxReader(redis_client, 0, lambda w: got.append(w) or True)
    reader.start()
    try:
        wait_for(lambda: len(got) == 1)
        redis_client.set("il:v1:test:h", "a string")

        def write(pipe: Any) -> None:
            pipe.hset("il:v1:test:h", "f", "v")
            pipe.set("il:v1:test:s", "1", ex=60)

        gevent.spawn(reader.commit, got[0], write).get(timeout=5)
        assert redis_client.get("il:v1:test:s") == b"1"
        assert redis_client.get("il:v1:test:h") == b"a string"
        assert redis_client.xlen(keys.inbox(0)) == 0
    finally:
        reader.stop()
