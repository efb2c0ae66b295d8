"""The fleet's shard-count handover against a real Valkey: the recorded generation and the
fences, the accepting side refused by a newer fence, leases, forwarding that survives a crash
between its two steps, and the reader's gate that keeps a moved tenant's order."""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent
import redis

from interlink.fleet import forward as forwarding
from interlink.fleet import record
from interlink.fleet.handover import Handover
from interlink.fleet.lease import Lease
from interlink.fleet.record import FleetView
from interlink.inbox import Entry, Inbox, InboxReader, InboxUnavailable
from interlink.store import keys
from interlink.tenancy import ownership


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        gevent.sleep(0.01)


def tenant_moving(old: int, new: int, *, stays: bool = False) -> str:
    """A tenant whose owner changes from ``old`` to ``new`` shards (or stays, with ``stays``)."""
    for n in range(1000):
        tenant = f"t{n}"
        same = ownership.owner(tenant, old) == ownership.owner(tenant, new)
        if same == stays:
            return tenant
    raise AssertionError("no such tenant")


def item(tenant: str, n: int) -> Entry:
    return Entry(tenant, "wa.message", {"n": n}, conversation="u1", dedupe=f"wamid.{tenant}.{n}")


def test_the_first_shard_records_the_count_and_a_new_count_fences_every_stream(
    redis_client: redis.Redis,
) -> None:
    first = record.join(redis_client, 2)
    assert (first.generation, first.count, first.streams) == (1, 2, 2)
    assert record.join(redis_client, 2) == first  # the same count: the same generation
    second = record.join(redis_client, 3)
    assert (second.generation, second.count, second.streams, second.recent) == (2, 3, 3, (2,))
    assert [redis_client.get(keys.fence(n)) for n in range(3)] == [b"2"] * 3
    assert record.read(redis_client) == second
    # Back to 2 before the handover to 3 settled: both earlier counts may still hold entries.
    third = record.join(redis_client, 2)
    assert (third.generation, third.streams, third.recent) == (3, 3, (2, 3))
    assert third.streams_of(0) == [0, 2] and third.streams_of(1) == [1]


def test_the_first_record_finds_streams_an_earlier_run_left(redis_client: redis.Redis) -> None:
    Inbox(redis_client, 4).accept([item(f"x{n}", 0) for n in range(40)])
    assert record.join(redis_client, 2).streams == 4


def test_a_writer_of_an_older_generation_is_refused_and_writes_again_under_the_new_one(
    redis_client: redis.Redis,
) -> None:
    tenant = tenant_moving(2, 3)
    old = record.join(redis_client, 2)
    stale = Inbox(redis_client, old.count, generation=old.generation)
    assert stale.accept([item(tenant, 0)]) == [1]
    new = record.join(redis_client, 3)

    stale.refresh = None
    try:
        stale.accept([item(tenant, 1)])
        raise AssertionError("a stale writer was not refused")
    except InboxUnavailable:
        pass
    first_owner = ownership.owner(tenant, 2)
    assert redis_client.xlen(keys.inbox(first_owner)) == 1  # nothing appended
    assert not redis_client.exists(keys.accepted(first_owner, tenant, f"wamid.{tenant}.1"))

    def refresh() -> None:
        stale.shard_count, stale.generation = new.count, new.generation

    stale.refresh = refresh
    assert stale.accept([item(tenant, 1)]) == [1]
    assert redis_client.xlen(keys.inbox(ownership.owner(tenant, 3))) == 1
    assert redis_client.get(keys.backlog(first_owner, tenant)) == b"1"
    assert redis_client.get(keys.backlog(ownership.owner(tenant, 3), tenant)) == b"1"


def test_a_lease_is_held_by_one_shard_and_taken_back_by_the_same_shard_after_a_crash(
    redis_client: redis.Redis,
) -> None:
    mine = Lease(redis_client, 0, 0, 1, ttl=0.5)
    assert mine.acquire()
    assert not Lease(redis_client, 0, 1, 2).acquire()  # another holder waits
    assert Lease(redis_client, 0, 0, 1, ttl=0.5).acquire()  # the same shard, restarted
    assert not mine.refresh()  # and the one before it knows it lost it
    other = Lease(redis_client, 0, 1, 2)
    gevent.sleep(0.6)  # lapsed
    assert other.acquire()
    other.release()
    assert not redis_client.exists(keys.lease(0))


