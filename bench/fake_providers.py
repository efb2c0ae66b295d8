"""A minimal stand-in for Genesys and Meta, for the delivery benchmark: raw gevent sockets,
keep-alive, canned answers, so that the stand-in costs far less CPU than the shard it measures.

Routes (by path, whatever the host): ``.../oauth/token`` answers a token; ``.../inbound/open/...``
answers a Genesys normalized message; ``.../{phone_number_id}/messages`` answers a wamid;
anything else ``{}``. Each message body carries ``@<unix time>@`` (when the bench sent it) and
``#<conversation>:<n>#``; the stand-in records its end-to-end latency and whether it arrived in
order within its conversation. ``GET /_stats`` answers the counts, ``POST /_reset`` clears them.
``CLOSE_EVERY`` (argv[2]) closes a connection after that many answers, as providers'
keep-alive timeouts do, so that the shard's connection reuse has to survive it.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from gevent.server import StreamServer  # noqa: E402

_STAMP = re.compile(rb"@(\d+\.\d+)@")
_ORDER = re.compile(rb"#([^#:]+):(\d+)#")


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.latencies: dict[str, list[float]] = {"genesys": [], "meta": []}
        self.arrivals: dict[str, list[float]] = {"genesys": [], "meta": []}
        self.last: dict[bytes, int] = {}
        self.out_of_order = 0
        self.duplicates = 0
        self.seen: set[bytes] = set()
        self.tokens = 0
        self.connections = 0

    def record(self, side: str, body: bytes) -> None:
        now = time.time()
        stamp = _STAMP.search(body)
        if stamp is None:
            return
        order = _ORDER.search(body)
        if order is not None:
            key, n = order.group(1), int(order.group(2))
            marker = order.group(0)
            if marker in self.seen:
                self.duplicates += 1
            self.seen.add(marker)
            if n < self.last.get(key, -1):
                self.out_of_order += 1
            self.last[key] = max(n, self.last.get(key, -1))
        self.latencies[side].append(now - float(stamp.group(1)))
        self.arrivals[side].append(now)

    def summary(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        out: dict[str, Any] = {
            "out_of_order": self.out_of_order,
            "duplicates": self.duplicates,
            "tokens": self.tokens,
            "connections": self.connections,
            "cpu_s": usage.ru_utime + usage.ru_stime,
        }
        for side in ("genesys", "meta"):
            out[side] = {"latencies": self.latencies[side], "arrivals": self.arrivals[side]}
        return out


STATS = Stats()


def _answer(status: str, body: bytes, close: bool = False) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n"
    )
    return head.encode() + body


_TOKEN = json.dumps(
    {"access_token": "bench-token", "token_type": "bearer", "expires_in": 86400}
).encode()


def respond(method: bytes, path: bytes, body: bytes, counter: list[int]) -> bytes:
    counter[0] += 1
    if b"/inbound/open/" in path:
        STATS.record("genesys", body)
        integration = path.split(b"/messages/", 1)[1].split(b"/", 1)[0]
        n = counter[0]
        return (
            b'{"id":"gm-%d","conversationId":"conv-%s","direction":"Inbound"}' % (n, integration)
        )
    if path.endswith(b"/messages") and method == b"POST":
        STATS.record("meta", body)
        return b'{"messaging_product":"whatsapp","messages":[{"id":"wamid.fake%d"}]}' % counter[0]
    if path.endswith(b"/oauth/token"):
        STATS.tokens += 1
        return _TOKEN
    if path == b"/_stats":
        return json.dumps(STATS.summary()).encode()
    if path == b"/_reset":
        STATS.reset()
    return b"{}"


def handle(sock: socket.socket, _address: Any) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    STATS.connections += 1
    buffer = b""
    served = 0
    counter = COUNTER
    try:
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                continue
            head = buffer[:end]
            lines = head.split(b"\r\n")
            method, path, _ = lines[0].split(b" ", 2)
            length = 0
            for line in lines[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            total = end + 4 + length
            while len(buffer) < total:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            body, buffer = buffer[end + 4 : total], buffer[total:]
            served += 1
            close = CLOSE_EVERY > 0 and served % CLOSE_EVERY == 0
            sock.sendall(_answer("200 OK", respond(method, path, body, counter), close))
            if close:
                return
    except OSError:
        return
    finally:
        sock.close()


COUNTER = [0]
CLOSE_EVERY = 0

if __name__ == "__main__":
    CLOSE_EVERY = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    StreamServer(("127.0.0.1", int(sys.argv[1])), handle, backlog=1024).serve_forever()
