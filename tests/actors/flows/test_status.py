"""A Meta status of an agent's message → at most one Genesys receipt, never a step back."""

from __future__ import annotations

import json

import redis
import responses

from interlink.actors.flows.status import status
from interlink.services import Services
from interlink.store.conversations import ConversationStore
from tests.actors.flows.conftest import GENESYS, FakeContext, entry, meta_update, tenant_config

GENESYS_ID = "8085cbb3f778c34de0bd14c5318ec44c"


@responses.activate
def test_delivered_then_read_gives_one_delivered_receipt(
    services: Services, redis_client: redis.Redis
) -> None:
    config = tenant_config()
    context = FakeContext(config, services.settings)
    store = ConversationStore(redis_client, config.tenant_id)
    delivered = meta_update("meta_status_delivered.json")
    wamid = delivered["element"]["id"]
    store.map_message(wamid, GENESYS_ID, "participant-1")
    call = responses.post(f"{GENESYS}/receipt", json={})

    status(context, store, entry(config, "wa.status", delivered))
    read = {**delivered, "element": {**delivered["element"], "status": "read"}}
    status(context, store, entry(config, "wa.status", read))

    assert call.call_count == 1
    receipt = json.loads(call.calls[0].request.body)
    assert receipt["id"] == GENESYS_ID and receipt["status"] == "Delivered"
    assert receipt["channel"]["to"]["id"] == "participant-1"
    assert store.mapped(wamid) == (GENESYS_ID, "participant-1", "read")


@responses.activate
def test_an_unmapped_status_finds_the_agent_message_by_its_callback_data(
    services: Services, redis_client: redis.Redis
) -> None:
    config = tenant_config()
    context = FakeContext(config, services.settings)
    call = responses.post(f"{GENESYS}/receipt", json={})
    delivered = meta_update("meta_status_delivered.json")

    status(context, ConversationStore(redis_client, config.tenant_id),
           entry(config, "wa.status", delivered))  # fmt: skip

    receipt = json.loads(call.calls[0].request.body)
    assert receipt["id"] == GENESYS_ID  # biz_opaque_callback_data of the sample
    assert receipt["channel"]["to"]["id"] == "16505551234"


@responses.activate
def test_a_status_of_a_message_no_agent_sent_is_ignored(
    services: Services, redis_client: redis.Redis
) -> None:
    config = tenant_config()
    delivered = meta_update("meta_status_delivered.json")
    element = {k: v for k, v in delivered["element"].items() if k != "biz_opaque_callback_data"}

    status(FakeContext(config, services.settings),
           ConversationStore(redis_client, config.tenant_id),
           entry(config, "wa.status", {**delivered, "element": element}))  # fmt: skip

    assert len(responses.calls) == 0
