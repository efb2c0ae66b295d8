"""The shared parts of one shard, built once by ``runtime.py`` and handed to the HTTP resources.

Tests build the same object around their own embedded store, so they drive the real code paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pykka
import redis

from interlink.metrics import REGISTRY, Registry
from interlink.settings import Settings


@dataclass
class Services:
    settings: Settings
    redis: redis.Redis
    admin_token: str = field(repr=False)
    secret_keys: tuple[bytes, ...] = field(repr=False)
    supervisor: pykka.ActorRef[Any] | None = None
    metrics: Registry = REGISTRY
    # Filled by the subsystems that own them (tenant store, inbox ...); typed there.
    extras: dict[str, Any] = field(default_factory=dict)
