"""An agent's message that still fails when its retries run out is a dead letter for the operator
and a ``Failed`` receipt for the agent, who would otherwise wait for a message that never comes."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis
import responses

from interlink.actors import conversation as conversation_module
from interlink.actors.flows.agent_message import NOT_SENT
from interlink.actors.tree import TreeSpec
from interlink.services import Services
from interlink.store.conversations import ConversationStore
from interlink.store.dead_letters import DeadLetters
from tests.actors.flows.conftest import (
    GENESYS,
    GRAPH_SEND,
    FakeContext,
    conversation,
    entry,
    load,
    tenant_config,
)

PARTICIPANT = "16505551234"


@pytest.fixture
def short_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conversation_module, "RETRY_FOR", 0.2)
    monkeypatch.setattr(conversation_module, "RETRY_BASE", 0.01)
    monkeypatch.setattr(conversation_module, "RETRY_CAP", 0.02)


def _world(services: Services, redis_client: redis.Redis, sender_for: Any) -> tuple[Any, Any]:
    config = tenant_config()
    context = FakeContext(config, services.settings, sender_for(config))
    ConversationStore(redis_client, config.tenant_id).user_wrote(
        PARTICIPANT, time.time() - 60, PARTICIPANT, {}
    )
    return config, context


@responses.activate
def test_meta_failing_past_the_retries_fails_the_message_for_the_agent(
    services: Services, redis_client: redis.Redis, sender_for: Any, short_retries: None
) -> None:
    config, context = _world(services, redis_client, sender_for)
    sends = responses.post(GRAPH_SEND, status=503, json={"error": {"message": "down", "code": 2}})
    receipt = responses.post(f"{GENESYS}/receipt", json={})
    notification = load("genesys_text.json")
    spec = TreeSpec(load_config=lambda tenant_id: config, services=services)

    with conversation(config, spec, lambda: context) as ref:
        ref.ask(entry(config, "gc.message", notification), timeout=10)
        # The next message of the conversation: its own dead letter, its own one receipt.
        ref.ask(entry(config, "gc.message", notification), timeout=10)

    assert sends.call_count >= 2  # retried before giving up
    assert receipt.call_count == 1  # once per message, not again for its redelivery
    body = json.loads(receipt.calls[0].request.body)
    assert body["id"] == notification["id"] and body["status"] == "Failed"
    assert body["reasons"] == [{"code": "GeneralError", "message": NOT_SENT}]
    letters = DeadLetters(redis_client, config.tenant_id).entries()
    assert len(letters) == 2 and "still failing after" in letters[0]["reason"]


@responses.activate
def test_when_genesys_fails_too_the_dead_letter_stays_and_nothing_raises(
    services: Services, redis_client: redis.Redis, sender_for: Any, short_retries: None
) -> None:
    config, context = _world(services, redis_client, sender_for)
    responses.post(GRAPH_SEND, status=503, json={"error": {"message": "down", "code": 2}})
    receipt = responses.post(f"{GENESYS}/receipt", status=503, json={})
    spec = TreeSpec(load_config=lambda tenant_id: config, services=services)

    with conversation(config, spec, lambda: context) as ref:
        ref.ask(entry(config, "gc.message", load("genesys_text.json")), timeout=10)

    assert receipt.call_count >= 1
    assert DeadLetters(redis_client, config.tenant_id).count() == 1


@responses.activate
def test_typing_that_fails_past_its_retries_sends_no_receipt(
    services: Services, redis_client: redis.Redis, sender_for: Any, short_retries: None
) -> None:
    config, context = _world(services, redis_client, sender_for)
    responses.post(GRAPH_SEND, status=503, json={"error": {"message": "down", "code": 2}})
    receipt = responses.post(f"{GENESYS}/receipt", json={})
    typing = load("genesys_typing.json")
    typing["channel"]["to"]["id"] = PARTICIPANT
    ConversationStore(redis_client, config.tenant_id).user_wrote(
        PARTICIPANT, time.time() - 60, PARTICIPANT, {}, wamid="wamid.IN1"
    )
    spec = TreeSpec(load_config=lambda tenant_id: config, services=services)

    with conversation(config, spec, lambda: context) as ref:
        ref.ask(entry(config, "gc.message", typing), timeout=10)

    assert receipt.call_count == 0
