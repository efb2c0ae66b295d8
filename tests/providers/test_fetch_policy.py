"""Outbound fetches over real sockets: a URL trick must not make the bridge connect anywhere.

Each trick is aimed at a ``Trap``, a plain TCP listener on 127.0.0.1 that counts connections and
bytes: it must receive nothing. An ``Origin`` is a small real HTTP server standing in for the
configured Genesys API origin (the simulator's ``http://127.0.0.1:P``) or the Graph origin; it
records every request with its ``Authorization`` header. Bodies and headers that need exact URLs
without a socket are in tests/providers/genesys/test_downloads.py and tests/providers/test_meta.py
(``responses``).
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from interlink.providers import fetch_policy
from interlink.providers.errors import ForbiddenFetch, PermanentError
from interlink.providers.genesys import download_attachment, genesys_download_hosts
from interlink.providers.meta import GraphClient
from interlink.settings import Settings

REGION = "mypurecloud.ie"
DOWNLOAD = f"/genesys/{REGION}/api-downloads/api/v2/downloads/d1"
SIGNED = f"/genesys/{REGION}/api-downloads/signed/d1"
PNID = "106540352242922"
MEDIA_ID = "1037543291543636"
LOOKASIDE = "/meta/lookaside/whatsapp_business/attachments/"
TIMEOUT = (2.0, 2.0)


class Trap:
    """A TCP listener that must stay untouched: it accepts, reads what comes, and hangs up."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        self.received = b""
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.settimeout(0.5)
            try:
                self.received += conn.recv(65536)
            except OSError:
                pass
            conn.close()

    def assert_untouched(self) -> None:
        time.sleep(0.05)  # a connection made just now is accepted and read first
        assert (self.connections, self.received) == (0, b"")


