from __future__ import annotations

from collections.abc import Iterator
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
