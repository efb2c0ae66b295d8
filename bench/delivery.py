"""Delivery through the public contract: what one shard costs and carries per delivered message.

A shard process (``interlink serve`` on its own embedded store), ``BENCH_TENANTS`` tenants made
through the admin API with ``BENCH_USERS`` WhatsApp users each, and a stand-in for Genesys and
Meta (``bench.fake_providers``: raw sockets, far cheaper than the shard) on this machine. An
open-loop sender (``bench.delivery_load``) posts signed webhooks at a fixed rate, one direction
at a time; the stand-in records each message's arrival. Measured per phase:

- the shard process's own CPU (utime + stime from ``/proc/<pid>/stat``, its store excluded) per
  delivered message, from the first webhook until the last delivery, and as a multiple of a bare
  Falcon POST echo (``bench.hello``, same server settings) measured in the same run;
- end to end latency (webhook due → provider stand-in received), p50 / p99;
- webhook ack latency, from when each request was due (so a slow shard cannot hide it);
- delivered messages per second, out-of-order and duplicate arrivals.

``python -m bench.delivery`` runs it alone (``make bench-delivery``); ``make bench`` includes it.
``BENCH_STEADY=0`` leaves out the 200/s and 500/s phases (saturation and 2x only).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from bench.webhooks import wait_ready
from interlink.store.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent
TENANTS = int(os.environ.get("BENCH_TENANTS", "400"))
USERS = int(os.environ.get("BENCH_USERS", "4"))
SECONDS = float(os.environ.get("BENCH_DELIVERY_SECONDS", "8"))
DRAIN_TIMEOUT = 120.0
CLOSE_EVERY = int(os.environ.get("BENCH_CLOSE_EVERY", "100"))  # stand-in keep-alive closes
# "0": only the saturation and 2x phases of each direction (after the warm-up), for iterating
# on overload behaviour in a third of the time.
STEADY = os.environ.get("BENCH_STEADY", "1") != "0"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextmanager
def world(
    tenants: int = TENANTS, users: int = USERS, *, shard_module: str = "interlink"
) -> Iterator[dict[str, Any]]:
    data_dir = Path(tempfile.mkdtemp(prefix="interlink-delivery-"))
    fake_port, shard_port, hello_port = free_port(), free_port(), free_port()
    fake = f"http://127.0.0.1:{fake_port}"
    shard_url = f"http://127.0.0.1:{shard_port}"
    procs = [
        _spawn([sys.executable, "-m", "bench.fake_providers", str(fake_port), str(CLOSE_EVERY)]),
        _spawn([sys.executable, "-m", "bench.hello", str(hello_port)]),
    ]
    admin = secrets.token_urlsafe(32)
    try:
        wait_ready(fake + "/_stats")
        wait_ready(f"http://127.0.0.1:{hello_port}/")
        shard = _spawn(
            [sys.executable, "-m", shard_module, "serve"],
            {
                "INTERLINK_PORT": str(shard_port),
                "INTERLINK_DATA_DIR": str(data_dir),
                "INTERLINK_ADMIN_TOKEN": admin,
                "INTERLINK_PUBLIC_URL": shard_url,
                "INTERLINK_LOG_LEVEL": "WARNING",
                "INTERLINK_GENESYS_LOGIN_URL": fake + "/genesys/{region}/login",
                "INTERLINK_GENESYS_API_URL": fake + "/genesys/{region}/api",
                "INTERLINK_META_GRAPH_URL": fake + "/meta/v25.0",
                "INTERLINK_HTTP_MAX_CONNECTIONS": "2000",
            },
        )
        procs.append(shard)
        wait_ready(shard_url + "/readyz")
        session = requests.Session()
        with ThreadPoolExecutor(8) as pool:
            made = list(pool.map(lambda n: _tenant(session, shard_url, admin, n), range(tenants)))
        yield {
            "fake": fake,
            "shard": shard_url,
            "port": shard_port,
            "pid": shard.pid,
            "shard_proc": shard,
            "hello_port": hello_port,
            "hello_pid": procs[1].pid,
            "tenants": made,
            "users": users,
        }
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        import shutil

        shutil.rmtree(data_dir, ignore_errors=True)


def _tenant(session: requests.Session, shard: str, admin: str, n: int) -> dict[str, Any]:
    tenant_id = f"bench-{n}"
    pnid, integration = f"1065403522{n:05d}", f"integration-bench-{n}"
    app_secret, webhook_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    region = "mypurecloud.ie"
    auth = {"Authorization": f"Bearer {admin}"}
    calls = [
        ("POST", "/api/tenants", {"tenantId": tenant_id, "name": "Bench", "genesysOrgId": f"org-{n}", "genesysOrgName": "Bench", "genesysRegion": region}),
        ("PUT", f"/api/tenants/{tenant_id}/genesys/credentials", {"clientId": f"client-{n}", "clientSecret": secrets.token_urlsafe(24), "region": region, "integrationId": integration, "webhookSecret": webhook_secret}),
        ("POST", f"/api/tenants/{tenant_id}/whatsapp/config", {"meta_access_token": secrets.token_urlsafe(40), "whatsapp_phone_number_id": pnid, "whatsapp_business_account_id": "waba-bench", "meta_app_secret": app_secret, "webhook_verify_token": secrets.token_urlsafe(12)}),
    ]  # fmt: skip
    for method, path, body in calls:
        session.request(method, shard + path, json=body, headers=auth, timeout=30).raise_for_status()
    return {
        "phone_number_id": pnid,
        "app_secret": app_secret,
        "webhook_secret": webhook_secret,
        "integration": integration,
    }


def ceiling(w: dict[str, Any], seconds: float = 3.0) -> dict[str, Any]:
    """CPU per bare POST echo of a webhook-sized body, closed loop, 32 connections."""
    from bench.wire import request

    body = json.dumps({"pad": "x" * 600}).encode()
    wire = request("POST", "/", body, {"Content-Type": "application/json"})
    before = cpu_seconds(w["hello_pid"])
    out = subprocess.run(
        [sys.executable, "-m", "bench.load", "127.0.0.1", str(w["hello_port"]), "32", str(seconds), "0"],
        cwd=ROOT, input=json.dumps([wire.decode("latin-1")]), capture_output=True, text=True, check=True,
    )  # fmt: skip
    result = json.loads(out.stdout)
    spent = cpu_seconds(w["hello_pid"]) - before
    return {"rps": result["rps"], "us_per_post": round(spent / max(1, result["requests"]) * 1e6, 1)}


class Phases:
    """Runs load phases against one world; numbers each conversation's messages on, so that
    every phase's wamids and Genesys ids are new (a repeat would take the duplicate path)."""

    def __init__(self, w: dict[str, Any]) -> None:
        self.w = w
        self.first = {"wa": 0, "gc": 0}

    def run(
        self, direction: str, rate: float, seconds: float, *, drain: float = DRAIN_TIMEOUT
    ) -> dict[str, Any]:
        w = self.w
        side = "genesys" if direction == "wa" else "meta"
        requests.post(w["fake"] + "/_reset", timeout=10)
        cpu_before = cpu_seconds(w["pid"])
        started = time.time()
        spec = {
            "host": "127.0.0.1", "port": w["port"], "rate": rate, "duration": seconds,
            "direction": direction, "tenants": w["tenants"], "users": w["users"],
            "first": self.first[direction],
        }  # fmt: skip
        out = subprocess.run(
            [sys.executable, "-m", "bench.delivery_load"],
            cwd=ROOT, input=json.dumps(spec), capture_output=True, text=True, check=True,
        )  # fmt: skip
        acks = json.loads(out.stdout)
        per_round = len(w["tenants"]) * w["users"]
        self.first[direction] += acks["sent"] // per_round + 1
        # Wait until every acknowledged message arrived, or no progress for a while.
        deadline = time.monotonic() + drain
        seen, last_change = -1, time.monotonic()
        while True:
            stats = requests.get(w["fake"] + "/_stats", timeout=30).json()
            arrived = len(stats[side]["latencies"])
            if arrived >= acks["acked"] or time.monotonic() > deadline:
                break
            if arrived != seen:
                seen, last_change = arrived, time.monotonic()
            elif time.monotonic() - last_change > 15:
                break
            time.sleep(0.25)
        cpu = cpu_seconds(w["pid"]) - cpu_before
        latencies = sorted(stats[side]["latencies"])
        arrivals = stats[side]["arrivals"]
        span = (max(arrivals) - started) if arrivals else 0.0
        delivered = len(latencies)
        return {
            "direction": direction,
            "offered_per_s": rate,
            "seconds": seconds,
            "acked": acks["acked"],
            "ack_statuses": acks["statuses"],
            "ack_errors": acks["errors"],
            "ack_p50_ms": acks["p50_ms"],
            "ack_p99_ms": acks["p99_ms"],
            "delivered": delivered,
            "lost": acks["acked"] - delivered,
            "out_of_order": stats["out_of_order"],
            "duplicates": stats["duplicates"],
            "delivered_per_s": round(delivered / span, 1) if span else 0.0,
            "drain_s": round(span - seconds, 2),
            "e2e_p50_ms": _pct(latencies, 0.5),
            "e2e_p99_ms": _pct(latencies, 0.99),
            "shard_cpu_s": round(cpu, 3),
            "cpu_us_per_message": round(cpu / delivered * 1e6, 1) if delivered else None,
            "stand_in_cpu_s": round(stats["cpu_s"], 2),
            "shard_rss_mib": rss_mib(w["pid"]),
        }


