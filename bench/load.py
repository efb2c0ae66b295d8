"""A small keep-alive HTTP load generator on raw gevent sockets, run as its own process.

Python clients such as ``requests`` cost more CPU per request than the server under test; raw
sockets with prebuilt requests keep the generator's share of the two cores small. Closed loop by
default (each connection sends its next request when the answer arrives); ``rate`` makes it open
loop at a fixed total rate, for latency at a given load.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from itertools import cycle  # noqa: E402

import gevent  # noqa: E402


def _read_response(sock: socket.socket, buffer: bytearray) -> int:
    """Read one HTTP/1.1 response (Content-Length framed); return its status code."""
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buffer[:end]).decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            total = end + 4 + length
            while len(buffer) < total:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                buffer.extend(chunk)
            status = int(head.split(" ", 2)[1])
            del buffer[:total]
            return status
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buffer.extend(chunk)


def run(
    host: str,
    port: int,
    requests: list[bytes],
    connections: int,
    duration: float,
    rate: float = 0.0,
) -> dict[str, object]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = [0]
    source = cycle(requests)
    stop_at = time.perf_counter() + duration
    interval = connections / rate if rate else 0.0

    def worker(offset: float) -> None:
        try:
            sock = socket.create_connection((host, port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            errors[0] += 1
            return
        buffer = bytearray()
        next_at = time.perf_counter() + offset
        while True:
            if interval:
                delay = next_at - time.perf_counter()
                if delay > 0:
                    gevent.sleep(delay)
                next_at += interval
            started = time.perf_counter()
            if started >= stop_at:
                break
            try:
                sock.sendall(next(source))
                status = _read_response(sock, buffer)
            except OSError:
                errors[0] += 1
                break
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
        sock.close()

    began = time.perf_counter()
    gevent.joinall([gevent.spawn(worker, i * interval / connections) for i in range(connections)])
    elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(p: float) -> float:
        return (
            round(latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000, 3)
            if latencies
            else 0.0
        )

    return {
        "requests": len(latencies),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "statuses": {str(k): v for k, v in statuses.items()},
        "errors": errors[0],
    }


if __name__ == "__main__":
    # argv: host port connections duration rate < JSON list of requests (latin-1 strings)
    host, port, conns, duration, rate = (
        sys.argv[1],
        int(sys.argv[2]),
        int(sys.argv[3]),
        float(sys.argv[4]),
        float(sys.argv[5]),
    )
    reqs = [r.encode("latin-1") for r in json.load(sys.stdin)]
    print(json.dumps(run(host, port, reqs, conns, duration, rate)))
