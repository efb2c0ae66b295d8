from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.e2e.world import World, start_world


@pytest.fixture
def world(tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> Iterator[World]:
    world = start_world(tmp_path, redis_url)
    try:
        yield world
    finally:
        world.close()


@pytest.fixture
def fleet(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis
) -> Iterator[Callable[..., World]]:
    """``fleet(n, **env)``: n shard processes (ids 0..n-1 of n) on the one shared store the test
    session started, with ``INTERLINK_*`` settings ``env`` on each; stopped after the test."""
    worlds: list[World] = []

    def start(shards: int, **env: str) -> World:
        extra = {f"INTERLINK_{name.upper()}": value for name, value in env.items()}
        started = start_world(
            tmp_path / f"fleet-{len(worlds)}", redis_url, shards=shards, extra_env=extra
        )
        worlds.append(started)
        return started

    yield start
    for started in worlds:
        started.close()
