"""Control from anywhere, and holds that outlive restarts, on a fleet of real shard processes
sharing one store: a control message sent to a shard that does not own the tenant is answered by
the owner (and starts nothing where it arrived), every live shard's view can be gathered from any
of them, a silent owner is a 504, and a stopped tenant stays stopped across its owner's kill -9
while its webhooks are still accepted, then gets them all, in order, after ``start``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import msgpack
import requests

from tests.e2e.world import World, wait_for
from tests.support.owners import owned_by

RELAY_TIMEOUT = 2.0


def control(world: World, shard: int, tenant_id: str, kind: str) -> requests.Response:
    return world.admin(
        "POST", f"/control/tenants/{tenant_id}/messages", shard=shard, json={"type": kind}
    )


def tenants_on(world: World, shard: int) -> list[str]:
    body = world.admin("GET", "/control/actors", shard=shard).json()
    assert body["shard"]["id"] == shard
    return [t["tenantId"] for t in body["tenants"]]


def texts(world: World, integration_id: str) -> list[str]:
    return [m.body["text"] for m in world.state.genesys.messages_from(integration_id)]


def test_control_from_any_shard_is_answered_by_the_owner(fleet: Callable[..., World]) -> None:
    world = fleet(3, control_relay_timeout=str(RELAY_TIMEOUT))
    tenant_id = owned_by(2, 3)
    tenant = world.add_tenant(tenant_id)

    # Sent to shard 0, answered by shard 2: its tree, not a second one on shard 0.
    ping = control(world, 0, tenant_id, "ping")
    assert ping.status_code == 200, ping.text
    assert ping.json() == {"ok": True, "type": "ping", "pong": True, "shard": 2}
    ana = world.user()
    assert world.state.user.say(tenant.phone_number_id, ana, "text", body="hola").status == 200
    wait_for(lambda: texts(world, tenant.integration_id) == ["hola"])
    stats = control(world, 1, tenant_id, "stats").json()
    assert (stats["shard"], stats["tenantId"], stats["version"]) == (2, tenant_id, 3)
    assert stats["conversations"] == 1  # real stats: the owner's tree carried Ana's message
    # The tenant and Ana's conversation: its Genesys token and WhatsApp sends are no actors.
    names = [a["name"] for a in stats["actors"]]
    assert names[0] == tenant_id and [n.partition(":")[0] for n in names[1:]] == ["conversation"]
    assert stats["sends"]["inFlight"] == 0
    assert tenants_on(world, 0) == tenants_on(world, 1) == []
    assert tenants_on(world, 2) == [tenant_id]

    # msgpack in, msgpack out, through the relay.
    packed = world.admin(
        "POST",
        f"/control/tenants/{tenant_id}/messages",
        shard=1,
        data=msgpack.packb({"type": "dead-letters", "limit": 5}),
        headers={"Content-Type": "application/msgpack"},
    )
    assert packed.status_code == 200, packed.text
    assert packed.headers["content-type"].startswith("application/msgpack")
    assert msgpack.unpackb(packed.content) == {
        "ok": True,
        "type": "dead-letters",
        "deadLetters": 0,
        "entries": [],
        "shard": 2,
    }
    # The owner's refusals come back as they are; shard messages stay with the shard asked.
    assert control(world, 0, tenant_id, "stop").json()["shard"] == 2
    refused = control(world, 1, tenant_id, "ping")
    assert refused.status_code == 409 and refused.json()["title"] == "Tenant stopped"
    assert control(world, 0, tenant_id, "start").json() == {
        "ok": True,
        "type": "start",
        "state": "active",
        "shard": 2,
    }
    shard_stats = world.admin("POST", "/control/shard/messages", shard=1, json={"type": "stats"})
    assert shard_stats.json()["id"] == 1

    # Every live shard's view, from any shard; the tenant shows on its owner only.
    gathered = world.admin("GET", "/control/actors?all=1", shard=1).json()
    assert [view["shard"]["id"] for view in gathered["shards"]] == [0, 1, 2]
    assert [[t["tenantId"] for t in view["tenants"]] for view in gathered["shards"]] == [
        [],
        [],
        [tenant_id],
    ]
    assert gathered["shards"][2]["tenants"][0]["state"] == "active"  # started again above

    # The command line, pointed at a shard that does not own the tenant.
    ctl = subprocess.run(
        [
            sys.executable,
            "-m",
            "interlink",
            "ctl",
            "stats",
            tenant_id,
            "--url",
            world.shards[0].url,
        ],
        capture_output=True,
        env={"INTERLINK_ADMIN_TOKEN": world.admin_token, "PATH": ""},
        cwd=Path(__file__).resolve().parents[2],
        timeout=30,
        check=False,
    )
    assert ctl.returncode == 0, ctl.stderr
    assert json.loads(ctl.stdout)["shard"] == 2

    # The owner dies: the shard asked says so within the deadline, as a JSON 504.
    world.shards[2].kill()
    started = time.monotonic()
    silent = control(world, 0, tenant_id, "ping")
    elapsed = time.monotonic() - started
    assert silent.status_code == 504, silent.text
    assert silent.json()["title"] == "No answer in time"
    assert "Shard 2" in silent.json()["description"]
    assert RELAY_TIMEOUT <= elapsed < RELAY_TIMEOUT + 2.0
    assert tenants_on(world, 0) == []  # still no second tree


def test_a_hold_outlives_the_owners_kill_and_start_delivers_everything_in_order(
    fleet: Callable[..., World],
) -> None:
    world = fleet(2, control_relay_timeout=str(RELAY_TIMEOUT))
    tenant_id = owned_by(1, 2)  # webhooks arrive at shard 0, the tenant's work runs on shard 1
    tenant = world.add_tenant(tenant_id)
    ana = world.user()

    def say(text: str) -> None:
        assert world.state.user.say(tenant.phone_number_id, ana, "text", body=text).status == 200

    say("m0")
    wait_for(lambda: texts(world, tenant.integration_id) == ["m0"])
    stopped = control(world, 0, tenant_id, "stop")
    assert stopped.json() == {"ok": True, "type": "stop", "state": "stopped", "shard": 1}
    say("m1")
    say("m2")

    world.shards[1].kill()  # kill -9 of the owner, holding nothing but the hold in Redis
    world.shards[1].start()
    say("m3")
    gevent.sleep(1.5)
    assert texts(world, tenant.integration_id) == ["m0"]
    views: list[dict[str, Any]] = world.admin("GET", "/control/actors?all=1", shard=0).json()[
        "shards"
    ]
    owner_view = next(v for v in views if v["shard"]["id"] == 1)
    assert [(t["tenantId"], t["state"]) for t in owner_view["tenants"]] == [(tenant_id, "stopped")]
    assert owner_view["shard"]["tenantsStopped"] == 1

    started = time.monotonic()
    assert control(world, 0, tenant_id, "start").json()["state"] == "active"
    wait_for(lambda: len(texts(world, tenant.integration_id)) >= 4, timeout=10)
    assert time.monotonic() - started < 3.0  # the prompt rescan, not the periodic one
    assert texts(world, tenant.integration_id) == ["m0", "m1", "m2", "m3"]
    say("m4")
    wait_for(lambda: texts(world, tenant.integration_id) == ["m0", "m1", "m2", "m3", "m4"])
