"""The process's pooled session against a real socket server: the JSON POST that skips requests'
machinery puts the same request on the wire, reuses kept-alive connections, survives a server's
keep-alive close, keeps sockets bounded, stores no cookie, and fails the way requests fails."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
import requests
from gevent.server import StreamServer

from interlink.providers.errors import request_not_sent
from interlink.providers.session import POOL_CONNECTIONS, PooledSession, new_session
from tests.support.http_requests import requests_on


class Server:
    """Answers every request with ``answer``; records each request's raw head and body and the
    client port it came from; closes a connection after ``close_every`` answers (0: never)."""

    def __init__(self, close_every: int = 0, delay: float = 0.0) -> None:
        self.close_every = close_every
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self.answer = b'{"ok":true}'
        self.extra_headers = b""
        self.server = StreamServer(("127.0.0.1", 0), self._handle)

    def _handle(self, sock: socket.socket, address: Any) -> None:
        served = 0
        with sock:
            for head, body in requests_on(sock):
                lines = head.decode().split("\r\n")
                headers = dict(line.split(": ", 1) for line in lines[1:])
                self.requests.append(
                    {"line": lines[0], "headers": headers, "body": body, "port": address[1]}
                )
                if self.delay:
                    gevent.sleep(self.delay)
                served += 1
                close = self.close_every and served % self.close_every == 0
                sock.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + self.extra_headers
                    + (b"Connection: close\r\n" if close else b"")
                    + b"Content-Length: %d\r\n\r\n" % len(self.answer)
                    + self.answer
                )
                if close:
                    return

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    s.server.start()
    yield s
    s.server.stop()


def test_the_fast_post_sends_what_requests_sends(server: Server) -> None:
    body = {"text": "héllo", "n": [1, 2]}
    headers = {"Authorization": "Bearer t-1", "Accept": "application/json"}
    fast = PooledSession().post(server.url + "/api/x?a=1", json=body, headers=headers, timeout=5)
    plain = new_session().post(server.url + "/api/x?a=1", json=body, headers=headers, timeout=5)
    assert fast.status_code == plain.status_code == 200
    assert fast.json() == plain.json() == {"ok": True}
    assert fast.headers.get("content-type") == "application/json"
    ours, theirs = server.requests
    assert ours["line"] == theirs["line"] == "POST /api/x?a=1 HTTP/1.1"
    assert ours["body"] == theirs["body"]
    assert json.loads(ours["body"]) == body
    assert {k.lower(): v for k, v in ours["headers"].items()} == {
        k.lower(): v for k, v in theirs["headers"].items()
    }


def test_the_fast_form_post_sends_what_requests_sends(server: Server) -> None:
    """The OAuth token request: Basic auth and a form body, as requests builds them."""
    kwargs: dict[str, Any] = {
        "auth": ("client-é1", "s3cret:with colon"),
        "data": {"grant_type": "client_credentials", "scope": "a b&c"},
        "headers": {"Accept": "application/json"},
        "timeout": 5,
    }
    fast = PooledSession().post(server.url + "/oauth/token", **kwargs)
    plain = new_session().post(server.url + "/oauth/token", **kwargs)
    assert fast.status_code == plain.status_code == 200
    ours, theirs = server.requests
    assert ours["line"] == theirs["line"] == "POST /oauth/token HTTP/1.1"
    assert ours["body"] == theirs["body"] == b"grant_type=client_credentials&scope=a+b%26c"
    assert {k.lower(): v for k, v in ours["headers"].items()} == {
        k.lower(): v for k, v in theirs["headers"].items()
    }


def test_connections_are_reused_and_survive_keep_alive_closes() -> None:
    server = Server(close_every=3)
    server.server.start()
    try:
        session = PooledSession()
        for n in range(9):
            answer = session.post(server.url + "/m", json={"n": n}, timeout=5)
            assert answer.status_code == 200
        ports = [r["port"] for r in server.requests]
        assert len(ports) == 9
        assert len(set(ports)) == 3  # three answers per connection, then a new one
    finally:
        server.server.stop()


def test_sockets_stay_bounded_under_concurrency(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = Server(delay=0.01)
    server.server.start()
    try:
        session = PooledSession()
        jobs = [
            gevent.spawn(session.post, server.url + "/m", json={"n": n}, timeout=5)
            for n in range(POOL_CONNECTIONS * 2)
        ]
        gevent.joinall(jobs, raise_error=True)
        for n in range(POOL_CONNECTIONS * 2):
            session.post(server.url + "/m", json={"n": n}, timeout=5)
        later = {r["port"] for r in server.requests[POOL_CONNECTIONS * 2 :]}
        assert len(later) <= POOL_CONNECTIONS
        # The burst's surplus connections were closed, by design: no warning per request.
        assert not [r for r in caplog.records if "pool is full" in r.getMessage()]
    finally:
        server.server.stop()


def test_cookies_are_never_kept(server: Server) -> None:
    server.extra_headers = b"Set-Cookie: lb=tenant-a; Path=/\r\n"
    session = PooledSession()
    session.post(server.url + "/m", json={}, timeout=5)
    session.get(server.url + "/m", timeout=5)
    session.post(server.url + "/m", json={}, timeout=5)
    assert len(session.cookies) == 0
    assert all("Cookie" not in r["headers"] for r in server.requests)


def test_close_leaves_the_shared_pools_open(server: Server) -> None:
    session = PooledSession()
    session.post(server.url + "/m", json={}, timeout=5)
    session.close()
    session.post(server.url + "/m", json={}, timeout=5)
    assert len({r["port"] for r in server.requests}) == 1


def test_a_refused_connection_is_known_not_sent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(requests.ConnectionError) as raised:
        PooledSession().post(f"http://127.0.0.1:{port}/m", json={}, timeout=2)
    assert request_not_sent(raised.value)


def test_a_read_timeout_is_a_requests_read_timeout() -> None:
    server = Server(delay=1.0)
    server.server.start()
    try:
        with pytest.raises(requests.ReadTimeout) as raised:
            PooledSession().post(server.url + "/m", json={}, timeout=(2.0, 0.1))
        assert not request_not_sent(raised.value)
    finally:
        server.server.stop()


def test_with_a_proxy_configured_posts_go_through_requests_and_the_proxy(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", server.url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    answer = PooledSession().post("http://provider.invalid/m", json={"n": 1}, timeout=5)
    assert answer.status_code == 200
    assert isinstance(answer, requests.Response)
    assert server.requests[0]["line"] == "POST http://provider.invalid/m HTTP/1.1"


def test_a_url_the_lean_client_does_not_take_goes_through_requests(server: Server) -> None:
    """Credentials in the URL: requests sends them as Basic auth; the lean client takes no
    such URL and nothing reaches the server from it."""
    url = server.url.replace("http://", "http://user:pw@") + "/m"
    answer = PooledSession().post(url, json={}, timeout=5)
    assert isinstance(answer, requests.Response)
    (sent,) = server.requests
    assert sent["headers"]["Authorization"] == "Basic dXNlcjpwdw=="
