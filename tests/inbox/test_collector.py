"""Accept before delivery: the process's full garbage collections run only when the hub can
afford them (interlink.inbox.collector)."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
import redis

from interlink.inbox import InboxReader
from interlink.inbox.collector import SHARED, UNREACHABLE, Collector, resident
from tests.support.hub import busy


class Node:
    def __init__(self) -> None:
        self.other: Any = None


def old_garbage_cycle() -> weakref.ref[Node]:
    """A cycle in the oldest generation that has just become garbage: only a full collection
    frees it."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    gc.collect(1)  # survivors of the young generations move to the oldest
    return weakref.ref(a)


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


def generation_2_collections() -> tuple[list[int], Any]:
    seen: list[int] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            seen.append(1)

    gc.callbacks.append(callback)
    return seen, callback


def churn(seen: list[int], *, most: int, until_seen: bool) -> int:
    """Allocates containers that live on, as a shard's new tenants do, and frees them: enough
    young collections for the process to collect its oldest generation now and then. Returns
    how many it allocated (``most`` at most; fewer when ``until_seen`` and a full collection
    came)."""
    kept: list[list[int]] = []
    made = 0
    while made < most and not (until_seen and seen):
        kept.extend([n] for n in range(2000))
        made += 2000
        if len(kept) >= 400_000:
            kept.clear()
        gevent.sleep(0)
    return made


def test_while_it_runs_the_process_leaves_the_oldest_generation_alone(
    thresholds: tuple[int, int, int],
) -> None:
    young0, young1, _ = thresholds
    seen, callback = generation_2_collections()
    try:
        # Without the collector the process does collect its oldest generation meanwhile (the
        # premise of this test: churn makes it happen).
        made = churn(seen, most=20_000_000, until_seen=True)
        assert seen, "the churn never set off a full collection"
        collector = Collector(quiet_every=3600, every=3600, min_growth=1 << 40)
        collector.start()
        try:
            assert gc.get_threshold() == (young0, young1, UNREACHABLE)
            seen.clear()
            churn(seen, most=3 * made, until_seen=False)
            assert not seen
        finally:
            collector.stop()
        assert gc.get_threshold() == thresholds
    finally:
        gc.callbacks.remove(callback)


def test_a_quiet_hub_gets_its_full_collection(thresholds: tuple[int, int, int]) -> None:
    collector = Collector(quiet_every=0.2, every=3600, quiet_lag=0.5, quiet_for=0.2, check=0.02)
    collector.start()
    try:
        garbage = old_garbage_cycle()
        assert garbage() is not None
        deadline = time.monotonic() + 3
        while garbage() is not None:
            assert time.monotonic() < deadline, "no full collection on a quiet hub"
            gevent.sleep(0.02)
        assert collector.collections >= 1
    finally:
        collector.stop()


def test_a_busy_hub_waits_for_its_full_collection_until_every(
    thresholds: tuple[int, int, int],
) -> None:
    collector = Collector(quiet_every=0.05, every=0.8, quiet_lag=0.002, quiet_for=0.1, check=0.01)
    until = time.perf_counter() + 1.4
    workers = [gevent.spawn(busy, until) for _ in range(3)]
    gevent.sleep(0.05)
    began = time.monotonic()
    collector.start()
    try:
        gevent.sleep(0.5)
        assert collector.collections == 0  # busy all along: quiet_every is not enough
        while collector.collections == 0:
            assert time.monotonic() - began < 1.3, "no full collection after every"
            gevent.sleep(0.01)
        assert time.monotonic() - began >= 0.8
    finally:
        collector.stop()
        gevent.joinall(workers)


def test_the_last_user_to_stop_gives_the_thresholds_back(
    thresholds: tuple[int, int, int],
) -> None:
    collector = Collector()
    collector.start()
    collector.start()
    collector.stop()
    assert gc.get_threshold()[2] == UNREACHABLE
    collector.stop()
    assert gc.get_threshold() == thresholds
    collector.stop()  # once more: nothing to give back
    assert gc.get_threshold() == thresholds


def test_a_running_reader_uses_the_shared_collector(
    redis_client: redis.Redis, thresholds: tuple[int, int, int]
) -> None:
    users = SHARED.users
    reader = InboxReader(redis_client, 0, lambda entry: True)
    reader.start()
    try:
        assert SHARED.users == users + 1
        assert gc.get_threshold()[2] == UNREACHABLE
        reader.stop_reading()
        assert SHARED.users == users
    finally:
        reader.stop()
    assert SHARED.users == users
    if users == 0:
        assert gc.get_threshold() == thresholds


def test_a_busy_hub_whose_memory_grows_gets_its_full_collection(
    thresholds: tuple[int, int, int],
) -> None:
    collector = Collector(
        quiet_every=3600, every=3600, quiet_lag=0.002, quiet_for=0.1, check=0.01,
        grow=0.0, min_growth=16 << 20,
    )  # fmt: skip
    until = time.perf_counter() + 1.5
    workers = [gevent.spawn(busy, until) for _ in range(3)]
    gevent.sleep(0.05)
    collector.start()
    try:
        gevent.sleep(0.3)
        assert collector.collections == 0
        grown = b"\x01" * (48 << 20)  # written, so resident: 48 MiB
        deadline = time.monotonic() + 1.0
        while collector.collections == 0:
            assert time.monotonic() < deadline, "no full collection after the memory grew"
            gevent.sleep(0.01)
        del grown
    finally:
        collector.stop()
        gevent.joinall(workers)


def test_resident_memory_is_read() -> None:
    before = resident()
    grown = b"\x01" * (32 << 20)
    assert resident() >= before + (24 << 20)
    del grown
