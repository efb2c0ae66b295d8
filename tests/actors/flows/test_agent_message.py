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

from interlink.actors.flows.agent_message import DOWNLOAD_REFUSED, agent_message
from interlink.actors.flows.common import GiveUp
from interlink.actors.flows.status import status
from interlink.services import Services
from interlink.store.conversations import ConversationStore
from tests.actors.flows.conftest import (
    GENESYS,
    GRAPH_SEND,
    FakeContext,
    entry,
    load,
    meta_update,
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


DOWNLOAD = "https://api-downloads.mypurecloud.ie/api/v2/downloads/pce9d1a2b3c4"


def image_after_a_long_text() -> dict[str, Any]:
    """An agent's text too long for a caption, then an image whose declared size (2444 bytes)
    is wrong: the text goes first, alone; the image is found too large only while downloading."""
    message = load("genesys_image.json")
    message["text"] = "label " * 200
    return message


def statuses_of(wamid: str, *names: str) -> list[dict[str, Any]]:
    update = meta_update("meta_status_delivered.json")
    found = []
    for name in names:
        element = {**update["element"], "id": wamid, "status": name}
        if name == "failed":
            element["errors"] = [{"code": 131026, "title": "Message undeliverable"}]
        found.append({**update, "element": element})
    return found


@responses.activate
def test_an_attachment_found_too_large_while_downloading_fails_the_message_once(
    services: Services, redis_client: redis.Redis, sender_for: Any
) -> None:
    config = tenant_config()
    context = FakeContext(config, services.settings, sender_for(config))
    store = ConversationStore(redis_client, config.tenant_id)
    store.user_wrote(PARTICIPANT, time.time() - 60, PARTICIPANT, {})
    send = responses.post(GRAPH_SEND, json={"messages": [{"id": "wamid.TEXT"}]})
    responses.get(DOWNLOAD, body=b"\x89PNG" + bytes(5 * 1024 * 1024), content_type="image/png")
    receipt = responses.post(f"{GENESYS}/receipt", json={})
    message = image_after_a_long_text()

    agent_message(context, store, entry(config, "gc.message", message),
                  session=requests.Session())  # fmt: skip
    # The text that went out before is delivered, then fails: the message's one final receipt
    # stands.
    for update in statuses_of("wamid.TEXT", "delivered", "read", "failed"):
        status(context, store, entry(config, "wa.status", update))
    agent_message(
        context, store, entry(config, "gc.message", message), session=requests.Session()
    )  # fmt: skip  (a redelivery)

    assert send.call_count == 1 and json.loads(send.calls[0].request.body)["type"] == "text"
    [failed] = [json.loads(c.request.body) for c in receipt.calls]
    assert failed["id"] == message["id"] and failed["status"] == "Failed"
    assert failed["reasons"] == [
        {"code": "InvalidMediaContentLength", "message": "image larger than WhatsApp's 5 MB limit"}
    ]


@responses.activate
def test_a_refused_download_fails_the_message_and_leaves_a_dead_letter(
    services: Services, redis_client: redis.Redis, sender_for: Any
) -> None:
    config = tenant_config()
    context = FakeContext(config, services.settings, sender_for(config))
    store = ConversationStore(redis_client, config.tenant_id)
    store.user_wrote(PARTICIPANT, time.time() - 60, PARTICIPANT, {})
    send = responses.post(GRAPH_SEND, json={"messages": [{"id": "wamid.TEXT2"}]})
    responses.get(DOWNLOAD, status=404, json={"code": "not.found", "status": 404})
    receipt = responses.post(f"{GENESYS}/receipt", json={})

    with pytest.raises(GiveUp, match=r"^attachment download answered 404$"):
        agent_message(context, store, entry(config, "gc.message", image_after_a_long_text()),
                      session=requests.Session())  # fmt: skip

    assert send.call_count == 1
    [failed] = [json.loads(c.request.body) for c in receipt.calls]
    assert failed["status"] == "Failed"
    assert failed["reasons"] == [{"code": "GeneralError", "message": DOWNLOAD_REFUSED}]


@responses.activate
def test_outside_the_window_a_quick_reply_goes_in_the_template_as_a_numbered_menu(
    services: Services, redis_client: redis.Redis, sender_for: Any
) -> None:
    template = {"name": "agent_reply", "language": "en_US"}
    config = tenant_config({"fallbackTemplate": template})
    context = FakeContext(config, services.settings, sender_for(config))
    store = ConversationStore(redis_client, config.tenant_id)
    store.user_wrote(PARTICIPANT, time.time() - 25 * 3600, PARTICIPANT, {})
    send = responses.post(GRAPH_SEND, json={"messages": [{"id": "wamid.TPL"}]})
    menu = load("genesys_structured.json")
    menu["channel"]["to"]["id"] = PARTICIPANT
    menu["text"] = "Which size?"
    menu["content"] = [
        {"contentType": "QuickReply", "quickReply": {"text": t, "payload": p}}
        for t, p in (("Small", "size-s"), ("Large", "size-l"))
    ]

    agent_message(context, store, entry(config, "gc.message", menu), session=requests.Session())

    [call] = send.calls
    body = json.loads(call.request.body)
    assert body["type"] == "template" and body["template"]["name"] == "agent_reply"
    [component] = body["template"]["components"]
    assert component["parameters"] == [{"type": "text", "text": "Which size? 1. Small 2. Large"}]
    remembered = store.user_wrote(PARTICIPANT, time.time(), PARTICIPANT, {})
    assert remembered is not None and remembered["id"] == menu["id"]
    assert remembered["options"] == [["Small", "size-s"], ["Large", "size-l"]]
