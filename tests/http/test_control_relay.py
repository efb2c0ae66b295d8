"""The control endpoint of a two-shard fleet in one process: two shards' services, supervisors
and relays on one store, the Falcon app of shard 0 asked about tenants shard 1 owns."""

from __future__ import annotations

import dataclasses
import functools
import secrets
from collections.abc import Iterator
from typing import Any

import falcon.testing
import pykka
import pytest
import redis

from interlink.actors import RestartPolicy, Snapshot, Supervisor, TreeSpec
from interlink.fleet.relay import ControlRelay
from interlink.http.app import create_app
from interlink.http.control import answer_relayed
from interlink.services import Services
from interlink.settings import Settings
from interlink.store.connection import connect
from tests.support.owners import owned_by

FAST = RestartPolicy(max_restarts=2, period=10.0, min_backoff=0.01, max_backoff=0.02)


class Fleet:
    def __init__(self, settings: Settings, redis_url: str) -> None:
        admin_token, keys = secrets.token_urlsafe(32), (secrets.token_bytes(32),)
        self.services = [
            Services(
                settings=dataclasses.replace(settings, shard_id=n, shard_count=2),
                redis=connect(redis_url),
                admin_token=admin_token,
                secret_keys=keys,
            )
            for n in range(2)
        ]
        self.supervisors: list[pykka.ActorRef[Supervisor]] = []
        self.relays: list[ControlRelay] = []
        for n, services in enumerate(self.services):
            spec = TreeSpec(
                load_config=services.tenants.load_config,
                services=services,
                policy=FAST,
                held=services.holds.held,
            )
            services.supervisor = Supervisor.start(spec, shard_id=n, shard_count=2)
            self.supervisors.append(services.supervisor)
            relay = ControlRelay(
                services.redis, n, 2, functools.partial(answer_relayed, services), timeout=2.0
            )
            services.relay = relay
            relay.start()
            self.relays.append(relay)
        self.client = falcon.testing.TestClient(create_app(self.services[0]))
        self.headers = {"Authorization": f"Bearer {admin_token}"}

    def tenant(self, tenant_id: str, kind: str, **args: Any) -> falcon.testing.Result:
        return self.client.simulate_post(
            f"/control/tenants/{tenant_id}/messages",
            json={"type": kind, **args},
            headers=self.headers,
        )

    def close(self) -> None:
        for relay in self.relays:
            relay.stop()
        for ref in self.supervisors:
            if ref.is_alive():
                ref.stop(timeout=10)
        for services in self.services:
            services.close()


@pytest.fixture
def fleet(settings: Settings, redis_url: str, redis_client: redis.Redis) -> Iterator[Fleet]:
    started = Fleet(settings, redis_url)
    yield started
    started.close()


def tree(fleet: Fleet, shard: int) -> list[tuple[str, str]]:
    snapshot = fleet.supervisors[shard].ask(Snapshot(), timeout=5)
    return [(t["tenantId"], t["state"]) for t in snapshot["tenants"]]


def test_a_message_for_the_other_shards_tenant_is_answered_there(fleet: Fleet) -> None:
    theirs, mine = owned_by(1, 2), owned_by(0, 2)
    for tenant_id in (theirs, mine):
        fleet.services[0].tenants.create(tenant_id, name="T")
    assert fleet.tenant(theirs, "ping").json == {
        "ok": True,
        "type": "ping",
        "pong": True,
        "shard": 1,
    }
    assert fleet.tenant(mine, "ping").json["shard"] == 0
    assert tree(fleet, 0) == [(mine, "active")] and tree(fleet, 1) == [(theirs, "active")]

    # The owner's refusals travel back as they are, Retry-After included.
    assert fleet.tenant(theirs, "stop").json["state"] == "stopped"
    assert fleet.services[0].holds.held() == {theirs}
    refused = fleet.tenant(theirs, "ping")
    assert refused.status_code == 409
    assert refused.json == {
        "title": "Tenant stopped",
        "description": f"Tenant {theirs!r} is stopped; send 'start' first.",
    }
    assert fleet.tenant(theirs, "start").json["state"] == "active"
    assert fleet.services[0].holds.held() == set()
    bad = fleet.tenant(theirs, "dead-letters", limit=0)
    assert bad.status_code == 400  # checked where it arrived, before any relay
    ghost = fleet.tenant("ghost", "ping")
    assert ghost.status_code == 404 and ghost.json["title"] == "Unknown tenant"


def test_the_owner_refuses_a_tenant_it_does_not_own(fleet: Fleet) -> None:
    """Shards that disagree on the count must not start a second tree: the asked one says so."""
    mine = owned_by(0, 2)
    fleet.services[0].tenants.create(mine, name="T")
    answer = answer_relayed(
        fleet.services[1], {"kind": "tenant", "tenant": mine, "type": "ping", "args": {}}
    )
    assert answer["status"] == 503 and answer["title"] == "Owner changing"
    assert answer["retryAfter"] == "5"
    assert tree(fleet, 1) == []
    for hostile in (
        {"kind": "reboot"},
        {"kind": "tenant", "tenant": mine, "type": "format-disk", "args": {}},
        {"kind": "tenant", "tenant": "../x", "type": "ping", "args": {}},
        {"kind": "tenant", "tenant": mine, "type": "ping", "args": []},
    ):
        assert answer_relayed(fleet.services[0], hostile)["status"] in (400, 404), hostile
    assert tree(fleet, 0) == []


def test_gathering_lists_a_shard_whose_supervisor_is_down_with_its_error(fleet: Fleet) -> None:
    fleet.relays[1].beat()
    fleet.supervisors[1].stop(timeout=10)
    body = fleet.client.simulate_get("/control/actors", params={"all": "1"}, headers=fleet.headers)
    assert body.status_code == 200
    first, second = body.json["shards"]
    assert first["shard"]["id"] == 0 and first["tenants"] == []
    assert second == {
        "shard": {"id": 1},
        "error": {"title": "Not running", "description": "The supervisor is not running."},
    }
