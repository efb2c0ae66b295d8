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


class World:
    """A tenant whose WhatsApp sends all fail with a 503, and the Genesys receipt endpoint."""

    def __init__(
        self, services: Services, redis_client: redis.Redis, sender_for: Any, receipts: int
    ) -> None:
        self.config = config = tenant_config()
        self.context = FakeContext(config, services.settings, sender_for(config))
        ConversationStore(redis_client, config.tenant_id).user_wrote(
            PARTICIPANT, time.time() - 60, PARTICIPANT, {}, wamid="wamid.IN1"
        )
        self.sends = responses.post(
            GRAPH_SEND, status=503, json={"error": {"message": "down", "code": 2}}
        )
        self.receipt = responses.post(f"{GENESYS}/receipt", status=receipts, json={})
        self.spec = TreeSpec(load_config=lambda tenant_id: config, services=services)
        self.letters = DeadLetters(redis_client, config.tenant_id)

    def deliver(self, *payloads: dict[str, Any]) -> None:
        with conversation(self.config, self.spec, lambda: self.context) as ref:
            for payload in payloads:
                ref.ask(entry(self.config, "gc.message", payload), timeout=10)


@responses.activate
def test_meta_failing_past_the_retries_fails_the_message_for_the_agent(
    services: Services, redis_client: redis.Redis, sender_for: Any, short_retries: None
) -> None:
    world = World(services, redis_client, sender_for, receipts=200)
    notification = load("genesys_text.json")

    # The same message twice: its redelivery is its own dead letter, but no second receipt.
    world.deliver(notification, notification)

    assert world.sends.call_count >= 2  # retried before giving up
    assert world.receipt.call_count == 1
    body = json.loads(world.receipt.calls[0].request.body)
    assert body["id"] == notification["id"] and body["status"] == "Failed"
    assert body["reasons"] == [{"code": "GeneralError", "message": NOT_SENT}]
    letters = world.letters.entries()
    assert len(letters) == 2 and "still failing after" in letters[0]["reason"]


@responses.activate
def test_when_genesys_fails_too_the_dead_letter_stays_and_nothing_raises(
    services: Services, redis_client: redis.Redis, sender_for: Any, short_retries: None
) -> None:
    world = World(services, redis_client, sender_for, receipts=503)

    world.deliver(load("genesys_text.json"))

    assert world.receipt.call_count >= 1
    assert world.letters.count() == 1
