"""Round trips to Redis per message on a conversation's steady path, counted on the wire: a
user's second message reaches Genesys after one, an agent's message reaches WhatsApp after one,
a status of it is recorded in one."""

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
from interlink.actors.flows.status import status
from interlink.mapping import MappingError
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


def status_of(wamid: str, name: str, callback: str | None) -> dict[str, Any]:
    update = meta_update("meta_status_delivered.json")
    element = {k: v for k, v in update["element"].items() if k != "biz_opaque_callback_data"}
    element.update(id=wamid, status=name)
    if callback is not None:
        element["biz_opaque_callback_data"] = callback
    return {**update, "element": element}


@responses.activate
def test_a_status_is_recorded_in_one_round_trip_and_a_receipt_sent_after_two(
    services: Services, counted: tuple[redis.Redis, RoundTrips]
) -> None:
    client, trips = counted
    config = tenant_config()
    context = FakeContext(config, services.settings)
    ConversationStore(client, config.tenant_id).map_message("wamid.S", "gc-s", PARTICIPANT)
    seen: list[int] = []
    responses.add_callback(responses.POST, f"{GENESYS}/receipt", trips_at_call(trips, seen, {}))

    def one(name: str) -> int:
        store = ConversationStore(client, config.tenant_id, write_behind=True)
        before = trips.count
        status(context, store, entry(config, "wa.status", status_of("wamid.S", name, "gc-s")))
        store.flush()
        return trips.since(before)

    assert one("sent") == 1
    assert one("delivered") == 3  # the status, the receipt's step, the receipt recorded
    assert len(seen) == 1
    assert one("read") == 1
    assert one("delivered") == 1  # a redelivery: nothing to send
    [call] = responses.calls
    body = json.loads(call.request.body)
    assert body["id"] == "gc-s" and body["status"] == "Delivered"
    assert body["channel"]["to"]["id"] == PARTICIPANT
    assert client.hget(keys.message_map(config.tenant_id, "wamid.S"), "state") == b"read"


@responses.activate
def test_a_status_whose_callback_names_another_message_goes_by_the_map(
    services: Services, counted: tuple[redis.Redis, RoundTrips]
) -> None:
    client, _ = counted
    config = tenant_config()
    context = FakeContext(config, services.settings)
    store = ConversationStore(client, config.tenant_id)
    store.map_message("wamid.M", "gc-mapped", "participant-1")
    call = responses.post(f"{GENESYS}/receipt", json={})

    status(context, store, entry(config, "wa.status", status_of("wamid.M", "delivered", "gc-x")))

    assert json.loads(call.calls[0].request.body)["id"] == "gc-mapped"
    assert not client.exists(keys.receipt(config.tenant_id, "gc-x"))


@responses.activate
def test_the_state_of_a_part_missing_from_the_map_expires(
    services: Services, counted: tuple[redis.Redis, RoundTrips]
) -> None:
    client, _ = counted
    config = tenant_config()
    context = FakeContext(config, services.settings)
    responses.post(f"{GENESYS}/receipt", json={})

    status(context, ConversationStore(client, config.tenant_id),
           entry(config, "wa.status", status_of("wamid.U", "sent", "gc-u")))  # fmt: skip

    key = keys.message_map(config.tenant_id, "wamid.U")
    assert client.hget(key, "state") == b"sent" and client.ttl(key) > 0


@responses.activate
def test_a_corrupt_state_is_still_refused(
    services: Services, counted: tuple[redis.Redis, RoundTrips]
) -> None:
    client, _ = counted
    config = tenant_config()
    key = keys.message_map(config.tenant_id, "wamid.X")
    client.hset(key, mapping={"genesys": "gc-x", "participant": "p", "state": "bogus"})

    with pytest.raises(MappingError):
        status(FakeContext(config, services.settings),
               ConversationStore(client, config.tenant_id),
               entry(config, "wa.status", status_of("wamid.X", "delivered", "gc-x")))  # fmt: skip
    assert client.hget(key, "state") == b"bogus"


@responses.activate
def test_agent_typing_costs_one_round_trip_and_shows_once_per_interval(
    services: Services, counted: tuple[redis.Redis, RoundTrips]
) -> None:
    client, trips = counted
    config = tenant_config()
    context = FakeContext(config, services.settings)
    mark = responses.post(GRAPH_SEND, json={"success": True})
    ConversationStore(client, config.tenant_id).user_wrote(
        PARTICIPANT, time.time() - 60, PARTICIPANT, {}, wamid="wamid.IN1"
    )
    typing = load("genesys_typing.json")
    typing["channel"]["to"]["id"] = PARTICIPANT
    counts = []
    for _ in range(2):
        before = trips.count
        agent_message(context, ConversationStore(client, config.tenant_id),
                      entry(config, "gc.message", typing), session=requests.Session())  # fmt: skip
        counts.append(trips.since(before))

    assert counts == [1, 1]
    assert mark.call_count == 1  # the second is within the interval
    assert json.loads(mark.calls[0].request.body)["message_id"] == "wamid.IN1"
