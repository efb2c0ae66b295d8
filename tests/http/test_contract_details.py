"""Details of INTERFACE.md an outside test suite relies on, found by a contract review."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import falcon.testing
import requests

from interlink.services import Services
from interlink.telemetry import metrics
from tests.support.shard import ShardProcess


def auth(services: Services) -> dict[str, str]:
    return {"Authorization": f"Bearer {services.admin_token}"}


def test_every_error_is_json_with_a_title_and_a_description(
    client: falcon.testing.TestClient, services: Services
) -> None:
    for path, method, status in (
        ("/nothing", "GET", 404),
        ("/api/nothing", "GET", 404),
        ("/healthz", "DELETE", 405),
    ):
        result = client.simulate_request(
            method, path, headers={**auth(services), "Accept": "application/xml"}
        )
        assert result.status_code == status
        assert result.headers["Content-Type"].startswith("application/json")
        assert set(result.json) >= {"title", "description"} and result.json["description"]


def test_a_lone_surrogate_in_an_admin_field_is_a_400_and_stores_nothing(
    client: falcon.testing.TestClient, services: Services
) -> None:
    headers = {**auth(services), "Content-Type": "application/json"}
    created = client.simulate_post(
        "/api/tenants", body=b'{"tenantId": "acme", "name": "\\ud800"}', headers=headers
    )
    assert created.status_code == 400 and created.json["title"]
    client.simulate_post(
        "/api/tenants", json={"tenantId": "acme", "name": "Acme"}, headers=auth(services)
    )
    body = b'{"clientId": "\\ud800", "clientSecret": "client-secret-1234", "region": "mypurecloud.ie", "integrationId": "int-1", "webhookSecret": "webhook-secret-0123456789"}'
    put = client.simulate_put("/api/tenants/acme/genesys/credentials", body=body, headers=headers)
    assert put.status_code == 400
    assert client.simulate_get("/api/tenants/acme", headers=auth(services)).status_code == 200
    assert client.simulate_get("/api/tenants", headers=auth(services)).status_code == 200


def test_metrics_keep_large_counts_exact() -> None:
    before = metrics.value("interlink_items_accepted_total")
    metrics.ITEMS_ACCEPTED.inc(1_234_567)
    shown = float(metrics.render().decode().split("\ninterlink_items_accepted_total ")[1].split()[0])
    assert shown == before + 1_234_567


def test_a_port_with_an_underscore_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "interlink", "serve"],
        env={"PATH": os.environ.get("PATH", ""), "INTERLINK_PORT": "1_0", "INTERLINK_DATA_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "INTERLINK_PORT" in result.stderr


def test_a_shard_whose_redis_is_away_serves_with_readyz_503(tmp_path: Path) -> None:
    shard = ShardProcess(tmp_path, {"INTERLINK_REDIS_URL": "redis://127.0.0.1:1/0"})
    shard.start_process()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                ready = requests.get(shard.url + "/readyz", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert ready.status_code == 503
        assert "redis unreachable" in ready.json()["problems"]
        assert ready.headers["Retry-After"]
        assert requests.get(shard.url + "/healthz", timeout=2).status_code == 200
    finally:
        shard.kill()
