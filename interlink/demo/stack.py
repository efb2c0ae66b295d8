"""What ``interlink demo`` runs against: the Meta and Genesys simulators in this process, and one
shard as a child process (``interlink serve`` on its own embedded Valkey) in a temporary data dir.

:meth:`DemoStack.start` returns once the shard answers ``/readyz``; :meth:`DemoStack.stop` stops
the shard with SIGTERM (it then stops its store), closes the simulators and removes the data
dir. ``stop`` is safe to call at any point, twice included: the demo calls it from ``finally``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import gevent
import requests

from interlink.runtime import ADMIN_TOKEN_FILE, ensure_secret_file
from interlink.sim.server import SimServer
from interlink.store.embedded import free_port

READY_TIMEOUT = 20.0  # a cold start (Valkey included) takes ~1 s; a loaded laptop more
STOP_TIMEOUT = 15.0
SHARD_LOG = "shard.log"


class StackError(RuntimeError):
    """The simulators or the shard could not start; ``str()`` says why (log tail included)."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the kernel sends the shard SIGTERM if the demo dies, even by ``kill -9``, so a
    killed demo leaves no shard (and no Valkey: the shard does the same for its store)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class DemoStack:
    """The simulators plus one shard. ``admin_token`` is generated here and handed to the shard
    through ``DATA_DIR/admin-token`` (mode 0600), never through argv or a printed line."""

    def __init__(self) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="interlink-demo-"))
        self.sim = SimServer()
        self.port = free_port()
        self.admin_token = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._sim_started = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_token_path(self) -> Path:
        return self.data_dir / ADMIN_TOKEN_FILE

    @property
    def state(self) -> Any:
        return self.sim.state

    # -- start ----------------------------------------------------------------------------------
    def start_simulators(self) -> None:
        self.sim.start()
        self._sim_started = True

    def start_shard(self, *, timeout: float = READY_TIMEOUT) -> None:
        self.admin_token, _ = ensure_secret_file(
            self.admin_token_path, lambda: secrets.token_urlsafe(32)
        )
        env = {
            # Only what a shard needs: none of the caller's INTERLINK_* settings leak in (a
            # developer's INTERLINK_REDIS_URL would point the demo at their real store).
            **{k: v for k, v in os.environ.items() if not k.startswith("INTERLINK_")},
            **self.sim.env(),
            "INTERLINK_HOST": "127.0.0.1",
            "INTERLINK_PORT": str(self.port),
            "INTERLINK_DATA_DIR": str(self.data_dir),
            "INTERLINK_PUBLIC_URL": self.url,
            "INTERLINK_LOG_LEVEL": "WARNING",
            "INTERLINK_LOG_FORMAT": "text",
        }
        self._log = (self.data_dir / SHARD_LOG).open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "interlink", "serve"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StackError(
                    f"the shard exited with code {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass  # not listening yet
            gevent.sleep(0.05)
        raise StackError(f"the shard was not ready within {timeout:.0f} s:\n{self.log_tail()}")

    # -- use ------------------------------------------------------------------------------------
    def admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One call to the shard's admin API with the operator token."""
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        return requests.request(method, self.url + path, headers=headers, timeout=10, **kwargs)

    def log_tail(self, limit: int = 3000) -> str:
        try:
            return (self.data_dir / SHARD_LOG).read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    # -- stop -----------------------------------------------------------------------------------
    def stop(self) -> int | None:
        """Stop everything that was started; the shard's exit code (``None`` if it never ran)."""
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                code = self.process.wait(5)
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._sim_started:
            self.sim.stop()
            self._sim_started = False
        shutil.rmtree(self.data_dir, ignore_errors=True)
        return code
