"""The control endpoint against a running supervisor: the tree as an operator sees it, the admin
messages of INTERFACE.md in JSON and msgpack, and every hostile body refused without a 500."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import falcon.testing
import gevent
import msgpack
import pykka
import pytest

from interlink.actors import RestartPolicy, Supervisor, TenantActor, TreeSpec
from interlink.actors.messages import (
    SHARD_MESSAGES,
    TENANT_MESSAGES,
    Control,
    GetTenant,
    TenantChanged,
)
from interlink.http import control
from interlink.http.app import create_app
from interlink.inbox import Entry
from interlink.services import Services
from interlink.store import keys
from interlink.store.connection import connect
from interlink.store.dead_letters import DeadLetters

Client = falcon.testing.TestClient
FAST = RestartPolicy(max_restarts=2, period=10.0, min_backoff=0.01, max_backoff=0.02)
SLOW_CONTROL = 0.6  # seconds a "slow-*" tenant takes to answer a control message
MSGPACK = "application/msgpack"
TENANT_TYPES = TENANT_MESSAGES
SHARD_TYPES = SHARD_MESSAGES


class ProbeTenant(TenantActor):
    """The real tenant actor, with test doors chosen by the tenant id: ``broken-*`` cannot start,
    ``slow-*`` answers control messages late; work of kind ``crash`` crashes any of them."""

    def started(self) -> None:
        if self.tenant_id.startswith("broken"):
            raise RuntimeError("cannot start on purpose")
        super().started()

    def handle(self, work: Entry) -> Any:
        if work.kind == "crash":
            raise RuntimeError("tenant crashed on purpose")
        return super().handle(work)

    def control(self, message: Control) -> dict[str, Any]:
        if self.tenant_id.startswith("slow"):
            gevent.sleep(SLOW_CONTROL)
        return super().control(message)


# -- helpers -------------------------------------------------------------------------------------
def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        gevent.sleep(0.01)


def op(services: Services) -> dict[str, str]:
    return {"Authorization": f"Bearer {services.admin_token}"}


def send(
    client: Client,
    services: Services,
    path: str,
    body: Any,
    *,
    media: str = "application/json",
    headers: dict[str, str] | None = None,
) -> falcon.testing.Result:
    """POST ``body`` encoded as ``media`` (bytes are sent as they are)."""
    if isinstance(body, bytes):
        raw = body
    elif "msgpack" in media:
        raw = msgpack.packb(body, use_bin_type=True)
    else:
        raw = json.dumps(body).encode()
    return client.simulate_post(
        path,
        body=raw,
        headers={"Content-Type": media, **op(services), **(headers or {})},
    )


def decoded(result: falcon.testing.Result) -> Any:
    """The reply in the type it declares (and it must declare the one we expect)."""
    kind = result.headers.get("content-type", "").split(";")[0]
    if kind == MSGPACK:
        return msgpack.unpackb(result.content, raw=False)
    assert kind == "application/json", kind
    return json.loads(result.content)


def tenant_msg(
    client: Client, services: Services, tenant_id: str, kind: str, media: str = "application/json"
) -> falcon.testing.Result:
    return send(
        client, services, f"/control/tenants/{tenant_id}/messages", {"type": kind}, media=media
    )


def shard_msg(
    client: Client, services: Services, kind: str, media: str = "application/json"
) -> falcon.testing.Result:
    return send(client, services, "/control/shard/messages", {"type": kind}, media=media)


def actors(client: Client, services: Services) -> dict[str, Any]:
    result = client.simulate_get("/control/actors", headers=op(services))
    assert result.status_code == 200, result.text
    return dict(result.json)


def entry(client: Client, services: Services, tenant_id: str) -> dict[str, Any] | None:
    found = [t for t in actors(client, services)["tenants"] if t["tenantId"] == tenant_id]
    assert len(found) <= 1, found
    return found[0] if found else None


def make_tenant(services: Services, tenant_id: str) -> None:
    services.tenants.create(tenant_id, name=tenant_id.title())


@pytest.fixture
def start_tree(services: Services) -> Iterator[Callable[..., pykka.ActorRef[Supervisor]]]:
    """Start the shard's supervisor as runtime.py does (test tenant class, fast restarts)."""
    started: list[pykka.ActorRef[Supervisor]] = []

    def start(**overrides: Any) -> pykka.ActorRef[Supervisor]:
        options: dict[str, Any] = {"tenant": ProbeTenant, "policy": FAST, "stop_timeout": 2.0}
        spec = TreeSpec(
            load_config=services.tenants.load_config,
            services=services,
            **{**options, **overrides},
        )
        ref = Supervisor.start(spec, shard_id=0, shard_count=1)
        services.supervisor = ref
        started.append(ref)
        return ref

    yield start
    for ref in started:
        if ref.is_alive():
            ref.stop(timeout=10)


