"""Reading HTTP/1.1 requests off a socket, for the stand-in servers of the client tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator


def requests_on(sock: socket.socket) -> Iterator[tuple[bytes, bytes]]:
    """Each request on ``sock`` as it comes: its head (request line and fields) and its body (by
    ``Content-Length``); ends when the peer closes."""
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                return
            buffer += chunk
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(buffer) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return
            buffer += chunk
        yield head, buffer[:length]
        buffer = buffer[length:]
