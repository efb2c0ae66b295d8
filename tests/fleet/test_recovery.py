"""The fleet's handover recovering from what a crash or a store that loses its last writes leaves
behind: a join killed between its steps, a record gone back one generation, a lost lease or done
mark, an entry sent late to the destination an earlier count gave it, a drain that runs late."""

from __future__ import annotations

import gevent
import redis

from interlink.actors.messages import Control
from interlink.fleet import forward as forwarding
from interlink.fleet import record
from interlink.fleet.handover import Handover
from interlink.inbox import Entry, Inbox
from interlink.services import Services
from interlink.store import keys
from interlink.tenancy import ownership
from tests.fleet.test_handover import item, wait_for

FAST = {"check_interval": 0.05, "lease_ttl": 0.6, "pass_interval": 0.1}


def crash_after_fences(client: redis.Redis, count: int) -> None:
    """What ``record.join(client, count)`` leaves when killed after raising the fences."""
    current = record.read(client)
    assert current is not None
    following = current.generation + 1
    client.hset(keys.fleet(), mapping={"joining": following, "joining_count": count})
    for stream in range(max(current.streams, count)):
        client.set(keys.fence(stream), following)


def test_a_join_killed_after_raising_its_fences_is_finished_by_the_writer_it_refuses(
    redis_client: redis.Redis,
) -> None:
    record.join(redis_client, 2)
    inbox = Inbox(redis_client, 2, generation=1)
    shard = Handover(redis_client, 0, 2)  # its accepting side only: not started

    def follow(view: record.FleetView) -> None:
        inbox.shard_count, inbox.generation = view.count, view.generation

    shard.on_view = follow
    inbox.refresh = shard.refresh_view
    assert inbox.accept([item("t1", 0)]) == [1]
    crash_after_fences(redis_client, 3)

    assert inbox.accept([item(f"t{n}", 1) for n in range(3)]) == [1, 1, 1]
    assert record.read(redis_client) == record.FleetView(2, 3, 3, 1, (2,))
    assert record.read_pending(redis_client)[1] is None
    assert (inbox.shard_count, inbox.generation) == (3, 2)


def test_a_join_left_pending_is_finished_by_a_running_shard_after_a_lease_life(
    redis_client: redis.Redis,
) -> None:
    record.join(redis_client, 2)
    shard = Handover(redis_client, 0, 2, **FAST)
    shard.start()
    try:
        assert shard.wait_ready(3)
        crash_after_fences(redis_client, 3)
        wait_for(lambda: (record.read(redis_client) or shard.view).count == 3, timeout=3)
        wait_for(lambda: shard.fenced)  # the count is not its own any more
    finally:
        shard.stop()
        shard.release()


def test_a_join_that_finds_a_pending_one_records_its_own(redis_client: redis.Redis) -> None:
    record.join(redis_client, 2)
    crash_after_fences(redis_client, 3)
    view = record.join(redis_client, 4)
    assert (view.generation, view.count) == (2, 4)
    assert record.read(redis_client) == view
    assert [redis_client.get(keys.fence(n)) for n in range(4)] == [b"2"] * 4


def test_a_record_gone_back_one_generation_is_written_again_not_obeyed(
    redis_client: redis.Redis,
) -> None:
    record.join(redis_client, 1)
    before = redis_client.hgetall(keys.fleet())
    events: list[str] = []
    shard = Handover(redis_client, 0, 2, on_fenced=lambda: events.append("fenced"), **FAST)
    shard.start()
    try:
        assert shard.wait_ready(3)
        assert shard.view is not None and shard.view.generation == 2
        redis_client.delete(keys.fleet())  # the store restarted without the join's last write
        redis_client.hset(keys.fleet(), mapping=before)
        wait_for(lambda: (record.read(redis_client) or shard.view).generation == 2)
        gevent.sleep(0.3)
        assert events == [] and not shard.fenced
        assert record.read(redis_client) == shard.view
        assert redis_client.get(keys.fence(0)) == b"2"
    finally:
        shard.stop()
        shard.release()


