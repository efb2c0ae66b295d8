"""A Meta status of an agent's message → at most one Genesys receipt, never a step back."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
import responses

from interlink.actors.flows.status import status
from interlink.providers.errors import TransientError
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


def _status_of(wamid: str, name: str, code: int | None = None) -> dict[str, Any]:
    update = meta_update("meta_status_delivered.json")
    element = {**update["element"], "id": wamid, "status": name}
    if code is not None:
        element["errors"] = [{"code": code, "title": "Message undeliverable"}]
    return {**update, "element": element}


@responses.activate
def test_a_message_sent_in_two_parts_is_delivered_only_when_both_parts_are(
    services: Services, redis_client: redis.Redis
) -> None:
    config = tenant_config()
    context = FakeContext(config, services.settings)
    store = ConversationStore(redis_client, config.tenant_id)
    for wamid in ("wamid.P1", "wamid.P2"):
        store.map_message(wamid, GENESYS_ID, "participant-1", parts=2)
    call = responses.post(f"{GENESYS}/receipt", json={})

    status(context, store, entry(config, "wa.status", _status_of("wamid.P1", "delivered")))
    status(context, store, entry(config, "wa.status", _status_of("wamid.P1", "read")))
    assert call.call_count == 0  # the second part is not there yet
    status(context, store, entry(config, "wa.status", _status_of("wamid.P2", "read")))
    # Later statuses, a redelivery and even a failure of a part change nothing any more.
    status(context, store, entry(config, "wa.status", _status_of("wamid.P2", "read")))
    status(context, store, entry(config, "wa.status", _status_of("wamid.P2", "failed", 131026)))

    assert [json.loads(c.request.body)["status"] for c in call.calls] == ["Delivered"]


@responses.activate
def test_one_failed_part_fails_the_message_once_and_it_is_never_delivered(
    services: Services, redis_client: redis.Redis
) -> None:
    config = tenant_config()
    context = FakeContext(config, services.settings)
    store = ConversationStore(redis_client, config.tenant_id)
    for wamid in ("wamid.F1", "wamid.F2", "wamid.F3"):
        store.map_message(wamid, GENESYS_ID, "participant-1", parts=3)
    call = responses.post(f"{GENESYS}/receipt", json={})

    status(context, store, entry(config, "wa.status", _status_of("wamid.F1", "delivered")))
    status(context, store, entry(config, "wa.status", _status_of("wamid.F2", "failed", 131026)))
    status(context, store, entry(config, "wa.status", _status_of("wamid.F3", "failed", 131026)))
    status(context, store, entry(config, "wa.status", _status_of("wamid.F2", "delivered")))
    status(context, store, entry(config, "wa.status", _status_of("wamid.F3", "delivered")))

    [receipt] = [json.loads(c.request.body) for c in call.calls]
    assert receipt["status"] == "Failed"
    assert receipt["reasons"][0]["code"] == "InvalidDestination"


@responses.activate
def test_a_receipt_lost_to_a_crash_before_it_was_recorded_is_sent_on_redelivery(
    services: Services, redis_client: redis.Redis
) -> None:
    config = tenant_config()
    context = FakeContext(config, services.settings)
    store = ConversationStore(redis_client, config.tenant_id)
    store.map_message("wamid.C1", GENESYS_ID, "participant-1")
    responses.post(f"{GENESYS}/receipt", status=500)
    delivered = entry(config, "wa.status", _status_of("wamid.C1", "delivered"))

    with pytest.raises(TransientError):
        status(context, store, delivered)  # the state moved, the receipt did not go
    responses.replace(responses.POST, f"{GENESYS}/receipt", json={})
    status(context, ConversationStore(redis_client, config.tenant_id), delivered)
    status(context, ConversationStore(redis_client, config.tenant_id), delivered)

    sent = [c for c in responses.calls if c.response is not None and c.response.status_code == 200]
    assert [json.loads(c.request.body)["status"] for c in sent] == ["Delivered"]