@pytest.fixture
def tree(start_tree: Callable[..., pykka.ActorRef[Supervisor]]) -> pykka.ActorRef[Supervisor]:
    return start_tree()


# -- /control/actors -----------------------------------------------------------------------------
def test_actors_of_an_empty_shard(client: Client, services: Services, tree: Any) -> None:
    body = actors(client, services)
    assert body["tenants"] == []
    shard = body["shard"]
    assert {"id", "count", "tenantsActive"} <= set(shard)
    assert (shard["id"], shard["count"], shard["tenantsActive"]) == (0, 1, 0)


def test_actors_after_activation_shows_the_tree(
    client: Client, services: Services, tree: Any
) -> None:
    make_tenant(services, "acme")
    assert tenant_msg(client, services, "acme", "ping").status_code == 200
    body = actors(client, services)
    assert body["shard"]["tenantsActive"] == 1
    [acme] = body["tenants"]
    assert {"tenantId", "state", "version", "conversations", "actors"} <= set(acme)
    assert (acme["tenantId"], acme["state"], acme["version"], acme["conversations"]) == (
        "acme",
        "active",
        1,
        0,
    )
    assert [a["name"] for a in acme["actors"]] == ["acme"]  # no conversation yet
    assert acme["sends"] == {"inFlight": 0, "waiting": 0, "sent": 0}
    for actor in acme["actors"]:
        assert set(actor) == {"name", "mailbox", "restarts", "lastError"}
        assert (actor["mailbox"], actor["restarts"], actor["lastError"]) == (0, 0, None)


def test_actors_counts_conversations_and_retires_idle_ones(
    client: Client, services: Services, start_tree: Any
) -> None:
    supervisor = start_tree(idle_timeout=0.2)
    make_tenant(services, "acme")
    for user in ("u1", "u2"):
        supervisor.tell(Entry("acme", "noop", {}, conversation=user))
    wait_for(lambda: (e := entry(client, services, "acme")) and e["conversations"] == 2)
    names = [a["name"] for a in entry(client, services, "acme")["actors"]]  # type: ignore[index]
    assert names[-2:] == ["conversation:u1", "conversation:u2"]
    # Idle for longer than the timeout: retired, and no longer listed.
    wait_for(lambda: entry(client, services, "acme")["conversations"] == 0)  # type: ignore[index]
    acme = entry(client, services, "acme")
    assert acme is not None and acme["state"] == "active"
    assert not [a for a in acme["actors"] if a["name"].startswith("conversation:")]


def test_actors_shows_a_crash_and_its_restart(
    client: Client, services: Services, tree: Any
) -> None:
    make_tenant(services, "acme")
    tree.tell(Entry("acme", "crash", {}))
    wait_for(
        lambda: (
            (e := entry(client, services, "acme")) is not None
            and e["restarts"] == 1
            and e["state"] == "active"
        )
    )
    acme = entry(client, services, "acme")
    assert acme is not None
    assert "tenant crashed on purpose" in acme["lastError"]
    # The restarted actor reports itself too, with the same history.
    me = next(a for a in acme["actors"] if a["name"] == "acme")
    assert me["restarts"] == 1 and "tenant crashed on purpose" in me["lastError"]
    assert acme["version"] == 1
    assert tenant_msg(client, services, "acme", "ping").json == {
        "ok": True,
        "shard": 0,
        "type": "ping",
        "pong": True,
    }


def test_actors_shows_a_failed_tenant_and_other_tenants_unharmed(
    client: Client, services: Services, tree: Any
) -> None:
    make_tenant(services, "broken-one")
    make_tenant(services, "acme")
    tree.tell(Entry("broken-one", "noop", {}))
    tree.tell(Entry("acme", "noop", {}))
    wait_for(lambda: (e := entry(client, services, "broken-one")) and e["state"] == "failed")
    broken = entry(client, services, "broken-one")
    assert broken is not None
    assert "cannot start on purpose" in broken["lastError"]
    assert broken["actors"] == [] and broken["version"] is None
    body = actors(client, services)
    assert body["shard"]["tenantsFailed"] == 1
    assert body["shard"]["tenantsActive"] == 1
    # A failed tenant does not come back on its own by being asked.
    refused = tenant_msg(client, services, "broken-one", "ping")
    assert refused.status_code == 409, refused.text
    assert "start" in refused.json["description"]
    assert entry(client, services, "acme")["state"] == "active"  # type: ignore[index]