def _pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    return round(values[min(len(values) - 1, int(len(values) * p))] * 1000, 1)


def measure(saturate: bool = True) -> dict[str, Any]:
    """Every delivery number of ``make bench``; see the module docstring."""
    results: dict[str, Any] = {"tenants": TENANTS, "users_per_tenant": USERS, "seconds": SECONDS}
    with world() as w:
        phases = Phases(w)
        # Every conversation writes once first: its actor exists, its 24-hour window is open and
        # its Genesys conversation is known (the agent's messages are routed by it).
        conversations = TENANTS * USERS
        results["warm_up"] = phases.run("wa", 250, conversations / 250)
        results["ceiling"] = ceil = ceiling(w)
        rows: dict[str, Any] = {}
        for direction in ("wa", "gc"):
            for rate in (200, 500) if STEADY else ():
                rows[f"{direction}@{rate}"] = phases.run(direction, rate, SECONDS)
            if saturate:
                sat = phases.run(direction, 1500, SECONDS)
                rows[f"{direction}@saturation"] = sat
                capacity = max(sat["delivered_per_s"], 50.0)
                rows[f"{direction}@2x"] = phases.run(direction, round(2 * capacity), SECONDS)
        for row in rows.values():
            if row["cpu_us_per_message"] is not None:
                row["x_bare_post"] = round(row["cpu_us_per_message"] / ceil["us_per_post"], 1)
        results["phases"] = rows
        results["shard_rss_mib"] = rss_mib(w["pid"])
    return results