class Origin:
    """A real HTTP server: ``routes`` maps a path (no query) to (status, headers, body)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.seen: list[tuple[str, str | None]] = []
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                origin.seen.append((self.path, self.headers.get("Authorization")))
                status, headers, body = origin.routes.get(
                    self.path.split("?", 1)[0], (404, {}, b"")
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def redirect(self, path: str, location: str) -> None:
        self.routes[path] = (302, {"Location": location}, b"")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def trap() -> Iterator[Trap]:
    listener = Trap()
    yield listener
    listener.sock.close()


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin()
    yield server
    server.close()


@pytest.fixture
def token() -> str:
    return "fake-" + secrets.token_urlsafe(40)


def sim_settings(port: int) -> Settings:
    """The configured API URL as the simulator sets it, on ``port``."""
    return Settings(genesys_api_url=f"http://127.0.0.1:{port}/genesys/{{region}}/api")


def download(settings: Settings, url: str, token: str) -> tuple[bytes, str]:
    return download_attachment(
        requests.Session(),
        url,
        allowed_hosts=genesys_download_hosts(settings, REGION),
        token=token,
        timeout=TIMEOUT,
    )


# --- Genesys: the attachment URL a signed outbound payload names --------------------------------


def test_the_normal_download_follows_the_signed_redirect(origin: Origin, token: str) -> None:
    origin.redirect(DOWNLOAD, f"{SIGNED}?expires=1&signature=abc")
    origin.routes[SIGNED] = (200, {"Content-Type": "image/png"}, b"\x89PNG")
    data, mime = download(sim_settings(origin.port), origin.url + DOWNLOAD, token)
    assert (data, mime) == (b"\x89PNG", "image/png")
    assert origin.seen == [
        (DOWNLOAD, f"Bearer {token}"),
        (f"{SIGNED}?expires=1&signature=abc", None),
    ]


@pytest.mark.parametrize(
    "url",
    [
        # urlsplit reads the host after the backslash, urllib3 connects to the one before it.
        "http://127.0.0.1:{trap}\\@127.0.0.1:{origin}" + DOWNLOAD,
        "http://127.0.0.1:{trap}\\\\@127.0.0.1:{origin}" + DOWNLOAD,
        "https://127.0.0.1:{trap}\\@api-downloads.mypurecloud.ie/api/v2/downloads/d1",
        "http://127.0.0.1:{trap}\\x@127.0.0.1:{origin}" + DOWNLOAD,
    ],
)
def test_a_backslash_userinfo_url_connects_nowhere(
    trap: Trap, origin: Origin, token: str, url: str
) -> None:
    target = url.format(trap=trap.port, origin=origin.port)
    with pytest.raises(ForbiddenFetch) as caught:
        download(sim_settings(origin.port), target, token)
    assert token not in str(caught.value)
    trap.assert_untouched()
    assert origin.seen == []


@pytest.mark.parametrize(
    "url",
    [
        "http://user:secret@127.0.0.1:{trap}" + DOWNLOAD,
        "http://127.0.0.1:{trap}@127.0.0.1:{trap}" + DOWNLOAD,
        "http://@127.0.0.1:{trap}" + DOWNLOAD,
        # control characters and whitespace, which urlsplit strips or keeps silently
        "http://127.0.0.1:{trap}" + DOWNLOAD + "\r\nX-Injected: 1",
        "http://127.0.0.1:{trap}" + DOWNLOAD + "\t",
        "http://127.0.0.1:{trap}" + DOWNLOAD + "\x00",
        "http://127.0.0.1:{trap}" + DOWNLOAD + " x",
        "http://127.0.0.1:{trap}" + DOWNLOAD + "\x7f",
        "http://127.0.\n0.1:{trap}" + DOWNLOAD,
        # the configured origin itself, but not a download: the rest of the API is not ours
        "http://127.0.0.1:{trap}/api/v2/users/me",
        "http://127.0.0.1:{trap}/genesys/mypurecloud.ie/api/api/v2/users/me",
        "http://127.0.0.1:{trap}/genesys/mypurecloud.ie/api-downloads/api/v2/downloads/",
        "http://127.0.0.1:{trap}" + DOWNLOAD + "/../../../../api/v2/users/me",
        "http://127.0.0.1:{trap}" + DOWNLOAD + "/%2e%2e/%2e%2e/%2e%2e/users/me",
    ],
)
def test_tricks_on_the_allowed_origin_connect_nowhere(trap: Trap, token: str, url: str) -> None:
    # The trap is the configured API origin here: anything that reaches it was fetched.
    with pytest.raises(ForbiddenFetch) as caught:
        download(sim_settings(trap.port), url.format(trap=trap.port), token)
    assert token not in str(caught.value)
    trap.assert_untouched()


def test_a_non_default_port_on_an_allowed_host_name_connects_nowhere(
    trap: Trap, token: str
) -> None:
    settings = Settings(genesys_api_url="http://localhost:1/genesys/{region}/api")
    with pytest.raises(ForbiddenFetch):
        download(settings, f"http://localhost:{trap.port}{DOWNLOAD}", token)
    trap.assert_untouched()


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1:{trap}\\@127.0.0.1:{origin}" + SIGNED,
        "https://127.0.0.1:{trap}\\@storage.example.net/bucket/d1",
        "https://127.0.0.1:{trap}/bucket/d1",
        "https://localhost:{trap}/bucket/d1",
        "http://localhost:{trap}/bucket/d1",
        "//127.0.0.1:{trap}/bucket/d1",
        "http://127.0.0.1:{trap}/bucket/d1",
        "https://user@127.0.0.1:{trap}/bucket/d1",
    ],
)
def test_a_redirect_trick_connects_nowhere(
    trap: Trap, origin: Origin, token: str, location: str
) -> None:
    origin.redirect(DOWNLOAD, location.format(trap=trap.port, origin=origin.port))
    with pytest.raises(ForbiddenFetch) as caught:
        download(sim_settings(origin.port), origin.url + DOWNLOAD, token)
    assert token not in str(caught.value)
    trap.assert_untouched()
    assert origin.seen == [(DOWNLOAD, f"Bearer {token}")]


def test_a_redirect_to_another_path_of_the_origin_carries_no_token(
    origin: Origin, token: str
) -> None:
    origin.redirect(DOWNLOAD, "/api/v2/users/me")
    origin.routes["/api/v2/users/me"] = (200, {"Content-Type": "application/json"}, b"{}")
    download(sim_settings(origin.port), origin.url + DOWNLOAD, token)
    assert origin.seen == [(DOWNLOAD, f"Bearer {token}"), ("/api/v2/users/me", None)]


# --- Meta: media URLs Graph hands out and their redirects --------------------------------------


def graph_client(origin: Origin, token: str) -> GraphClient:
    return GraphClient(requests.Session(), f"{origin.url}/meta/v25.0", PNID, token)


def serve_media(origin: Origin, url: str) -> None:
    body = {"url": url, "mime_type": "image/jpeg", "id": MEDIA_ID, "messaging_product": "whatsapp"}
    origin.routes[f"/meta/v25.0/{MEDIA_ID}"] = (
        200,
        {"Content-Type": "application/json"},
        json.dumps(body).encode(),
    )


def test_meta_media_downloads_with_the_token(origin: Origin, token: str) -> None:
    serve_media(origin, f"{origin.url}{LOOKASIDE}?mid={MEDIA_ID}")
    origin.routes[LOOKASIDE] = (200, {"Content-Type": "image/jpeg"}, b"jpeg")
    client = graph_client(origin, token)
    assert client.download_bytes(client.media_url(MEDIA_ID).url) == b"jpeg"
    assert [auth for _, auth in origin.seen] == [f"Bearer {token}"] * 2


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:{trap}\\@lookaside.fbsbx.com/whatsapp_business/attachments/",
        "https://127.0.0.1:{trap}/whatsapp_business/attachments/",
        "https://localhost:{trap}/whatsapp_business/attachments/",
        "https://lookaside.fbsbx.com@127.0.0.1:{trap}/whatsapp_business/attachments/",
    ],
)
def test_a_media_url_trick_from_graph_connects_nowhere(
    trap: Trap, origin: Origin, token: str, url: str
) -> None:
    serve_media(origin, url.format(trap=trap.port))
    client = graph_client(origin, token)
    with pytest.raises(PermanentError) as caught:
        client.download_bytes(client.media_url(MEDIA_ID).url)
    assert token not in str(caught.value)
    trap.assert_untouched()


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1:{trap}/x",
        "https://127.0.0.1:{trap}/x",
        "https://localhost:{trap}/x",
        "//127.0.0.1:{trap}/x",
        "http://127.0.0.1:{trap}\\@127.0.0.1:{origin}/x",
    ],
)
def test_a_meta_redirect_trick_connects_nowhere(
    trap: Trap, origin: Origin, token: str, location: str
) -> None:
    serve_media(origin, f"{origin.url}{LOOKASIDE}?mid={MEDIA_ID}")
    origin.redirect(LOOKASIDE, location.format(trap=trap.port, origin=origin.port))
    client = graph_client(origin, token)
    url = client.media_url(MEDIA_ID).url
    with pytest.raises(ForbiddenFetch):
        client.download_bytes(url)
    trap.assert_untouched()
    assert len(origin.seen) == 2  # the lookup and the refused redirect, nothing after


def test_a_graph_url_not_handed_out_is_not_fetched(origin: Origin, token: str) -> None:
    client = graph_client(origin, token)
    with pytest.raises(ForbiddenFetch):
        client.download_bytes(f"{origin.url}/meta/v25.0/{PNID}/phone_numbers")
    assert origin.seen == []


# --- the policy's own reading of a URL ----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/%5C@x/y",  # a backslash once prepared: still userinfo-looking
        "https://a.example:99999/",
        "https://a.example:-1/",
        "ftp://a.example/",
        "https:///nohost",
        "https://a.example/x/%2e%2e/y",
    ],
)
def test_urls_the_policy_cannot_read_plainly(url: str) -> None:
    assert fetch_policy.target(url) is None


def test_the_policy_reads_what_requests_will_send() -> None:
    prepared = requests.Request("GET", "HTTPS://Storage.Example.NET:443/a/b?c=d").prepare()
    assert fetch_policy.target(prepared.url or "") == fetch_policy.Target(
        "https", "storage.example.net", 443, "/a/b", "https://storage.example.net"
    )


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.1", "0x7f.1", "2130706433", "[::1]", "localhost", "localhost.", "10.0.0.1"],
)
def test_an_untrusted_hop_must_be_a_dns_name(host: str) -> None:
    hop = fetch_policy.Target("https", host, 443, "/", f"https://{host}")
    assert fetch_policy.hop_refusal(hop, frozenset()) is not None
    assert fetch_policy.hop_refusal(hop, frozenset({f"https://{host}"})) is None
