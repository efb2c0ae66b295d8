"""``interlink serve`` as a real process: a real socket, signals, the embedded store on disk."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import requests

from interlink.store.embedded import read_password
from tests.support.shard import ShardProcess


def embedded_store_port(shard: ShardProcess) -> int:
    """The port of the latest start (the log file is appended to across restarts)."""
    ports = [
        int(entry["port"])
        for entry in map(
            json.loads, filter(lambda line: line.startswith("{"), shard.log().splitlines())
        )
        if entry["msg"] == "embedded store started"
    ]
    assert ports, "no embedded store in the log"
    return ports[-1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_answers_on_a_socket_and_exits_0_on_a_signal(tmp_path: Path, sig: int) -> None:
    shard = ShardProcess(tmp_path).start()
    try:
        assert requests.get(shard.url + "/healthz", timeout=5).json() == {"status": "ok"}
        assert requests.get(shard.url + "/readyz", timeout=5).json() == {"status": "ready"}
        metrics = requests.get(shard.url + "/metrics", timeout=5)
        assert metrics.headers["Content-Type"].startswith("text/plain")
        assert shard.stop(sig) == 0
    finally:
        shard.kill()
    messages = [
        json.loads(line)["msg"] for line in shard.log().splitlines() if line.startswith("{")
    ]
    assert messages[-2:] == ["shard stopping", "shard stopped"]


def test_generated_admin_token_and_secret_key_are_private_files(tmp_path: Path) -> None:
    shard = ShardProcess(tmp_path).start()
    try:
        for name in ("admin-token", "secret-key"):
            mode = stat.S_IMODE(os.stat(tmp_path / name).st_mode)
            assert mode == 0o600, name
        token = shard.admin_token()
        assert len(token) >= 40
        assert token not in shard.log()  # its path is printed, never the token
        assert str((tmp_path / "admin-token").resolve()) in shard.log()
    finally:
        shard.stop()
    # A restart keeps the same credentials.
    shard2 = ShardProcess(tmp_path).start()
    try:
        assert shard2.admin_token() == token
    finally:
        shard2.stop()


def test_data_in_the_embedded_store_survives_a_restart_and_a_kill(tmp_path: Path) -> None:
    shard = ShardProcess(tmp_path).start()
    password = read_password(tmp_path / "valkey")
    try:
        client = redis.Redis(port=embedded_store_port(shard), password=password, socket_timeout=5)
        client.set("il:test:survivor", b"still here")
        client.close()
        assert shard.stop() == 0

        shard = ShardProcess(tmp_path).start()
        port = embedded_store_port(shard)
        client = redis.Redis(port=port, password=password, socket_timeout=5)
        assert client.get("il:test:survivor") == b"still here"
        client.set("il:test:after-kill", b"acknowledged")
        client.close()
        shard.kill()  # kill -9: no clean shutdown; the embedded server dies with its parent
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=port, password=password, socket_timeout=0.2).ping()
                time.sleep(0.05)
            except redis.ConnectionError:
                break
        else:
            raise AssertionError("the embedded store outlived its shard")

        shard = ShardProcess(tmp_path).start()
        client = redis.Redis(port=embedded_store_port(shard), password=password, socket_timeout=5)
        assert client.get("il:test:after-kill") == b"acknowledged"
        client.close()
    finally:
        shard.kill()


def test_a_port_in_use_is_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    first = ShardProcess(tmp_path / "a").start()
    try:
        second = ShardProcess(tmp_path / "b", port=first.port)
        result = subprocess.run(
            [sys.executable, "-m", "interlink", "serve"],
            env=second.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1
        assert (
            result.stderr.strip()
            .splitlines()[-1]
            .startswith(f"interlink: cannot listen on 127.0.0.1:{first.port}: ")
        )
    finally:
        first.stop()
