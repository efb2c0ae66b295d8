"""A WhatsApp user's message → Genesys: sent once, the user's window opened, the Genesys
conversation remembered for the Genesys webhook."""

from __future__ import annotations

import json
import time

import pytest
import redis
import responses

from interlink.actors.flows.common import GiveUp
from interlink.actors.flows.customer_message import customer_message
from interlink.security import media_links
from interlink.services import Services
from interlink.store.conversations import ConversationStore, tenant_of_genesys_conversation
from tests.actors.flows.conftest import GENESYS, FakeContext, entry, meta_update, tenant_config

CONVERSATION = "1734d888-0c1f-4b8e-9d55-2a7c5b0e9f11"


@responses.activate
def test_text_goes_to_genesys_once_and_the_conversation_names_the_tenant(
    services: Services, redis_client: redis.Redis
) -> None:
    config = tenant_config()
    context = FakeContext(config, services.settings)
    store = ConversationStore(redis_client, config.tenant_id)
    call = responses.post(f"{GENESYS}/message", json={"id": "gc-1", "conversationId": CONVERSATION})
    work = entry(config, "wa.message", meta_update("meta_text.json"))

    customer_message(context, store, work, secret_keys=services.secret_keys)
    # A redelivery (after a crash before the acknowledgement) sends nothing again.
    customer_message(context, ConversationStore(redis_client, config.tenant_id), work,
                     secret_keys=services.secret_keys)  # fmt: skip

    assert call.call_count == 1
    body = json.loads(call.calls[0].request.body)
    assert body["channel"]["messageId"] == work.payload["element"]["id"]
    assert body["channel"]["from"]["id"] == "16505551234"
    assert body["text"]
    assert tenant_of_genesys_conversation(redis_client, CONVERSATION) == config.tenant_id
    last_inbound, phone = store.state("16505551234")
    assert last_inbound is not None and phone == "16505551234"


@responses.activate
def test_media_reaches_genesys_as_a_signed_link_of_this_deployment(
    services: Services, redis_client: redis.Redis
) -> None:
    config = tenant_config()
    context = FakeContext(config, services.settings)
    call = responses.post(f"{GENESYS}/message", json={"id": "gc-2"})
    work = entry(config, "wa.message", meta_update("meta_image.json"))

    customer_message(context, ConversationStore(redis_client, config.tenant_id), work,
                     secret_keys=services.secret_keys)  # fmt: skip

    [attachment] = json.loads(call.calls[0].request.body)["content"]
    url = attachment["attachment"]["url"]
    prefix = f"{services.settings.base_url}/media/"
    assert url.startswith(prefix)
    link = media_links.verify(url[len(prefix) :], services.secret_keys, now=time.time())
    assert link.tenant_id == config.tenant_id
    assert link.media_id == work.payload["element"]["image"]["id"]


@responses.activate
def test_without_genesys_credentials_it_gives_up_after_opening_the_window(
    services: Services, redis_client: redis.Redis
) -> None:
    config = tenant_config()
    context = FakeContext(config, services.settings)
    context.genesys = None
    store = ConversationStore(redis_client, config.tenant_id)

    with pytest.raises(GiveUp):
        customer_message(context, store, entry(config, "wa.message", meta_update("meta_text.json")),
                         secret_keys=services.secret_keys)  # fmt: skip

    assert store.state("16505551234")[0] is not None  # an agent may still answer in the window
    assert len(responses.calls) == 0
