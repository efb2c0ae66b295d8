"""The Redis client alone: this process's CPU per round trip through redis-py, under gevent's
monkey-patching as the shard runs, against an embedded Valkey, for the client
:func:`interlink.store.connection.connect` builds and for the settings it could be built with.

Two kinds of round trip, as the shard makes them: a non-transactional pipeline of three commands
(GET, HGET, EXPIRE: ``known_alias``, ``user_wrote``, ``flush``) and a single GET (``hmget``,
``get``). The rows are run in turn, several rounds, so that a busy machine moves them alike.

``python -m bench.redis_client [--calls N] [--rounds R]``: prints microseconds of this process's
CPU per round trip (the server is another process and is not counted). With ``hiredis``
importable a row with its parser is added (the other rows pin redis-py's pure-Python parser).
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import redis  # noqa: E402

from interlink.store.connection import CommandPacker, connect  # noqa: E402
from interlink.store.embedded import EmbeddedValkey, binary_path, free_port  # noqa: E402

try:  # not a dependency: measured only when present
    import hiredis  # type: ignore[import-not-found]  # noqa: F401

    HIREDIS = True
except ImportError:
    HIREDIS = False


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _python_parser(protocol: int) -> Any:
    # Bench only (redis._parsers is not public): keeps the rows comparable when hiredis is
    # installed, which redis-py would otherwise pick for every row.
    from redis._parsers import _RESP2Parser, _RESP3Parser

    return _RESP3Parser if protocol == 3 else _RESP2Parser


def _main_pool(url: str, **extra: Any) -> redis.BlockingConnectionPool:
    """The pool as main built it at 205c83e, plus ``extra``."""
    options: dict[str, Any] = {
        "max_connections": 64,
        "timeout": 5.0,
        "socket_timeout": 5.0,
        "socket_connect_timeout": 5.0,
        "health_check_interval": 30,
    }
    options.update(extra)
    protocol = int(options.get("protocol") or redis.utils.DEFAULT_RESP_VERSION)
    options.setdefault("parser_class", _python_parser(protocol))
    return redis.BlockingConnectionPool.from_url(url, **options)


class _NoPeekConnection(redis.Connection):
    """Measurement only: what the pool's per-checkout poll for unread bytes costs."""

    def can_read(self, timeout: float = 0) -> bool:
        if timeout == 0 and self._sock is not None:
            return False
        return super().can_read(timeout)


_poll = __import__("gevent.monkey").monkey.get_original("select", "poll")


class _PollPeekConnection(redis.Connection):
    """Measurement only: the poll for unread bytes as one poll(2) of the socket."""

    def can_read(self, timeout: float = 0) -> bool:
        sock = self._sock
        if timeout == 0 and sock is not None:
            poller = _poll()
            poller.register(sock.fileno(), 1)
            if not poller.poll(0):
                return False
        return super().can_read(timeout)


def _with_packer(pool: redis.ConnectionPool) -> redis.ConnectionPool:
    pool.connection_kwargs["command_packer"] = CommandPacker(pool.get_encoder())
    return pool


