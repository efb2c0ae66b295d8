"""Every log line about one tenant carries its ``tenant`` field; the access log is opt-in and
never shows a media token."""

from __future__ import annotations

import contextvars
import dataclasses
import io
import json
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import falcon.testing
import gevent
import gevent.pool
import pytest

from interlink.actors.actor import Actor
from interlink.http.app import create_app
from interlink.security import media_links
from interlink.services import Services
from interlink.settings import SettingsError, load
from interlink.telemetry import logs

log = logging.getLogger("tests.telemetry")


class Captured:
    def __init__(self, formatter: logging.Formatter) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(formatter)

    def lines(self) -> list[str]:
        return [line for line in self.stream.getvalue().splitlines() if line]

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]


def _capture(formatter: logging.Formatter) -> Iterator[Captured]:
    captured = Captured(formatter)
    root = logging.getLogger()
    level = root.level
    root.addHandler(captured.handler)
    root.setLevel(logging.INFO)
    try:
        yield captured
    finally:
        root.removeHandler(captured.handler)
        root.setLevel(level)


@pytest.fixture
def json_log() -> Iterator[Captured]:
    yield from _capture(logs.JsonFormatter())


@pytest.fixture
def text_log() -> Iterator[Captured]:
    yield from _capture(logs.TextFormatter())


# -- the bound fields ------------------------------------------------------------------------------
def test_a_bound_tenant_is_on_every_json_line_until_reset(json_log: Captured) -> None:
    log.info("before")
    token = logs.bind("acme", wamid="wamid.X1", genesys_message_id="g-1")
    try:
        log.info("during")
        log.warning("during, with fields", extra={"kind": "wa.message"})
    finally:
        logs.reset(token)
    log.info("after")
    before, during, warned, after = json_log.records()
    assert "tenant" not in before and "tenant" not in after
    for record in (during, warned):
        assert (record["tenant"], record["wamid"], record["genesysMessageId"]) == (
            "acme",
            "wamid.X1",
            "g-1",
        )
    assert warned["kind"] == "wa.message"


def test_the_text_format_shows_the_bound_tenant(text_log: Captured) -> None:
    with logs.bound("acme"):
        log.info("hello")
    (line,) = text_log.lines()
    assert "tenant=acme" in line


def test_a_record_naming_its_tenant_wins_over_the_bound_one(json_log: Captured) -> None:
    with logs.bound("acme", wamid="wamid.1"):
        log.info("about another tenant", extra={"tenant": "beta"})
    (record,) = json_log.records()
    assert record["tenant"] == "beta" and record["wamid"] == "wamid.1"


def test_a_bound_value_is_cut_short(json_log: Captured) -> None:
    with logs.bound("x" * 10_000):
        log.info("long")
    (record,) = json_log.records()
    assert record["tenant"] == "x" * logs.MAX_FIELD


def test_each_greenlet_starts_without_its_spawner_s_tenant() -> None:
    """Why an actor binds its tenant in its own greenlet: nothing is inherited."""
    with logs.bound("acme"):
        seen = gevent.spawn(logs.current).get(timeout=5)
    assert dict(seen) == {}


# -- actors ---------------------------------------------------------------------------------------
class Echo(Actor):
    def __init__(self, tenant_id: str | None) -> None:
        super().__init__()
        if tenant_id is not None:
            self.tenant_id = tenant_id

    def receive(self, message: Any) -> Any:
        log.warning("handled", extra={"what": message})
        gevent.spawn(log.info, "spawned by the actor").join()  # not the actor's own greenlet
        return dict(logs.current())


@dataclasses.dataclass
class HasConfig:
    tenant_id: str


class Configured(Actor):
    def __init__(self, tenant_id: str) -> None:
        super().__init__()
        self.config = HasConfig(tenant_id)

    def receive(self, message: Any) -> Any:
        log.info("configured actor")
        return None


def test_an_actor_s_lines_carry_its_tenant(json_log: Captured) -> None:
    ref = Echo.start("acme")
    try:
        assert ref.ask("one", timeout=5) == {"tenant": "acme"}
    finally:
        ref.stop(timeout=5)
    handled = [r for r in json_log.records() if r["msg"] == "handled"]
    assert handled and all(r["tenant"] == "acme" for r in handled)
    # The test itself (another greenlet) is bound to nothing afterwards.
    assert dict(logs.current()) == {}


def test_an_actor_with_a_tenant_config_and_one_without(json_log: Captured) -> None:
    configured, plain = Configured.start("beta"), Echo.start(None)
    try:
        configured.ask("x", timeout=5)
        assert plain.ask("y", timeout=5) == {}
    finally:
        configured.stop(timeout=5)
        plain.stop(timeout=5)
    by_msg = {r["msg"]: r for r in json_log.records()}
    assert by_msg["configured actor"]["tenant"] == "beta"
    assert "tenant" not in by_msg["handled"]