def test_a_lease_lost_in_the_same_generation_is_taken_back(redis_client: redis.Redis) -> None:
    events: list[str] = []
    shard = Handover(
        redis_client,
        0,
        1,
        on_fenced=lambda: events.append("fenced"),
        on_rejoin=lambda: events.append("rejoin"),
        **FAST,
    )
    shard.start()
    try:
        assert shard.wait_ready(3)
        # The store went back to the value of this shard's previous run.
        redis_client.set(keys.lease(0), "0/1/previousrun", px=500)
        gevent.sleep(0.5)
        wait_for(lambda: (redis_client.get(keys.lease(0)) or b"") == shard.leases[0].value.encode())
        assert events == [] and not shard.fenced and shard.owns("t1")
    finally:
        shard.stop()
        shard.release()


def test_a_lease_another_shard_took_fences_and_restarts_the_process(
    redis_client: redis.Redis,
) -> None:
    events: list[str] = []
    shard = Handover(
        redis_client,
        0,
        1,
        on_fenced=lambda: events.append("fenced"),
        on_rejoin=lambda: events.append("rejoin"),
        **FAST,
    )
    shard.start()
    try:
        assert shard.wait_ready(3)
        redis_client.set(keys.lease(0), "5/1/another", px=5000)
        wait_for(lambda: events == ["fenced", "rejoin"], timeout=3)
    finally:
        shard.stop()
        shard.release()


def test_a_lost_done_mark_is_written_again_and_the_generation_settles(
    redis_client: redis.Redis,
) -> None:
    record.join(redis_client, 1)
    one = Handover(redis_client, 1, 2, **FAST)
    zero = Handover(redis_client, 0, 2, **FAST)
    one.start()
    try:
        assert one.wait_ready(3)
        redis_client.hdel(keys.fleet_done(), "1")  # the store lost the last second
        zero.start()
        assert zero.wait_ready(3)
        wait_for(lambda: zero.handed_over() and one.handed_over(), timeout=3)
    finally:
        for shard in (zero, one):
            shard.stop()
            shard.release()


def test_an_entry_sent_late_to_an_earlier_destination_holds_the_handover_back(
    redis_client: redis.Redis,
) -> None:
    """Counts 1 -> 2 -> 3: stream 0's holder took an entry out for shard 1 (count 2) and was
    killed; the count changed to 3 before it was sent. Its next holder sends it where it was
    taken out for; the generation settles only once shard 1 sent it on to its owner."""
    tenant = next(
        t
        for t in (f"t{n}" for n in range(5000))
        if ownership.owner(t, 2) == 1 and ownership.owner(t, 3) == 2
    )
    record.join(redis_client, 1)
    Inbox(redis_client, 1, generation=1).accept([item(tenant, 1)])
    record.join(redis_client, 2)
    forwarding.ensure_groups(redis_client, 0)
    [(entry_id, _)] = redis_client.xrange(keys.inbox(0))
    taken = redis_client.eval(
        forwarding._TAKE_OUT,
        4,
        keys.inbox(0),
        keys.outbox(0),
        keys.fence(0),
        keys.backlog(0, tenant),
        2,
        "interlink",
        entry_id,
        "1",
    )
    assert taken == 1
    view = record.join(redis_client, 3)
    for stream in (1, 2, 0):
        forwarding.forward(redis_client, stream, view, regroup=True)
        record.mark_done(redis_client, stream, view.generation)
    Inbox(redis_client, 3, generation=3).accept([item(tenant, 2)])
    assert redis_client.xlen(keys.handover(1)) == 1

    assert not record.handed_over(redis_client, view)

    forwarding.forward(redis_client, 1, view, regroup=False, inbox=False)  # 1's next pass
    assert record.handed_over(redis_client, view)
    [(_, fields)] = redis_client.xrange(keys.handover(2))
    assert Entry is not None and fields[b"t"].decode() == tenant


def test_a_fenced_shard_whose_actors_still_run_never_releases_its_leases(
    redis_client: redis.Redis,
) -> None:
    shard = Handover(redis_client, 0, 1, on_fenced=lambda: False, **FAST)
    shard.start()
    try:
        assert shard.wait_ready(3)
        record.join(redis_client, 2)
        wait_for(lambda: shard.fenced)
        gevent.sleep(1.5)  # more than two lease lives
        assert redis_client.get(keys.lease(0)) == shard.leases[0].value.encode()
        shard.release()  # the process ends: the lease lapses after it, never given up early
        assert redis_client.exists(keys.lease(0))
    finally:
        shard.stop()
        shard.release()


