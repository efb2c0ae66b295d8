"""Operator holds: a stopped tenant's work waits in the durable inbox, across restarts of the
supervisor and its reader, and after ``start`` it is delivered promptly and in order, against a
real Valkey, a real inbox reader and the real supervisor."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import pykka
import pytest
import redis

from interlink.actors import RestartPolicy, Supervisor, TreeSpec
from interlink.actors.conversation import Conversation
from interlink.actors.messages import Control, TenantControl
from interlink.inbox import Entry, Inbox, InboxReader
from interlink.store import keys
from interlink.store.holds import Holds
from interlink.tenancy.config import TenantConfig
from interlink.tenancy.ownership import owner

FAST = RestartPolicy(max_restarts=3, period=10.0, min_backoff=0.01, max_backoff=0.05)
HANDLED: list[tuple[str, int]] = []


class Recording(Conversation):
    def handle(self, work: Entry) -> Any:
        HANDLED.append((self.config.tenant_id, int(work.payload["n"])))
        return super().handle(work)


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        gevent.sleep(0.01)


def handled(tenant: str) -> list[int]:
    return [n for t, n in HANDLED if t == tenant]


def item(tenant: str, n: int, user: str = "u1") -> Entry:
    return Entry(tenant, "wa.message", {"n": n}, conversation=user, dedupe=f"wamid.{tenant}.{n}")


class Owner:
    """A shard's owner side as runtime.py wires it: reader -> supervisor, holds from Redis."""

    def __init__(self, client: redis.Redis, shard_id: int = 0, shard_count: int = 1) -> None:
        # The periodic rescan is far away: what comes back after "start" comes by the prompt one.
        self.reader = InboxReader(client, shard_id, self.deliver, rescan_interval=60.0)
        spec = TreeSpec(
            load_config=lambda t: TenantConfig(tenant_id=t, version=1),
            conversation=Recording,
            policy=FAST,
            ack=self.reader.ack,
            release=self.reader.release,
            rescan=self.reader.rescan_soon,
            held=Holds(client).held,
        )
        self.supervisor = Supervisor.start(spec, shard_id=shard_id, shard_count=shard_count)
        self.reader.start()

    def deliver(self, work: Entry) -> bool:
        self.supervisor.tell(work)
        return True

    def control(self, tenant: str, kind: str) -> Any:
        return self.supervisor.ask(TenantControl(tenant, Control(kind)), timeout=5)

    def stop(self) -> None:
        self.reader.stop_reading()
        if self.supervisor.is_alive():
            self.supervisor.stop(timeout=10)
        self.reader.stop()


@pytest.fixture
def owners(redis_client: redis.Redis) -> Iterator[list[Owner]]:
    HANDLED.clear()
    started: list[Owner] = []
    yield started
    for running in started:
        running.stop()


def pending(client: redis.Redis) -> int:
    return int(client.xlen(keys.inbox(0)))


def test_a_hold_outlives_a_restart_and_start_delivers_in_order(
    redis_client: redis.Redis, owners: list[Owner]
) -> None:
    inbox, holds = Inbox(redis_client, 1), Holds(redis_client)
    first = Owner(redis_client)
    owners.append(first)
    inbox.accept([item("acme", 0), item("globex", 0)])
    wait_for(lambda: handled("acme") == [0] and handled("globex") == [0])

    holds.hold("acme")  # as the control endpoint does before telling the supervisor
    assert first.control("acme", "stop") == {"state": "stopped"}
    inbox.accept([item("acme", n) for n in range(1, 4)] + [item("globex", 1)])
    wait_for(lambda: handled("globex") == [0, 1])
    gevent.sleep(0.2)
    assert handled("acme") == [0]
    assert pending(redis_client) == 3
    # Refused entries are not counted as handed over: they do not wait for a redelivery timer.
    assert first.reader.inflight == {}

    first.stop()  # a restart of the owner: the hold is read back from Redis
    second = Owner(redis_client)
    owners.append(second)
    inbox.accept([item("acme", n) for n in range(4, 6)])
    gevent.sleep(0.3)
    assert handled("acme") == [0]
    assert pending(redis_client) == 5
    snapshot = second.supervisor.ask(Control("stats"), timeout=5)
    assert snapshot["tenantsStopped"] == 1

    holds.release("acme")
    started = time.monotonic()
    assert second.control("acme", "start") == {"state": "active"}
    wait_for(lambda: len(handled("acme")) == 6, timeout=3)
    assert time.monotonic() - started < 2.0  # the prompt rescan, not the 60 s interval
    assert handled("acme") == [0, 1, 2, 3, 4, 5]
    wait_for(lambda: pending(redis_client) == 0)


