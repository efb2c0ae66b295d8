"""The shard's HTTP server against hostile connections, on real sockets (issue 13).

The shard's own app is served in-process by ``interlink.http.server`` with small limits, so that
each timeout shows within a second; one test runs ``interlink serve`` as a process.
"""

from __future__ import annotations

import json
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from interlink.http.app import create_app
from interlink.http.server import (
    FD_RESERVE,
    MAX_HEADER_LINE,
    MAX_HEADERS,
    FramingError,
    Limits,
    ShardServer,
    check_framing,
    connection_bound,
    raise_file_limit,
    read_headers,
)
from interlink.services import Services
from tests.support.shard import ShardProcess

FAST = Limits(max_connections=20, header_timeout=0.5, body_timeout=0.5, idle_timeout=0.5)
# Timeouts far beyond the test's patience: only eviction can free a slot.
PATIENT = Limits(max_connections=20, header_timeout=30, body_timeout=30, idle_timeout=30)
WA_HOOK = "/webhooks/whatsapp"


def _serve(services: Services, limits: Limits) -> Iterator[tuple[str, int]]:
    server = ShardServer(("127.0.0.1", 0), create_app(services), limits)
    server.start()
    try:
        yield server.address[0], server.address[1]
    finally:
        server.stop(timeout=1)


@pytest.fixture
def fast(services: Services) -> Iterator[tuple[str, int]]:
    yield from _serve(services, FAST)


@pytest.fixture
def patient(services: Services) -> Iterator[tuple[str, int]]:
    yield from _serve(services, PATIENT)


def read_all(sock: socket.socket, patience: float = 3.0) -> tuple[bytes, bool]:
    """Everything the server sends until it closes (True) or ``patience`` runs out (False)."""
    sock.settimeout(patience)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        return data, False
    except ConnectionResetError:
        pass
    return data, True


def exchange(address: tuple[str, int], raw: bytes, patience: float = 3.0) -> tuple[bytes, bool]:
    with socket.create_connection(address, timeout=patience) as sock:
        sock.sendall(raw)
        return read_all(sock, patience)


def statuses(data: bytes) -> list[int]:
    return [int(line.split()[1]) for line in data.split(b"\r\n") if line.startswith(b"HTTP/1.")]


def json_body(data: bytes) -> dict[str, str]:
    body: dict[str, str] = json.loads(data.split(b"\r\n\r\n", 1)[1])
    return body


def post(path: str, headers: str, body: bytes = b"") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}\r\n"
    return head.encode() + body


GET_HEALTH = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


# -- finding 2: idle sockets ---------------------------------------------------------------------
def test_idle_sockets_beyond_the_bound_are_shed_and_healthz_still_answers(
    patient: tuple[str, int],
) -> None:
    idle = [socket.create_connection(patient) for _ in range(100)]
    slow = [socket.create_connection(patient) for _ in range(20)]
    try:
        for sock in slow:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")  # and never the rest
        started = time.monotonic()
        data, _ = exchange(
            patient, GET_HEALTH.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
        )
        assert statuses(data) == [200]
        assert time.monotonic() - started < 2.0
        # The server holds at most its bound: the sockets it let go see their end.
        closed = 0
        for sock in idle + slow:
            sock.settimeout(0.01 if closed >= 100 else 1.0)
            try:
                closed += sock.recv(1) == b""
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed += 1
        assert closed >= 100
    finally:
        for sock in idle + slow:
            sock.close()


def test_an_established_keep_alive_connection_keeps_being_served_under_an_idle_flood(
    patient: tuple[str, int],
) -> None:
    with socket.create_connection(patient, timeout=3) as mine:
        mine.sendall(GET_HEALTH)
        assert statuses(mine.recv(65536)) == [200]
        flood: list[socket.socket] = []
        try:
            for _ in range(5):
                flood += [socket.create_connection(patient) for _ in range(30)]
                mine.sendall(GET_HEALTH)
                reply = mine.recv(65536)
                assert statuses(reply) == [200]
        finally:
            for sock in flood:
                sock.close()


