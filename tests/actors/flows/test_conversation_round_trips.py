"""The conversation actor keeps its user's aliases between messages: counted on the wire, a
user's first message costs the alias lookup, and every later one of the same actor does not."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
import responses

from interlink.actors.tree import TreeSpec
from interlink.services import Services
from tests.actors.flows.conftest import (
    GENESYS,
    FakeContext,
    conversation,
    entry,
    meta_update,
    tenant_config,
)
from tests.support.round_trips import RoundTrips, counting_client


@pytest.fixture
def counted(redis_url: str, redis_client: redis.Redis) -> Iterator[tuple[redis.Redis, RoundTrips]]:
    client, trips = counting_client(redis_url)
    yield client, trips
    client.close()


def text_from(wamid: str) -> dict[str, Any]:
    update = meta_update("meta_text.json")
    return {**update, "element": {**update["element"], "id": wamid}}


@responses.activate
def test_a_conversation_actor_looks_its_user_up_once(
    services: Services, counted: tuple[redis.Redis, RoundTrips]
) -> None:
    client, trips = counted
    config = tenant_config()
    context = FakeContext(config, services.settings)
    spec = TreeSpec(
        load_config=lambda tenant_id: config,
        services=dataclasses.replace(services, redis=client),
    )
    post = responses.post(f"{GENESYS}/message", json={"id": "gc"})
    counts = []
    with conversation(config, spec, lambda: cast(Any, context)) as ref:
        for wamid in ("wamid.A1", "wamid.A2", "wamid.A3"):
            before = trips.count
            ref.ask(entry(config, "wa.message", text_from(wamid)))
            counts.append(trips.since(before))

    assert post.call_count == 3
    # The lookup, the message with its step, the flush; then no lookup any more.
    assert counts == [3, 2, 2]
