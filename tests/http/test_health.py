import falcon.testing
import gevent

from interlink.http.app import create_app
from interlink.inbox import Entry
from interlink.services import Services


def test_healthz_answers_while_the_process_lives(client: falcon.testing.TestClient) -> None:
    assert client.simulate_get("/healthz").json == {"status": "ok"}


def test_healthz_asks_nothing_of_redis(down: Services) -> None:
    """A Redis outage is readiness's business: restarting every shard would not end it."""
    client = falcon.testing.TestClient(create_app(down))
    assert client.simulate_get("/healthz").status_code == 200
    assert client.simulate_get("/readyz").status_code == 503


def test_a_commit_loop_the_next_accept_brings_back_is_healthy_again(services: Services) -> None:
    client = falcon.testing.TestClient(create_app(services))
    inbox = services.inbox
    inbox.commit_loop_grace = 0.0
    entry = Entry("acme", "wa.message", {"text": "hi"}, conversation="u1")
    inbox.accept([entry])
    committer = inbox._committer
    assert committer is not None
    committer.kill()
    gevent.sleep(0)  # the loop's end is noted by the hub, as a probe would find it

    resp = client.simulate_get("/healthz")
    assert resp.status_code == 503
    assert resp.json["title"] == "Unhealthy"
    assert resp.json["description"].startswith("group-commit loop dead since ")

    inbox.accept([entry._replace(dedupe="wamid.2")])
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
