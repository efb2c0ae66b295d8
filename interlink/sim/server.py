"""Serving the simulators on a real socket (gevent.pywsgi), in a test or as ``interlink simulate``."""

from __future__ import annotations

import logging
import socket
from typing import Any

from gevent.pywsgi import WSGIHandler, WSGIServer

from interlink.sim.app import create_sim_app
from interlink.sim.state import SimState
from interlink.sim.web import HANDLER_KEY

log = logging.getLogger(__name__)


class SimHandler(WSGIHandler):
    """Exposes itself in the environ so that a fault can close the connection unanswered, and
    sets TCP_NODELAY: interlink keeps connections to the simulators alive, and without it each
    answer can wait 40 ms for a delayed ACK (benchmarks go through here)."""

    def __init__(self, sock: socket.socket, address: Any, server: Any, rfile: Any = None) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # not TCP
        super().__init__(sock, address, server, rfile)

    def get_environ(self) -> dict[str, Any]:
        env: dict[str, Any] = super().get_environ()
        env[HANDLER_KEY] = self
        return env


class SimServer:
    """The simulators listening on ``host:port`` (port 0 picks a free one).

    ``start()`` returns once listening and sets ``state.base_url`` to :attr:`url`; ``stop()``
    closes the listener and ends in-flight requests (hung ones included)."""

    def __init__(
        self, state: SimState | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.state = state or SimState()
        self._server = WSGIServer(
            (host, port),
            create_sim_app(self.state),
            handler_class=SimHandler,
            log=None,
            error_log=logging.getLogger("interlink.sim.http"),
        )

    @property
    def url(self) -> str:
        host, port = self._server.address[:2]
        return f"http://{host}:{port}"

    def start(self) -> SimServer:
        self._server.start()
        self.state.base_url = self.url
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self, timeout: float = 1.0) -> None:
        self._server.stop(timeout=timeout)

    def env(self) -> dict[str, str]:
        return self.state.env()

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