def test_actors_shows_a_tenant_waiting_for_its_restart(
    client: Client, services: Services, start_tree: Any
) -> None:
    slow = RestartPolicy(max_restarts=2, period=10.0, min_backoff=0.5, max_backoff=0.5)
    supervisor = start_tree(policy=slow)
    make_tenant(services, "acme")
    supervisor.tell(Entry("acme", "crash", {}))
    # Dead, its death seen by the supervisor, the restart scheduled 0.5 s later.
    wait_for(
        lambda: (
            (e := entry(client, services, "acme"))
            and e["state"] == "restarting"
            and e["restarts"] == 1
        )
    )
    acme = entry(client, services, "acme")
    assert acme is not None
    assert (acme["version"], acme["actors"], acme["restarts"]) == (None, [], 1)
    assert "tenant crashed on purpose" in acme["lastError"]
    # A question meanwhile is told to come back, not left hanging.
    waiting = tenant_msg(client, services, "acme", "ping")
    assert waiting.status_code == 503 and waiting.headers.get("retry-after") == "1"
    wait_for(lambda: entry(client, services, "acme")["state"] == "active")  # type: ignore[index]


def test_no_secret_shows_in_the_tree_or_the_replies(
    client: Client, services: Services, tree: Any
) -> None:
    make_tenant(services, "acme")
    genesys_secret, webhook_secret = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    access_token, app_secret = "EAA" + secrets.token_urlsafe(60), secrets.token_hex(16)
    verify_token = secrets.token_urlsafe(16)
    services.tenants.set_genesys(
        "acme",
        client_id="client-" + secrets.token_hex(4),
        client_secret=genesys_secret,
        region="mypurecloud.ie",
        integration_id=secrets.token_hex(8),
        webhook_secret=webhook_secret,
    )
    services.tenants.set_whatsapp(
        "acme",
        access_token=access_token,
        phone_number_id=str(10**14 + secrets.randbelow(10**14)),
        business_account_id=str(secrets.randbelow(10**15)),
        app_secret=app_secret,
        verify_token=verify_token,
    )
    cached_token = secrets.token_urlsafe(32)
    services.redis.set(keys.token("acme"), cached_token, ex=600)
    tree.tell(Entry("acme", "crash", {}))
    wait_for(lambda: (e := entry(client, services, "acme")) and e["restarts"] == 1)
    seen = [client.simulate_get("/control/actors", headers=op(services)).text]
    for kind in TENANT_TYPES:
        seen.append(tenant_msg(client, services, "acme", kind).text)
    for kind in SHARD_TYPES:
        seen.append(shard_msg(client, services, kind).text)
    text = "\n".join(seen)
    for secret in (
        genesys_secret,
        webhook_secret,
        access_token,
        app_secret,
        verify_token,
        cached_token,
        services.admin_token,
    ):
        assert secret not in text


def test_actors_after_a_reload_shows_the_new_version(
    client: Client, services: Services, tree: Any
) -> None:
    make_tenant(services, "acme")
    tenant_msg(client, services, "acme", "ping")
    services.tenants.update("acme", {"name": "Acme Ltd"})
    reloaded = tenant_msg(client, services, "acme", "reload")
    assert reloaded.status_code == 200
    assert reloaded.json["reloaded"] is True and reloaded.json["version"] == 2
    assert entry(client, services, "acme")["version"] == 2  # type: ignore[index]
    # Nothing newer: a second reload changes nothing and says so.
    again = tenant_msg(client, services, "acme", "reload").json
    assert again["version"] == 2


def test_a_reload_gives_the_next_messages_the_new_genesys_integration_and_settings(
    services: Services, tree: Any
) -> None:
    make_tenant(services, "acme")

    def set_genesys(integration_id: str, region: str) -> None:
        services.tenants.set_genesys(
            "acme",
            client_id="client-1",
            client_secret=secrets.token_urlsafe(16),
            region=region,
            integration_id=integration_id,
            webhook_secret=secrets.token_urlsafe(20),
        )

    set_genesys("integration-1", "mypurecloud.ie")
    tenant = tree.ask(GetTenant("acme"), timeout=5)
    tenant.ask(Control("ping"), timeout=5)
    before = tenant.proxy().current_context().get(timeout=5)
    set_genesys("integration-2", "mypurecloud.de")
    services.tenants.update("acme", {"settings": {"reactionsAsText": False}})
    assert tenant.ask(Control("reload"), timeout=5)["reloaded"] is True
    after = tenant.proxy().current_context().get(timeout=5)
    assert (before.genesys.integration_id, after.genesys.integration_id) == (
        "integration-1",
        "integration-2",
    )
    assert after.genesys.api_base.endswith("mypurecloud.de")
    assert after.config.settings["reactionsAsText"] is False


