"""Many active tenants in one shard, through the public contract: ``BENCH_ACTIVE_TENANTS``
(default 10,000) tenants made with the admin API, then each sends one WhatsApp message (delivered
to the Genesys stand-in) and receives one agent message (delivered to the Meta stand-in), at
``BENCH_ACTIVE_RATE`` per second each way (600: above the goal of 500, see RATE). Measured: the shard's RSS before and after, the first
messages' delivery rate, the shard's open sockets (provider connections are pooled per host, so
they do not grow with the tenant count) and how long SIGTERM takes.

``python -m bench.active_tenants`` (``make bench-tenants``); ``make bench`` includes it.
``BENCH_ACTIVE_PROFILE=DIR`` runs the shard under :mod:`bench.sampled` and writes each direction's
first messages' collapsed stacks to ``DIR/first-{wa,gc}.collapsed`` (tenant creation excluded).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import requests

from bench import delivery

TENANTS = int(os.environ.get("BENCH_ACTIVE_TENANTS", "10000"))
# Offered a little above the goal (500/s): the rate measured is delivered / (last arrival - first
# send), which the drain's tail keeps under the offered rate even when the shard keeps up.
RATE = float(os.environ.get("BENCH_ACTIVE_RATE", "600"))
PROFILE = os.environ.get("BENCH_ACTIVE_PROFILE", "")


def open_sockets(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


def measure(tenants: int = TENANTS, rate: float = RATE) -> dict[str, Any]:
    made_at = time.monotonic()
    profile = Path(PROFILE).resolve() if PROFILE else None
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        os.environ["BENCH_PROFILE_OUT"] = str(profile / "shard.collapsed")
    module = "bench.sampled" if profile is not None else "interlink"
    with delivery.world(tenants=tenants, users=1, shard_module=module) as w:
        pid = w["pid"]
        out: dict[str, Any] = {
            "tenants": tenants,
            "offered_per_s": rate,
            "created_in_s": round(time.monotonic() - made_at, 1),
            "rss_before_mib": delivery.rss_mib(pid),
        }
        phases = delivery.Phases(w)
        for direction in ("wa", "gc"):
            if profile is not None:
                os.kill(pid, signal.SIGUSR1)  # only this direction's first messages
            row = phases.run(direction, rate, tenants / rate)
            if profile is not None:
                os.kill(pid, signal.SIGUSR2)
                time.sleep(1.0)  # the shard writes between two greenlet switches
                (profile / "shard.collapsed").replace(profile / f"first-{direction}.collapsed")
            out[direction] = {
                k: row[k]
                for k in ("acked", "delivered", "lost", "delivered_per_s", "ack_p99_ms",
                          "e2e_p50_ms", "e2e_p99_ms", "drain_s", "cpu_us_per_message",
                          "shard_cpu_s", "stand_in_cpu_s")
            }  # fmt: skip
        out["rss_after_mib"] = rss = delivery.rss_mib(pid)
        out["kib_per_active_tenant"] = round(
            (rss - out["rss_before_mib"]) * 1024 / max(1, tenants), 1
        )
        out["open_sockets"] = open_sockets(pid)
        stats = requests.get(w["fake"] + "/_stats", timeout=30).json()
        out["provider_connections_made"] = stats["connections"]
        proc = w["shard_proc"]
        began = time.monotonic()
        proc.terminate()
        proc.wait(60)
        out["stop_s"] = round(time.monotonic() - began, 2)
    return out


def table(out: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    n = out["tenants"]
    first = min(out["wa"]["delivered_per_s"], out["gc"]["delivered_per_s"])
    lost = out["wa"]["lost"] + out["gc"]["lost"]
    return [
        (f"{n} active tenants: shard RSS", f"{out['rss_after_mib']} MiB", "<= 500 MiB",
         _ok(out["rss_after_mib"] <= 500)),
        ("  memory per active tenant", f"{out['kib_per_active_tenant']} KiB", "-", ""),
        (f"  first messages delivered (slower way; {out['offered_per_s']:g}/s offered)",
         f"{first}/s", ">= 500/s", _ok(first >= 500)),
        ("  first messages lost", str(lost), "0", _ok(lost == 0)),
        ("  open sockets (pooled per host)", str(out["open_sockets"]), "-", ""),
        ("  stop the shard", f"{out['stop_s']} s", "<= 5 s", _ok(out["stop_s"] <= 5)),
    ]  # fmt: skip


def _ok(flag: bool) -> str:
    return "yes" if flag else "NO"


def main() -> None:
    out = measure()
    for name, value, target, ok in table(out):
        print(f"{name:<60}  {value:>14}  {target:>10}  {ok}")
    path = Path(__file__).resolve().parent / "active-tenants-results.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
