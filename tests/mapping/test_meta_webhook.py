"""Reading Meta webhook bodies: every update of a batch, in order, and what is malformed."""

import copy
import json
from pathlib import Path
from typing import Any

import msgpack
import pytest

from interlink.mapping import (
    MappingError,
    read_meta_webhook,
)

PAYLOADS = Path(__file__).parents[1] / "support" / "payloads"


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def test_batch_yields_every_entry_change_and_element() -> None:
    items = read_meta_webhook(load("meta_batch.json")).updates()
    assert [(i.kind, i.dedupe_key) for i in items] == [
        ("message", "wamid.BATCH1"),
        ("message", "wamid.BATCH2"),
        ("status", "wamid.OUT1:delivered"),
        ("status", "wamid.OUT1:read"),
        ("ignored", None),
        ("message", "wamid.BATCH3"),
    ]
    first, second = items[0], items[1]
    assert first.phone_number_id == "106540352242922"
    assert first.display_phone_number == "15550783881"
    assert first.waba_id == "102290129340398"
    assert first.contact is not None and first.contact["wa_id"] == "16505551234"
    assert second.contact is not None and second.contact["user_id"] == "US.13491208655302741918"
    assert second.user_key == "US.13491208655302741918"
    assert items[4].field == "message_template_status_update"
    assert items[5].phone_number_id == "106540352242923"
    assert items[5].contact is not None and items[5].contact["profile"]["name"] == "Ravi"
    assert items[2].contact is None  # a status change without contacts


def test_phone_number_ids_across_entries() -> None:
    assert read_meta_webhook(load("meta_batch.json")).phone_number_ids == {
        "106540352242922",
        "106540352242923",
    }
    assert read_meta_webhook(load("meta_text.json")).phone_number_ids == {"106540352242922"}


def test_status_item_matches_contact_by_user_id_and_dedupes_on_status() -> None:
    [item] = read_meta_webhook(load("meta_status_read.json")).updates()
    assert item.kind == "status"
    assert item.dedupe_key == "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA:read"
    assert item.contact is not None and item.contact["user_id"] == "US.13491208655302741918"
    assert item.user_key == "16505551234"


def test_system_level_errors_are_error_items() -> None:
    [item] = read_meta_webhook(load("meta_system_errors.json")).updates()
    assert item.kind == "error" and item.dedupe_key is None
    assert item.element["code"] == 130429
    assert item.user_key is None


def test_single_contact_is_used_when_wa_id_differs_from_from() -> None:
    body = load("meta_text.json")
    body["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"] = "5216505551234"
    [item] = read_meta_webhook(body).updates()
    assert item.contact is not None and item.contact["wa_id"] == "5216505551234"


def test_no_contact_when_several_and_none_matches() -> None:
    body = load("meta_batch.json")
    body["entry"][0]["changes"][0]["value"]["messages"][0]["from"] = "19999999999"
    items = read_meta_webhook(body).updates()
    assert items[0].contact is None


def test_payload_is_msgpack_and_json_serializable() -> None:
    for item in read_meta_webhook(load("meta_batch.json")).updates():
        payload = item.as_payload()
        assert msgpack.unpackb(msgpack.packb(payload)) == payload
        assert json.loads(json.dumps(payload)) == payload


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "text",
        {},
        {"object": "page", "entry": []},
        {"object": "whatsapp_business_account"},
        {"object": "whatsapp_business_account", "entry": {}},
        {"object": "whatsapp_business_account", "entry": ["x"]},
        {"object": "whatsapp_business_account", "entry": [{"changes": "x"}]},
        {"object": "whatsapp_business_account", "entry": [{"changes": [7]}]},
    ],
)
def test_malformed_envelopes_raise_mapping_error(body: object) -> None:
    with pytest.raises(MappingError):  # at once: not even the business numbers can be read
        read_meta_webhook(body)


def test_messages_change_without_phone_number_id_raises() -> None:
    body = load("meta_text.json")
    del body["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"]
    with pytest.raises(MappingError):
        read_meta_webhook(body).updates()
    body["entry"][0]["changes"][0]["value"]["metadata"] = "x"
    with pytest.raises(MappingError):
        read_meta_webhook(body).updates()


def test_malformed_elements_become_invalid_items_without_losing_the_others() -> None:
    body = load("meta_batch.json")
    value = body["entry"][0]["changes"][0]["value"]
    value["messages"].insert(0, "not an object")
    value["messages"].append({"from": "1", "type": "text", "timestamp": "1"})  # no id
    value["messages"].append({"from": "1", "id": 5, "type": "text", "timestamp": "1"})
    value["messages"].append({"from": "1", "id": "wamid.X", "type": "text"})  # no timestamp
    statuses = body["entry"][0]["changes"][1]["value"]["statuses"]
    statuses.append({"id": "wamid.OUT2"})  # no status
    kinds = [i.kind for i in read_meta_webhook(body).updates()]
    assert kinds.count("invalid") == 5
    assert kinds.count("message") == 3 and kinds.count("status") == 2
    problems = [i.problem for i in read_meta_webhook(body).updates() if i.kind == "invalid"]
    assert all(p and ("messages[" in p or "statuses[" in p) for p in problems)
    # Problems name fields, never quote content.
    assert not any("wamid" in (p or "") for p in problems)


def test_messages_not_a_list_raises() -> None:
    body = load("meta_text.json")
    body["entry"][0]["changes"][0]["value"]["messages"] = {"id": "x"}
    with pytest.raises(MappingError):
        read_meta_webhook(body).updates()


def test_numbers_are_read_even_when_the_rest_is_malformed() -> None:
    # The webhook resolves the tenant and checks the signature before it says what else is
    # wrong: a malformed list is raised by updates(), a malformed number at once.
    body = load("meta_text.json")
    body["entry"][0]["changes"][0]["value"]["messages"] = {"id": "x"}
    webhook = read_meta_webhook(body)
    assert webhook.phone_number_ids == {"106540352242922"}
    with pytest.raises(MappingError, match=r"entry\[0\]\.changes\[0\]\.value\.messages"):
        webhook.updates()
    body["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = 7
    with pytest.raises(MappingError, match="phone_number_id must be a string"):
        read_meta_webhook(body)


def test_a_later_change_still_names_its_number_after_an_earlier_problem() -> None:
    body = load("meta_batch.json")
    body["entry"][0]["changes"][0]["field"] = 5
    webhook = read_meta_webhook(body)
    assert webhook.phone_number_ids == {"106540352242922", "106540352242923"}
    with pytest.raises(MappingError, match="field must be a string"):
        webhook.updates()


def test_split_does_not_mutate_the_body() -> None:
    body = load("meta_batch.json")
    before = copy.deepcopy(body)
    read_meta_webhook(body).updates()
    assert body == before