def test_forwarding_moves_what_another_shard_owns_once_even_after_a_crash_between_its_steps(
    redis_client: redis.Redis,
) -> None:
    record.join(redis_client, 1)
    Inbox(redis_client, 1, generation=1).accept(
        [item(f"t{n}", k) for n in range(12) for k in range(3)]
    )
    view = record.join(redis_client, 2)
    mine = [f"t{n}" for n in range(12) if view.owner(f"t{n}") == 0]
    theirs = [f"t{n}" for n in range(12) if view.owner(f"t{n}") == 1]
    assert mine and theirs

    # The first step only (as if the forwarder died before the entries arrived) ...
    forwarding.ensure_groups(redis_client, 0)
    taken = [
        (raw.decode(), fields[b"t"].decode())
        for raw, fields in redis_client.xrange(keys.inbox(0))
        if fields[b"t"].decode() in theirs
    ]
    redis_client.eval(
        forwarding._TAKE_OUT,
        3 + len(taken),
        keys.inbox(0),
        keys.outbox(0),
        keys.fence(0),
        *[keys.backlog(0, tenant) for _, tenant in taken],
        2,
        "interlink",
        *[x for entry_id, _ in taken for x in (entry_id, "1")],
    )
    # ... and the second step without the outbox delete (as if it died right after).
    outbox = redis_client.xrange(keys.outbox(0))
    script_keys = [keys.handover(1)]
    args: list[object] = [60]
    for raw, f in outbox[:5]:
        script_keys += [keys.forwarded(1, 0, raw.decode()), keys.backlog(1, f[b"t"].decode())]
        args += [f[b"t"], f[b"k"], f[b"c"], f[b"a"], f[b"g"], f[b"o"], f[b"p"]]
    redis_client.eval(forwarding._BRING_IN, len(script_keys), *script_keys, *args)

    assert forwarding.forward(redis_client, 0, view, regroup=True) == len(theirs) * 3 - 5
    arrived = redis_client.xrange(keys.handover(1))
    assert len(arrived) == len(theirs) * 3  # each once
    assert {f[b"t"].decode() for _, f in arrived} == set(theirs)
    assert all(f[b"g"] == b"1" for _, f in arrived)
    left = redis_client.xrange(keys.inbox(0))
    assert {f[b"t"].decode() for _, f in left} == set(mine)
    assert redis_client.xlen(keys.outbox(0)) == 0
    for tenant in theirs:  # still unfinished, now counted at the new owner
        assert redis_client.get(keys.backlog(1, tenant)) == b"3"
        assert not redis_client.exists(keys.backlog(0, tenant))
    for tenant in mine:
        assert redis_client.get(keys.backlog(0, tenant)) == b"3"


def test_forwarding_refuses_to_act_on_a_generation_the_fleet_left(
    redis_client: redis.Redis,
) -> None:
    record.join(redis_client, 1)
    Inbox(redis_client, 1, generation=1).accept([item(f"t{n}", 0) for n in range(6)])
    stale = record.join(redis_client, 2)
    record.join(redis_client, 3)
    try:
        forwarding.forward(redis_client, 0, stale, regroup=False)
        raise AssertionError("a stale forwarder went on")
    except forwarding.StaleGeneration:
        pass
    assert redis_client.xlen(keys.inbox(0)) == 6


def test_the_handover_is_finished_once_every_stream_is_done(redis_client: redis.Redis) -> None:
    record.join(redis_client, 2)
    view = record.join(redis_client, 3)
    record.mark_done(redis_client, 0, 2)
    record.mark_done(redis_client, 2, 2)
    assert not record.handed_over(redis_client, view)
    record.mark_done(redis_client, 1, 2)
    assert record.handed_over(redis_client, view)
    current = record.read(redis_client)
    assert current is not None and current.settled == 2
    # A later change after a settled one only remembers the count it leaves.
    assert record.join(redis_client, 2).recent == (3,)


def test_the_handover_waits_for_entries_still_on_their_way(redis_client: redis.Redis) -> None:
    record.join(redis_client, 3)
    Inbox(redis_client, 3, generation=1).accept([item(f"t{n}", 0) for n in range(12)])
    view = record.join(redis_client, 2)
    for n in range(3):
        record.mark_done(redis_client, n, 2)
    assert not record.handed_over(redis_client, view)  # stream 2 (no shard 2 any more) holds some
    forwarding.forward(redis_client, 2, view, regroup=True)
    redis_client.xadd(keys.outbox(1), {"t": "t1", "to": "0"})  # one sent again after a crash
    assert not record.handed_over(redis_client, view)
    redis_client.delete(keys.outbox(1))
    assert record.handed_over(redis_client, view)


