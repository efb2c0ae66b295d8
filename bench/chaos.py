"""``make chaos``: the long drills. A steady two-way load across several tenants through a real
shard process, while the shard is killed with SIGKILL again and again, then while its Redis is
stopped and started; every acknowledged message is then counted at the simulators.

Prints a table and writes ``bench/chaos.json``; the goal is lost = duplicates = out-of-order = 0.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402

from interlink.store.embedded import EmbeddedValkey  # noqa: E402
from tests.e2e.chaos import Conversation, Load, repeats_announced, wait_until  # noqa: E402
from tests.e2e.world import World, start_world  # noqa: E402

HERE = Path(__file__).resolve().parent
KILLS = int(os.environ.get("CHAOS_KILLS", "20"))
REDIS_RESTARTS = int(os.environ.get("CHAOS_REDIS_RESTARTS", "3"))
RATE = float(os.environ.get("CHAOS_RATE", "60"))


def conversations(
    world: World, prefix: str, tenants: int = 4, users: int = 3
) -> list[Conversation]:
    found = []
    for t in range(tenants):
        tenant = world.add_tenant(f"{prefix}-{t}")
        found += [Conversation(tenant, world.user()) for _ in range(users)]
    return found


def drill(name: str, world: World, disrupt: Any, *, kills: int = 0) -> dict[str, Any]:
    load = Load(world, conversations(world, name.split()[0].replace("-", "")), RATE)
    started = time.monotonic()
    load.start()
    disrupt()
    load.stop()
    complete = wait_until(load.complete, 180)
    counts = load.tally().as_dict()
    return {
        "drill": name,
        "seconds": round(time.monotonic() - started, 1),
        "complete": complete,
        "kills": kills,
        "repeats": repeats_announced(world),
        **counts,
    }


def main() -> None:
    rng = random.Random(int(os.environ.get("CHAOS_SEED", "1")))
    results = []
    with tempfile.TemporaryDirectory(prefix="interlink-chaos-") as tmp:
        store = EmbeddedValkey(Path(tmp) / "store")
        store.start()
        world = start_world(Path(tmp) / "kills", store.url)
        try:

            def kills() -> None:
                for _ in range(KILLS):
                    gevent.sleep(rng.uniform(0.3, 1.2))
                    world.shard.kill()
                    world.shard.start()

            results.append(drill(f"kill -9 x{KILLS}", world, kills, kills=KILLS))
        finally:
            world.close()

        world = start_world(Path(tmp) / "redis", store.url)
        try:

            def redis_restarts() -> None:
                for _ in range(REDIS_RESTARTS):
                    gevent.sleep(rng.uniform(0.5, 1.5))
                    store.stop()
                    gevent.sleep(rng.uniform(0.5, 2.0))
                    store.start()

            results.append(drill(f"redis restart x{REDIS_RESTARTS}", world, redis_restarts))
        finally:
            world.close()
            store.stop()

    columns = [
        "drill",
        "seconds",
        "sent",
        "acknowledged",
        "delivered",
        "redeliveries",
        "repeats",
        "duplicates",
        "lost",
        "out_of_order",
    ]
    print("  ".join(f"{c:>14}" for c in columns))
    for row in results:
        print("  ".join(f"{row[c]!s:>14}" for c in columns))
    (HERE / "chaos.json").write_text(json.dumps(results, indent=2) + "\n")
    # A kill -9 between a provider's success and the write of its "done" marker repeats that call
    # (README, "Guarantees"); the shard logs each such repeat, so every duplicate must be one.
    bad = [
        r
        for r in results
        if r["lost"] or r["out_of_order"] or not r["complete"] or r["duplicates"] > r["repeats"]
    ]
    verdict = "met" if not bad else "NOT met"
    print(f"\nnothing lost or reordered, every duplicate a repeat the shard announced: {verdict}")
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