def test_a_slowloris_header_sender_is_cut_after_the_header_timeout(
    fast: tuple[str, int],
) -> None:
    with socket.create_connection(fast, timeout=3) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        data, closed = b"", False
        while not closed and time.monotonic() - started < 3:
            # A header byte every 0.1 s: no single recv of the server's ever waits long.
            data, closed = read_all(sock, 0.1)
            if not closed:
                try:
                    sock.sendall(b"X")
                except OSError:
                    closed = True
        assert closed
        assert time.monotonic() - started < 1.5
        # The 408 is sent; a byte of ours crossing the close may reset the socket before it is read.
        assert statuses(data) in ([408], [])


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(
    fast: tuple[str, int],
) -> None:
    with socket.create_connection(fast, timeout=3) as sock:
        sock.sendall(GET_HEALTH)
        assert statuses(sock.recv(65536)) == [200]
        started = time.monotonic()
        data, closed = read_all(sock, 3.0)
        assert closed and data == b""
        assert 0.3 < time.monotonic() - started < 1.5


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    fast: tuple[str, int],
) -> None:
    with socket.create_connection(fast, timeout=3) as sock:
        started = time.monotonic()
        data, closed = read_all(sock, 3.0)
        assert closed and data == b""  # nothing was asked: nothing to answer
        assert time.monotonic() - started < 1.5


# -- finding 4: a short body ---------------------------------------------------------------------
@pytest.mark.parametrize("path", [WA_HOOK, "/webhooks/genesys", "/api/tenants"])
def test_a_short_body_gets_408_and_a_close_within_the_body_timeout(
    fast: tuple[str, int], services: Services, path: str
) -> None:
    started = time.monotonic()
    auth = f"Authorization: Bearer {services.admin_token}\r\n"
    data, closed = exchange(fast, post(path, auth + "Content-Length: 200\r\n", b"{" * 100))
    assert statuses(data) == [408]
    assert json_body(data)["title"] == "Request timeout"
    assert closed
    assert time.monotonic() - started < 1.5


# -- finding 5: smuggling ------------------------------------------------------------------------
def test_content_length_with_transfer_encoding_is_400_and_closed(fast: tuple[str, int]) -> None:
    body = b"2\r\n{}\r\n0\r\n\r\n"
    headers = f"Content-Length: {len(body)}\r\nTransfer-Encoding: chunked\r\n"
    data, closed = exchange(fast, post(WA_HOOK, headers, body) + GET_HEALTH)
    assert statuses(data) == [400]
    assert "Transfer-Encoding" in json_body(data)["description"]
    assert closed


def test_two_different_content_lengths_are_400_and_the_smuggled_request_is_never_served(
    fast: tuple[str, int],
) -> None:
    smuggled = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    body = b"{}" + smuggled
    headers = f"Content-Length: 2\r\nContent-Length: {len(body)}\r\n"
    data, closed = exchange(fast, post(WA_HOOK, headers, body))
    assert statuses(data) == [400]
    assert b'"ok"' not in data
    assert closed


@pytest.mark.parametrize(
    "headers",
    [
        "Content-Length: 2\r\nContent-Length: 2\r\n",  # identical duplicates: refused too
        "Content-Length: 2, 2\r\n",
        "Content-Length: +2\r\n",
        "Content-Length: 0x2\r\n",
        "Transfer-Encoding: chunked, chunked\r\n",
        "Transfer-Encoding: gzip\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        "Content-Length : 2\r\n",  # a space before the colon
    ],
)
def test_ambiguous_framing_is_400_and_closed(fast: tuple[str, int], headers: str) -> None:
    data, closed = exchange(fast, post(WA_HOOK, headers, b"{}") + GET_HEALTH)
    assert statuses(data) == [400]
    assert json_body(data)["title"] == "Bad request"
    assert closed


