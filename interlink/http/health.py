"""Liveness, readiness and metrics: no authentication, cheap enough for a probe every second."""

from __future__ import annotations

import time

import falcon
import redis

from interlink.services import Services
from interlink.telemetry import metrics


def dead_parts(services: Services, now: float) -> list[str]:
    """The parts of this shard that died and did not come back, each as one line for operators;
    ``now`` is ``time.monotonic()``. Reads flags in memory only: no Redis round trip.

    The supervisor and the inbox reader never start again by themselves, so they count as soon
    as they are dead. The group-commit loop is started again by the next accept, so it counts
    only once it has stayed dead for the inbox's ``commit_loop_grace``. A part not started yet
    (no supervisor, no reader, no accept so far) is not dead: readiness says whether it runs.
    """
    dead = []
    supervisor = services.supervisor
    if supervisor is not None and not supervisor.is_alive():
        dead.append("supervisor dead")
    reader = services.reader
    since = reader.dead_since() if reader is not None else None
    if since is not None:
        dead.append(f"inbox reader dead since {now - since:.0f} s")
    inbox = services.inbox
    since = inbox.commit_loop_dead_since()
    if since is not None and now - since >= inbox.commit_loop_grace:
        dead.append(f"group-commit loop dead since {now - since:.0f} s")
    return dead


class Liveness:
    """200 while every part of the shard runs; 503 naming the dead parts, so that the
    orchestrator restarts the process (a restart brings every part back)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        dead = dead_parts(self.services, time.monotonic())
        if dead:
            raise falcon.HTTPServiceUnavailable(title="Unhealthy", description="; ".join(dead))
        resp.media = {"status": "ok"}


class Readiness:
    """200 when Redis answers and the supervisor runs; 503 (with the reason) otherwise."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        problems = []
        try:
            self.services.redis.ping()
        except redis.RedisError:
            problems.append("redis unreachable")
        supervisor = self.services.supervisor
        if supervisor is None or not supervisor.is_alive():
            problems.append("supervisor not running")
        if problems:
            resp.status = falcon.HTTP_503
            resp.set_header("Retry-After", "1")
            resp.media = {"status": "unavailable", "problems": problems}
        else:
            resp.media = {"status": "ready"}


class Metrics:
    def __init__(self, services: Services) -> None:
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = metrics.CONTENT_TYPE
        resp.data = metrics.render(self.services)
