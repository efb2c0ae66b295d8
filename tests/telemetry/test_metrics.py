"""``/metrics``: every contract series from the first scrape, webhooks counted and timed, the inbox
gauges read from the real stream, and no tenant label anywhere."""

from __future__ import annotations

import re
import time

import falcon.testing
import redis

from interlink.inbox.reader import GROUP
from interlink.services import Services
from interlink.store import keys
from interlink.telemetry import metrics

# Each contract series with the sample lines it must show before any traffic.
CONTRACT = [
    'interlink_webhooks_total{provider="whatsapp",status="200"}',
    'interlink_webhooks_total{provider="genesys",status="200"}',
    'interlink_webhook_ack_seconds_count{provider="whatsapp"}',
    'interlink_webhook_ack_seconds_count{provider="genesys"}',
    'interlink_delivery_seconds_count{direction="to_genesys"}',
    'interlink_delivery_seconds_count{direction="to_whatsapp"}',
    'interlink_provider_request_seconds_count{outcome="2xx",provider="whatsapp"}',
    'interlink_provider_request_seconds_count{outcome="5xx",provider="genesys"}',
    "interlink_inbox_pending",
    "interlink_inbox_oldest_age_seconds",
    "interlink_dead_letters",
    'interlink_tenants{state="active"}',
    'interlink_tenants{state="failed"}',
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
]


