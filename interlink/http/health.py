"""Liveness, readiness and metrics: no authentication, cheap enough for a probe every second."""

from __future__ import annotations

import falcon
import redis

from interlink.services import Services


class Liveness:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
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
        resp.content_type = "text/plain; version=0.0.4; charset=utf-8"
        resp.text = self.services.metrics.render()


def add_routes(app: falcon.App, services: Services) -> None:
    app.add_route("/healthz", Liveness())
    app.add_route("/readyz", Readiness(services))
    app.add_route("/metrics", Metrics(services))
