"""A lean HTTP/1.1 client for the provider hot path: one POST, its answer read whole.

Every delivered message makes one provider call (an Open Messaging POST, a Graph send). Driving
urllib3's pool for it cost 22 % (W->G) and 24.5 % (G->W) of the whole shard's CPU at 400 msg/s
(``make profile``, issue 19): ``http.client``'s response parsing through ``email.feedparser``
(10-12 %), request building one ``putheader`` at a time (5 %), a ``select`` per reuse to see
whether the connection dropped, with a gevent ``Timeout`` each (3.3 %), ``Retry``/``Timeout``
objects (1 %). Here the request head is one string, sent with the body in one ``sendall``; the
answer is parsed with a few ``split``s and regular expressions; the reuse check is one
non-blocking ``poll`` system call.

What it does, and no more: kept-alive connections per origin (scheme, host, port), at most
``max_idle`` idle ones each, the most recently used first; ``http`` and ``https`` (certificates
verified against ``requests``' CA bundle, host name checked, SNI); a strict status line and
header parser with bounded sizes; interim 1xx answers skipped; bodies by ``Content-Length``,
chunked or read to the close; ``gzip``/``deflate`` decoded. Failures are raised as the
``requests`` exceptions ``requests`` raises for them, shaped so that
:func:`interlink.providers.errors.request_not_sent` is True only for a connection that could not
be made. No message carries a header value, a body or a path (they may hold secrets).
"""

from __future__ import annotations

import re
import select
import socket
import ssl
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

import requests
import requests.utils
from urllib3.exceptions import (
    ConnectTimeoutError,
    LocationParseError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.exceptions import SSLError as Urllib3SSLError
from urllib3.util import parse_url

try:  # the process is gevent-patched: the real poll, so that a zero-timeout check never yields
    from gevent.monkey import get_original

    _poll = get_original("select", "poll")
except ImportError:  # pragma: no cover
    _poll = select.poll

MAX_HEAD = 65536
"""Bytes of a response's status line and headers, and of a chunk-size or trailer line block."""
MAX_FIELDS = 100
"""Header fields (or trailer fields) in one response, as ``http.client`` allows."""
MAX_INTERIM = 16
"""1xx answers skipped before the final one."""
MAX_BODY = 4 * 1024 * 1024
"""A provider's answer to a POST is a few hundred bytes; more than this, as sent or decoded, is
not an answer."""

_STATUS = re.compile(r"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: [^\x00-\x08\x0a-\x1f\x7f]*)?")
# Greedy, stripped after: a lazy value before optional blanks backtracks quadratically.
_FIELD = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+):([^\x00-\x08\x0a-\x1f\x7f]*)")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*(?:;[^\r\n]*)?")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# A request target sent as it is; anything else (spaces, non-ASCII, '%', a fragment) is
# normalised by urllib3's parser, as urllib3 did it when it sent these requests.
_PLAIN_TARGET = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/?]*")
_DEAD = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP | select.POLLNVAL


class Headers(Mapping[str, str]):
    """A response's header fields, looked up case-insensitively; repeated fields are joined with
    ``", "`` (as urllib3's ``HTTPHeaderDict.get`` does); iteration gives the names as sent."""

    __slots__ = ("_fields",)

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        found: dict[str, tuple[str, str]] = {}
        for name, value in fields:
            key = name.lower()
            seen = found.get(key)
            found[key] = (name, value) if seen is None else (seen[0], f"{seen[1]}, {value}")
        self._fields = found

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()][1]

    def get(self, name: str, default: Any = None) -> Any:
        found = self._fields.get(name.lower())
        return default if found is None else found[1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._fields.values())

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Headers({dict(self._fields.values())!r})"


class _Broken(Exception):
    """The answer is not HTTP/1.1 as we read it, or stopped before its end."""


class _Origin:
    """One (scheme, host, port): its idle connections, the most recently used last."""

    __slots__ = ("closed", "host", "host_header", "idle", "key", "label", "port", "tls")

    def __init__(self, tls: bool, host: str, port: int) -> None:
        self.key = (tls, host, port)
        self.tls = tls
        self.host = host
        self.port = port
        bracketed = f"[{host}]" if ":" in host else host
        self.host_header = bracketed if port == (443 if tls else 80) else f"{bracketed}:{port}"
        self.label = f"{'https' if tls else 'http'}://{bracketed}:{port}"
        self.idle: list[socket.socket] = []
        self.closed = False


