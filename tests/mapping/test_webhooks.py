"""Splitting Meta webhook bodies into items; reading Genesys outbound notifications."""

import copy
import json
from pathlib import Path
from typing import Any

import msgpack
import pytest

from interlink.mapping import (
    MappingError,
    parse_genesys_notification,
    phone_number_ids,
    read_meta_webhook,
    split_meta_webhook,
)

PAYLOADS = Path(__file__).parents[1] / "support" / "payloads"


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def test_batch_yields_every_entry_change_and_element() -> None:
    items = split_meta_webhook(load("meta_batch.json"))
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
    assert phone_number_ids(load("meta_batch.json")) == {"106540352242922", "106540352242923"}
    assert phone_number_ids(load("meta_text.json")) == {"106540352242922"}


def test_status_item_matches_contact_by_user_id_and_dedupes_on_status() -> None:
    [item] = split_meta_webhook(load("meta_status_read.json"))
    assert item.kind == "status"
    assert item.dedupe_key == "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA:read"
    assert item.contact is not None and item.contact["user_id"] == "US.13491208655302741918"
    assert item.user_key == "16505551234"


def test_system_level_errors_are_error_items() -> None:
    [item] = split_meta_webhook(load("meta_system_errors.json"))
    assert item.kind == "error" and item.dedupe_key is None
    assert item.element["code"] == 130429
    assert item.user_key is None


def test_single_contact_is_used_when_wa_id_differs_from_from() -> None:
    body = load("meta_text.json")
    body["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"] = "5216505551234"
    [item] = split_meta_webhook(body)
    assert item.contact is not None and item.contact["wa_id"] == "5216505551234"


def test_no_contact_when_several_and_none_matches() -> None:
    body = load("meta_batch.json")
    body["entry"][0]["changes"][0]["value"]["messages"][0]["from"] = "19999999999"
    items = split_meta_webhook(body)
    assert items[0].contact is None


def test_payload_is_msgpack_and_json_serializable() -> None:
    for item in split_meta_webhook(load("meta_batch.json")):
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
    with pytest.raises(MappingError):
        split_meta_webhook(body)
    with pytest.raises(MappingError):
        phone_number_ids(body)


def test_messages_change_without_phone_number_id_raises() -> None:
    body = load("meta_text.json")
    del body["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"]
    with pytest.raises(MappingError):
        split_meta_webhook(body)
    body["entry"][0]["changes"][0]["value"]["metadata"] = "x"
    with pytest.raises(MappingError):
        split_meta_webhook(body)


def test_malformed_elements_become_invalid_items_without_losing_the_others() -> None:
    body = load("meta_batch.json")
    value = body["entry"][0]["changes"][0]["value"]
    value["messages"].insert(0, "not an object")
    value["messages"].append({"from": "1", "type": "text", "timestamp": "1"})  # no id
    value["messages"].append({"from": "1", "id": 5, "type": "text", "timestamp": "1"})
    value["messages"].append({"from": "1", "id": "wamid.X", "type": "text"})  # no timestamp
    statuses = body["entry"][0]["changes"][1]["value"]["statuses"]
    statuses.append({"id": "wamid.OUT2"})  # no status
    kinds = [i.kind for i in split_meta_webhook(body)]
    assert kinds.count("invalid") == 5
    assert kinds.count("message") == 3 and kinds.count("status") == 2
    problems = [i.problem for i in split_meta_webhook(body) if i.kind == "invalid"]
    assert all(p and ("messages[" in p or "statuses[" in p) for p in problems)
    # Problems name fields, never quote content.
    assert not any("wamid" in (p or "") for p in problems)


def test_messages_not_a_list_raises() -> None:
    body = load("meta_text.json")
    body["entry"][0]["changes"][0]["value"]["messages"] = {"id": "x"}
    with pytest.raises(MappingError):
        split_meta_webhook(body)


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
    split_meta_webhook(body)
    assert body == before


# -- Genesys -------------------------------------------------------------------------------------


def test_genesys_text_notification() -> None:
    n = parse_genesys_notification(load("genesys_text.json"))
    assert n.type == "Text" and n.direction == "Outbound" and n.is_agent_message
    assert n.message_id == n.dedupe_key == "8085cbb3f778c34de0bd14c5318ec44c"
    assert n.conversation_id == "1734d888-0c1f-4b8e-9d55-2a7c5b0e9f11"
    assert n.integration_id == "3c1a52e4-6f0b-4b4e-9a2f-1d2e3f4a5b6c"
    assert n.user_id == "16505551234" and n.user_id_type == "Opaque"
    assert n.text == "Hello, how can I help? See https://example.com/help"
    assert n.attachments == ()
    assert n.originating_entity == "Human"


def test_genesys_attachment_notification() -> None:
    n = parse_genesys_notification(load("genesys_image.json"))
    [a] = n.attachments
    assert (a.media_type, a.mime, a.filename, a.size_bytes) == (
        "Image",
        "image/png",
        "label.png",
        2444,
    )
    assert a.url.startswith("https://api-downloads.mypurecloud.ie/")
    assert a.attachment_id == "9ff2a1b0-1c2d-4e5f-8a9b-0c1d2e3f4a5b"


def test_genesys_structured_keeps_rendered_text_and_skips_template_content() -> None:
    n = parse_genesys_notification(load("genesys_structured.json"))
    assert n.type == "Structured" and n.is_agent_message
    assert n.text == "Your order 67 has shipped." and n.attachments == ()


def test_genesys_typing_event_and_receipt_are_not_agent_messages() -> None:
    event = parse_genesys_notification(load("genesys_typing.json"))
    assert event.type == "Event" and not event.is_agent_message
    assert event.message_id is None and event.user_id == "16505551234"
    receipt = parse_genesys_notification(load("genesys_receipt.json"))
    assert receipt.type == "Receipt" and not receipt.is_agent_message


def test_genesys_unknown_type_is_kept_not_refused() -> None:
    body = load("genesys_text.json")
    body["type"] = "Hologram"
    n = parse_genesys_notification(body)
    assert n.type == "Hologram" and not n.is_agent_message


def _broken(path: list[Any], value: Any) -> dict[str, Any]:
    body = load("genesys_image.json")
    target = body
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["type"], KeyError),
        (["type"], 3),
        (["id"], KeyError),
        (["id"], ""),
        (["channel"], KeyError),
        (["channel"], "x"),
        (["channel", "to"], KeyError),
        (["channel", "to", "id"], None),
        (["text"], 42),
        (["content"], "x"),
        (["content", 0], "x"),
        (["content", 0, "attachment"], []),
        (["content", 0, "attachment", "url"], KeyError),
        (["content", 0, "attachment", "mediaType"], 1),
        (["content", 0, "attachment", "contentSizeBytes"], -1),
        (["content", 0, "attachment", "contentSizeBytes"], "12kb"),
        (["content", 0, "attachment", "contentSizeBytes"], True),
    ],
)
def test_genesys_malformed_raises_mapping_error(path: list[Any], value: Any) -> None:
    with pytest.raises(MappingError):
        parse_genesys_notification(_broken(path, value))


def test_genesys_non_object_raises() -> None:
    for body in (None, [], "x", 1):
        with pytest.raises(MappingError):
            parse_genesys_notification(body)
