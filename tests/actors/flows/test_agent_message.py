"""A Genesys agent's message → WhatsApp through the tenant's real sender; a message that cannot
reach the user becomes a Failed receipt for the agent."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis
import requests
import responses

from interlink.actors.flows.agent_message import agent_message
from interlink.services import Services
from interlink.store.conversations import ConversationStore
from tests.actors.flows.conftest import (
    GENESYS,
    GRAPH_SEND,
    FakeContext,
    entry,
    load,
    tenant_config,
)

PARTICIPANT = "16505551234"


def graph_error(code: int) -> dict[str, Any]:
    return {"error": {"message": "refused", "type": "OAuthException", "code": code}}


@responses.activate
def test_text_within_the_window_is_sent_and_its_wamid_mapped(
    services: Services, redis_client: redis.Redis, sender_for: Any
) -> None:
    config = tenant_config()
    context = FakeContext(config, services.settings, sender_for(config))
    store = ConversationStore(redis_client, config.tenant_id)
    store.user_wrote(PARTICIPANT, time.time() - 60, PARTICIPANT, {})
    send = responses.post(GRAPH_SEND, json={"messages": [{"id": "wamid.OUT1"}]})
    notification = load("genesys_text.json")

    agent_message(context, store, entry(config, "gc.message", notification),
                  session=requests.Session())  # fmt: skip

    assert send.call_count == 1
    body = json.loads(send.calls[0].request.body)
    assert body["to"] == "+16505551234" and body["type"] == "text"
    assert body["biz_opaque_callback_data"] == notification["id"]
    assert store.mapped("wamid.OUT1") == (notification["id"], PARTICIPANT, None)


@responses.activate
def test_outside_the_window_without_a_template_the_agent_gets_message_expired(
    services: Services, redis_client: redis.Redis
) -> None:
    config = tenant_config()
    context = FakeContext(config, services.settings)  # no sender: nothing may go to WhatsApp
    store = ConversationStore(redis_client, config.tenant_id)
    store.user_wrote(PARTICIPANT, time.time() - 25 * 3600, PARTICIPANT, {})
    receipt = responses.post(f"{GENESYS}/receipt", json={})

    agent_message(context, store, entry(config, "gc.message", load("genesys_text.json")),
                  session=requests.Session())  # fmt: skip

    body = json.loads(receipt.calls[0].request.body)
    assert body["status"] == "Failed" and body["reasons"][0]["code"] == "MessageExpired"


@responses.activate
def test_a_fatal_graph_error_becomes_a_failed_receipt_not_a_retry(
    services: Services, redis_client: redis.Redis, sender_for: Any
) -> None:
    config = tenant_config()
    context = FakeContext(config, services.settings, sender_for(config))
    store = ConversationStore(redis_client, config.tenant_id)
    store.user_wrote(PARTICIPANT, time.time() - 60, PARTICIPANT, {})
    responses.post(GRAPH_SEND, status=400, json=graph_error(131026))
    receipt = responses.post(f"{GENESYS}/receipt", json={})

    agent_message(context, store, entry(config, "gc.message", load("genesys_text.json")),
                  session=requests.Session())  # fmt: skip

    body = json.loads(receipt.calls[0].request.body)
    assert body["status"] == "Failed" and body["reasons"][0]["code"] == "InvalidDestination"


@pytest.mark.parametrize("shown", [True, False])
@responses.activate
def test_with_typing_indicators_off_agent_typing_marks_nothing_read(
    services: Services, redis_client: redis.Redis, shown: bool
) -> None:
    config = tenant_config({"typingIndicator": shown})
    context = FakeContext(config, services.settings)
    mark = responses.post(GRAPH_SEND, json={"success": True})
    store = ConversationStore(redis_client, config.tenant_id)
    store.user_wrote(PARTICIPANT, time.time() - 60, PARTICIPANT, {}, wamid="wamid.IN1")
    typing = load("genesys_typing.json")
    typing["channel"]["to"]["id"] = PARTICIPANT

    agent_message(context, store, entry(config, "gc.message", typing),
                  session=requests.Session())  # fmt: skip

    assert mark.call_count == (1 if shown else 0)
    if shown:
        assert json.loads(mark.calls[0].request.body)["message_id"] == "wamid.IN1"


@responses.activate
def test_a_later_agent_message_makes_a_numbered_menu_stale(
    services: Services, redis_client: redis.Redis, sender_for: Any
) -> None:
    config = tenant_config()
    context = FakeContext(config, services.settings, sender_for(config))
    store = ConversationStore(redis_client, config.tenant_id)
    store.user_wrote(PARTICIPANT, time.time() - 60, PARTICIPANT, {})
    responses.post(GRAPH_SEND, json={"messages": [{"id": "wamid.OUT9"}]})
    menu = load("genesys_structured.json")
    menu["channel"]["to"]["id"] = PARTICIPANT
    menu["content"] = [
        {"contentType": "QuickReply", "quickReply": {"text": f"Shop {n}", "payload": f"s{n}"}}
        for n in range(1, 12)
    ]

    agent_message(context, store, entry(config, "gc.message", menu), session=requests.Session())
    remembered = store.user_wrote(PARTICIPANT, time.time(), PARTICIPANT, {})
    assert remembered is not None and remembered["id"] == menu["id"]
    later = {**load("genesys_text.json"), "id": "a-later-message"}
    agent_message(context, store, entry(config, "gc.message", later), session=requests.Session())
    assert store.user_wrote(PARTICIPANT, time.time(), PARTICIPANT, {}) is None
