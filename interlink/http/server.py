"""The shard's HTTP server: gevent's pywsgi, hardened against hostile connections.

What it adds to ``gevent.pywsgi``:

* **A bound on connections.** The server spawns into a ``gevent.pool.Pool``; past the bound it stops
  accepting and new connections wait in the listen backlog. Before the bound is reached, each new
  connection evicts the one that has waited longest on its client, among the connections that
  have not completed a request yet (a socket that sends nothing, a slow header sender, a stalled
  first body), then among kept-alive ones: a flood of idle sockets cannot starve ``/healthz``, a
  webhook or a proxy's established connections, it only recycles itself. A connection whose
  request is being worked on is never evicted.
* **Deadlines per phase**, enforced by one reaper greenlet per server that scans the
  connections waiting on their client (no greenlet, timer or ``Timeout`` object per request;
  enforced to within ``Limits.reap_interval``, at most 1 s late): the first request's line and headers must arrive within
  ``header_timeout`` of the connect; a kept-alive connection may wait ``idle_timeout`` for its next
  request, whose headers then get ``header_timeout`` from their first byte; a body must arrive
  whole within ``body_timeout`` of its headers (``408`` and close, see ``interlink.http.bodies``).
  A header timeout answers ``408`` and closes; an idle timeout closes silently.
* **Strict framing** (RFC 9112 §6.3): ``400`` and close for ``Content-Length`` with
  ``Transfer-Encoding``, for any ``Transfer-Encoding`` but ``chunked``, for more than one
  ``Content-Length`` (identical duplicates too: nothing legitimate sends them), for a
  ``Content-Length`` that is not plain digits, and for a malformed header block. Any of these lets
  a proxy and this server disagree on where a request ends; refusing them and closing is what
  makes smuggling impossible.
* **Its own header parser** (:func:`read_headers`), in place of ``http.client.parse_headers`` and
  ``email.feedparser`` (most of the cost of reading a request, a third of it the email parser): the same limits (99
  fields of at most 65,536 bytes a line), stricter grammar (RFC 9112 §5): a field name is a token
  followed at once by its colon, a value has no control character but tab, a line ends in CRLF
  or LF and nothing else (the email parser also split lines at a bare CR, a second header no
  proxy sees), and a folded line (obs-fold) is refused rather than joined. Anything else is
  ``400`` and close.
* A connection that stops in an unknown state (a timeout, a malformed chunk, a refused body) is
  closed without reading the rest of its body.
"""

from __future__ import annotations

import io
import json
import logging
import re
import resource
import socket
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from typing import Any

import gevent
from gevent.pool import Pool
from gevent.pywsgi import WSGIHandler, WSGIServer

log = logging.getLogger(__name__)

READ_BUFFER = 8192  # gevent's own (io.DEFAULT_BUFFER_SIZE): one recv takes a typical request whole
# File descriptors kept free of connections: Redis pools, the embedded store's socket, log files.
FD_RESERVE = 128
# A connect flood queues here instead of having SYNs dropped (a dropped SYN costs a legitimate
# client a 1 s retransmission); the kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 4096

_DIGITS = re.compile(r"[0-9]{1,18}").fullmatch
# http.client's limits, which the header block had before this parser replaced it: lines of
# at most 65,536 bytes, at most 100 of them with the empty line that ends the block.
MAX_HEADER_LINE = 65536
MAX_HEADERS = 99
# One field line: a token, its colon, a value of visible characters, spaces, tabs and obs-text
# (bytes 0x80-0xFF, read as latin-1 as WSGI wants), then CRLF or LF.
_FIELD = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):([\t\x20-\x7e\x80-\xff]*)\r?\n").fullmatch