class Gate:
    def __init__(self, view: FleetView, shard_id: int) -> None:
        self.view = view
        self.shard_id = shard_id
        self.open = False

    def owns(self, tenant_id: str) -> bool:
        return self.view.owner(tenant_id) == self.shard_id

    def moved(self, tenant_id: str) -> bool:
        return self.view.moved(tenant_id)

    def handed_over(self) -> bool:
        return self.open


def test_a_moved_tenant_waits_for_the_handover_and_its_old_entries_go_first(
    redis_client: redis.Redis,
) -> None:
    moving = tenant_moving(2, 3)
    staying = tenant_moving(2, 3, stays=True)
    old, new = ownership.owner(moving, 2), ownership.owner(moving, 3)
    record.join(redis_client, 2)
    Inbox(redis_client, 2, generation=1).accept([item(moving, n) for n in range(5)])
    view = record.join(redis_client, 3)
    # Accepted under the new count, at the new owner, before the old stream handed over.
    Inbox(redis_client, 3, generation=2).accept(
        [item(moving, n) for n in range(5, 8)] + [item(staying, 0)]
    )
    got: list[Entry] = []
    gate = Gate(view, new)
    reader = InboxReader(
        redis_client, new, lambda e: got.append(e) or True, gate=gate, rescan_interval=0.05
    )
    reader.start()
    try:
        if view.owner(staying) == new:
            wait_for(lambda: any(e.tenant_id == staying for e in got))
        gevent.sleep(0.3)
        assert [e for e in got if e.tenant_id == moving] == []  # not before the handover

        forwarding.forward(redis_client, old, view, regroup=True)
        gate.open = True
        wait_for(lambda: len([e for e in got if e.tenant_id == moving]) == 8)
        assert [e.payload["n"] for e in got if e.tenant_id == moving] == list(range(8))
        for entry in got:
            reader.ack(entry)
        wait_for(lambda: not redis_client.exists(keys.backlog(new, moving)))
        assert not redis_client.exists(keys.backlog(old, moving))
        assert redis_client.xlen(keys.handover(new)) == 0
    finally:
        reader.stop()


def test_a_shard_whose_count_the_fleet_left_fences_itself_until_the_fleet_comes_back(
    redis_client: redis.Redis,
) -> None:
    events: list[str] = []
    views: list[FleetView] = []
    shard = Handover(
        redis_client,
        0,
        2,
        on_view=views.append,
        on_ready=lambda: events.append("ready"),
        on_fenced=lambda: events.append("fenced"),
        on_rejoin=lambda: events.append("rejoin"),
        check_interval=0.05,
    )
    shard.start()
    try:
        wait_for(lambda: events == ["ready"])
        assert redis_client.exists(keys.lease(0))
        record.join(redis_client, 3)
        wait_for(lambda: events == ["ready", "fenced"])
        assert not redis_client.exists(keys.lease(0))
        assert views[-1].count == 3  # the accepting side follows the fleet
        assert not shard.owns("anyone")
        gevent.sleep(0.2)
        assert events == ["ready", "fenced"]  # fenced it stays, a front end only
        record.join(redis_client, 2)  # back at its count: it asks to be started afresh
        wait_for(lambda: events[-1] == "rejoin")
    finally:
        shard.stop()


def test_a_fenced_shard_keeps_its_lease_while_its_actors_finish(redis_client: redis.Redis) -> None:
    draining: list[bool] = []

    def drain() -> None:  # longer than a lease lives
        draining.append(True)
        gevent.sleep(1.0)
        draining.append(False)

    shard = Handover(redis_client, 0, 1, on_fenced=drain, lease_ttl=0.4, check_interval=0.05)
    shard.start()
    try:
        wait_for(lambda: shard.ready)
        record.join(redis_client, 2)
        wait_for(lambda: draining == [True])
        for _ in range(8):
            gevent.sleep(0.1)
            if draining == [True]:
                assert redis_client.exists(keys.lease(0))  # nobody else may take stream 0 yet
        wait_for(lambda: draining == [True, False])
        wait_for(lambda: not redis_client.exists(keys.lease(0)))
    finally:
        shard.stop()


def test_a_stopping_shard_keeps_its_lease_until_it_releases_it(redis_client: redis.Redis) -> None:
    shard = Handover(redis_client, 0, 1, lease_ttl=0.4, check_interval=0.05)
    shard.start()
    wait_for(lambda: shard.ready)
    shard.stop()  # the actors drain now, longer than a lease lives
    gevent.sleep(0.8)
    assert redis_client.exists(keys.lease(0))
    shard.release()
    assert not redis_client.exists(keys.lease(0))