def test_the_sender_paces_at_the_tenants_messages_per_second_after_a_reload(
    services: Services, tree: Any
) -> None:
    from interlink.providers.pacing import META_PACED_SHARE

    make_tenant(services, "acme")
    services.tenants.update("acme", {"settings": {"messagesPerSecond": 5}})
    tenant = tree.ask(GetTenant("acme"), timeout=5)
    tenant.ask(Control("ping"), timeout=5)

    def sender_rate() -> float:
        context = tenant.proxy().context.get(timeout=5)
        return float(context.sender().number_pacer.rate)

    assert sender_rate() == 5 * META_PACED_SHARE  # inbound messages share the budget
    services.tenants.update("acme", {"settings": {"messagesPerSecond": 40}})
    tenant.ask(Control("reload"), timeout=5)
    wait_for(lambda: sender_rate() == 40 * META_PACED_SHARE)


def test_actors_after_deletion_forgets_the_tenant(
    client: Client, services: Services, tree: Any
) -> None:
    make_tenant(services, "acme")
    tenant_msg(client, services, "acme", "ping")
    version = services.tenants.delete("acme")
    tree.tell(TenantChanged("acme", version, "deleted"))  # what the reload listener does
    wait_for(lambda: entry(client, services, "acme") is None)
    assert tenant_msg(client, services, "acme", "ping").status_code == 404


def test_actors_reports_a_tenant_too_slow_to_describe_itself(
    client: Client, services: Services, tree: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control, "SNAPSHOT_TIMEOUT", 0.1)
    make_tenant(services, "slow-one")
    make_tenant(services, "acme")
    tree.tell(Entry("slow-one", "noop", {}))
    tree.tell(Entry("acme", "noop", {}))
    wait_for(lambda: len(actors(client, services)["tenants"]) == 2)
    started = time.monotonic()
    body = actors(client, services)
    assert time.monotonic() - started < SLOW_CONTROL
    by_id = {t["tenantId"]: t for t in body["tenants"]}
    assert by_id["slow-one"]["timedOut"] is True and by_id["slow-one"]["state"] == "active"
    assert by_id["acme"]["version"] == 1 and "timedOut" not in by_id["acme"]


def test_actors_without_a_running_supervisor_is_503(client: Client, services: Services) -> None:
    result = client.simulate_get("/control/actors", headers=op(services))
    assert result.status_code == 503
    assert result.json["title"]


# -- auth ----------------------------------------------------------------------------------------
ROUTES = (
    ("GET", "/control/actors"),
    ("POST", "/control/tenants/acme/messages"),
    ("POST", "/control/shard/messages"),
)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_only_the_operator_token_opens_the_control_routes(
    client: Client, services: Services, tree: Any, method: str, path: str
) -> None:
    make_tenant(services, "acme")
    key = services.api_keys.issue_key("acme").key
    body = json.dumps({"type": "ping"})
    json_type = {"Content-Type": "application/json"}

    def call(headers: dict[str, str]) -> falcon.testing.Result:
        return client.simulate_request(method, path, body=body, headers={**json_type, **headers})

    assert call({}).status_code == 401
    assert call({"Authorization": f"Bearer {secrets.token_urlsafe(32)}"}).status_code == 401
    assert call({"Authorization": f"Basic {services.admin_token}"}).status_code == 401
    refused = call({"Authorization": f"Bearer {key}"})
    assert refused.status_code == 403
    assert key not in refused.text and services.admin_token not in refused.text
    assert call(op(services)).status_code == 200


def test_a_key_issued_through_the_api_is_still_refused(
    client: Client, services: Services, tree: Any
) -> None:
    make_tenant(services, "acme")
    issued = client.simulate_post("/api/tenants/acme/keys", headers=op(services))
    assert issued.status_code == 201
    result = client.simulate_post(
        "/control/tenants/acme/messages",
        json={"type": "ping"},
        headers={"Authorization": f"Bearer {issued.json['key']}"},
    )
    assert result.status_code == 403


