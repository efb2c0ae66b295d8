"""``make profile``: where the shard's CPU goes under the delivery benchmark's load.

The delivery world of :mod:`bench.delivery`, with the shard run under :mod:`bench.sampled`;
``BENCH_PROFILE_RATE`` messages per second (default 300) in each direction for
``BENCH_DELIVERY_SECONDS``, profiled one direction at a time. Writes
``bench/profile/shard-wa.collapsed`` and ``shard-gc.collapsed`` (collapsed stacks) and
``shard-wa.svg``, ``shard-gc.svg`` (flame graphs, open them in a browser) and prints the functions with
the largest inclusive and own shares.
"""

from __future__ import annotations

import collections
import html
import os
import signal
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "profile"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    collapsed = OUT / "shard.collapsed"
    collapsed.unlink(missing_ok=True)
    os.environ["BENCH_PROFILE_OUT"] = str(collapsed)
    from bench import delivery

    rate = float(os.environ.get("BENCH_PROFILE_RATE", "300"))
    written = []
    with delivery.world(shard_module="bench.sampled") as w:
        phases = delivery.Phases(w)
        phases.run("wa", 250, delivery.TENANTS * delivery.USERS / 250)
        for direction in ("wa", "gc"):
            # Only the measured phase: not the tenants' creation nor the first messages.
            os.kill(w["pid"], signal.SIGUSR1)
            row = phases.run(direction, rate, delivery.SECONDS)
            os.kill(w["pid"], signal.SIGUSR2)
            time.sleep(1.0)  # the shard writes between two greenlet switches
            print(f"{direction}@{rate:.0f}: {row['cpu_us_per_message']} us CPU per message")
            path = OUT / f"shard-{direction}.collapsed"
            collapsed.replace(path)
            stacks = read(path)
            print(f"\n==== {direction} ====")
            report(stacks)
            svg_path = path.with_suffix(".svg")
            svg_path.write_text(svg(stacks), encoding="utf-8")
            written += [path, svg_path]
    print(f"\nwritten {', '.join(str(p) for p in written)}")


def read(path: Path) -> dict[str, int]:
    stacks: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        stacks[stack] = stacks.get(stack, 0) + int(count)
    return stacks


def report(stacks: dict[str, int], top: int = 30) -> None:
    total = sum(stacks.values()) or 1
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    for stack, count in stacks.items():
        frames = stack.split(";")
        for name in set(frames):
            inclusive[name] += count
        own[frames[-1]] += count
    print(f"{total} samples")
    for title, counter in (("inclusive", inclusive), ("own", own)):
        print(f"\n-- {title} --")
        for name, count in counter.most_common(top):
            print(f"{100 * count / total:5.1f}%  {name}")


def svg(stacks: dict[str, int], width: int = 1600, row: int = 16) -> str:
    """A flame graph: one box per frame, its width its share of the samples."""
    tree: dict[str, object] = {}
    for stack, count in stacks.items():
        node = tree
        for name in stack.split(";"):
            child = node.setdefault(name, {"#": 0})
            assert isinstance(child, dict)
            child["#"] += count
            node = child
    total = sum(stacks.values()) or 1
    boxes: list[str] = []
    depth_max = [0]

    def walk(node: dict[str, object], x: float, depth: int) -> None:
        depth_max[0] = max(depth_max[0], depth)
        for name, child in sorted((k, v) for k, v in node.items() if k != "#"):
            assert isinstance(child, dict)
            w = width * child["#"] / total
            if w >= 0.5:
                label = html.escape(name)
                text = label[: int(w / 7)] if w > 21 else ""
                boxes.append(
                    f'<g><title>{label} ({100 * child["#"] / total:.1f}%)</title>'
                    f'<rect x="{x:.1f}" y="{{y{depth}}}" width="{w:.1f}" height="{row - 1}" '
                    f'fill="hsl({hash(name) % 40 + 10},80%,60%)"/>'
                    f'<text x="{x + 2:.1f}" y="{{t{depth}}}" font-size="11">{text}</text></g>'
                )
                walk(child, x, depth + 1)
            x += w

    walk(tree, 0.0, 0)
    height = (depth_max[0] + 1) * row
    out = "\n".join(boxes)
    for depth in range(depth_max[0] + 1):
        y = height - (depth + 1) * row
        out = out.replace(f"{{y{depth}}}", str(y)).replace(f"{{t{depth}}}", str(y + row - 4))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="monospace">{out}</svg>'
    )


if __name__ == "__main__":
    sys.exit(main())
