"""A WhatsApp user's message → Genesys: sent once, the user's window opened, the Genesys
conversation remembered for the Genesys webhook."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis
import responses

from interlink.actors.flows.common import GiveUp
from interlink.actors.flows.customer_message import customer_message
from interlink.security import media_links
from interlink.services import Services
from interlink.store.conversations import ConversationStore, tenant_of_genesys_conversation
from tests.actors.flows.conftest import (
    GENESYS,
    GRAPH_SEND,
    FakeContext,
    entry,
    meta_update,
    tenant_config,
)

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


def _text_from(phone: str, body: str, wamid: str) -> dict[str, Any]:
    update = meta_update("meta_text.json")
    element = {**update["element"], "from": phone, "id": wamid, "text": {"body": body}}
    contact = {**update["contact"], "wa_id": phone}
    return {**update, "element": element, "contact": contact}


@responses.activate
def test_after_a_number_change_the_user_keeps_their_participant_and_replies_go_to_the_new_number(
    services: Services, redis_client: redis.Redis
) -> None:
    config = tenant_config()
    context = FakeContext(config, services.settings)
    store = ConversationStore(redis_client, config.tenant_id)
    call = responses.post(f"{GENESYS}/message", json={"id": "gc"})

    customer_message(context, store, entry(config, "wa.message", meta_update("meta_text.json")),
                     secret_keys=services.secret_keys)  # fmt: skip
    customer_message(context, store, entry(config, "wa.message", meta_update("meta_system.json")),
                     secret_keys=services.secret_keys)  # fmt: skip
    work = entry(config, "wa.message", _text_from("16505559999", "new phone", "wamid.NEW1"))
    customer_message(context, store, work, secret_keys=services.secret_keys)

    bodies = [json.loads(c.request.body) for c in call.calls]
    assert [b["channel"]["from"]["id"] for b in bodies] == ["16505551234"] * 3
    assert "+16505559999" in bodies[1]["text"]  # the agent is told
    assert bodies[2]["text"] == "new phone"
    assert store.address("16505551234")[1] == "16505559999"


@responses.activate
def test_a_business_scoped_id_change_points_the_new_id_to_the_same_participant(
    services: Services, redis_client: redis.Redis
) -> None:
    config = tenant_config()
    context = FakeContext(config, services.settings)
    store = ConversationStore(redis_client, config.tenant_id)
    call = responses.post(f"{GENESYS}/message", json={"id": "gc"})
    first = meta_update("meta_text_bsuid_only.json")
    old_bsuid = first["element"]["from_user_id"]
    customer_message(context, store, entry(config, "wa.message", first),
                     secret_keys=services.secret_keys)  # fmt: skip
    change = {
        **first,
        "contact": None,
        "element": {
            "from_user_id": old_bsuid,
            "id": "wamid.SYS2",
            "timestamp": first["element"]["timestamp"],
            "type": "system",
            "system": {
                "body": "User changed",
                "type": "user_changed_user_id",
                "user_id": "US.99887766554433221100",
                "previous_user_id": old_bsuid,
            },
        },
    }
    customer_message(context, store, entry(config, "wa.message", change),
                     secret_keys=services.secret_keys)  # fmt: skip
    later = {
        **first,
        "contact": {**first["contact"], "user_id": "US.99887766554433221100"},
        "element": {
            **first["element"],
            "id": "wamid.AFTER",
            "from_user_id": "US.99887766554433221100",
        },
    }
    customer_message(context, store, entry(config, "wa.message", later),
                     secret_keys=services.secret_keys)  # fmt: skip

    ids = [json.loads(c.request.body)["channel"]["from"]["id"] for c in call.calls]
    assert ids == [old_bsuid] * 3
    assert store.address(old_bsuid)[2] == "US.99887766554433221100"


@responses.activate
def test_a_number_answering_a_numbered_menu_is_a_structured_response_and_other_text_a_message(
    services: Services, redis_client: redis.Redis
) -> None:
    config = tenant_config()
    context = FakeContext(config, services.settings)
    store = ConversationStore(redis_client, config.tenant_id)
    options = [(f"Shop {n}", f"shop-{n}") for n in range(1, 13)]
    store.remember_menu("16505551234", "gc-menu", options)
    message = responses.post(f"{GENESYS}/message", json={"id": "gc"})
    answer = responses.post(f"{GENESYS}/structured/response", json={"id": "gc-a"})

    for wamid, text in (("wamid.A", "twelve?"), ("wamid.B", " 12 "), ("wamid.C", "12")):
        work = entry(config, "wa.message", _text_from("16505551234", text, wamid))
        customer_message(context, store, work, secret_keys=services.secret_keys)

    assert [json.loads(c.request.body)["text"] for c in message.calls] == ["twelve?", "12"]
    [response] = [json.loads(c.request.body) for c in answer.calls]
    assert response["buttonResponse"] == {
        "type": "QuickReply",
        "text": "Shop 12",
        "payload": "shop-12",
    }
    assert response["originatingMessageId"] == "gc-menu"


def _welcome_request() -> dict[str, Any]:
    update = meta_update("meta_text.json")
    element = {k: v for k, v in update["element"].items() if k != "text"}
    return {**update, "element": {**element, "id": "wamid.WELCOME", "type": "request_welcome"}}


@responses.activate
def test_a_welcome_request_is_answered_with_the_welcome_text_once_and_opens_nothing(
    services: Services, redis_client: redis.Redis, sender_for: Any
) -> None:
    config = tenant_config({"welcomeText": "Hello! An agent will be with you shortly."})
    context = FakeContext(config, services.settings, sender_for(config))
    store = ConversationStore(redis_client, config.tenant_id)
    send = responses.post(GRAPH_SEND, json={"messages": [{"id": "wamid.HELLO"}]})
    work = entry(config, "wa.message", _welcome_request())

    customer_message(context, store, work, secret_keys=services.secret_keys)
    customer_message(context, ConversationStore(redis_client, config.tenant_id), work,
                     secret_keys=services.secret_keys)  # fmt: skip

    assert send.call_count == 1  # not again on a redelivery, and nothing to Genesys
    body = json.loads(send.calls[0].request.body)
    assert body["to"] == "+16505551234" and body["type"] == "text"
    assert body["text"]["body"] == "Hello! An agent will be with you shortly."
    assert "biz_opaque_callback_data" not in body


@responses.activate
def test_without_a_welcome_text_a_welcome_request_sends_nothing(
    services: Services, redis_client: redis.Redis
) -> None:
    config = tenant_config()
    customer_message(FakeContext(config, services.settings),
                     ConversationStore(redis_client, config.tenant_id),
                     entry(config, "wa.message", _welcome_request()),
                     secret_keys=services.secret_keys)  # fmt: skip
    assert len(responses.calls) == 0