class Client:
    """Kept-alive connections per origin, shared by every caller of :meth:`post`; at most
    ``max_idle`` idle connections per origin (a burst's surplus is closed after use) and at most
    ``max_origins`` origins pooled (the least recently used one is dropped beyond).
    ``cafile``: the certificates trusted, ``requests``' bundle unless told (tests)."""

    def __init__(self, max_idle: int, max_origins: int, cafile: str | None = None) -> None:
        self.max_idle = max_idle
        self.max_origins = max_origins
        self.cafile = cafile or requests.utils.DEFAULT_CA_BUNDLE_PATH
        self._origins: dict[tuple[bool, str, int], _Origin] = {}
        self._prefixes: dict[str, _Origin] = {}
        self._tls: ssl.SSLContext | None = None

    def post(
        self, url: str, headers: Mapping[str, str], body: bytes, timeout: Any = None
    ) -> tuple[int, Headers, bytes]:
        """POST ``body`` with ``headers`` (in their order, after ``Host``) to ``url``; the
        status, headers and (decoded) body of the answer."""
        origin, target = self._route(url)
        if isinstance(timeout, tuple):
            connect_timeout, read_timeout = timeout
        else:
            connect_timeout = read_timeout = timeout
        message = _head(target, origin.host_header, headers) + body
        sock = self._checkout(origin, connect_timeout)
        keep = False
        try:
            status, fields, content, keep = _exchange(sock, message, connect_timeout, read_timeout)
        except TimeoutError:
            raise requests.ReadTimeout(
                ReadTimeoutError(
                    origin.label,  # type: ignore[arg-type]
                    None,
                    f"Read timed out. (read timeout={read_timeout})",
                )
            ) from None
        except _Broken as exc:
            raise requests.ConnectionError(ProtocolError(f"{exc} ({origin.label})")) from None
        except OSError as exc:
            raise requests.ConnectionError(ProtocolError("Connection aborted.", exc)) from None
        finally:
            # Only a connection whose answer was read whole goes back: not one that failed,
            # timed out, or whose greenlet was killed mid-exchange.
            if (
                keep
                and not origin.closed
                and len(origin.idle) < self.max_idle
                and not (origin.tls and sock.pending())  # type: ignore[attr-defined]
            ):
                origin.idle.append(sock)
            else:
                sock.close()
        return status, fields, _decode(fields.get("Content-Encoding"), content)

    def close(self) -> None:
        """Close every idle connection; connections in use are closed when their call ends."""
        for origin in self._origins.values():
            _drop(origin)
        self._origins.clear()
        self._prefixes.clear()

    def _route(self, url: str) -> tuple[_Origin, str]:
        """The pool of the URL's origin and the request target, made once per origin."""
        start = url.find("://") + 3
        end = len(url)
        for stop in "/?#":
            found = url.find(stop, start)
            if 0 <= found < end:
                end = found
        origin = self._prefixes.get(url[:end])
        if origin is None or origin.closed:
            origin = self._origin(url[:end])
        else:
            # The most recently used last: past ``max_origins`` the least recently used goes,
            # never a busy host for a rare one (a tenant's first token at its login host).
            self._origins[origin.key] = self._origins.pop(origin.key)
        target = url[end:]
        if target.startswith("?"):
            target = "/" + target
        if not _PLAIN_TARGET.fullmatch(target):
            try:
                target = parse_url(url).request_uri if target else "/"
            except LocationParseError:
                raise requests.exceptions.InvalidURL("unparsable URL") from None
        return origin, target

    def _origin(self, prefix: str) -> _Origin:
        scheme, _, authority = prefix.partition("://")
        scheme = scheme.lower()
        host, port = authority, ""
        if authority.startswith("["):
            host, _, rest = authority[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else rest
        elif ":" in authority:
            host, _, port = authority.rpartition(":")
        if (
            scheme not in ("http", "https")
            or not host
            or not host.isascii()
            or "@" in authority
            or not (port == "" or (port.isdigit() and 0 < int(port) < 65536))
        ):
            raise requests.exceptions.InvalidURL("not an http(s) URL this client sends to")
        tls = scheme == "https"
        key = (tls, host.lower(), int(port) if port else (443 if tls else 80))
        origin = self._origins.pop(key, None)
        if origin is not None:
            self._origins[key] = origin  # the most recently used last
        else:
            while len(self._origins) >= self.max_origins:
                oldest = next(iter(self._origins))
                _drop(self._origins.pop(oldest))
                self._prefixes = {p: o for p, o in self._prefixes.items() if not o.closed}
            origin = self._origins[key] = _Origin(*key)
        if len(self._prefixes) < self.max_origins * 4:
            self._prefixes[prefix] = origin
        return origin

    def _checkout(self, origin: _Origin, timeout: float | None) -> socket.socket:
        """The most recently used idle connection still open, else a new one. An idle
        connection the server closed (or wrote to: nothing is due on it) is readable: closed
        here, before a byte of the request is written on it."""
        idle = origin.idle
        while idle:
            sock = idle.pop()
            fd = sock.fileno()
            if fd >= 0:
                check = _poll()
                check.register(fd, _DEAD)
                if not check.poll(0):
                    return sock
            sock.close()
        return self._connect(origin, timeout)

    def _connect(self, origin: _Origin, timeout: float | None) -> socket.socket:
        try:
            sock = socket.create_connection((origin.host, origin.port), timeout)
        except TimeoutError as exc:
            raise _not_connected(origin, exc, timed_out=True) from None
        except OSError as exc:
            raise _not_connected(origin, exc, timed_out=False) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if origin.tls:
                sock = self._tls_context().wrap_socket(sock, server_hostname=origin.host)
        except TimeoutError as exc:
            sock.close()
            raise _not_connected(origin, exc, timed_out=True) from None
        except (ssl.SSLError, ssl.CertificateError) as exc:
            sock.close()
            raise requests.exceptions.SSLError(
                MaxRetryError(None, origin.label, Urllib3SSLError(exc))  # type: ignore[arg-type]
            ) from None
        except OSError as exc:
            sock.close()
            raise _not_connected(origin, exc, timed_out=False) from None
        except BaseException:
            sock.close()
            raise
        return sock

    def _tls_context(self) -> ssl.SSLContext:
        """As ``requests`` verifies by default: its CA bundle, the host name, TLS 1.2 or newer.
        Made on first use, after gevent patched ``ssl``."""
        if self._tls is None:
            context = ssl.create_default_context(cafile=self.cafile)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.set_alpn_protocols(["http/1.1"])
            self._tls = context
        return self._tls


def _head(target: str, host: str, headers: Mapping[str, str]) -> bytes:
    lines = [f"POST {target} HTTP/1.1"]
    if "Host" not in headers and "host" not in headers:
        lines.append(f"Host: {host}")
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise requests.exceptions.InvalidHeader("invalid header name")
        lines.append(f"{name}: {value}")
    lines += ("", "")
    text = "\r\n".join(lines)
    # One line per field: a CR, LF or NUL inside a value would smuggle another field in.
    if text.count("\n") != len(lines) - 1 or text.count("\r") != len(lines) - 1 or "\0" in text:
        raise requests.exceptions.InvalidHeader("header value with CR, LF or NUL")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        raise requests.exceptions.InvalidHeader("header value outside latin-1") from None


def _exchange(
    sock: socket.socket, message: bytes, send_timeout: float | None, read_timeout: float | None
) -> tuple[int, Headers, bytes, bool]:
    try:
        sock.settimeout(send_timeout)
        sock.sendall(message)
    except BrokenPipeError:
        pass  # the server may have answered before closing: read what it said
    except TimeoutError as exc:  # sent in part, maybe: not a read timeout, as urllib3 had it
        raise ConnectionAbortedError("send timed out") from exc
    if read_timeout != send_timeout:
        sock.settimeout(read_timeout)
    return _read_response(sock)


def _read_response(sock: socket.socket) -> tuple[int, Headers, bytes, bool]:
    """Status, headers, body and whether the connection may carry another request."""
    buf = bytearray()
    for _ in range(MAX_INTERIM + 1):
        end = _fill_until(sock, buf, b"\r\n\r\n", 0, first=True)
        lines = buf[:end].decode("latin-1").split("\r\n")
        del buf[: end + 4]
        status_line = _STATUS.fullmatch(lines[0])
        if status_line is None:
            raise _Broken("malformed answer: status line")
        status = int(status_line.group(2))
        if len(lines) > MAX_FIELDS + 1:
            raise _Broken("malformed answer: too many header fields")
        fields = []
        for line in lines[1:]:
            field = _FIELD.fullmatch(line)
            if field is None:
                raise _Broken("malformed answer: header field")
            fields.append((field.group(1), field.group(2).strip(" \t")))
        if status >= 200:
            break
        if status == 101:
            raise _Broken("malformed answer: switching protocols")
    else:
        raise _Broken("malformed answer: too many interim answers")
    headers = Headers(fields)
    tokens = {t.strip().lower() for t in headers.get("Connection", "").split(",")}
    keep = "close" not in tokens and (status_line.group(1) == "1" or "keep-alive" in tokens)
    coding = headers.get("Transfer-Encoding")
    length = headers.get("Content-Length")
    if status in (204, 304):
        body = b""
    elif coding is not None:
        if coding.strip().lower() != "chunked":
            raise _Broken("malformed answer: transfer coding")
        body = _read_chunked(sock, buf)
        keep = keep and length is None  # both framings: the message is suspect, do not reuse
    elif length is not None:
        values = {v.strip() for v in length.split(",")}
        size = values.pop()
        if values or not size.isdigit() or not size.isascii() or int(size) > MAX_BODY:
            raise _Broken("malformed answer: content length")
        _fill(sock, buf, int(size))
        body = bytes(buf[: int(size)])
        del buf[: int(size)]
    else:
        while len(buf) <= MAX_BODY:
            chunk = sock.recv(65536)
            if not chunk:
                return status, headers, bytes(buf), False
            buf += chunk
        raise _Broken("malformed answer: body too large")
    return status, headers, body, keep and not buf


def _fill_until(
    sock: socket.socket, buf: bytearray, end: bytes, start: int, first: bool = False
) -> int:
    """Where ``end`` is in ``buf`` from ``start``, reading more until it is there."""
    while True:
        found = buf.find(end, start)
        if found - start > MAX_HEAD or (found < 0 and len(buf) - start > MAX_HEAD):
            raise _Broken("malformed answer: head too large")
        if found >= 0:
            return found
        if first and buf.find(b"\n\n") >= 0:
            raise _Broken("malformed answer: bare LF line ends")
        chunk = sock.recv(65536)
        if not chunk:
            if first and not buf:
                raise ConnectionResetError("Remote end closed connection without response")
            raise _Broken("Connection broken: closed mid-answer")
        buf += chunk


def _fill(sock: socket.socket, buf: bytearray, size: int) -> None:
    while len(buf) < size:
        chunk = sock.recv(min(1 << 20, max(65536, size - len(buf))))
        if not chunk:
            raise _Broken("Connection broken: closed mid-body")
        buf += chunk


def _read_chunked(sock: socket.socket, buf: bytearray) -> bytes:
    # One buffer for the body, and what was read of it dropped as it goes: a body of 1-byte
    # chunks would otherwise cost a bytes object per byte and keep its framing (6x) in memory.
    body = bytearray()
    at = 0
    while True:
        if at > 65536:
            del buf[:at]
            at = 0
        end = _fill_until(sock, buf, b"\r\n", at)
        size_line = _CHUNK_SIZE.fullmatch(buf, at, end)
        if size_line is None:
            raise _Broken("malformed answer: chunk size")
        size = int(size_line.group(1), 16)
        at = end + 2
        if size == 0:
            break
        if len(body) + size > MAX_BODY:
            raise _Broken("malformed answer: body too large")
        _fill(sock, buf, at + size + 2)
        if buf[at + size : at + size + 2] != b"\r\n":
            raise _Broken("malformed answer: chunk end")
        body += buf[at : at + size]
        at += size + 2
    for _ in range(MAX_FIELDS + 1):  # trailer fields, read and dropped
        end = _fill_until(sock, buf, b"\r\n", at)
        if end == at:
            del buf[: at + 2]
            return bytes(body)
        at = end + 2
    raise _Broken("malformed answer: too many trailer fields")


def _decode(coding: str | None, content: bytes) -> bytes:
    """The body as sent before its ``Content-Encoding`` (gzip, deflate; others left as they
    are, as urllib3 leaves them)."""
    if not coding or not content:
        return content
    try:
        for name in reversed(coding.lower().split(",")):
            name = name.strip()
            if name in ("gzip", "x-gzip"):
                content = _inflate(content, 16 + zlib.MAX_WBITS)
            elif name == "deflate":
                try:
                    content = _inflate(content, zlib.MAX_WBITS)
                except zlib.error:  # raw deflate, as some servers send it
                    content = _inflate(content, -zlib.MAX_WBITS)
            elif name != "identity":
                return content
    except (OSError, EOFError, zlib.error):
        raise requests.exceptions.ContentDecodingError(
            f"the answer's {coding} encoding could not be decoded"
        ) from None
    return content


def _not_connected(origin: _Origin, exc: OSError, timed_out: bool) -> requests.ConnectionError:
    """No connection could be made, so nothing was sent: the shape ``requests`` gives it (a
    ``MaxRetryError`` whose reason is urllib3's), which ``request_not_sent`` recognises."""
    if timed_out:
        reason: Exception = ConnectTimeoutError(
            None, f"Connection to {origin.label} timed out while connecting"
        )
        return requests.ConnectTimeout(MaxRetryError(None, origin.label, reason))  # type: ignore[arg-type]
    reason = NewConnectionError(None, f"Failed to establish a new connection: {exc}")  # type: ignore[arg-type]
    return requests.ConnectionError(MaxRetryError(None, origin.label, reason))  # type: ignore[arg-type]


def _drop(origin: _Origin) -> None:
    origin.closed = True
    while origin.idle:
        origin.idle.pop().close()


def _inflate(content: bytes, wbits: int) -> bytes:
    """``content`` decompressed, at most ``MAX_BODY`` bytes of it: a few kilobytes of zeros
    inflate a thousandfold."""
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(content, MAX_BODY + 1)
    if len(out) > MAX_BODY or inflater.unconsumed_tail:
        raise zlib.error("larger than MAX_BODY once decoded")
    if not inflater.eof:
        raise zlib.error("cut short")
    return out