def test_entries_offered_out_of_order_after_start_wait_for_their_turn(
    owners: list[Owner],
) -> None:
    """The rescan that brings the held entries back may race with newer entries (a read of new
    entries, a rescan that was already half way): each waits until every older one went."""
    HANDLED.clear()
    spec = TreeSpec(
        load_config=lambda t: TenantConfig(tenant_id=t, version=1),
        conversation=Recording,
        policy=FAST,
    )
    supervisor: pykka.ActorRef[Supervisor] = Supervisor.start(spec)
    try:
        supervisor.ask(TenantControl("acme", Control("stop")), timeout=5)
        ids = [f"1700000000000-{n}" for n in range(5)]
        entries = [
            Entry("acme", "wa.message", {"n": n}, conversation="u1", entry_id=ids[n])
            for n in range(5)
        ]
        for work in entries[:3]:
            assert supervisor.ask(work, timeout=5) is False  # held: refused, left in the inbox
        supervisor.ask(TenantControl("acme", Control("start")), timeout=5)
        # A new entry first, then the held ones, the middle one before the oldest.
        for work in (entries[3], entries[1], entries[0]):
            assert supervisor.ask(work, timeout=5) is True
        gevent.sleep(0.2)
        assert handled("acme") == [0, 1]
        assert supervisor.ask(entries[2], timeout=5) is True
        supervisor.tell(entries[4])
        wait_for(lambda: handled("acme") == [0, 1, 2, 3, 4])
    finally:
        supervisor.stop(timeout=10)


def test_holds_of_tenants_owned_elsewhere_are_not_listed(
    redis_client: redis.Redis, owners: list[Owner]
) -> None:
    tenants = [f"tenant-{n}" for n in range(12)]
    holds = Holds(redis_client)
    for tenant in tenants:
        holds.hold(tenant)
    shard = Owner(redis_client, shard_id=1, shard_count=3)
    owners.append(shard)
    snapshot = shard.supervisor.ask(Control("stats"), timeout=5)
    mine = [t for t in tenants if owner(t, 3) == 1]
    assert 0 < len(mine) < len(tenants)
    assert snapshot["tenantsStopped"] == len(mine)


def test_the_holds_store(redis_client: redis.Redis) -> None:
    holds = Holds(redis_client)
    assert holds.held() == set()
    holds.hold("acme")
    holds.hold("globex")
    assert holds.held() == {"acme", "globex"} and holds.is_held("acme")
    assert holds.release("acme") is True
    assert holds.release("acme") is False
    assert holds.held() == {"globex"}


def test_entries_forwarded_by_a_handover_go_before_the_shards_own() -> None:
    """During a change of the shard count, a tenant's older entries reach its new owner through
    the handover stream (newer stream ids, read first): they keep their place after a hold."""
    HANDLED.clear()
    spec = TreeSpec(
        load_config=lambda t: TenantConfig(tenant_id=t, version=1),
        conversation=Recording,
        policy=FAST,
    )
    supervisor: pykka.ActorRef[Supervisor] = Supervisor.start(spec)
    try:
        supervisor.ask(TenantControl("acme", Control("stop")), timeout=5)
        forwarded = Entry(
            "acme",
            "wa.message",
            {"n": 0},
            conversation="u1",
            entry_id="1700000009000-0",
            stream=keys.handover(0),
        )
        own = Entry("acme", "wa.message", {"n": 1}, conversation="u1", entry_id="1700000001000-0")
        assert supervisor.ask(forwarded, timeout=5) is False
        assert supervisor.ask(own, timeout=5) is False
        supervisor.ask(TenantControl("acme", Control("start")), timeout=5)
        assert supervisor.ask(own, timeout=5) is True
        gevent.sleep(0.2)
        assert handled("acme") == []
        assert supervisor.ask(forwarded, timeout=5) is True
        wait_for(lambda: handled("acme") == [0, 1])
    finally:
        supervisor.stop(timeout=10)


def test_forwarded_entries_keep_the_order_they_were_accepted_in_after_a_hold() -> None:
    """Their handover stream's ids say when they were forwarded, not when they were accepted: a
    held tenant's forwarded entries resume in accept order (generation, original id)."""
    HANDLED.clear()
    spec = TreeSpec(
        load_config=lambda t: TenantConfig(tenant_id=t, version=1),
        conversation=Recording,
        policy=FAST,
    )
    supervisor: pykka.ActorRef[Supervisor] = Supervisor.start(spec)

    def forwarded(n: int, entry_id: str, order: tuple[int, int, int]) -> Entry:
        return Entry(
            "acme",
            "wa.message",
            {"n": n},
            conversation="u1",
            entry_id=entry_id,
            stream=keys.handover(0),
            order=order,
        )

    # Accepted first (generation 1), forwarded last (a later pass, a higher id).
    older = forwarded(0, "1700000009000-0", (1, 1700000001000, 0))
    newer = forwarded(1, "1700000005000-0", (2, 1700000000500, 0))
    try:
        supervisor.ask(TenantControl("acme", Control("stop")), timeout=5)
        assert supervisor.ask(newer, timeout=5) is False
        assert supervisor.ask(older, timeout=5) is False
        supervisor.ask(TenantControl("acme", Control("start")), timeout=5)
        assert supervisor.ask(older, timeout=5) is True  # the reader's order
        assert supervisor.ask(newer, timeout=5) is True
        wait_for(lambda: handled("acme") == [0, 1])
    finally:
        supervisor.stop(timeout=10)
