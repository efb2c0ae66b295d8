"""The Genesys participant of a WhatsApp user: stable across phone / BSUID, never empty."""

import json
from pathlib import Path
from typing import Any

import pytest

from interlink.mapping import (
    MappingError,
    alias_keys,
    aliases_to_record,
    genesys_participant,
    identifiers_of_message,
    identifiers_of_status,
    participant_id,
    read_meta_webhook,
    whatsapp_recipient,
)
from interlink.mapping.identity import recipient_fields

PAYLOADS = Path(__file__).parents[1] / "support" / "payloads"
PHONE = "16505551234"
BSUID = "US.13491208655302741918"


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


class AliasStore:
    """The I/O part, as the caller does it: set-if-absent."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def resolve(self, phone: str | None, bsuid: str | None) -> str:
        known = next((self.data[k] for k in alias_keys(phone, bsuid) if k in self.data), None)
        participant = participant_id(phone, bsuid, known)
        for key, value in aliases_to_record(participant, phone, bsuid).items():
            self.data.setdefault(key, value)
        return participant


def test_identifiers_from_payloads() -> None:
    [item] = read_meta_webhook(load("meta_text.json")).updates()
    ids = identifiers_of_message(item.element, item.contact)
    assert (ids.phone, ids.bsuid, ids.name) == (PHONE, None, "Sheena Nelson")
    [item] = read_meta_webhook(load("meta_text_bsuid_only.json")).updates()
    ids = identifiers_of_message(item.element, item.contact)
    assert (ids.phone, ids.bsuid, ids.name) == (None, BSUID, "Kai")
    [item] = read_meta_webhook(load("meta_text_phone_and_bsuid.json")).updates()
    ids = identifiers_of_message(item.element, item.contact)
    assert (ids.phone, ids.bsuid) == (PHONE, BSUID)


def test_identifiers_of_status() -> None:
    [item] = read_meta_webhook(load("meta_status_read.json")).updates()
    ids = identifiers_of_status(item.element, item.contact)
    assert (ids.phone, ids.bsuid) == (PHONE, BSUID)
    ids = identifiers_of_status({"id": "w", "status": "read", "recipient_id": BSUID}, None)
    assert (ids.phone, ids.bsuid) == (None, BSUID)


def test_username_is_the_fallback_nickname() -> None:
    ids = identifiers_of_message(
        {"from_user_id": BSUID}, {"profile": {"username": "@kai"}, "user_id": BSUID}
    )
    assert ids.name == "@kai"


def test_no_identifier_at_all_raises() -> None:
    with pytest.raises(MappingError):
        identifiers_of_message({"id": "w", "type": "text"}, None)
    with pytest.raises(MappingError):
        participant_id(None, None, None)
    with pytest.raises(MappingError):
        participant_id("", "", "  ")


@pytest.mark.parametrize(
    ("message", "contact"),
    [
        ({"from": 16505551234}, None),
        ({"from": "not-a-phone"}, None),
        ({"from": "123"}, None),
        ({"from_user_id": "nodot"}, None),
        ({"from_user_id": "US." + "1" * 200}, None),
        ({"from_user_id": ["US.1"]}, None),
        ({}, {"wa_id": {"x": 1}}),
    ],
)
def test_malformed_identifiers_raise(
    message: dict[str, Any], contact: dict[str, Any] | None
) -> None:
    with pytest.raises(MappingError):
        identifiers_of_message(message, contact)


def test_stable_id_phone_first_then_bsuid_only_then_both() -> None:
    store = AliasStore()
    assert store.resolve(PHONE, None) == PHONE
    assert store.resolve(PHONE, BSUID) == PHONE
    assert store.resolve(None, BSUID) == PHONE  # BSUID-only payload finds the same user


def test_stable_id_bsuid_first_then_phone_appears() -> None:
    store = AliasStore()
    assert store.resolve(None, BSUID) == BSUID
    assert store.resolve(PHONE, BSUID) == BSUID
    assert store.resolve(PHONE, None) == BSUID


def test_stable_id_both_from_the_start_prefers_phone() -> None:
    store = AliasStore()
    assert store.resolve(PHONE, BSUID) == PHONE
    assert store.resolve(None, BSUID) == PHONE


def test_conflicting_aliases_resolve_to_the_phones_participant() -> None:
    store = AliasStore()
    store.resolve(PHONE, None)
    store.resolve(None, BSUID)  # never seen together: a second participant, for now
    assert store.resolve(PHONE, BSUID) == PHONE
    assert store.data["bsuid:" + BSUID] == BSUID  # set-if-absent: the older entry is kept


def test_alias_keys_are_namespaced_and_normalized() -> None:
    assert alias_keys("+1 (650) 555-1234", BSUID) == ("phone:" + PHONE, "bsuid:" + BSUID)
    assert alias_keys(None, None) == ()
    assert aliases_to_record(PHONE, PHONE, BSUID) == {
        "phone:" + PHONE: PHONE,
        "bsuid:" + BSUID: PHONE,
    }
    with pytest.raises(MappingError):
        aliases_to_record(" ", PHONE, None)


def test_genesys_participant_shape() -> None:
    assert genesys_participant(PHONE, "Sheena Nelson") == {
        "id": PHONE,
        "idType": "Opaque",
        "nickname": "Sheena Nelson",
    }
    assert genesys_participant(BSUID) == {"id": BSUID, "idType": "Opaque"}
    assert genesys_participant(PHONE, "  ") == {"id": PHONE, "idType": "Opaque"}
    assert genesys_participant(PHONE, "a\nb" + "x" * 300)["nickname"] == ("a b" + "x" * 300)[:100]
    with pytest.raises(MappingError):
        genesys_participant("")


def test_whatsapp_recipient() -> None:
    assert whatsapp_recipient(PHONE) == "+" + PHONE
    assert whatsapp_recipient(BSUID) == BSUID
    assert whatsapp_recipient(BSUID, latest_phone=PHONE) == "+" + PHONE
    assert whatsapp_recipient("US.ENT.12345") == "US.ENT.12345"
    for bad in ("", "hello", "user@example.com", "12"):
        with pytest.raises(MappingError):
            whatsapp_recipient(bad)


def test_recipient_fields() -> None:
    assert recipient_fields("+16505551234") == {"to": "+16505551234"}
    assert recipient_fields(PHONE) == {"to": "+" + PHONE}
    assert recipient_fields(BSUID) == {"recipient": BSUID}
    with pytest.raises(MappingError):
        recipient_fields("nobody")


def test_a_number_change_names_the_old_and_the_new_identifiers() -> None:
    from interlink.mapping.identity import identity_change

    change = identity_change(
        {
            "from": "16505551234",
            "id": "wamid.S",
            "timestamp": "1",
            "type": "system",
            "system": {
                "body": "User A changed from 16505551234 to 16505559999",
                "wa_id": "16505559999",
                "type": "user_changed_number",
                "user_id": "US.222",
                "previous_user_id": "US.111",
            },
        }
    )
    assert change is not None
    assert (change.old.phone, change.old.bsuid) == ("16505551234", "US.111")
    assert (change.new_phone, change.new_bsuid) == ("16505559999", "US.222")


def test_an_id_change_without_a_phone_names_the_previous_id_and_other_messages_none() -> None:
    from interlink.mapping.identity import identity_change

    change = identity_change(
        {
            "id": "wamid.S",
            "timestamp": "1",
            "type": "system",
            "system": {
                "type": "user_changed_user_id",
                "user_id": "US.2",
                "previous_user_id": "US.1",
            },
        }
    )
    assert change is not None and change.old.bsuid == "US.1" and change.new_phone is None
    assert identity_change({"type": "text", "text": {"body": "hi"}}) is None
    assert (
        identity_change({"type": "system", "system": {"type": "customer_identity_changed"}}) is None
    )
    with pytest.raises(MappingError):
        identity_change({"type": "system", "system": {"type": "user_changed_user_id"}})


def test_replies_go_to_the_latest_bsuid_when_no_phone_is_known() -> None:
    from interlink.mapping.identity import whatsapp_recipient

    assert whatsapp_recipient("US.1", None, "US.2") == "US.2"
    assert whatsapp_recipient("US.1", "16505551234", "US.2") == "+16505551234"
