"""The lean HTTP/1.1 client against real sockets: a small gevent server that answers each request
with whatever bytes the test scripts, so that every framing, every keep-alive end and every way an
answer can go wrong is met on the wire."""

from __future__ import annotations

import datetime
import gzip
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from gevent.server import StreamServer

from interlink.providers.errors import request_not_sent
from interlink.providers.http11 import MAX_BODY, MAX_HEAD, Client, Headers
from tests.support.http_requests import requests_on

SECRET = "Bearer s3cret-token-value"
OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'

# What a script answers: the bytes to send (a list: sent in pieces, a pause between); a piece
# HANG stops answering but keeps the connection open, a piece DROP closes it.
HANG = b"hang"
DROP = b"drop"
Answer = bytes | list[bytes]


class Server:
    """Reads each request whole (head and Content-Length body); answers ``script(n, head)``,
    ``n`` counting the requests on their connection from 1. Closes a connection after an answer
    carrying ``Connection: close``, and silently after ``close_every`` answers (0: never)."""

    def __init__(
        self,
        script: Callable[[int, bytes], Answer] = lambda n, head: OK,
        close_every: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.script = script
        self.close_every = close_every
        self.connections = 0
        self.requests: list[tuple[int, bytes, bytes]] = []
        kwargs: dict[str, Any] = {} if tls is None else {"ssl_context": tls}
        self.server = StreamServer(("127.0.0.1", 0), self._handle, **kwargs)
        self.server.start()

    def _handle(self, sock: socket.socket, _address: Any) -> None:
        self.connections += 1
        connection = self.connections
        served = 0
        with sock:
            for head, body in requests_on(sock):
                self.requests.append((connection, head, body))
                served += 1
                answer = self.script(served, head)
                pieces = answer if isinstance(answer, list) else [answer]
                for n, piece in enumerate(pieces):
                    if n:
                        gevent.sleep(0.01)
                    if piece == HANG:
                        gevent.sleep(30)
                    if piece in (HANG, DROP):
                        return
                    sock.sendall(piece)
                if b"connection: close" in b"".join(pieces).lower():
                    return
                if self.close_every and served % self.close_every == 0:
                    return

    def url(self, path: str = "/m", host: str = "127.0.0.1") -> str:
        scheme = "https" if self.server.ssl_enabled else "http"
        return f"{scheme}://{host}:{self.server.server_port}{path}"

    @property
    def used(self) -> list[int]:
        """The connection each request came on."""
        return [connection for connection, _, _ in self.requests]


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.server.stop(timeout=1)


@pytest.fixture
def serve(servers: list[Server]) -> Callable[..., Server]:
    def start(*args: Any, **kwargs: Any) -> Server:
        server = Server(*args, **kwargs)
        servers.append(server)
        return server

    return start


def post(client: Client, url: str, body: bytes = b'{"n":1}', timeout: Any = 5.0) -> Any:
    headers = {"Authorization": SECRET, "Content-Length": str(len(body))}
    return client.post(url, headers, body, timeout)


def client(**kwargs: Any) -> Client:
    return Client(max_idle=kwargs.pop("max_idle", 8), max_origins=4, **kwargs)


def test_one_kept_alive_connection_carries_every_sequential_request(serve: Any) -> None:
    server = serve()
    http = client()
    for _ in range(5):
        status, headers, body = post(http, server.url())
        assert (status, body) == (200, b'{"ok":true}')
        assert headers["content-type"] == headers.get("Content-Type") == "application/json"
    assert server.used == [1] * 5


def test_the_request_is_one_write_of_head_and_body(serve: Any) -> None:
    server = serve()
    post(client(), server.url("/a/b?x=1"), body=b'{"n":2}')
    _, head, body = server.requests[0]
    assert head.split(b"\r\n") == [
        b"POST /a/b?x=1 HTTP/1.1",
        b"Host: 127.0.0.1:%d" % server.server.server_port,
        b"Authorization: " + SECRET.encode(),
        b"Content-Length: 7",
    ]
    assert body == b'{"n":2}'


def test_a_server_closing_after_n_answers_is_survived(serve: Any) -> None:
    """As bench/fake_providers.py's BENCH_CLOSE_EVERY and keep-alive limits do: silently (the
    closed idle connection is seen before reuse) and with ``Connection: close``."""
    silent = serve(close_every=3)
    http = client()
    for _ in range(9):
        assert post(http, silent.url())[0] == 200
    assert silent.used == [1, 1, 1, 2, 2, 2, 3, 3, 3]

    def close_third(n: int, head: bytes) -> bytes:
        return OK.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n") if n == 3 else OK

    told = serve(close_third)
    for _ in range(6):
        assert post(http, told.url())[0] == 200
    assert told.used == [1, 1, 1, 2, 2, 2]


def test_connection_close_and_http_1_0_are_not_reused(serve: Any) -> None:
    closing = serve(lambda n, head: OK.replace(b"\r\n\r\n", b"\r\nConnection: Close\r\n\r\n"))
    old = serve(lambda n, head: OK.replace(b"HTTP/1.1", b"HTTP/1.0"))
    old_kept = serve(
        lambda n, head: OK.replace(b"HTTP/1.1", b"HTTP/1.0").replace(
            b"\r\n\r\n", b"\r\nConnection: keep-alive\r\n\r\n"
        )
    )
    http = client()
    for _ in range(3):
        for server in (closing, old, old_kept):
            assert post(http, server.url())[0] == 200
    assert closing.used == [1, 2, 3]
    assert old.used == [1, 2, 3]
    assert old_kept.used == [1, 1, 1]


def test_chunked_bodies_with_extensions_and_trailers(serve: Any) -> None:
    chunked = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n",
        b"1\r\n \r\n",
        b"5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n",
    ]
    server = serve(lambda n, head: chunked)
    http = client()
    for _ in range(2):
        assert post(http, server.url())[2] == b"hello world"
    assert server.used == [1, 1]