# -- finding 3: malformed chunks -----------------------------------------------------------------
MALFORMED_CHUNKS = {
    "not hex": b"zz\r\n{}\r\n0\r\n\r\n",
    "oversized size": b"1" + b"0" * 20 + b"\r\n{}\r\n0\r\n\r\n",
    "quoted CRLF in an extension": b'2;a="\r\n"\r\n{}\r\n0\r\n\r\n',
    "no size": b"\r\n{}\r\n0\r\n\r\n",
    "data longer than its size": b"1\r\n{}\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("path", [WA_HOOK, "/webhooks/genesys", "/api/tenants"])
@pytest.mark.parametrize("variant", sorted(MALFORMED_CHUNKS))
def test_a_malformed_chunk_is_400_not_500(
    fast: tuple[str, int], services: Services, path: str, variant: str
) -> None:
    headers = f"Authorization: Bearer {services.admin_token}\r\nTransfer-Encoding: chunked\r\n"
    data, closed = exchange(fast, post(path, headers, MALFORMED_CHUNKS[variant]) + GET_HEALTH)
    assert statuses(data) == [400]
    assert json_body(data)["title"] == "Malformed body"
    assert closed


# -- what must keep working ----------------------------------------------------------------------
def test_keep_alive_and_a_well_formed_chunked_body_still_work(
    fast: tuple[str, int], services: Services
) -> None:
    auth = f"Authorization: Bearer {services.admin_token}\r\nTransfer-Encoding: chunked\r\n"
    chunked = post("/api/tenants", auth, b"2\r\n{}\r\n0\r\n\r\n")
    with socket.create_connection(fast, timeout=3) as sock:
        for _ in range(3):
            sock.sendall(GET_HEALTH)
            assert statuses(sock.recv(65536)) == [200]
        sock.sendall(chunked)
        reply = sock.recv(65536)
        # Read whole and judged by the app (a tenant needs fields): not a framing error.
        assert statuses(reply) == [400]
        assert json_body(reply)["title"] not in ("Malformed body", "Bad request")
        sock.sendall(GET_HEALTH)
        assert statuses(sock.recv(65536)) == [200]


def test_check_framing_accepts_the_plain_cases() -> None:
    from http.client import parse_headers
    from io import BytesIO

    for raw in (b"Content-Length: 12\r\n\r\n", b"Transfer-Encoding: Chunked\r\n\r\n", b"\r\n"):
        check_framing(parse_headers(BytesIO(raw)))


# -- the header block ----------------------------------------------------------------------------
MALFORMED_HEADERS = {
    "obs-fold": "X-A: 1\r\n continued\r\n",
    "obs-fold with a tab": "X-A: 1\r\n\tcontinued\r\n",
    "a bare CR ending a field": "X-A: 1\rContent-Length: 2\r\n",
    "a bare CR in a value": "X-A: 1\r2\r\n",
    "a NUL in a value": "X-A: 1\x002\r\n",
    "an escape in a value": "X-A: \x1b[31m\r\n",
    "DEL in a value": "X-A: 1\x7f\r\n",
    "no colon": "X-A 1\r\n",
    "an empty name": ": 1\r\n",
    "a space in the name": "X A: 1\r\n",
    "a tab before the colon": "X-A\t: 1\r\n",
    "a separator in the name": "X(A): 1\r\n",
    "a unix from line": "From someone\r\n",
    "too many fields": "".join(f"X-{n}: {n}\r\n" for n in range(MAX_HEADERS)),
    "a line too long": f"X-A: {'a' * MAX_HEADER_LINE}\r\n",
}


@pytest.mark.parametrize("variant", sorted(MALFORMED_HEADERS))
def test_a_malformed_header_block_is_400_and_closed(fast: tuple[str, int], variant: str) -> None:
    raw = post(WA_HOOK, MALFORMED_HEADERS[variant] + "Content-Length: 2\r\n", b"{}")
    data, closed = exchange(fast, raw + GET_HEALTH)
    assert statuses(data) == [400]
    assert json_body(data)["title"] == "Bad request"
    assert closed


def test_a_header_block_cut_short_is_400_and_closed(fast: tuple[str, int]) -> None:
    with socket.create_connection(fast, timeout=3) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1")
        sock.shutdown(socket.SHUT_WR)
        data, closed = read_all(sock)
    assert statuses(data) == [400] and closed


def test_the_limits_themselves_are_served(fast: tuple[str, int]) -> None:
    fields = "".join(f"X-{n}: {n}\r\n" for n in range(MAX_HEADERS - 2))  # + Host and X-L
    longest = "X-L: " + "a" * (MAX_HEADER_LINE - len("X-L: \r\n")) + "\r\n"
    raw = f"GET /healthz HTTP/1.1\r\nHost: x\r\n{fields}{longest}\r\n".encode()
    data, _ = exchange(fast, raw.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    assert statuses(data) == [400]  # one field too many with Connection: close ...
    data, _ = exchange(fast, raw)
    assert statuses(data) == [200]  # ... exactly the limit without


def test_read_headers_keeps_every_field_as_sent() -> None:
    from io import BufferedReader, BytesIO

    raw = (
        b"Host: x\r\nContent-Type:application/json \r\nX-Forwarded-For: 10.0.0.1\r\n"
        b'x-forwarded-for:\t10.0.0.2\t\r\nX-Name: Jos\xe9 "q" \t tab\r\nX-Empty:\r\n'
        b"Connection: keep-alive\n\nGET / HTTP/1.1\r\n"
    )
    reader = BufferedReader(BytesIO(raw))
    headers = read_headers(reader)
    assert reader.read() == b"GET / HTTP/1.1\r\n"  # the next request is left alone
    assert headers.raw_items() == [
        ("Host", "x"),
        ("Content-Type", "application/json"),
        ("X-Forwarded-For", "10.0.0.1"),
        ("x-forwarded-for", "10.0.0.2"),
        ("X-Name", 'Jos\xe9 "q" \t tab'),
        ("X-Empty", ""),
        ("Connection", "keep-alive"),
    ]
    assert headers.get("X-FORWARDED-FOR") == "10.0.0.1" and headers.get("nope", "d") == "d"
    assert headers.typeheader == "application/json"
    assert headers.getheader("content-length") is None and headers.status == ""
    assert list(headers.headers)[2:4] == [
        "X-Forwarded-For: 10.0.0.1\r\n",
        "x-forwarded-for: 10.0.0.2\r\n",
    ]
    del headers["x-forwarded-for"]
    assert headers.get("X-Forwarded-For") is None and len(headers.raw_items()) == 5
    check_framing(headers)
    for bad in (b"X: 1\r\n continued\r\n\r\n", b"X: 1\rY: 2\r\n\r\n", b"X: 1\r\n"):
        with pytest.raises(FramingError):
            read_headers(BufferedReader(BytesIO(bad)))


def test_repeated_fields_reach_the_app_joined(services: Services) -> None:
    """What gevent builds the WSGI environ from: repeated fields joined with commas, as the login
    throttle reads ``X-Forwarded-For`` from a trusted proxy."""
    seen: dict[str, str] = {}

    def app(environ: dict[str, str], start_response: Any) -> list[bytes]:
        seen.update(environ)
        start_response("200 OK", [("Content-Length", "0")])
        return []

    server = ShardServer(("127.0.0.1", 0), app, FAST)
    server.start()
    try:
        raw = (
            b"POST /x?a=1 HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1\r\n"
            b"X-Forwarded-For: 10.0.0.2\r\nContent-Type: text/plain\r\nX_Under: dropped\r\n"
            b"Content-Length: 2\r\nConnection: close\r\n\r\nhi"
        )
        data, _ = exchange((server.address[0], server.address[1]), raw)
    finally:
        server.stop(timeout=1)
    assert statuses(data) == [200]
    assert seen["HTTP_X_FORWARDED_FOR"] == "10.0.0.1,10.0.0.2"
    assert seen["CONTENT_TYPE"] == "text/plain" and seen["CONTENT_LENGTH"] == "2"
    assert seen["QUERY_STRING"] == "a=1" and "HTTP_X_UNDER" not in seen


# -- the real process ----------------------------------------------------------------------------
def test_a_real_shard_sheds_idle_sockets_and_refuses_smuggling(tmp_path: Path) -> None:
    shard = ShardProcess(
        tmp_path,
        env={"INTERLINK_HTTP_MAX_CONNECTIONS": "30", "INTERLINK_HTTP_HEADER_TIMEOUT": "30"},
    ).start()
    address = ("127.0.0.1", shard.port)
    idle: list[socket.socket] = []
    try:
        idle = [socket.create_connection(address) for _ in range(200)]
        started = time.monotonic()
        assert requests.get(shard.url + "/healthz", timeout=5).status_code == 200
        assert time.monotonic() - started < 2.0
        body = b"2\r\n{}\r\n0\r\n\r\n"
        headers = f"Content-Length: {len(body)}\r\nTransfer-Encoding: chunked\r\n"
        data, closed = exchange(address, post(WA_HOOK, headers, body) + GET_HEALTH)
        assert statuses(data) == [400] and closed
    finally:
        for sock in idle:
            sock.close()
        shard.stop()


def test_the_connection_bound_stays_below_the_open_file_limit() -> None:
    assert connection_bound(1000, 1 << 20) == 1000
    assert connection_bound(1000, 512) == 512 - FD_RESERVE
    assert connection_bound(1000, 10) == 1
    soft = raise_file_limit()
    assert soft == resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def test_stopping_closes_idle_kept_alive_connections_at_once(services: Services) -> None:
    """A proxy keeps connections alive between requests; a stop must not wait for them."""
    server = ShardServer(("127.0.0.1", 0), create_app(services), PATIENT)
    server.start()
    try:
        idle = socket.create_connection(server.address[:2])
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert statuses(idle.recv(65536)) == [200]  # served once, now waits for its next request
        started = time.monotonic()
        server.stop(timeout=10)
        assert time.monotonic() - started < 1.0
        assert idle.recv(1) == b""  # closed by the server
        idle.close()
    finally:
        server.stop(timeout=0)