@dataclass(frozen=True, slots=True)
class Limits:
    max_connections: int = 1000
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 75.0

    @property
    def reap_interval(self) -> float:
        """How often deadlines are checked: a timeout is enforced up to this much late."""
        shortest = min(self.header_timeout, self.body_timeout, self.idle_timeout)
        return min(1.0, max(0.05, shortest / 5))

    @property
    def evict_above(self) -> int:
        """From this many open connections on, each new one evicts the longest-waiting one. The
        headroom below the pool's bound absorbs one accept burst while evictees finish."""
        return self.max_connections - max(1, min(50, self.max_connections // 10))


class Evicted(TimeoutError):
    """The server closed this connection's wait to make room for a new connection."""


class FramingError(ValueError):
    """The request's length cannot be known unambiguously; ``str()`` is safe to show."""


def _error_response(status: str, title: str, description: str) -> tuple[str, bytes]:
    """A complete response for the cases answered before the application runs."""
    body = json.dumps({"title": title, "description": description}).encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return status.split(" ", 1)[0], head.encode("latin-1") + body


_HEADER_TIMEOUT = _error_response(
    "408 Request Timeout", "Request timeout", "The request headers did not arrive in time."
)
_BAD_HEADERS = _error_response("400 Bad Request", "Bad request", "The request is malformed.")


class RequestHeaders:
    """A request's header fields as read by :func:`read_headers`, with the part of
    ``http.client.HTTPMessage``'s interface that gevent's handler uses: ``get`` (the first
    value, by case-insensitive name), ``del``, ``getheader``, ``typeheader``, ``headers`` (the
    lines, for the WSGI environ), ``status``; and ``raw_items`` and ``defects`` as
    :func:`check_framing` reads them."""

    __slots__ = ("_fields", "_first")
    status = ""  # gevent refuses a block whose status is set: errors are raised instead
    defects: tuple[()] = ()  # a malformed block is never made into one of these

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields
        first: dict[str, str] = {}
        for name, value in fields:
            first.setdefault(name.lower(), value)
        self._first = first

    def get(self, name: str, default: Any = None) -> Any:
        return self._first.get(name.lower(), default)

    getheader = get

    def __delitem__(self, name: str) -> None:
        lowered = name.lower()
        self._fields = [field for field in self._fields if field[0].lower() != lowered]
        self._first.pop(lowered, None)

    def raw_items(self) -> list[tuple[str, str]]:
        return list(self._fields)

    @property
    def typeheader(self) -> str | None:
        return self._first.get("content-type")

    @property
    def headers(self) -> Iterator[str]:
        for name, value in self._fields:
            yield f"{name}: {value}\r\n"


def read_headers(rfile: Any) -> RequestHeaders:
    """Read a header block up to and including its empty line; :class:`FramingError` (a 400
    and close) for anything but well-formed fields within the limits."""
    fields: list[tuple[str, str]] = []
    readline = rfile.readline
    while True:
        line: bytes = readline(MAX_HEADER_LINE + 1)
        if line == b"\r\n" or line == b"\n":
            return RequestHeaders(fields)
        if len(line) > MAX_HEADER_LINE:
            raise FramingError("A header line is too long.")
        if not line.endswith(b"\n"):  # the client stopped in the middle of the block
            raise FramingError("The header block is incomplete.")
        if len(fields) == MAX_HEADERS:
            raise FramingError("Too many header fields.")
        match = _FIELD(line)
        if match is None:
            raise FramingError("The header block is malformed.")
        fields.append((match[1].decode("latin-1"), match[2].strip(b" \t").decode("latin-1")))


def check_framing(headers: Message | RequestHeaders) -> None:
    """Raise :class:`FramingError` unless the body's length is unambiguous (RFC 9112 §6.3)."""
    if headers.defects:
        raise FramingError("The header block is malformed.")
    # One pass over the raw fields: ``get_all`` would walk every header, and sanitize each
    # value, once per name asked for (this runs for every request).
    lengths: list[str] = []
    encodings: list[str] = []
    for name, value in headers.raw_items():
        lowered = name.lower()
        if lowered == "content-length":
            lengths.append(value)
        elif lowered == "transfer-encoding":
            encodings.append(value)
    if encodings:
        if lengths:
            raise FramingError("Content-Length and Transfer-Encoding may not both be sent.")
        # Exactly what gevent recognises as chunked; anything else it would treat as no body.
        if len(encodings) != 1 or encodings[0].lower() != "chunked":
            raise FramingError("The only Transfer-Encoding accepted is chunked.")
    elif lengths and (len(lengths) != 1 or not _DIGITS(lengths[0].strip())):
        raise FramingError("Send one Content-Length of decimal digits.")


class ClientReader(io.RawIOBase):
    """The raw side of a connection's ``rfile``. While a ``recv`` blocks, the reader is listed
    as waiting on its client: the server's reaper ends the wait at the current phase's deadline,
    and a new connection may end it early (eviction). Both wake the ``recv`` by shutting the
    socket's read side (gevent cancels the wait); writing still works, for a 408."""

    def __init__(self, sock: Any, waiting: OrderedDict[ClientReader, None], send_timeout: float):
        super().__init__()
        self.sock = sock
        self.waiting = waiting
        self.send_timeout = send_timeout
        self.deadline = 0.0
        # Set while waiting for a kept-alive connection's next request: once its first bytes
        # arrive, the deadline becomes now + this (the header timeout).
        self.request_window = 0.0
        self.timed_out = False
        self.evicted = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.timed_out or self.deadline <= time.monotonic():
            self.timed_out = True
            raise TimeoutError("deadline passed")
        sock = self.sock
        waiting = self.waiting
        # No socket timeout for reads: gevent would start a timer (a Timeout object and a libev
        # watcher) for every blocking recv, i.e. every keep-alive request; the reaper does it.
        # Writes keep one, started only when a send blocks. The attribute, not settimeout():
        # this runs per request, and setting the attribute costs a fraction of the call.
        sock.timeout = None
        waiting[self] = None
        try:
            count: int = sock.recv_into(buffer)
        except OSError:
            if self.timed_out:  # the reaper or an eviction shut the read side
                raise (Evicted if self.evicted else TimeoutError)("deadline passed") from None
            raise
        finally:
            waiting.pop(self, None)
            sock.timeout = self.send_timeout
        if self.timed_out:
            raise (Evicted if self.evicted else TimeoutError)("deadline passed")
        if self.request_window and count:
            self.deadline = time.monotonic() + self.request_window
            self.request_window = 0.0
        return count

    def expire(self, evicted: bool = False) -> None:
        """Wake this reader's blocked ``recv`` with an error; the handler then answers or closes."""
        self.timed_out = True
        self.evicted = evicted
        try:
            self.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass


class NoDelayHandler(WSGIHandler):
    """Sets TCP_NODELAY on every accepted connection: without it keep-alive clients stall on the
    40 ms delayed ACK (a hello world serves several times fewer requests per second)."""

    def __init__(self, sock: socket.socket, address: Any, server: Any, rfile: Any = None) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # a unix socket has no Nagle to disable
        super().__init__(sock, address, server, rfile)

    def log_request(self) -> None:
        """No access log (the server runs with ``log=None``); gevent would still format a line
        per request, a date included, only to discard it."""


class ShardHandler(NoDelayHandler):
    """One connection: deadlines per phase, strict framing, JSON errors, close when in doubt."""

    server: ShardServer

    def __init__(self, sock: socket.socket, address: Any, server: ShardServer) -> None:
        limits = server.limits
        self.reader = ClientReader(sock, server.waiting, limits.body_timeout)
        self.served = False
        super().__init__(sock, address, server, io.BufferedReader(self.reader, READ_BUFFER))

    def handle(self) -> None:
        server = self.server
        server.open_connections += 1
        if server.open_connections > server.limits.evict_above:
            queue = server.waiting or server.waiting_kept
            if queue:
                victim, _ = queue.popitem(last=False)
                victim.expire(evicted=True)
        try:
            super().handle()
        except OSError:
            pass  # the client left while an error response was being sent
        finally:
            server.open_connections -= 1

    def read_requestline(self) -> str:
        reader = self.reader
        limits = self.server.limits
        if self.served:
            reader.waiting = self.server.waiting_kept
            reader.deadline = time.monotonic() + limits.idle_timeout
            reader.request_window = limits.header_timeout
        else:
            reader.deadline = time.monotonic() + limits.header_timeout
        line: str = super().read_requestline()
        return line

    def MessageClass(self, rfile: Any, *args: Any) -> Any:
        """The header block, read by gevent's ``read_request``: checked before gevent acts on
        it (it drops a Content-Length beside chunked), and the body's deadline starts."""
        headers = read_headers(rfile)
        check_framing(headers)
        reader = self.reader
        reader.deadline = time.monotonic() + self.server.limits.body_timeout
        reader.request_window = 0.0
        self.served = True
        return headers

    def _handle_client_error(self, ex: BaseException) -> tuple[str, bytes] | None:
        """Before the application runs: a bad request line or header block."""
        if isinstance(ex, FramingError):
            return _error_response("400 Bad Request", "Bad request", str(ex))
        if self.reader.evicted:
            return None
        if isinstance(ex, TimeoutError):
            return _HEADER_TIMEOUT
        if isinstance(ex, OSError):
            return None  # reset by the client: nobody to answer
        # gevent's own parse errors (ValueError) and http.client's (too many or too long
        # headers): a client's fault, answered without the traceback gevent would print.
        return _BAD_HEADERS

    def run_application(self) -> None:
        try:
            super().run_application()
        finally:
            body = self.wsgi_input
            if (
                self.reader.timed_out
                or self.server.stopping
                or getattr(body, "_chunked_input_error", False)
            ):
                self.close_connection = True
            if self.close_connection:
                # gevent would read the rest of the body to keep the connection usable; it is
                # being closed, and the rest may never come (or be 3 GB).
                body.content_length = body.position
                body.chunked_input = False


class ShardServer(WSGIServer):
    """A ``WSGIServer`` with :class:`ShardHandler`, a bounded pool and the eviction state."""

    def __init__(self, address: tuple[str, int], application: Any, limits: Limits) -> None:
        self.limits = limits
        self.open_connections = 0
        # Readers blocked on their client, oldest wait first: the eviction order. Connections
        # that have completed a request go second.
        self.waiting: OrderedDict[ClientReader, None] = OrderedDict()
        self.waiting_kept: OrderedDict[ClientReader, None] = OrderedDict()
        super().__init__(
            address,
            application,
            backlog=LISTEN_BACKLOG,
            spawn=Pool(limits.max_connections),
            handler_class=ShardHandler,
            log=None,
            error_log=logging.getLogger("interlink.http"),
        )
        self._reaper: gevent.Greenlet | None = None
        # Set by stop(): a request answered from then on closes its connection.
        self.stopping = False

    def start(self) -> None:
        super().start()
        if self._reaper is None:
            self._reaper = gevent.spawn(self._reap)

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, close every kept-alive connection that waits for its next request
        (it would otherwise hold the stop for ``timeout``: a proxy keeps such connections), and
        give requests in flight until ``timeout`` to finish; each closes its connection after
        its answer."""
        self.stopping = True
        self.stop_accepting()
        idle = [reader for reader in self.waiting_kept if reader.request_window]
        for reader in idle:
            del self.waiting_kept[reader]
            reader.expire(evicted=True)
        if self._reaper is not None:
            self._reaper.kill(block=False)
            self._reaper = None
        super().stop(timeout)

    def _reap(self) -> None:
        """Ends each wait on a client at its deadline, to within ``reap_interval``: one scan of
        the waiting connections per interval instead of a timer per request."""
        interval = self.limits.reap_interval
        while True:
            gevent.sleep(interval)
            now = time.monotonic()
            for queue in (self.waiting, self.waiting_kept):
                expired = [reader for reader in queue if reader.deadline <= now]
                for reader in expired:
                    del queue[reader]
                    reader.expire()


def raise_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (a container's soft limit is often 1,024
    under a hard limit a thousand times larger); returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def connection_bound(requested: int, file_limit: int) -> int:
    """The pool's bound: as requested, but below the file limit so that the process always has
    descriptors left for Redis and for answering."""
    return max(1, min(requested, file_limit - FD_RESERVE))


def make_server(address: tuple[str, int], application: Any, limits: Limits) -> ShardServer:
    bound = connection_bound(limits.max_connections, raise_file_limit())
    if bound < limits.max_connections:
        log.warning(
            "at most %d connections: the open-file limit leaves no room for %d",
            bound,
            limits.max_connections,
        )
        limits = Limits(bound, limits.header_timeout, limits.body_timeout, limits.idle_timeout)
    return ShardServer(address, application, limits)