def table(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    ceil = results["ceiling"]
    rows: list[tuple[str, str, str, str]] = [
        ("bare Falcon POST echo (yardstick)", f"{ceil['us_per_post']} us CPU", "-", ""),
    ]
    names = {"wa": "WhatsApp -> Genesys", "gc": "Genesys -> WhatsApp"}
    for key, row in results["phases"].items():
        direction, load = key.split("@")
        name = f"{names[direction]} @{load} ({row['offered_per_s']}/s)"
        rows.append(
            (
                f"{name}: CPU per delivered msg",
                f"{row['cpu_us_per_message']} us = {row.get('x_bare_post')}x",
                "<= 8x",
                _ok(row.get("x_bare_post") is not None and row["x_bare_post"] <= 8),
            )
        )
        if load == "500":
            rows.append(
                ("  p99 end to end", f"{row['e2e_p99_ms']} ms", "<= 100 ms",
                 _ok(row["e2e_p99_ms"] <= 100))
            )  # fmt: skip
        if load == "saturation":
            rows.append(
                ("  delivered at saturation", f"{row['delivered_per_s']}/s", ">= 1000/s",
                 _ok(row["delivered_per_s"] >= 1000))
            )  # fmt: skip
        if load == "2x":
            rows.append(
                ("  webhook ack p99 at 2x capacity", f"{row['ack_p99_ms']} ms", "<= 50 ms",
                 _ok(row["ack_p99_ms"] <= 50))
            )  # fmt: skip
        rows.append(
            ("  lost / out of order / duplicates",
             f"{row['lost']} / {row['out_of_order']} / {row['duplicates']}", "0 / 0 / 0",
             _ok(row["lost"] == 0 and row["out_of_order"] == 0 and row["duplicates"] == 0))
        )  # fmt: skip
    return rows


def _ok(flag: bool) -> str:
    return "yes" if flag else "NO"


def main() -> None:
    saturate = os.environ.get("BENCH_SATURATE", "1") != "0"
    results = measure(saturate=saturate)
    rows = table(results)
    width = max(len(r[0]) for r in rows)
    for name, value, target, ok in rows:
        print(f"{name:<{width}}  {value:>22}  {target:>10}  {ok}")
    out = Path(__file__).resolve().parent / "delivery-results.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
