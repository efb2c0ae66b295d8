"""The whole simulated world in one object: both services, the request log, the armed faults,
the drivers, and the clock they share (replaceable, so tests can move time)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from interlink.sim.driver import AgentDriver, UserDriver
from interlink.sim.faults import FaultTable
from interlink.sim.genesys_world import GenesysWorld
from interlink.sim.meta import MetaWorld
from interlink.sim.recorder import DEFAULT_CAPACITY, RecordedRequest, Recorder

META_VERSION = "v25.0"


class SimState:
    """Everything the simulators know. ``base_url`` is where they are reachable (set by
    :class:`~interlink.sim.server.SimServer` once it listens); it is used in the URLs they hand
    out (media download URLs, agent attachment URLs)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        base_url: str = "http://127.0.0.1",
        record_capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self.clock = clock
        self.base_url = base_url.rstrip("/")
        self.recorder = Recorder(record_capacity)
        self.faults = FaultTable()
        self.genesys = GenesysWorld(clock)
        self.meta = MetaWorld(clock)
        self.user = UserDriver(self)
        self.agent = AgentDriver(self)

    def requests(
        self,
        *,
        kind: str | None = None,
        tenant: str | None = None,
        since: int = 0,
        limit: int | None = None,
    ) -> list[RecordedRequest]:
        """Recorded requests in arrival order (see :meth:`Recorder.query`)."""
        return self.recorder.query(kind=kind, tenant=tenant, since=since, limit=limit)

    def download_url(self, region: str, download_id: str) -> str:
        """Agent attachment URL: ``{base}/genesys/{region}/api-downloads/api/v2/downloads/{id}``
        (the real one is ``https://api-downloads.{region}/api/v2/downloads/{id}``)."""
        return f"{self.base_url}/genesys/{region}/api-downloads/api/v2/downloads/{download_id}"

    def env(self) -> dict[str, str]:
        return env_for(self.base_url)


def env_for(base_url: str, *, meta_version: str = META_VERSION) -> dict[str, Any]:
    """The three ``INTERLINK_*`` upstream settings that point a shard at simulators at
    ``base_url`` (e.g. ``http://127.0.0.1:9001``)."""
    base = base_url.rstrip("/")
    return {
        "INTERLINK_GENESYS_LOGIN_URL": base + "/genesys/{region}/login",
        "INTERLINK_GENESYS_API_URL": base + "/genesys/{region}/api",
        "INTERLINK_META_GRAPH_URL": f"{base}/meta/{meta_version}",
    }
