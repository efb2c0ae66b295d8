"""Hot reload across two shard processes: credentials rotate while messages flow both ways."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
import redis

from interlink.tenancy import ownership
from tests.e2e.chaos import Conversation, Load, wait_until
from tests.e2e.world import World, start_world, wait_for

ROTATIONS = 50
PROPAGATION = 1.0  # seconds within which every shard must use the new credentials


@pytest.fixture
def two_shards(tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> Iterator[World]:
    world = start_world(tmp_path, redis_url, shards=2)
    try:
        yield world
    finally:
        world.close()


def test_rotating_credentials_under_load_switches_within_a_second_and_loses_nothing(
    two_shards: World,
) -> None:
    world = two_shards
    acme = world.add_tenant("acme")
    other = world.add_tenant("globex")
    # The admin writes go to the shard that does NOT own acme: the change must travel.
    admin_shard = 1 - ownership.owner("acme", 2)
    conversations = [Conversation(acme, world.user()) for _ in range(4)] + [
        Conversation(other, world.user()) for _ in range(2)
    ]
    load = Load(world, conversations, rate=24)
    load.start()
    state = world.state
    rotations: list[tuple[float, str, str]] = []  # when, meta token, genesys client id
    for n in range(ROTATIONS):
        gevent.sleep(0.25)
        meta_token = secrets.token_urlsafe(40)
        client_id, client_secret = f"client-acme-r{n}", secrets.token_urlsafe(24)
        state.meta.grant_token(acme.phone_number_id, meta_token)
        state.genesys.add_client("org-acme", client_id, client_secret)
        changed_at = time.time()
        whatsapp = world.admin(
            "PUT",
            "/api/tenants/acme/whatsapp/config",
            shard=admin_shard,
            json={
                "meta_access_token": meta_token,
                "whatsapp_phone_number_id": acme.phone_number_id,
                "whatsapp_business_account_id": "waba-acme",
                "meta_app_secret": acme.app_secret,
                "webhook_verify_token": acme.verify_token,
            },
        )
        assert whatsapp.status_code == 200, whatsapp.text
        genesys = world.admin(
            "PUT",
            "/api/tenants/acme/genesys/credentials",
            shard=admin_shard,
            json={
                "clientId": client_id,
                "clientSecret": client_secret,
                "region": acme.region,
                "integrationId": acme.integration_id,
                "webhookSecret": acme.webhook_secret,
            },
        )
        assert genesys.status_code == 200, genesys.text
        rotations.append((changed_at, meta_token, client_id))
        if n % 5 == 4:
            gevent.sleep(PROPAGATION + 0.3)  # a window long enough to check what every call carries
    gevent.sleep(1.5)
    load.stop()
    complete = wait_until(load.complete, 60)
    counts = load.tally()
    if not complete:
        from collections import Counter

        print("TOKENS", [(r.status, r.body) for r in state.requests(kind="genesys.token")][-5:])
        print("MSG", Counter(r.status for r in state.requests(kind="genesys.message")))
        print("META", Counter(r.status for r in state.requests(kind="meta.messages")))
        print(world.admin("GET", "/control/actors", shard=0).text[:3000])
    assert complete, counts
    assert (counts.lost, counts.duplicates, counts.out_of_order) == (0, 0, 0), counts

    # Every call made more than PROPAGATION after a rotation (and before the next) carries the
    # rotated credentials: the Meta token itself, and a Genesys token of the new OAuth client.
    tokens_by_client = {t.token: t.client_id for t in state.genesys.tokens_of("org-acme")}
    checked = 0
    for index, (changed_at, meta_token, client_id) in enumerate(rotations):
        # A window ends when the next rotation starts; rotations closer than PROPAGATION apart
        # leave nothing to check in between, the last one is checked to the end.
        until = rotations[index + 1][0] if index + 1 < len(rotations) else float("inf")
        for request in state.requests(kind="meta.messages", tenant=acme.phone_number_id):
            if changed_at + PROPAGATION < request.time < until:
                assert request.headers["authorization"] == f"Bearer {meta_token}"
                checked += 1
        for request in state.requests(kind="genesys.message", tenant="org-acme"):
            if changed_at + PROPAGATION < request.time < until:
                token = request.headers["authorization"].removeprefix("Bearer ")
                assert tokens_by_client[token] == client_id
                checked += 1
    assert checked > 40  # about ten windows of PROPAGATION + 0.3 s were checked
    # One Genesys token per credential, not one per message.
    assert len(state.genesys.tokens_of("org-acme")) <= ROTATIONS + 1  # at most one per client


def test_deleting_a_tenant_stops_it_everywhere(two_shards: World) -> None:
    world = two_shards
    acme = world.add_tenant("acme")
    user = world.user()
    state = world.state
    state.user.say(acme.phone_number_id, user, "text", body="before")
    wait_for(lambda: state.genesys.messages_from(acme.integration_id))
    assert world.admin("DELETE", "/api/tenants/acme", shard=1).status_code == 204
    deleted_at = time.monotonic()
    for shard in world.shards:
        # Refused everywhere once the change event has arrived (the other shard's cache).
        url = shard.url + "/webhooks/whatsapp"
        wait_for(
            lambda u=url: (
                state.user.say(
                    acme.phone_number_id, user, "text", body="after", webhook_url=u
                ).status
                == 404
            ),
            timeout=PROPAGATION,
        )
    assert time.monotonic() - deleted_at < PROPAGATION * 2
    owner = ownership.owner("acme", 2)
    tree = world.admin("GET", "/control/actors", shard=owner).json()
    wait_for(
        lambda: all(
            t["tenantId"] != "acme"
            for t in world.admin("GET", "/control/actors", shard=owner).json()["tenants"]
        ),
        timeout=5,
    )
    assert tree["shard"]["id"] == owner