# -- tenant messages -----------------------------------------------------------------------------
@pytest.fixture(params=["application/json", MSGPACK])
def media(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_tenant_ping_stats_and_reload(
    client: Client, services: Services, tree: Any, media: str
) -> None:
    make_tenant(services, "acme")
    ping = tenant_msg(client, services, "acme", "ping", media)
    assert ping.status_code == 200
    assert decoded(ping) == {"ok": True, "type": "ping", "pong": True, "shard": 0}

    stats = decoded(tenant_msg(client, services, "acme", "stats", media))
    assert stats["ok"] is True and stats["type"] == "stats"
    assert (stats["tenantId"], stats["version"], stats["conversations"]) == ("acme", 1, 0)
    assert [a["name"] for a in stats["actors"]] == ["acme"]

    services.tenants.update("acme", {"name": "Renamed"})
    reload = decoded(tenant_msg(client, services, "acme", "reload", media))
    assert reload == {
        "ok": True,
        "shard": 0,
        "type": "reload",
        "reloaded": True,
        "version": 2,
        "credentialsChanged": False,
    }


def test_tenant_stop_holds_work_and_start_delivers_it(
    client: Client, services: Services, tree: Any, media: str
) -> None:
    make_tenant(services, "acme")
    tenant_msg(client, services, "acme", "ping", media)
    stopped = tenant_msg(client, services, "acme", "stop", media)
    assert stopped.status_code == 200
    assert decoded(stopped) == {"ok": True, "type": "stop", "state": "stopped", "shard": 0}
    assert services.holds.held() == {"acme"}  # kept in Redis: it outlives a restart
    acme = entry(client, services, "acme")
    assert acme is not None and acme["state"] == "stopped" and acme["actors"] == []
    assert actors(client, services)["shard"]["tenantsStopped"] == 1

    # Work for a stopped tenant waits, and neither work nor questions wake the tenant up.
    for n in range(3):
        tree.tell(Entry("acme", "noop", {"n": n}, conversation="u1"))
    gevent.sleep(0.05)
    assert actors(client, services)["shard"]["pending"] == 3
    asked = tenant_msg(client, services, "acme", "ping", media)
    assert asked.status_code == 409, asked.text
    assert entry(client, services, "acme")["state"] == "stopped"  # type: ignore[index]

    started = tenant_msg(client, services, "acme", "start", media)
    assert decoded(started) == {"ok": True, "type": "start", "state": "active", "shard": 0}
    assert services.holds.held() == set()
    wait_for(lambda: actors(client, services)["shard"]["pending"] == 0)
    acme = entry(client, services, "acme")
    assert acme is not None and acme["state"] == "active" and acme["conversations"] == 1


def test_invalidate_token_drops_the_shared_token(
    client: Client, services: Services, tree: Any, media: str
) -> None:
    make_tenant(services, "acme")
    other = "globex"
    make_tenant(services, other)
    services.redis.set(keys.token("acme"), secrets.token_urlsafe(32), ex=600)
    services.redis.set(keys.token(other), secrets.token_urlsafe(32), ex=600)
    result = tenant_msg(client, services, "acme", "invalidate-token", media)
    assert result.status_code == 200
    assert decoded(result) == {
        "ok": True,
        "type": "invalidate-token",
        "invalidated": True,
        "shard": 0,
    }
    wait_for(lambda: not services.redis.exists(keys.token("acme")))
    assert services.redis.exists(keys.token(other))


def test_dead_letters_are_listed_replayed_into_the_inbox_and_dropped(
    client: Client, services: Services, tree: Any, media: str
) -> None:
    make_tenant(services, "acme")
    letters = DeadLetters(services.redis, "acme")
    for n in range(3):
        letters.add("wa.message", {"n": n, "text": "personal"}, f"u{n}", f"failed {n}")
    path = "/control/tenants/acme/messages"

    listed = decoded(send(client, services, path, {"type": "dead-letters"}, media=media))
    assert listed["deadLetters"] == 3
    assert [e["reason"] for e in listed["entries"]] == ["failed 0", "failed 1", "failed 2"]
    assert "personal" not in json.dumps(listed)  # payloads stay out of listings
    first, second, third = (e["id"] for e in listed["entries"])

    inbox = keys.inbox(0)
    before = services.redis.xlen(inbox)
    replayed = send(
        client, services, path, {"type": "replay-dead-letters", "ids": [first]}, media=media
    )
    assert decoded(replayed) == {
        "ok": True,
        "shard": 0,
        "type": "replay-dead-letters",
        "replayed": 1,
        "deadLetters": 2,
    }
    assert services.redis.xlen(inbox) == before + 1

    dropped = send(client, services, path, {"type": "drop-dead-letters", "limit": 1}, media=media)
    assert decoded(dropped)["dropped"] == 1
    assert [e["id"] for e in letters.entries()] == [third]
    assert second not in json.dumps(letters.entries())
    # Nothing left to replay is no error.
    letters.drop()
    empty = decoded(send(client, services, path, {"type": "replay-dead-letters"}, media=media))
    assert (empty["replayed"], empty["deadLetters"]) == (0, 0)


@pytest.mark.parametrize(
    "args",
    [
        {"limit": 0},
        {"limit": 10_001},
        {"limit": "5"},
        {"limit": True},
        {"limit": 1.5},
        {"ids": "1-0"},
        {"ids": [1]},
        {"ids": ["x"]},
        {"ids": ["1-0", "$"]},
        {"ids": ["-"]},
        {"ids": {"a": "1-0"}},
    ],
)
@pytest.mark.parametrize("kind", ["dead-letters", "replay-dead-letters", "drop-dead-letters"])
def test_bad_dead_letter_arguments_are_400(
    client: Client, services: Services, tree: Any, kind: str, args: dict[str, Any]
) -> None:
    make_tenant(services, "acme")
    DeadLetters(services.redis, "acme").add("wa.message", {}, "u1", "failed")
    result = send(client, services, "/control/tenants/acme/messages", {"type": kind, **args})
    assert result.status_code == 400, result.text
    assert result.json["title"] == "Invalid message"
    assert DeadLetters(services.redis, "acme").count() == 1


def test_arguments_besides_the_type_are_accepted(
    client: Client, services: Services, tree: Any
) -> None:
    make_tenant(services, "acme")
    result = send(
        client,
        services,
        "/control/tenants/acme/messages",
        {"type": "ping", "note": "hello", "n": [1, 2]},
    )
    assert result.json == {"ok": True, "type": "ping", "pong": True, "shard": 0}


def test_the_vendor_msgpack_type_is_answered_in_msgpack(
    client: Client, services: Services, tree: Any
) -> None:
    make_tenant(services, "acme")
    result = send(
        client,
        services,
        "/control/tenants/acme/messages",
        {"type": "ping"},
        media="application/x-msgpack",
    )
    assert result.status_code == 200
    assert decoded(result) == {"ok": True, "type": "ping", "pong": True, "shard": 0}


def test_json_with_a_charset_is_json(client: Client, services: Services, tree: Any) -> None:
    result = send(
        client,
        services,
        "/control/shard/messages",
        {"type": "ping"},
        media="application/json; charset=utf-8",
    )
    assert result.status_code == 200 and result.json["pong"] is True


# -- shard messages ------------------------------------------------------------------------------
def test_shard_ping_stats_and_reload_all(
    client: Client, services: Services, tree: Any, media: str
) -> None:
    make_tenant(services, "acme")
    make_tenant(services, "globex")
    tenant_msg(client, services, "acme", "ping")
    tenant_msg(client, services, "globex", "ping")
    assert decoded(shard_msg(client, services, "ping", media)) == {
        "ok": True,
        "type": "ping",
        "pong": True,
    }
    stats = decoded(shard_msg(client, services, "stats", media))
    assert stats["ok"] is True and stats["type"] == "stats"
    assert (stats["id"], stats["count"], stats["tenantsActive"], stats["draining"]) == (
        0,
        1,
        2,
        False,
    )
    services.tenants.update("acme", {"name": "Renamed"})
    reload_all = decoded(shard_msg(client, services, "reload-all", media))
    assert reload_all == {"ok": True, "type": "reload-all", "reloading": 2}
    wait_for(lambda: entry(client, services, "acme")["version"] == 2)  # type: ignore[index]
    assert entry(client, services, "globex")["version"] == 1  # type: ignore[index]


def test_shard_drain_stops_every_tenant_and_keeps_them_stopped(
    client: Client, services: Services, tree: Any, media: str
) -> None:
    make_tenant(services, "acme")
    make_tenant(services, "globex")
    tenant_msg(client, services, "acme", "ping")
    tenant_msg(client, services, "globex", "ping")
    drained = shard_msg(client, services, "drain", media)
    assert drained.status_code == 200
    assert decoded(drained) == {"ok": True, "type": "drain", "drained": 2, "late": []}
    body = actors(client, services)
    assert body["shard"]["draining"] is True and body["shard"]["tenantsActive"] == 0
    assert body["tenants"] == []
    # Work waits; an admin message does not re-activate a tenant of a draining shard.
    tree.tell(Entry("acme", "noop", {}))
    refused = tenant_msg(client, services, "acme", "ping")
    assert refused.status_code == 503, refused.text
    assert actors(client, services)["shard"]["tenantsActive"] == 0


# -- deadlines -----------------------------------------------------------------------------------
def test_a_tenant_that_does_not_answer_in_time_is_504(
    client: Client, services: Services, tree: Any, monkeypatch: pytest.MonkeyPatch, media: str
) -> None:
    monkeypatch.setattr(control, "ASK_TIMEOUT", 0.2)
    make_tenant(services, "slow-one")
    started = time.monotonic()
    result = tenant_msg(client, services, "slow-one", "ping", media)
    assert time.monotonic() - started < SLOW_CONTROL
    assert result.status_code == 504
    body = decoded(result) if media == "application/json" else result.json
    assert body["title"] and "0.2" in body["description"]
    # The shard itself keeps answering.
    assert shard_msg(client, services, "ping").status_code == 200


# -- hostile bodies ------------------------------------------------------------------------------
TENANT_PATH = "/control/tenants/acme/messages"
SHARD_PATH = "/control/shard/messages"


@pytest.fixture
def acme(services: Services, tree: Any) -> None:
    make_tenant(services, "acme")


@pytest.mark.parametrize("path", [TENANT_PATH, SHARD_PATH])
@pytest.mark.parametrize(
    ("content_type", "raw", "status"),
    [
        ("text/plain", b'{"type": "ping"}', 415),
        ("application/x-www-form-urlencoded", b"type=ping", 415),
        ("", b'{"type": "ping"}', 415),
        ("application/json", b"", 400),
        ("application/json", b"{", 400),
        ("application/json", b'{"type": "ping"', 400),
        ("application/json", b"\xff\xfe{}", 400),
        ("application/json", b"[" * 60_000, 400),  # deeper than Python's recursion limit
        ("application/json", b'{"a":' * 9_000 + b"1" + b"}" * 9_000, 400),
        ("application/json", b"[]", 400),
        ("application/json", b'"ping"', 400),
        ("application/json", b"null", 400),
        ("application/json", b"{}", 400),
        ("application/json", b'{"type": 1}', 400),
        ("application/json", b'{"type": null}', 400),
        ("application/json", b'{"type": ["ping"]}', 400),
        ("application/json", b'{"type": "PING"}', 400),
        ("application/json", b'{"type": "nope"}', 400),
        (MSGPACK, b"", 400),
        (MSGPACK, b"\xc1", 400),  # a reserved byte
        (MSGPACK, b"\x81\xa4type", 400),  # truncated map
        (MSGPACK, msgpack.packb({"type": "ping"}) + b"\x00", 400),  # extra data
        (MSGPACK, msgpack.packb(["ping"]), 400),
        (MSGPACK, msgpack.packb({1: "ping"}), 400),
        (MSGPACK, msgpack.packb({b"type": b"ping"}, use_bin_type=True), 400),
        (MSGPACK, b"\x91" * 10_000 + b"\xc0", 400),  # nested arrays deeper than the stack
        (MSGPACK, b"\x81\xa4type\xa2\xff\xfe", 400),  # invalid UTF-8 in a str
        (MSGPACK, msgpack.packb({"type": 7}), 400),
    ],
)
def test_bad_bodies_are_refused_with_a_json_error(
    client: Client,
    services: Services,
    acme: None,
    path: str,
    content_type: str,
    raw: bytes,
    status: int,
) -> None:
    result = client.simulate_post(
        path, body=raw, headers={"Content-Type": content_type, **op(services)}
    )
    assert result.status_code == status, result.text
    assert result.headers["content-type"].startswith("application/json")
    assert result.json["title"] and result.json["description"]


def test_an_unknown_type_lists_the_known_ones(
    client: Client, services: Services, acme: None
) -> None:
    result = send(client, services, TENANT_PATH, {"type": "reboot"})
    assert result.status_code == 400
    for kind in TENANT_TYPES:
        assert kind in result.json["description"]
    shard = send(client, services, SHARD_PATH, {"type": "stop"}, media=MSGPACK)
    assert shard.status_code == 400
    for kind in SHARD_TYPES:
        assert kind in shard.json["description"]


def test_a_shard_type_is_not_a_tenant_type(client: Client, services: Services, acme: None) -> None:
    assert send(client, services, TENANT_PATH, {"type": "drain"}).status_code == 400
    assert actors(client, services)["shard"]["draining"] is False


@pytest.mark.parametrize("path", [TENANT_PATH, SHARD_PATH])
@pytest.mark.parametrize("media", ["application/json", MSGPACK])
def test_bodies_over_64_kib_are_413(
    client: Client, services: Services, acme: None, path: str, media: str
) -> None:
    padding = "x" * (64 * 1024)
    result = send(client, services, path, {"type": "ping", "pad": padding}, media=media)
    assert result.status_code == 413
    assert result.json["title"]
    # Just under the limit is fine.
    fits = {"type": "ping", "pad": "x" * (64 * 1024 - 100)}
    assert send(client, services, path, fits, media=media).status_code == 200


def _chunked(services: Services, body: bytes) -> tuple[str, bytes]:
    """A request as a chunked one reaches the app: without CONTENT_LENGTH."""
    app = create_app(services)
    env = falcon.testing.create_environ(
        path=TENANT_PATH,
        method="POST",
        headers={"Content-Type": "application/json", **op(services)},
        body=body,
    )
    del env["CONTENT_LENGTH"]
    start = falcon.testing.StartResponseMock()
    answer = b"".join(app(env, start))
    return str(start.status), answer


def test_a_chunked_body_over_the_limit_is_413_and_one_within_it_is_read(
    services: Services, acme: None, tree: Any
) -> None:
    status, body = _chunked(services, b'{"type": "ping", "pad": "' + b"x" * 70 * 1024 + b'"}')
    assert status.startswith("413"), status
    assert json.loads(body)["title"]
    status, body = _chunked(services, b'{"type": "ping"}')
    assert status.startswith("200"), (status, body)
    assert json.loads(body)["ok"] is True


@pytest.mark.parametrize(
    ("tenant_id", "statuses"),
    [
        ("ACME", {400}),
        ("Acme", {400}),
        ("..", {400}),
        ("-acme", {400}),
        ("_acme", {400}),
        ("a" * 65, {400}),
        ("acme%0A", {400}),
        ("acme%20", {400}),
        ("a%2Fb", {400, 404}),
        ("%2E%2E", {400}),
        ("..%2Fx", {400, 404}),
        ("caf%C3%A9", {400}),
        ("nobody", {404}),
    ],
)
def test_invalid_or_unknown_tenant_ids(
    client: Client, services: Services, acme: None, tenant_id: str, statuses: set[int]
) -> None:
    result = client.simulate_post(
        f"/control/tenants/{tenant_id}/messages",
        body=b'{"type": "ping"}',
        headers={"Content-Type": "application/json", **op(services)},
    )
    assert result.status_code in statuses, (tenant_id, result.status_code, result.text)
    assert result.json["title"]
    # Nothing was activated for it.
    assert [t["tenantId"] for t in actors(client, services)["tenants"]] == []


def test_a_dotted_path_never_reaches_another_route(
    client: Client, services: Services, acme: None
) -> None:
    result = client.simulate_post(
        "/control/tenants/../x/messages",
        body=b'{"type": "ping"}',
        headers={"Content-Type": "application/json", **op(services)},
    )
    assert result.status_code in (400, 404)


def test_an_unknown_tenant_is_404_in_both_types(
    client: Client, services: Services, tree: Any, media: str
) -> None:
    result = tenant_msg(client, services, "ghost", "ping", media)
    assert result.status_code == 404
    assert result.json["title"] == "Unknown tenant"
    assert actors(client, services)["tenants"] == []


# -- bugs of the supervisor found by this suite, fixed -------------------------
def test_a_failed_tenant_that_is_stopped_is_listed_once(
    client: Client, services: Services, tree: Any
) -> None:
    make_tenant(services, "broken-one")
    tree.tell(Entry("broken-one", "noop", {}))
    wait_for(lambda: (e := entry(client, services, "broken-one")) and e["state"] == "failed")
    assert tenant_msg(client, services, "broken-one", "stop").status_code == 200
    listed = [t for t in actors(client, services)["tenants"] if t["tenantId"] == "broken-one"]
    assert len(listed) == 1


def test_a_stopped_tenant_that_is_deleted_is_forgotten(
    client: Client, services: Services, tree: Any
) -> None:
    make_tenant(services, "acme")
    tenant_msg(client, services, "acme", "ping")
    assert tenant_msg(client, services, "acme", "stop").status_code == 200
    assert services.holds.is_held("acme")
    version = services.tenants.delete("acme")
    assert not services.holds.is_held("acme")  # a new tenant under this id is not held
    tree.tell(TenantChanged("acme", version, "deleted"))
    wait_for(lambda: entry(client, services, "acme") is None, timeout=0.5)


def test_a_failed_tenant_keeps_its_restart_count(
    client: Client, services: Services, tree: Any
) -> None:
    make_tenant(services, "broken-one")
    tree.tell(Entry("broken-one", "noop", {}))
    wait_for(lambda: (e := entry(client, services, "broken-one")) and e["state"] == "failed")
    assert entry(client, services, "broken-one")["restarts"] == FAST.max_restarts  # type: ignore[index]


def test_stopping_a_busy_tenant_does_not_stall_the_shard(
    client: Client, services: Services, tree: Any
) -> None:
    make_tenant(services, "slow-one")
    tree.tell(Entry("slow-one", "noop", {}))
    wait_for(lambda: (e := entry(client, services, "slow-one")) and e["state"] == "active")
    busy = gevent.spawn(tenant_msg, client, services, "slow-one", "ping")  # ~0.6 s in the tenant
    gevent.sleep(0.05)
    stopping = gevent.spawn(tenant_msg, client, services, "slow-one", "stop")
    gevent.sleep(0.05)
    started = time.monotonic()
    assert shard_msg(client, services, "ping").status_code == 200
    elapsed = time.monotonic() - started
    gevent.joinall([busy, stopping], timeout=5)
    assert elapsed < 0.2, elapsed


def test_a_store_that_is_away_is_503_not_500(services: Services) -> None:
    # The operator token needs no store; looking the tenant up does.
    away = Services(
        settings=services.settings,
        redis=connect("redis://127.0.0.1:1/0"),
        admin_token=services.admin_token,
        secret_keys=services.secret_keys,
    )
    result = falcon.testing.TestClient(create_app(away)).simulate_post(
        TENANT_PATH, json={"type": "ping"}, headers=op(services)
    )
    assert result.status_code == 503, result.text
    assert result.json["title"] == "Store unavailable"