def test_a_fenced_shard_restarts_once_no_shard_runs_the_fleets_count(
    redis_client: redis.Redis,
) -> None:
    """A rollout reverted part-way: pod 2 (count 3) fenced pods 0 and 1 (count 2), then went
    away. The fenced pods restart, and record their count again, once nobody beats at 3."""
    events: list[str] = []
    record.join(redis_client, 2)
    shard = Handover(
        redis_client,
        0,
        2,
        on_rejoin=lambda: events.append("rejoin"),
        alone_after=0.5,
        **FAST,
    )
    shard.start()
    try:
        assert shard.wait_ready(3)
        record.join(redis_client, 3)
        alive = keys.shard_alive(2)
        redis_client.set(alive, '{"id": 2, "count": 3}', px=1500)  # pod 2 runs
        wait_for(lambda: shard.fenced)
        gevent.sleep(0.8)
        assert events == []  # a shard beats at the recorded count: fenced it stays
        wait_for(lambda: events[:1] == ["rejoin"], timeout=3)  # its beat expired: restart
    finally:
        shard.stop()
        shard.release()


def test_a_replayed_dead_letter_is_accepted_under_the_current_generation(
    redis_client: redis.Redis,
) -> None:
    from interlink.store.dead_letters import DeadLetters

    letters = DeadLetters(redis_client, "acme", 1, generation=3)
    letters.add("wa.message", {"n": 1}, "u1", "refused")
    assert letters.replay() == 1
    [(_, fields)] = redis_client.xrange(keys.inbox(0))
    assert fields[b"g"] == b"3" and fields[b"t"] == b"acme"


def test_an_undecodable_handover_entry_is_dropped_with_its_backlog(
    redis_client: redis.Redis,
) -> None:
    from interlink.inbox import InboxReader

    forwarding.ensure_groups(redis_client, 0)
    # What bring_in appends (and counts) for a tenant, with a payload no handler can read.
    redis_client.xadd(keys.handover(0), {"t": "acme", "k": "wa.message", "o": "1-0", "g": "1"})
    redis_client.incr(keys.backlog(0, "acme"))
    reader = InboxReader(redis_client, 0, lambda entry: True, rescan_interval=0.05)
    reader.start()
    try:
        wait_for(lambda: redis_client.xlen(keys.handover(0)) == 0)
        wait_for(lambda: not redis_client.exists(keys.backlog(0, "acme")))
    finally:
        reader.stop()


def test_a_shard_whose_tenants_do_not_drain_when_fenced_restarts_instead_of_releasing(
    services: Services, redis_client: redis.Redis
) -> None:
    """``Shard._fenced`` tells the handover that actors still run (False): the leases are kept
    until the process ends, and the process ends (exit 75) rather than run on beside them."""
    from interlink.actors import RestartPolicy, Supervisor, TreeSpec
    from interlink.actors.tenant import TenantActor
    from interlink.runtime import RESTART_EXIT_CODE, Shard
    from interlink.tenancy.config import TenantConfig

    class Lingering(TenantActor):
        def stopping(self) -> None:
            gevent.sleep(1.0)  # a conversation still retrying
            super().stopping()

    spec = TreeSpec(
        load_config=lambda t: TenantConfig(tenant_id=t, version=1),
        tenant=Lingering,
        policy=RestartPolicy(max_restarts=3, period=10.0, min_backoff=0.01, max_backoff=0.05),
        stop_timeout=0.2,
    )
    shard = Shard(services.settings, lambda s: None)  # type: ignore[arg-type,return-value]
    shard.services = services
    shard.supervisor = Supervisor.start(spec)
    try:
        shard.supervisor.tell(Entry("acme", "wa.message", {}, conversation="u1"))
        wait_for(lambda: shard.supervisor.ask(Control("stats"))["tenantsActive"] == 1)
        assert shard._fenced() is False
        assert shard.exit_code == RESTART_EXIT_CODE and shard._stop_requested.is_set()
    finally:
        shard.supervisor.stop(timeout=5)
