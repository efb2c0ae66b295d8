"""Round trips to Redis per message on a conversation's steady path, counted on the wire: a
user's second message reaches Genesys after one, an agent's message reaches WhatsApp after one."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests
import responses

from interlink.actors.flows.agent_message import agent_message
from interlink.actors.flows.customer_message import customer_message
from interlink.services import Services
from interlink.store import keys
from interlink.store.conversations import AliasCache, ConversationStore
from tests.actors.flows.conftest import (
    GENESYS,
    GRAPH_SEND,
    FakeContext,
    entry,
    load,
    meta_update,
    tenant_config,
)
from tests.support.round_trips import RoundTrips, counting_client

PARTICIPANT = "16505551234"


@pytest.fixture
def counted(redis_url: str, redis_client: redis.Redis) -> Iterator[tuple[redis.Redis, RoundTrips]]:
    client, trips = counting_client(redis_url)
    yield client, trips
    client.close()


def text_from(wamid: str, body: str = "hello") -> dict[str, Any]:
    update = meta_update("meta_text.json")
    return {**update, "element": {**update["element"], "id": wamid, "text": {"body": body}}}


def trips_at_call(trips: RoundTrips, seen: list[int], answer: dict[str, Any]) -> Any:
    """A ``responses`` callback that records how many round trips came before the call."""

    def callback(request: Any) -> tuple[int, dict[str, str], str]:
        seen.append(trips.count)
        return 200, {}, json.dumps(answer)

    return callback


@responses.activate
def test_a_users_next_message_reaches_genesys_after_one_round_trip(
    services: Services, counted: tuple[redis.Redis, RoundTrips]
) -> None:
    client, trips = counted
    config = tenant_config()
    context = FakeContext(config, services.settings)
    seen: list[int] = []
    responses.add_callback(
        responses.POST, f"{GENESYS}/message", trips_at_call(trips, seen, {"id": "gc"})
    )
    aliases = AliasCache()  # the conversation actor's: it outlives each message's store
    counts = []
    for wamid in ("wamid.1", "wamid.2", "wamid.3"):
        store = ConversationStore(client, config.tenant_id, write_behind=True, aliases=aliases)
        before = trips.count
        customer_message(context, store, entry(config, "wa.message", text_from(wamid)),
                         secret_keys=services.secret_keys)  # fmt: skip
        counts.append(seen[-1] - before)
        store.flush()
    # The first message looks the user up; the next ones know them.
    assert counts == [2, 1, 1]
    assert len(seen) == 3
    assert client.get(keys.dedupe(config.tenant_id, "done", "in:wamid.3:0")) == b"gc"


@responses.activate
def test_a_tap_on_a_menu_reaches_genesys_after_one_round_trip(
    services: Services, counted: tuple[redis.Redis, RoundTrips]
) -> None:
    client, trips = counted
    config = tenant_config()
    context = FakeContext(config, services.settings)
    update = meta_update("meta_button_reply.json")
    menu = update["element"]["context"]["id"]
    ConversationStore(client, config.tenant_id).map_message(menu, "gc-menu", PARTICIPANT,
                                                            menu="Button")  # fmt: skip
    seen: list[int] = []
    responses.add_callback(
        responses.POST,
        f"{GENESYS}/structured/response",
        trips_at_call(trips, seen, {"id": "gc-a"}),
    )
    aliases = AliasCache()  # the user wrote before: the actor knows them
    ConversationStore(client, config.tenant_id, aliases=aliases).user_wrote(
        PARTICIPANT, time.time() - 60, PARTICIPANT, {f"phone:{PARTICIPANT}": PARTICIPANT}
    )
    store = ConversationStore(client, config.tenant_id, write_behind=True, aliases=aliases)
    before = trips.count

    customer_message(context, store, entry(config, "wa.message", update),
                     secret_keys=services.secret_keys)  # fmt: skip

    assert seen == [before + 1]
    [call] = responses.calls
    body = json.loads(call.request.body)
    assert body["originatingMessageId"] == "gc-menu" and body["buttonResponse"]["type"] == "Button"


@responses.activate
def test_an_agents_message_reaches_whatsapp_after_one_round_trip(
    services: Services, counted: tuple[redis.Redis, RoundTrips], sender_for: Any
) -> None:
    client, trips = counted
    config = tenant_config()
    context = FakeContext(config, services.settings, sender_for(config))
    ConversationStore(client, config.tenant_id).user_wrote(
        PARTICIPANT, time.time() - 60, PARTICIPANT, {}
    )
    seen: list[int] = []
    responses.add_callback(
        responses.POST, GRAPH_SEND, trips_at_call(trips, seen, {"messages": [{"id": "wamid.O"}]})
    )
    notification = load("genesys_text.json")
    store = ConversationStore(client, config.tenant_id, write_behind=True)
    before = trips.count

    agent_message(context, store, entry(config, "gc.message", notification),
                  session=requests.Session())  # fmt: skip

    assert seen == [before + 1]
    store.flush()
    assert trips.since(before) == 2
    # A redelivery finds the send done in its one round trip, and sends nothing.
    again = ConversationStore(client, config.tenant_id, write_behind=True)
    before = trips.count
    agent_message(context, again, entry(config, "gc.message", notification),
                  session=requests.Session())  # fmt: skip
    assert len(seen) == 1 and trips.since(before) == 1


@responses.activate
def test_a_message_that_is_not_sent_leaves_no_begun_send(
    services: Services, counted: tuple[redis.Redis, RoundTrips]
) -> None:
    client, _ = counted
    config = tenant_config()
    context = FakeContext(config, services.settings)  # no sender: nothing may go to WhatsApp
    ConversationStore(client, config.tenant_id).user_wrote(
        PARTICIPANT, time.time() - 25 * 3600, PARTICIPANT, {}
    )
    receipt = responses.post(f"{GENESYS}/receipt", json={})
    notification = load("genesys_text.json")
    store = ConversationStore(client, config.tenant_id, write_behind=True)

    agent_message(context, store, entry(config, "gc.message", notification),
                  session=requests.Session())  # fmt: skip
    store.flush()

    assert receipt.call_count == 1  # MessageExpired
    step = f"out:{notification['id']}:0"
    assert not client.exists(keys.dedupe(config.tenant_id, "begun", step))