def variants(url: str, unix_url: str) -> dict[str, Callable[[], redis.Redis]]:
    rows: dict[str, Callable[[], redis.Redis]] = {
        "main 205c83e (default RESP, hci=30)": lambda: redis.Redis(connection_pool=_main_pool(url)),
        "connect() (this tree)": lambda: connect(url),
        "main + one-pass packer": lambda: redis.Redis(
            connection_pool=_with_packer(_main_pool(url))
        ),
        "protocol=2": lambda: redis.Redis(connection_pool=_main_pool(url, protocol=2)),
        "protocol=3": lambda: redis.Redis(connection_pool=_main_pool(url, protocol=3)),
        "hci=0": lambda: redis.Redis(connection_pool=_main_pool(url, health_check_interval=0)),
        "protocol=2, hci=0": lambda: redis.Redis(
            connection_pool=_main_pool(url, protocol=2, health_check_interval=0)
        ),
        "protocol=2, keepalive": lambda: redis.Redis(
            connection_pool=_main_pool(url, protocol=2, socket_keepalive=True)
        ),
        "protocol=2, no can_read poll": lambda: redis.Redis(
            connection_pool=_main_pool(url, protocol=2, connection_class=_NoPeekConnection)
        ),
        "protocol=2, poll(2) can_read": lambda: redis.Redis(
            connection_pool=_main_pool(url, protocol=2, connection_class=_PollPeekConnection)
        ),
        "protocol=2, ConnectionPool(max=64)": lambda: redis.Redis(
            connection_pool=redis.ConnectionPool.from_url(
                url,
                protocol=2,
                max_connections=64,
                socket_timeout=5.0,
                health_check_interval=30,
                parser_class=_python_parser(2),
            )
        ),
        "protocol=2, single connection": lambda: redis.Redis(
            connection_pool=_main_pool(url, protocol=2), single_connection_client=True
        ),
        "protocol=2, unix socket": lambda: redis.Redis(
            connection_pool=_main_pool(
                unix_url, protocol=2, connection_class=redis.UnixDomainSocketConnection
            )
        ),
    }
    if HIREDIS:
        from redis._parsers import _HiredisParser

        rows["protocol=2, hiredis"] = lambda: redis.Redis(
            connection_pool=_main_pool(url, protocol=2, parser_class=_HiredisParser)
        )
    return rows


def pipelines(client: redis.Redis, calls: int) -> None:
    for i in range(calls):
        pipe = client.pipeline(transaction=False)
        pipe.get(f"alias:{i % 50}")
        pipe.hget(f"conversation:{i % 50}", "state")
        pipe.expire(f"conversation:{i % 50}", 3600)
        pipe.execute()


def gets(client: redis.Redis, calls: int) -> None:
    for i in range(calls):
        client.get(f"alias:{i % 50}")


def per_call(run: Callable[[redis.Redis, int], None], client: redis.Redis, calls: int) -> float:
    began = cpu()
    run(client, calls)
    return (cpu() - began) / calls * 1e6


def unix_server(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    path = directory / "valkey.sock"
    process = subprocess.Popen(
        [str(binary_path()), "--port", "0", "--unixsocket", str(path), "--save", "",
         "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("valkey on a unix socket did not start")
        time.sleep(0.02)
    return process, f"unix://{path}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--only", default="", help="rows whose name contains this")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedValkey(Path(tmp) / "tcp", port=free_port(), appendonly=False)
        server.start()
        unix_dir = Path(tmp) / "unix"
        unix_dir.mkdir()
        unix_process, unix_url = unix_server(unix_dir)
        try:
            rows = {
                name: make
                for name, make in variants(server.url, unix_url).items()
                if options.only in name
            }
            results: dict[str, dict[str, list[float]]] = {name: {} for name in rows}
            clients = {name: make() for name, make in rows.items()}
            for client in clients.values():  # connections open, code paths hot
                pipelines(client, 200)
                gets(client, 200)
            # Short turns, many rounds: a neighbour's load spike lands on a turn or two of
            # every row alike, and the best turn shows the row's own cost.
            for _ in range(options.rounds):
                for name, client in clients.items():
                    for kind, run in (("pipeline of 3", pipelines), ("GET", gets)):
                        results[name].setdefault(kind, []).append(
                            per_call(run, client, options.calls)
                        )
            for client in clients.values():
                client.close()
                client.connection_pool.disconnect()
        finally:
            unix_process.terminate()
            unix_process.wait(10)
            server.stop()
    print(f"redis {redis.__version__}; us of this process's CPU per round trip, best and median"
          f" of {options.rounds} rounds of {options.calls}")  # fmt: skip
    print(f"{'client':40} {'pipeline of 3':>14} {'GET':>14}")
    for name, kinds in results.items():
        cells = []
        for kind in ("pipeline of 3", "GET"):
            values = kinds[kind]
            cells.append(f"{min(values):6.1f} {statistics.median(values):6.1f}")
        print(f"{name:40} {cells[0]:>14} {cells[1]:>14}")


if __name__ == "__main__":
    main()