# -- requests -------------------------------------------------------------------------------------
def _client(services: Services, access: bool) -> falcon.testing.TestClient:
    services.settings = dataclasses.replace(services.settings, access_log=access)
    return falcon.testing.TestClient(create_app(services))


def test_a_request_binds_the_tenant_of_its_path_for_itself_only(
    services: Services, json_log: Captured
) -> None:
    client = _client(services, access=True)
    response = client.simulate_post(
        "/webhooks/whatsapp/acme",
        body=b"{}",
        headers={"X-Hub-Signature-256": "sha256=00", "Content-Type": "application/json"},
    )
    assert response.status_code == 404  # no such tenant
    (line,) = [r for r in json_log.records() if r["logger"] == "interlink.access"]
    assert (line["route"], line["tenant"]) == ("/webhooks/whatsapp/{tenant_id}", "acme")
    client.simulate_post("/webhooks/whatsapp/" + "x" * 300, body=b"{}")  # not a tenant id
    assert "tenant" not in json_log.records()[-1]
    assert dict(logs.current()) == {}  # the request's binding did not outlive it


def test_the_access_log_is_off_by_default(services: Services, json_log: Captured) -> None:
    assert load({}).access_log is False
    client = _client(services, access=services.settings.access_log)
    assert client.simulate_get("/healthz").status_code == 200
    assert [r for r in json_log.records() if r["logger"] == "interlink.access"] == []


def test_the_access_log_names_method_route_status_duration_and_tenant(
    services: Services, json_log: Captured
) -> None:
    client = _client(services, access=True)
    headers = {"Authorization": f"Bearer {services.admin_token}"}
    client.simulate_get("/healthz")
    client.simulate_get("/api/tenants/acme", headers=headers, query_string="secret=1")
    client.simulate_get("/no/such/" + "p" * 500)
    health, tenant, missing = [r for r in json_log.records() if r["logger"] == "interlink.access"]
    assert (health["method"], health["route"], health["status"]) == ("GET", "/healthz", 200)
    assert "tenant" not in health and health["ms"] >= 0
    assert (tenant["route"], tenant["status"], tenant["tenant"]) == (
        "/api/tenants/{tenantId}",
        404,
        "acme",
    )
    assert missing["status"] == 404 and len(missing["route"]) == logs.MAX_ROUTE
    assert "secret" not in "\n".join(json_log.lines())


def test_the_access_log_never_shows_a_media_token(services: Services, json_log: Captured) -> None:
    client = _client(services, access=True)
    token = media_links.make("acme", "media-1", services.secret_keys)
    forged = token[:-4] + "AAAA"
    client.simulate_get(f"/media/{token}", query_string=f"t={token}")
    client.simulate_get(f"/media/{forged}")
    client.simulate_get(f"/media/{token}/more")  # no route: the path itself
    everything = "\n".join(json_log.lines())
    assert token not in everything and forged not in everything
    assert token[:20] not in everything
    routes = [r["route"] for r in json_log.records() if r["logger"] == "interlink.access"]
    assert routes == ["/media/{token}", "/media/{token}", "/media/…"]
    # A valid link names its tenant (the media resource binds it): the line says so.
    valid = next(r for r in json_log.records() if r["logger"] == "interlink.access")
    assert valid["tenant"] == "acme"


def test_the_access_log_setting_is_validated() -> None:
    assert load({"INTERLINK_ACCESS_LOG": "TRUE"}).access_log is True
    assert load({"INTERLINK_ACCESS_LOG": "false"}).access_log is False
    with pytest.raises(SettingsError, match="INTERLINK_ACCESS_LOG"):
        load({"INTERLINK_ACCESS_LOG": "yes please"})


def test_a_media_path_without_a_route_hides_its_token() -> None:
    secret = secrets.token_urlsafe(30)
    assert logs.route_of(None, f"/media/{secret}") == "/media/…"
    assert logs.route_of("/media/{token}", f"/media/{secret}") == "/media/{token}"


def test_a_greenlet_runs_in_a_request_s_captured_context(json_log: Captured) -> None:
    """What the WhatsApp sender does: a request made while a message's fields are bound is
    carried out in its own greenlet under those fields; a plain greenlet has none."""
    with logs.bound("acme", wamid="wamid.1"):
        captured = contextvars.copy_context()
    gevent.spawn(captured.run, log.info, "for the request").join(timeout=5)
    gevent.spawn(log.info, "plain").join(timeout=5)
    by_msg = {r["msg"]: r for r in json_log.records()}
    assert (by_msg["for the request"]["tenant"], by_msg["for the request"]["wamid"]) == (
        "acme",
        "wamid.1",
    )
    assert "tenant" not in by_msg["plain"]
