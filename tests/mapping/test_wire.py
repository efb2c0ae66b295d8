"""The shared readers: text splitting, timestamps, MIME types; and every simulator message kind
through the whole inbound path (webhook split → identity → inbound body)."""

import pytest

from interlink.mapping import (
    MappingError,
    alias_keys,
    genesys_participant,
    identifiers_of_message,
    participant_id,
    read_meta_webhook,
    to_genesys_inbound,
)
from interlink.mapping.wire import base_mime, iso_utc, split_text, unix_seconds, utf16_length


def test_split_text_boundaries() -> None:
    assert split_text("", 10) == [""]
    assert split_text("a" * 10, 10) == ["a" * 10]
    assert split_text("a" * 11, 10) == ["a" * 10, "a"]
    assert split_text("aaaa bbbb cc", 10) == ["aaaa bbbb ", "cc"]
    # A newline wins over a later space.
    assert split_text("aaaaaa\nbb ccc", 10) == ["aaaaaa\n", "bb ccc"]
    # A space too early (first half) is not used: the cut stays near the limit.
    assert split_text("a bbbbbbbbbbbb", 10) == ["a bbbbbbbb", "bbbb"]
    # Astral characters count 2 and are never cut in half.
    assert split_text("😀" * 6, 5) == ["😀😀", "😀😀", "😀😀"]
    assert split_text("a😀", 2) == ["a", "😀"]
    for text in ("x" * 9999, "word " * 3000, "😀a" * 3000, "line\n" * 2000):
        parts = split_text(text, 4000)
        assert "".join(parts) == text
        assert all(0 < utf16_length(p) <= 4000 for p in parts)
    with pytest.raises(ValueError):
        split_text("abc", 1)


def test_unix_seconds_and_iso() -> None:
    assert unix_seconds("1749416383", "t") == 1749416383
    assert unix_seconds(1749416383, "t") == 1749416383
    for bad in ("", "1.5", "-1", 1.5, None, [], "12345678901", 10**11):
        with pytest.raises(MappingError):
            unix_seconds(bad, "t")
    assert iso_utc(1749416383) == "2025-06-08T20:59:43.000Z"
    assert iso_utc(1749416383.0071) == "2025-06-08T20:59:43.007Z"


def test_base_mime() -> None:
    assert base_mime("Audio/OGG; codecs=opus") == "audio/ogg"
    assert base_mime("") == ""


sim = pytest.importorskip("interlink.sim.whatsapp_payloads")


@pytest.mark.parametrize("kind", sim.KINDS)
@pytest.mark.parametrize(
    "user",
    [
        sim.WhatsAppUser(wa_id="16505551234", name="Ana"),
        sim.WhatsAppUser(user_id="US.13491208655302741918", name="Kai"),
        sim.WhatsAppUser(wa_id="16505551234", user_id="US.13491208655302741918"),
    ],
)
def test_every_simulated_kind_maps(kind: str, user: object) -> None:
    media = {"id": "1003383421387256", "mime_type": "image/jpeg", "sha256": "abc="}
    if kind in ("audio", "voice"):
        media["mime_type"] = "audio/ogg; codecs=opus"
    elif kind == "video":
        media["mime_type"] = "video/mp4"
    elif kind == "document":
        media["mime_type"] = "application/pdf"
    elif kind == "sticker":
        media["mime_type"] = "image/webp"
    options: dict[str, object] = {"body": "hello"} if kind == "text" else {}
    if kind == "reaction":
        options = {"message_id": sim.new_wamid(), "emoji": "👍"}
    message = sim.message(
        kind,
        user,
        wamid=sim.new_wamid(),
        timestamp=1_780_000_000,
        business_number="15550783881",
        media=media if kind in sim.MEDIA_KINDS else None,
        **options,
    )
    body = sim.envelope(
        waba_id="102290129340398",
        display_phone_number="15550783881",
        phone_number_id="106540352242922",
        contacts=[sim.contact(user)],
        messages=[message],
    )
    [item] = read_meta_webhook(body).updates()
    assert item.kind == "message" and item.contact is not None
    ids = identifiers_of_message(item.element, item.contact)
    assert alias_keys(ids.phone, ids.bsuid)
    participant = genesys_participant(participant_id(ids.phone, ids.bsuid, None), ids.name)
    bodies = to_genesys_inbound(
        item.element,
        item.contact,
        phone_number_id=item.phone_number_id,
        participant=participant,
        media_url_for=lambda ref: f"https://interlink.example/media/{ref.media_id}",
    )
    assert len(bodies) == 1
    assert bodies[0]["channel"]["from"]["id"] in ("16505551234", "US.13491208655302741918")
    from interlink.sim.genesys import check_inbound_message

    assert check_inbound_message(bodies[0]) is None