def test_gzip_and_deflate_bodies_are_decoded(serve: Any) -> None:
    text = b'{"text":"' + b"abc" * 500 + b'"}'
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    encoded = {
        b"gzip": gzip.compress(text),
        b"deflate": zlib.compress(text),
        b"deflate ": raw_deflate.compress(text) + raw_deflate.flush(),
    }
    order = list(encoded)

    def script(n: int, head: bytes) -> bytes:
        coding = order[n - 1]
        body = encoded[coding]
        return (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n"
            % (coding, len(body))
            + body
        )

    server = serve(script)
    http = client()
    for _ in order:
        assert post(http, server.url())[2] == text


def test_a_body_that_does_not_decode_is_a_content_decoding_error(serve: Any) -> None:
    server = serve(
        lambda n, head: b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc"
    )
    with pytest.raises(requests.exceptions.ContentDecodingError):
        post(client(), server.url())


def test_a_body_of_many_tiny_chunks_is_read_whole(serve: Any) -> None:
    # Past 64 KiB of framing the reader drops what it read: the chunks after that still count.
    chunks = b"".join(b"1\r\n%c\r\n" % (48 + n % 10) for n in range(30_000))
    server = serve(
        lambda n, head: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunks
        + b"0\r\n\r\n"
    )
    http = client()
    assert post(http, server.url())[2] == bytes(48 + n % 10 for n in range(30_000))
    assert post(http, server.url())[2][:3] == b"012"  # the connection kept its place
    assert server.used == [1, 1]


@pytest.mark.parametrize("coding", [b"gzip", b"deflate"])
def test_a_body_that_inflates_past_the_bound_is_refused(serve: Any, coding: bytes) -> None:
    zeros = bytes(MAX_BODY + 1)
    body = gzip.compress(zeros) if coding == b"gzip" else zlib.compress(zeros)
    assert len(body) < 10_000  # what the server sends is small
    server = serve(
        lambda n, head: b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n"
        % (coding, len(body))
        + body
    )
    with pytest.raises(requests.exceptions.ContentDecodingError):
        post(client(), server.url())


def test_interim_answers_are_skipped(serve: Any) -> None:
    early = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    server = serve(lambda n, head: [early, OK])
    http = client()
    assert post(http, server.url())[2] == b'{"ok":true}'
    assert post(http, server.url())[0] == 200
    assert server.used == [1, 1]


def test_a_body_read_to_the_close_and_a_204_without_body(serve: Any) -> None:
    to_close = serve(
        lambda n, head: [b"HTTP/1.1 200 OK\r\n\r\npart one, ", b"part two"], close_every=1
    )
    no_content = serve(lambda n, head: b"HTTP/1.1 204 No Content\r\n\r\n")
    http = client()
    assert post(http, to_close.url())[2] == b"part one, part two"
    assert post(http, to_close.url())[2] == b"part one, part two"
    assert to_close.used == [1, 2]
    assert post(http, no_content.url())[:3:2] == (204, b"")
    assert post(http, no_content.url())[0] == 204
    assert no_content.used == [1, 1]


