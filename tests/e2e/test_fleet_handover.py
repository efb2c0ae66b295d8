"""Changing the shard count under load, with real shard processes on one store: from 2 to 3 shards
and back to 2, each time with work left in the stream of a shard frozen and then killed (kill -9),
webhooks sent to every running shard (old-count ones too). Every message arrives once, in order per
conversation; the shard started with the new count starts the handover, and a shard whose count
the fleet left fences itself (stops reading, releases its lease) yet still accepts webhooks."""

from __future__ import annotations

import itertools
import random
import signal
from collections.abc import Callable

import gevent
import redis

from interlink.fleet import record
from interlink.store import keys
from interlink.tenancy.ownership import owner
from tests.e2e.chaos import (
    Conversation,
    Load,
    add_shard,
    repeats_announced,
    restart,
    wait_until,
)
from tests.e2e.world import World, wait_for

RATE = 16.0  # messages per second in all, both directions


def tenant_ids() -> list[str]:
    """Two tenants that move to shard 2 at 3 shards, one that stays on 0, one that stays on 1."""
    chosen: dict[tuple[int, int], list[str]] = {}
    for n in itertools.count():
        tenant_id = f"mover-{n}"
        key = (owner(tenant_id, 2), owner(tenant_id, 3))
        wanted = {(0, 2): 1, (1, 2): 1, (0, 0): 1, (1, 1): 1}
        if key in wanted and len(chosen.get(key, [])) < wanted[key]:
            chosen.setdefault(key, []).append(tenant_id)
        if sum(len(v) for v in chosen.values()) == 4:
            return [t for v in chosen.values() for t in v]
    raise AssertionError


def fleet_count(client: redis.Redis) -> int:
    view = record.read(client)
    return view.count if view is not None else 0


def test_scaling_from_two_to_three_shards_and_back_loses_nothing_and_keeps_order(
    fleet: Callable[..., World], redis_client: redis.Redis
) -> None:
    world = fleet(2)
    tenants = [world.add_tenant(tenant_id) for tenant_id in tenant_ids()]
    conversations = [Conversation(t, world.user()) for t in tenants for _ in range(2)]
    rng = random.Random(15)
    up = [world.shards[0], world.shards[1]]

    def route() -> str:
        return rng.choice(up).url

    load = Load(world, conversations, RATE, route)
    load.start()
    try:
        gevent.sleep(1.5)
        # Work left behind: shard 1 freezes (its stream fills through shard 0), then dies.
        world.shards[1].process.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
        gevent.sleep(1.5)
        world.shards[1].kill()
        up.remove(world.shards[1])

        # Shard 2 starts with 3 shards: the handover starts, shard 0 (still at 2) fences itself.
        third = add_shard(world, 2, 3)
        third.start()
        up.append(third)
        wait_for(lambda: fleet_count(redis_client) == 3, 10, "the fleet records 3 shards")
        wait_for(lambda: "fenced" in world.shards[0].log_text(), 10, "shard 0 fences itself")
        wait_for(lambda: not redis_client.exists(keys.lease(0)), 15, "shard 0 releases stream 0")
        gevent.sleep(1.0)  # shard 0 is a front end now: it still accepts, under the new count

        restart(world.shards[1], 3)
        up.append(world.shards[1])
        restart(world.shards[0], 3)
        handed_over = wait_until(
            lambda: (view := record.read(redis_client)) is not None and view.settled == 2, 30
        )
        assert handed_over, "the handover to 3 shards did not finish"
        gevent.sleep(1.5)

        # Back to 2, with work left in stream 2: shard 2 freezes, then dies; shard 1 restarts
        # with 2 and shard 0 fences; restarted with 2, shard 0 adopts stream 2 (2 mod 2) once
        # the dead shard's lease lapsed.
        third.process.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
        up.remove(third)
        gevent.sleep(1.5)
        third.kill()
        restart(world.shards[1], 2)
        wait_for(lambda: fleet_count(redis_client) == 2, 10, "the fleet records 2 shards")
        restart(world.shards[0], 2)
        gevent.sleep(1.5)
    finally:
        load.stop()
    complete = wait_until(load.complete, 60)
    counts = load.tally()
    assert complete, counts
    assert counts.lost == 0 and counts.out_of_order == 0, counts
    assert counts.duplicates <= repeats_announced(world), counts
    assert counts.acknowledged == counts.sent and counts.delivered == counts.sent
    view = record.read(redis_client)
    assert view is not None and (view.count, view.generation) == (2, 3)
    assert redis_client.xlen(keys.inbox(2)) == 0 and redis_client.xlen(keys.handover(2)) == 0
    for conversation in conversations:  # nothing left counted as unfinished anywhere
        tenant_id = conversation.tenant.tenant_id
        wait_for(
            lambda t=tenant_id: not any(redis_client.exists(keys.backlog(n, t)) for n in range(3)),
            10,
            "backlog counters released",
        )