def samples(text: str) -> dict[str, float]:
    """Sample lines by name and labels (labels sorted, so the test does not depend on order)."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, number = line.rpartition(" ")
        name, _, labels = series.partition("{")
        pairs = sorted(re.findall(r'(\w+)="([^"]*)"', labels))
        key = name + ("{" + ",".join(f'{k}="{v}"' for k, v in pairs) + "}" if pairs else "")
        found[key] = float(number)
    return found


def scrape(client: falcon.testing.TestClient) -> dict[str, float]:
    resp = client.simulate_get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return samples(resp.text)


def test_the_first_scrape_lists_every_contract_series(client: falcon.testing.TestClient) -> None:
    shown = scrape(client)
    missing = [series for series in CONTRACT if series not in shown]
    assert missing == []


def test_a_webhook_answer_is_counted_by_provider_and_status_and_timed(
    client: falcon.testing.TestClient,
) -> None:
    before = scrape(client)
    resp = client.simulate_post("/webhooks/whatsapp/nobody-here", body=b"{}")
    assert resp.status_code == 404
    resp = client.simulate_post("/webhooks/genesys", body=b"not json")
    assert resp.status_code == 400
    after = scrape(client)

    def grew(series: str) -> float:
        return after[series] - before.get(series, 0.0)

    assert grew('interlink_webhooks_total{provider="whatsapp",status="404"}') == 1
    assert grew('interlink_webhooks_total{provider="genesys",status="400"}') == 1
    assert grew('interlink_webhook_ack_seconds_count{provider="whatsapp"}') == 1
    assert grew('interlink_webhook_ack_seconds_count{provider="genesys"}') == 1
    assert grew('interlink_webhooks_total{provider="whatsapp",status="200"}') == 0


def test_no_series_carries_a_tenant(client: falcon.testing.TestClient) -> None:
    client.simulate_post("/webhooks/whatsapp/acme-tenant", body=b"{}")
    lines = [ln for ln in client.simulate_get("/metrics").text.splitlines() if ln[:1] != "#"]
    assert [ln for ln in lines if "tenant" in ln.partition("{")[2] or "acme" in ln] == []


def test_inbox_gauges_read_the_pending_entries_of_the_shards_stream(
    client: falcon.testing.TestClient, services: Services, redis_client: redis.Redis
) -> None:
    stream = keys.inbox(services.settings.shard_id)
    assert scrape(client)["interlink_inbox_pending"] == 0
    redis_client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    # An entry accepted 30 s ago, read by the owner and not acknowledged.
    accepted_ms = int(time.time() * 1000) - 30_000
    redis_client.xadd(stream, {"t": "acme"}, id=f"{accepted_ms}-0")
    redis_client.xadd(stream, {"t": "acme"})
    redis_client.xreadgroup(GROUP, "owner", {stream: ">"})

    shown = scrape(client)
    assert shown["interlink_inbox_pending"] == 2
    assert 30 <= shown["interlink_inbox_oldest_age_seconds"] < 60

    redis_client.xack(stream, GROUP, f"{accepted_ms}-0")
    shown = scrape(client)
    assert shown["interlink_inbox_pending"] == 1
    assert shown["interlink_inbox_oldest_age_seconds"] < 30


def test_a_delivery_is_timed_from_the_entry_ids_accept_time() -> None:
    series = "interlink_delivery_seconds"
    before = samples(metrics.render().decode())
    now = time.time()
    metrics.delivered("gc.message", f"{int(now * 1000) - 2_000}-0", now=now)
    metrics.delivered("wa.status", f"{int(now * 1000)}-0", now=now)  # a receipt: not a delivery
    after = samples(metrics.render().decode())

    def grew(name: str) -> float:
        return after[name] - before[name]

    assert grew(f'{series}_count{{direction="to_whatsapp"}}') == 1
    assert 1.9 < grew(f'{series}_sum{{direction="to_whatsapp"}}') < 2.1
    assert grew(f'{series}_bucket{{direction="to_whatsapp",le="1.0"}}') == 0
    assert grew(f'{series}_bucket{{direction="to_whatsapp",le="2.5"}}') == 1
    assert grew(f'{series}_count{{direction="to_genesys"}}') == 0


def test_provider_requests_are_timed_by_status_class() -> None:
    def count(outcome: str) -> float:
        return metrics.value(
            "interlink_provider_request_seconds_count", provider="genesys", outcome=outcome
        )

    before = {o: count(o) for o in metrics.OUTCOMES}
    started = time.monotonic()
    for status in (200, 202, 429, 503, None):
        metrics.provider_request("genesys", started, status)
    grown = {o: count(o) - before[o] for o in metrics.OUTCOMES}
    assert grown == {"2xx": 2, "4xx": 1, "5xx": 1, "error": 1}


def test_the_lock_free_histogram_counts_like_prometheus() -> None:
    """``le`` is inclusive: a value equal to a bound lands in that bucket; past the last, +Inf."""
    before = {
        le: metrics.value("interlink_webhook_ack_seconds_bucket", provider="genesys", le=le)
        for le in ("0.001", "0.005", "+Inf")
    }
    for seconds in (0.001, 0.004, 9.0):
        metrics.WEBHOOK_ACK.observe(("genesys",), seconds)
    after = {
        le: metrics.value("interlink_webhook_ack_seconds_bucket", provider="genesys", le=le)
        for le in before
    }
    assert {le: after[le] - before[le] for le in before} == {"0.001": 1, "0.005": 2, "+Inf": 3}


def test_inbox_pending_counts_what_waits_in_the_handover_stream_and_outbox(
    client: falcon.testing.TestClient, services: Services, redis_client: redis.Redis
) -> None:
    shard_id = services.settings.shard_id
    assert scrape(client)["interlink_inbox_pending"] == 0
    redis_client.xadd(keys.handover(shard_id), {"t": "acme", "o": "1-0", "g": "1"})
    redis_client.xadd(keys.outbox(shard_id), {"t": "globex", "to": "1"})
    assert scrape(client)["interlink_inbox_pending"] == 2


def test_the_fleet_gauges_say_whether_the_shard_is_fenced_and_its_generation(
    client: falcon.testing.TestClient, services: Services, redis_client: redis.Redis
) -> None:
    from interlink.fleet import record
    from interlink.fleet.handover import Handover

    fleet = services.fleet = Handover(redis_client, 0, 1, check_interval=0.05)
    fleet.start()
    try:
        assert fleet.wait_ready(3)
        shown = scrape(client)
        assert (shown["interlink_fleet_fenced"], shown["interlink_fleet_generation"]) == (0, 1)
        record.join(redis_client, 2)
        deadline = time.monotonic() + 3
        while not fleet.fenced and time.monotonic() < deadline:
            time.sleep(0.02)
        shown = scrape(client)
        assert (shown["interlink_fleet_fenced"], shown["interlink_fleet_generation"]) == (1, 2)
    finally:
        fleet.stop()
        fleet.release()
