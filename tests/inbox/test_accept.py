"""The accepting side of the durable inbox against a real Valkey: dedupe, backlog, owner shards,
group commits, a lost script or connection, outages."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent
import pytest
import redis

from interlink.inbox import BACKLOGGED, DUPLICATE, NEW, Entry, Inbox, InboxUnavailable
from interlink.store import keys
from interlink.store.connection import connect


def item(n: int, tenant: str = "acme", dedupe: bool = True) -> Entry:
    return Entry(
        tenant,
        "wa.message",
        {"n": n, "text": f"hello {n}"},
        conversation="u1",
        dedupe=f"wamid.{n}" if dedupe else None,
    )


def test_accept_appends_once_and_recognises_redeliveries(redis_client: redis.Redis) -> None:
    inbox = Inbox(redis_client, 1)
    assert inbox.accept([item(1), item(2)]) == [NEW, NEW]
    assert inbox.accept([item(2), item(3)]) == [DUPLICATE, NEW]
    assert redis_client.xlen(keys.inbox(0)) == 3
    assert redis_client.get(keys.backlog(0, "acme")) == b"3"
    ttl = redis_client.ttl(keys.accepted(0, "acme", "wamid.1"))
    assert 7 * 24 * 3600 < ttl <= 8 * 24 * 3600


def test_items_go_to_the_stream_of_the_owner_shard(redis_client: redis.Redis) -> None:
    from interlink.tenancy import ownership

    inbox = Inbox(redis_client, 4)
    tenants = [f"tenant-{i}" for i in range(40)]
    inbox.accept([item(i, tenant) for i, tenant in enumerate(tenants)])
    for shard in range(4):
        owned = {t for t in tenants if ownership.owner(t, 4) == shard}
        entries = redis_client.xrange(keys.inbox(shard))
        assert {f[b"t"].decode() for _, f in entries} == owned
    assert len({ownership.owner(t, 4) for t in tenants}) == 4


def test_a_tenant_over_its_backlog_is_refused_without_touching_others(
    redis_client: redis.Redis,
) -> None:
    inbox = Inbox(redis_client, 1, max_backlog=3)
    assert inbox.accept([item(n) for n in range(4)]) == [NEW, NEW, NEW, BACKLOGGED]
    # A redelivery of something already accepted is still a duplicate, not a refusal.
    assert inbox.accept([item(0)]) == [DUPLICATE]
    assert inbox.accept([item(9, "other")]) == [NEW]
    # The refused item left no dedupe marker (its redelivery will be accepted later), and the
    # backlog counter counts what was appended, not what was refused.
    assert not redis_client.exists(keys.accepted(0, "acme", "wamid.3"))
    assert redis_client.get(keys.backlog(0, "acme")) == b"3"
    assert Inbox(redis_client, 1, max_backlog=0).accept([item(5, "closed")]) == [BACKLOGGED]
    assert not redis_client.exists(keys.backlog(0, "closed"))


def test_concurrent_accepts_share_round_trips_and_all_land(redis_client: redis.Redis) -> None:
    inbox = Inbox(redis_client, 1)
    jobs = [gevent.spawn(inbox.accept, [item(n)]) for n in range(500)]
    gevent.joinall(jobs, raise_error=True)
    assert all(job.value == [NEW] for job in jobs)
    assert redis_client.xlen(keys.inbox(0)) == 500


def test_an_unreachable_store_raises_inbox_unavailable(redis_url: str) -> None:
    dead = connect("redis://127.0.0.1:1/0", pool_timeout=0.5, socket_timeout=0.5)
    inbox = Inbox(dead, 1, timeout=3)
    with pytest.raises(InboxUnavailable):
        inbox.accept([item(1)])


def test_the_accept_script_is_loaded_again_when_the_server_lost_it(
    redis_client: redis.Redis,
) -> None:
    inbox = Inbox(redis_client, 1)
    assert inbox.accept([item(1)]) == [NEW]
    redis_client.script_flush()  # what a restarted Redis without persistence looks like
    assert inbox.accept([item(2), item(1)]) == [NEW, DUPLICATE]


def test_a_connection_the_server_closed_is_replaced_without_an_error(
    redis_client: redis.Redis,
) -> None:
    inbox = Inbox(redis_client, 1)
    assert inbox.accept([item(1)]) == [NEW]
    redis_client.client_kill_filter(_type="normal", skipme=True)  # every other connection
    assert inbox.accept([item(2)]) == [NEW]
    assert redis_client.xlen(keys.inbox(0)) == 2


def _silent(sock: Any, _address: object) -> None:
    """A store that reads every command and answers none."""
    while sock.recv(65536):
        pass


def _lost_script(sock: Any, _address: object) -> None:
    """A store that has lost the script and never answers ``SCRIPT LOAD``."""
    reader = sock.makefile("rb")
    while line := reader.readline():
        args = [reader.read(int(reader.readline()[1:]) + 2)[:-2] for _ in range(int(line[1:]))]
        command = args[0].upper()
        if command == b"EVALSHA":
            sock.sendall(b"-NOSCRIPT No matching script.\r\n")
        elif command != b"SCRIPT":
            sock.sendall(b"+PONG\r\n" if command == b"PING" else b"+OK\r\n")


@pytest.mark.parametrize("store", [_silent, _lost_script])
def test_a_store_that_does_not_answer_is_unavailable_after_the_timeout(
    store: Callable[[Any, object], None],
) -> None:
    # Connecting and loading the script again are part of a commit's time budget, not waits
    # of their own: the pool's 30 s socket timeout never comes into play.
    from gevent.server import StreamServer

    server = StreamServer(("127.0.0.1", 0), store)
    server.start()
    client = connect(f"redis://127.0.0.1:{server.server_port}/0?protocol=2", socket_timeout=30)
    try:
        started = time.monotonic()
        with pytest.raises(InboxUnavailable):
            Inbox(client, 1, timeout=0.5).accept([item(1)])
        assert time.monotonic() - started < 3
    finally:
        client.close()
        server.stop()


def test_requests_waiting_on_a_stopped_commit_loop_are_answered(
    redis_client: redis.Redis,
) -> None:
    inbox = Inbox(redis_client, 1)
    assert inbox.accept([item(1)]) == [NEW]
    committer = inbox._committer
    assert committer is not None
    waiting = gevent.spawn(inbox.accept, [item(2)])
    committer.kill()  # before the waiting request's batch was committed
    with pytest.raises(InboxUnavailable):
        waiting.get(timeout=2)
    assert inbox.accept([item(3)]) == [NEW]  # a new commit loop takes over
