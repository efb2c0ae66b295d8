"""The conversations' round trip alone: this process's CPU per round trip of a pipeline of four
commands (the shape of ``user_wrote``'s), through the client's pool (``client.pipeline``) and
through :mod:`interlink.store.multiplex`, by one caller at a time and by 64 at once (a batch
the inbox hands out), under gevent's monkey-patching as the shard runs, against an embedded
Valkey. Rows run in turn, several rounds; the median is printed.

``python -m bench.multiplex [--calls N] [--rounds R]``
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402

from bench.redis_client import cpu  # noqa: E402
from interlink.store import multiplex  # noqa: E402
from interlink.store.connection import connect  # noqa: E402
from interlink.store.embedded import EmbeddedValkey, free_port  # noqa: E402


def round_trip(pipe: Any, i: int) -> None:
    pipe.set(f"alias:{i % 50}", "owner", nx=True, ex=3600)
    pipe.hget(f"conversation:{i % 50}", "menu")
    pipe.hset(f"conversation:{i % 50}", mapping={"last_inbound": "1", "phone": "1650"})
    pipe.exists(f"done:{i}")
    pipe.execute()


def run(make: Callable[[], Any], calls: int, callers: int) -> float:
    def caller(offset: int) -> None:
        for i in range(calls // callers):
            round_trip(make(), offset + i)

    began = cpu()
    gevent.joinall([gevent.spawn(caller, n * calls) for n in range(callers)], raise_error=True)
    return (cpu() - began) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1280)
    parser.add_argument("--rounds", type=int, default=9)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedValkey(Path(tmp), port=free_port(), appendonly=False)
        server.start()
        try:
            client = connect(server.url)
            rows: dict[str, tuple[Callable[[], Any], int]] = {}
            for callers in (1, 64):
                rows[f"pool pipeline, {callers} at once"] = (
                    lambda: client.pipeline(transaction=False), callers
                )
                rows[f"multiplexed, {callers} at once"] = (
                    lambda: multiplex.pipeline(client), callers
                )
            seen: dict[str, list[float]] = {name: [] for name in rows}
            for make, callers in rows.values():  # warm: connections made
                run(make, 64, callers)
            for _ in range(options.rounds):
                for name, (make, callers) in rows.items():
                    seen[name].append(run(make, options.calls, callers))
            print(f"{'round trip of 4 commands':<32} {'us CPU each':>12}")
            for name, values in seen.items():
                print(f"{name:<32} {statistics.median(values):>12.1f}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