def test_repeated_fields_are_joined_and_looked_up_in_any_case(serve: Any) -> None:
    server = serve(
        lambda n, head: (
            b"HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\nX-Id: a\r\nx-id: b\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
    )
    status, headers, _ = post(client(), server.url())
    assert status == 429
    assert headers.get("retry-after") == headers["RETRY-AFTER"] == "7"
    assert headers.get("X-ID") == "a, b"
    assert "x-Id" in headers and "missing" not in headers and 1 not in headers
    assert list(headers) == ["Retry-After", "X-Id", "Content-Length"]
    assert isinstance(headers, Headers)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"ICY 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded: x\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    ],
)
def test_a_malformed_answer_is_a_connection_error_at_once(serve: Any, answer: bytes) -> None:
    """The server keeps the connection open after its bad answer: the client must not wait for
    more (the timeout is far beyond the test's own bound)."""
    server = serve(lambda n, head: [answer, HANG])
    http = client()
    began = time.monotonic()
    with pytest.raises(requests.ConnectionError) as raised:
        post(http, server.url(), timeout=20.0)
    assert time.monotonic() - began < 5
    assert not request_not_sent(raised.value)
    assert SECRET not in str(raised.value) and "/m" not in str(raised.value)
    assert not any(http._origins[k].idle for k in http._origins)


def test_oversized_headers_are_refused(serve: Any) -> None:
    endless = b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"a" * (MAX_HEAD + 10) + b"\r\n\r\n"
    many = b"HTTP/1.1 200 OK\r\n" + b"X-F: a\r\n" * 200 + b"Content-Length: 0\r\n\r\n"
    for answer in (endless, many):
        server = serve(lambda n, head, answer=answer: [answer, HANG])
        with pytest.raises(requests.ConnectionError, match="malformed"):
            post(client(), server.url(), timeout=20.0)


def test_a_read_timeout_closes_the_connection(serve: Any) -> None:
    server = serve(lambda n, head: HANG if len(server.requests) == 1 else OK)
    http = client()
    with pytest.raises(requests.ReadTimeout) as raised:
        post(http, server.url(), timeout=(2.0, 0.2))
    assert not request_not_sent(raised.value)
    assert SECRET not in str(raised.value)
    assert post(http, server.url())[0] == 200
    assert server.used == [1, 2]


def test_a_refused_connection_is_known_not_sent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(requests.ConnectionError) as raised:
        post(client(), f"http://127.0.0.1:{port}/m")
    assert request_not_sent(raised.value)
    assert not isinstance(raised.value, requests.ConnectTimeout)


def test_a_connect_timeout_is_known_not_sent() -> None:
    """A listener whose backlog is full never completes another handshake."""
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        waiting = []
        try:
            for _ in range(8):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(full.getsockname())
                waiting.append(s)
            with pytest.raises(requests.ConnectTimeout) as raised:
                post(client(), "http://{}:{}/m".format(*full.getsockname()), timeout=(0.2, 5.0))
        finally:
            for s in waiting:
                s.close()
    assert request_not_sent(raised.value)


@pytest.mark.parametrize(
    "cut",
    [b"", b"HTTP/1.1 200 OK\r\nContent-Len", b'HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{"ok"'],
)
def test_a_server_closing_mid_answer_is_a_connection_error_maybe_sent(
    serve: Any, cut: bytes
) -> None:
    server = serve(lambda n, head: [cut, DROP] if cut else DROP)
    with pytest.raises(requests.ConnectionError) as raised:
        post(client(), server.url())
    assert not request_not_sent(raised.value)
    assert not isinstance(raised.value, requests.Timeout)
    assert len(server.requests) == 1  # it was sent: nothing was retried


def test_a_greenlet_killed_mid_exchange_leaves_no_connection_behind(serve: Any) -> None:
    server = serve(lambda n, head: [OK[:20], HANG] if len(server.requests) == 1 else OK)
    http = client()
    call = gevent.spawn(post, http, server.url())
    gevent.sleep(0.2)
    call.kill()
    assert all(not origin.idle for origin in http._origins.values())
    assert post(http, server.url())[0] == 200
    assert server.used == [1, 2]


def test_idle_connections_are_bounded_and_the_last_used_goes_first(serve: Any) -> None:
    server = serve(lambda n, head: [OK[:30], OK[30:]])
    http = client(max_idle=2)
    gevent.joinall([gevent.spawn(post, http, server.url()) for _ in range(5)], raise_error=True)
    assert server.connections == 5
    (origin,) = http._origins.values()
    assert len(origin.idle) == 2
    last = origin.idle[-1]
    post(http, server.url())
    assert origin.idle[-1] is last
    assert server.connections == 5


