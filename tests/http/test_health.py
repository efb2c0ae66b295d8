import falcon.testing


def test_healthz_answers_while_the_process_lives(client: falcon.testing.TestClient) -> None:
    assert client.simulate_get("/healthz").json == {"status": "ok"}


def test_readyz_is_503_without_a_supervisor(client: falcon.testing.TestClient) -> None:
    resp = client.simulate_get("/readyz")
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "1"
    assert "supervisor not running" in resp.json["problems"]


def test_metrics_is_prometheus_text(client: falcon.testing.TestClient) -> None:
    resp = client.simulate_get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
