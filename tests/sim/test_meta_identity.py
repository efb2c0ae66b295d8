"""The Meta simulator's identity changes: system messages in Meta's shape (no contacts block, the
2026 BSUID fields), and the old address no longer reaching the user."""

from __future__ import annotations

import json

import requests

from interlink.sim import whatsapp_payloads as wa
from interlink.sim.server import SimServer
from interlink.sim.sink import WebhookSink
from interlink.sim.whatsapp_payloads import WhatsAppUser
from tests.sim.test_meta import World, _number, send, served, world

__all__ = ["served", "world"]


def test_a_number_change_comes_from_the_old_number_with_the_new_one_and_the_bsuids() -> None:
    user = WhatsAppUser(wa_id="16505551234", user_id="US.111", name="Ana")
    item = wa.message(
        "system", user, wamid="wamid.S", timestamp=1, business_number="15550000000",
        new_wa_id="16505559999", new_user_id="US.222",
    )  # fmt: skip
    assert item["from"] == "16505551234" and item["type"] == "system"
    assert item["system"]["type"] == "user_changed_number"
    assert item["system"]["wa_id"] == "16505559999"
    assert (item["system"]["user_id"], item["system"]["previous_user_id"]) == ("US.222", "US.111")


def test_an_id_change_names_no_phone() -> None:
    user = WhatsAppUser(wa_id="16505551234", user_id="US.111")
    item = wa.message(
        "system", user, wamid="wamid.S", timestamp=1, business_number="15550000000",
        system_type="user_changed_user_id", new_user_id="US.222",
    )  # fmt: skip
    assert "from" not in item and item["from_user_id"] == "US.111"
    assert item["system"] == {
        "type": "user_changed_user_id",
        "body": item["system"]["body"],
        "user_id": "US.222",
        "previous_user_id": "US.111",
    }


def test_a_send_to_a_retired_number_is_accepted_then_undeliverable(world: World) -> None:
    world.state.meta.retire(["+351910000001"])
    answer = send(
        world,
        {"messaging_product": "whatsapp", "to": "351910000001", "type": "text",
         "text": {"body": "hi"}},
    )  # fmt: skip
    assert answer.status_code == 200  # Meta takes it; the status webhook says it failed
    assert world.state.meta.is_retired("351910000001")
    assert not world.state.meta.is_retired("351910000002")


def test_identity_changes_and_templates_over_the_control_api(
    served: tuple[SimServer, WebhookSink],
) -> None:
    server, sink = served
    number = _number(server.state, webhook_url=sink.url)
    result = requests.post(
        f"{server.url}/_sim/meta/users/identity",
        timeout=5,
        json={
            "phoneNumberId": number.phone_number_id,
            "from": {"waId": "351910000001", "userId": "PT.111", "name": "Ana"},
            "newWaId": "351910000009",
            "newUserId": "PT.222",
        },
    ).json()
    assert result["status"] == 200
    value = json.loads(sink.wait_for(1)[0].raw)["entry"][0]["changes"][0]["value"]
    assert "contacts" not in value  # system messages carry none
    [item] = value["messages"]
    assert item["system"]["wa_id"] == "351910000009" and item["system"]["user_id"] == "PT.222"
    assert server.state.meta.is_retired("351910000001")

    created = requests.post(
        f"{server.url}/_sim/meta/templates",
        timeout=5,
        json={"wabaId": number.waba_id, "name": "hello", "language": "en_US",
              "bodyParameters": 1},
    )  # fmt: skip
    assert created.status_code == 201
    assert (number.waba_id) in server.state.meta.templates
    refused = requests.post(
        f"{server.url}/_sim/meta/templates",
        timeout=5,
        json={"wabaId": number.waba_id, "name": "x", "language": "en", "bodyParameters": -1},
    )
    assert refused.status_code == 400