def test_a_header_value_cannot_smuggle_another_field(serve: Any) -> None:
    server = serve()
    with pytest.raises(requests.exceptions.InvalidHeader) as raised:
        client().post(server.url(), {"X-A": "1\r\nX-Injected: 1"}, b"", 5.0)
    assert "Injected" not in str(raised.value)
    assert server.requests == []


def test_targets_are_sent_as_urllib3_encoded_them(serve: Any) -> None:
    server = serve()
    http = client()
    post(http, server.url("/a b/é?q=x y#frag"))
    post(http, f"http://127.0.0.1:{server.server.server_port}?x=1")
    post(http, f"HTTP://127.0.0.1:{server.server.server_port}")
    lines = [head.split(b"\r\n")[0] for _, head, _ in server.requests]
    assert lines == [
        b"POST /a%20b/%C3%A9?q=x%20y HTTP/1.1",
        b"POST /?x=1 HTTP/1.1",
        b"POST / HTTP/1.1",
    ]
    assert server.used == [1, 1, 1]


def test_origins_beyond_the_bound_drop_the_oldest(serve: Any) -> None:
    http = client()
    many = [serve() for _ in range(6)]
    for server in many:
        post(http, server.url())
    assert len(http._origins) == 4
    post(http, many[0].url())
    assert many[0].used == [1, 2]


def test_a_busy_origin_stays_pooled_and_the_least_recently_used_goes(serve: Any) -> None:
    http = client()  # four origins at most
    busy, *others = [serve() for _ in range(5)]
    for server in others:
        post(http, busy.url())  # used between every other origin's first call
        post(http, server.url())
    post(http, busy.url())
    assert busy.used == [1] * 5  # its connection was never dropped
    post(http, others[0].url())  # the least recently used, dropped for the fifth origin
    assert others[0].used == [1, 2]


# TLS: a CA of the test's own, and a server certificate for "localhost" it signed.


def _certificates(tmp: Path) -> tuple[Path, Path, Path]:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "interlink test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


@pytest.fixture
def tls_server(serve: Any, tmp_path: Path) -> tuple[Server, Path]:
    ca, cert, key = _certificates(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return serve(tls=context), ca


def test_tls_with_a_certificate_not_from_the_ca_bundle_is_refused(tls_server: Any) -> None:
    server, _ = tls_server
    with pytest.raises(requests.exceptions.SSLError) as raised:
        post(client(), server.url(host="localhost"))
    assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value)
    assert server.requests == []


def test_tls_checks_the_host_name_and_reuses_verified_connections(tls_server: Any) -> None:
    server, ca = tls_server
    http = client(cafile=str(ca))
    for _ in range(3):
        assert post(http, server.url(host="localhost"))[2] == b'{"ok":true}'
    assert server.used == [1, 1, 1]
    with pytest.raises(requests.exceptions.SSLError):  # the certificate names localhost only
        post(http, server.url(host="127.0.0.1"))
    assert len(server.requests) == 3


def test_the_default_trust_is_requests_ca_bundle() -> None:
    http = client()
    context = http._tls_context()
    assert http.cafile == requests.utils.DEFAULT_CA_BUNDLE_PATH
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_ipv6_hosts_are_bracketed(serve: Any) -> None:
    try:
        listener = StreamServer(("::1", 0), lambda sock, address: None)
        listener.start()
        listener.stop()
    except OSError:
        pytest.skip("no IPv6 loopback")
    seen: list[bytes] = []

    def handle(sock: socket.socket, _address: Any) -> None:
        with sock:
            seen.append(sock.recv(65536))
            sock.sendall(OK)

    server = StreamServer(("::1", 0), handle)
    server.start()
    try:
        port = server.server_port
        assert post(client(), f"http://[::1]:{port}/m")[0] == 200
        assert b"\r\nHost: [::1]:%d\r\n" % port in seen[0]
    finally:
        server.stop()


def test_a_long_run_of_blanks_in_a_value_is_read_in_linear_time(serve: Any) -> None:
    value = b"a" + b" \t" * 30000 + b"z"
    server = serve(
        lambda n, head: b"HTTP/1.1 200 OK\r\nX-Blank: %s  \r\nContent-Length: 0\r\n\r\n" % value
    )
    began = time.monotonic()
    headers = post(client(), server.url())[1]
    assert time.monotonic() - began < 2
    assert headers["x-blank"] == value.decode()
