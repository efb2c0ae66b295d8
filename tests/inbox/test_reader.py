"""The owner side of the durable inbox against a real Valkey: delivery in order, acks,
a restart taking back pending entries, refused deliveries offered again."""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent
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
