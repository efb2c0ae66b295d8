"""A webhook sink: a real HTTP endpoint that keeps every request's raw bytes and headers.

Stands in for interlink when a test checks what the drivers send (signatures are computed over
the raw body, so the raw body is what it keeps). Answers ``status`` (200 unless changed).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import gevent.event
from gevent.pywsgi import WSGIServer


@dataclass(frozen=True, slots=True)
class CapturedRequest:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes


class WebhookSink:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, status: int = 200) -> None:
        self.status = status
        self.captured: list[CapturedRequest] = []
        self._lock = threading.Lock()
        self._arrived = gevent.event.Event()
        self._server = WSGIServer((host, port), self._app, log=None)

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        with self._lock:
            self.captured.append(
                CapturedRequest(environ["REQUEST_METHOD"], environ["PATH_INFO"], headers, raw)
            )
        self._arrived.set()
        start_response(f"{self.status} Sim", [("Content-Type", "application/json")])
        return [b"{}"]

    @property
    def url(self) -> str:
        host, port = self._server.address[:2]
        return f"http://{host}:{port}/webhook"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[CapturedRequest]:
        """Block (cooperatively) until ``count`` requests arrived; the captured list."""
        deadline = gevent.get_hub().loop.now() + timeout
        while len(self.captured) < count:
            remaining = deadline - gevent.get_hub().loop.now()
            if remaining <= 0:
                raise TimeoutError(f"{len(self.captured)} of {count} webhooks arrived")
            self._arrived.clear()
            self._arrived.wait(min(remaining, 0.05))
        return list(self.captured)

    def start(self) -> WebhookSink:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(timeout=1)

    def __enter__(self) -> WebhookSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
