"""WhatsApp messages → Open Messaging inbound bodies: one test per type, then hostile input."""

import json
from pathlib import Path
from typing import Any

import pytest

from interlink.mapping import (
    InboundOptions,
    MappingError,
    MediaRef,
    genesys_participant,
    read_meta_webhook,
    to_genesys_inbound,
)

PAYLOADS = Path(__file__).parents[1] / "support" / "payloads"
PNID = "106540352242922"
PARTICIPANT = genesys_participant("16505551234", "Sheena Nelson")


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def message_of(name: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    [item] = read_meta_webhook(load(name)).updates()
    assert item.kind == "message"
    return dict(item.element), dict(item.contact) if item.contact else None


class MediaLinks:
    def __init__(self) -> None:
        self.refs: list[MediaRef] = []

    def __call__(self, ref: MediaRef) -> str:
        self.refs.append(ref)
        return f"https://interlink.example/media/tok-{ref.media_id}"


def convert(
    name: str, options: InboundOptions | None = None
) -> tuple[list[dict[str, Any]], MediaLinks]:
    message, contact = message_of(name)
    links = MediaLinks()
    kwargs: dict[str, Any] = {"options": options} if options else {}
    bodies = to_genesys_inbound(
        message,
        contact,
        phone_number_id=PNID,
        participant=PARTICIPANT,
        media_url_for=links,
        **kwargs,
    )
    for body in bodies:
        assert_valid_inbound(body)
    return bodies, links


def assert_valid_inbound(body: dict[str, Any]) -> None:
    """The minimal OpenInboundNormalizedMessage as the Genesys swagger defines it, independently."""
    channel = body["channel"]
    assert set(body) <= {"channel", "text", "content"}
    assert set(channel) == {"messageId", "time", "from", "metadata"}
    assert channel["from"]["idType"] == "Opaque" and channel["from"]["id"]
    assert len(channel["time"]) == 24 and channel["time"].endswith("Z")
    attributes = channel["metadata"]["customAttributes"]
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in attributes.items())
    assert body.get("text") or body.get("content")
    for item in body.get("content", []):
        assert set(item) == {"attachment"}
        assert item["attachment"]["mediaType"] in ("Image", "Video", "Audio", "File", "Link")
        assert item["attachment"]["url"] and item["attachment"]["mime"]
    assert len(body.get("content", [])) <= 1
    try:
        from interlink.sim.genesys import check_inbound_message
    except ImportError:  # the simulator is optional here
        return
    assert check_inbound_message(body) is None


def only(bodies: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(bodies) == 1
    return bodies[0]


def test_text() -> None:
    body = only(convert("meta_text.json")[0])
    assert body == {
        "channel": {
            "messageId": "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
            "time": "2025-06-08T20:59:43.000Z",
            "from": {"id": "16505551234", "idType": "Opaque", "nickname": "Sheena Nelson"},
            "metadata": {"customAttributes": {"waPhoneNumberId": PNID, "waMessageType": "text"}},
        },
        "text": "Does it come in another color?",
    }


def test_image_with_caption() -> None:
    bodies, links = convert("meta_image.json")
    body = only(bodies)
    assert body["text"] == "Broken screen"
    assert body["content"] == [
        {
            "attachment": {
                "mediaType": "Image",
                "url": "https://interlink.example/media/tok-1003383421387256",
                "mime": "image/jpeg",
                "filename": "image-1003383421387256.jpg",
            }
        }
    ]
    [ref] = links.refs
    assert ref == MediaRef(
        kind="image",
        media_id="1003383421387256",
        mime_type="image/jpeg",
        filename="image-1003383421387256.jpg",
        phone_number_id=PNID,
        sha256="SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=",
        url="https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1003383421387256",
    )


def test_video() -> None:
    body = only(convert("meta_video.json")[0])
    assert body["text"] == "It flickers"
    assert body["content"][0]["attachment"]["mediaType"] == "Video"
    assert body["content"][0]["attachment"]["filename"] == "video-2003383421387257.mp4"


def test_audio_without_caption() -> None:
    body = only(convert("meta_audio.json")[0])
    assert "text" not in body
    assert body["content"][0]["attachment"] == {
        "mediaType": "Audio",
        "url": "https://interlink.example/media/tok-3003383421387258",
        "mime": "audio/mpeg",
        "filename": "audio-3003383421387258.mp3",
    }


def test_voice_note() -> None:
    bodies, links = convert("meta_voice.json")
    attachment = only(bodies)["content"][0]["attachment"]
    assert attachment["mediaType"] == "Audio"
    assert attachment["mime"] == "audio/ogg"  # parameters dropped for Genesys
    assert attachment["filename"] == "voice-4003383421387259.ogg"
    assert links.refs[0].voice and links.refs[0].mime_type == "audio/ogg; codecs=opus"


def test_document_keeps_filename() -> None:
    body = only(convert("meta_document.json")[0])
    assert body["text"] == "My invoice"
    assert body["content"][0]["attachment"]["mediaType"] == "File"
    assert body["content"][0]["attachment"]["filename"] == "invoice-2025-04.pdf"


def test_sticker_is_an_image() -> None:
    body = only(convert("meta_sticker.json")[0])
    assert body["content"][0]["attachment"]["mediaType"] == "Image"
    assert body["content"][0]["attachment"]["mime"] == "image/webp"
    assert body["content"][0]["attachment"]["filename"] == "sticker-6003383421387261.webp"


def test_location() -> None:
    body = only(convert("meta_location.json")[0])
    assert body["text"] == (
        "📍 Location\nPhilz Coffee\n101 Forest Ave, Palo Alto, CA 94301\n"
        "37.442163, -122.161536\n"
        "https://www.google.com/maps/search/?api=1&query=37.442163,-122.161536"
    )


def test_location_without_name_and_custom_map_link() -> None:
    message, contact = message_of("meta_location.json")
    message["location"] = {"latitude": "0", "longitude": 10}
    [body] = to_genesys_inbound(
        message,
        contact,
        phone_number_id=PNID,
        participant=PARTICIPANT,
        media_url_for=MediaLinks(),
        options=InboundOptions(map_link="https://osm.example/?mlat={latitude}&mlon={longitude}"),
    )
    assert body["text"] == "📍 Location\n0, 10\nhttps://osm.example/?mlat=0&mlon=10"


def test_contacts() -> None:
    body = only(convert("meta_contacts.json")[0])
    assert body["text"] == (
        "👤 Shared contact\nName: Ana Lima\nCompany: Example Lda\n"
        "Phone: +351 912 345 678 (CELL)\nEmail: ana@example.com (WORK)"
    )


def test_several_contacts() -> None:
    message, contact = message_of("meta_contacts.json")
    message["contacts"].append(
        {"name": {"first_name": "Rui"}, "phones": [{"wa_id": "351900000000"}]}
    )
    [body] = to_genesys_inbound(
        message,
        contact,
        phone_number_id=PNID,
        participant=PARTICIPANT,
        media_url_for=MediaLinks(),
    )
    assert body["text"].startswith("👤 Shared contacts (2)\nName: Ana Lima")
    assert body["text"].endswith("\n\nName: Rui\nPhone: 351900000000")


def test_button_reply_keeps_id_in_custom_attributes() -> None:
    body = only(convert("meta_button_reply.json")[0])
    assert body["text"] == "Change"
    assert body["channel"]["metadata"]["customAttributes"] == {
        "waPhoneNumberId": PNID,
        "waMessageType": "interactive",
        "waContextMessageId": "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBJBM0Y4RUU0RUNFQkFDMjYzQUMA",
        "waReplyType": "button_reply",
        "waReplyId": "change-button",
    }


def test_list_reply() -> None:
    body = only(convert("meta_list_reply.json")[0])
    assert body["text"] == "Express shipping\nNext business day"
    attributes = body["channel"]["metadata"]["customAttributes"]
    assert (
        attributes["waReplyType"] == "list_reply" and attributes["waReplyId"] == "priority-express"
    )


def test_template_button() -> None:
    body = only(convert("meta_template_button.json")[0])
    assert body["text"] == "Approve"
    assert body["channel"]["metadata"]["customAttributes"]["waButtonPayload"] == "approve_67"


def test_flow_reply() -> None:
    message, contact = message_of("meta_button_reply.json")
    message["interactive"] = {
        "type": "nfm_reply",
        "nfm_reply": {
            "name": "flow",
            "body": "Sent",
            "response_json": json.dumps({"flow_token": "secret-ish", "size": "M", "qty": 2}),
        },
    }
    [body] = to_genesys_inbound(
        message,
        contact,
        phone_number_id=PNID,
        participant=PARTICIPANT,
        media_url_for=MediaLinks(),
    )
    assert body["text"] == "📝 Form submitted\nsize: M\nqty: 2"


def test_reaction_and_options() -> None:
    body = only(convert("meta_reaction.json")[0])
    assert body["text"] == "reacted 👍 to a message"
    assert body["channel"]["metadata"]["customAttributes"]["waReactionMessageId"].startswith(
        "wamid."
    )
    assert convert("meta_reaction.json", InboundOptions(reactions_as_text=False))[0] == []


def test_reaction_removal_and_options() -> None:
    assert only(convert("meta_reaction_removed.json")[0])["text"] == "removed a reaction"
    assert (
        convert("meta_reaction_removed.json", InboundOptions(reaction_removals_as_text=False))[0]
        == []
    )


def test_unsupported_is_a_notice() -> None:
    body = only(convert("meta_unsupported.json")[0])
    assert body["text"].startswith(
        "[WhatsApp: The customer sent something WhatsApp does not deliver"
    )
    assert "(edit)" in body["text"]


def test_system_number_change_is_a_notice() -> None:
    body = only(convert("meta_system.json")[0])
    assert body["text"] == "[WhatsApp: The customer changed their phone number to +16505559999.]"


def test_order_is_a_notice_with_items() -> None:
    body = only(convert("meta_order.json")[0])
    assert body["text"] == (
        "[WhatsApp: The customer sent an order from the catalog. Items:]\n"
        "- 2 x sku-1 at 9.99 EUR\n- 1 x sku-7 at 24.50 EUR\nNote: Please gift-wrap"
    )


def test_unknown_type_is_a_notice_and_integer_timestamps_work() -> None:
    body = only(convert("meta_unknown_type.json")[0])
    assert body["text"] == (
        "[WhatsApp: The customer sent a WhatsApp message of a type this bridge cannot show (hologram).]"
    )
    assert body["channel"]["time"] == "2025-04-11T04:10:20.000Z"


def test_unknown_type_name_is_not_echoed_raw() -> None:
    message, contact = message_of("meta_unknown_type.json")
    message["type"] = "<script>alert(1)</script>" * 10
    [body] = to_genesys_inbound(
        message,
        contact,
        phone_number_id=PNID,
        participant=PARTICIPANT,
        media_url_for=MediaLinks(),
    )
    assert "<" not in body["text"] and len(body["text"]) < 150


def test_long_text_is_split_in_order_nothing_lost() -> None:
    message, contact = message_of("meta_text.json")
    words = " ".join(f"word{i}" for i in range(1200))  # ~9,000 characters
    message["text"]["body"] = words
    bodies = to_genesys_inbound(
        message,
        contact,
        phone_number_id=PNID,
        participant=PARTICIPANT,
        media_url_for=MediaLinks(),
    )
    assert len(bodies) == 3
    assert "".join(b["text"] for b in bodies) == words
    assert all(len(b["text"]) <= 4000 for b in bodies)
    wamid = message["id"]
    assert [b["channel"]["messageId"] for b in bodies] == [wamid, f"{wamid}#2", f"{wamid}#3"]
    times = [b["channel"]["time"] for b in bodies]
    assert times == sorted(times) and len(set(times)) == 3
    for body in bodies:
        assert_valid_inbound(body)


def test_emoji_text_split_counts_utf16_units() -> None:
    message, contact = message_of("meta_text.json")
    message["text"]["body"] = "😀" * 2500  # 5000 UTF-16 units
    bodies = to_genesys_inbound(
        message,
        contact,
        phone_number_id=PNID,
        participant=PARTICIPANT,
        media_url_for=MediaLinks(),
    )
    assert [len(b["text"]) for b in bodies] == [2000, 500]


def test_long_caption_is_split_and_attachment_rides_first() -> None:
    message, contact = message_of("meta_image.json")
    message["image"]["caption"] = "x" * 4500
    bodies = to_genesys_inbound(
        message,
        contact,
        phone_number_id=PNID,
        participant=PARTICIPANT,
        media_url_for=MediaLinks(),
    )
    assert len(bodies) == 2 and "content" in bodies[0] and "content" not in bodies[1]


@pytest.mark.parametrize(
    "timestamp", ["1749416383.5", "", "abc", None, True, -5, "99", "1e9", 12.5, "١٧٤٩٤١٦٣٨٣"]
)
def test_bad_timestamps_raise(timestamp: object) -> None:
    message, contact = message_of("meta_text.json")
    message["timestamp"] = timestamp
    with pytest.raises(MappingError):
        to_genesys_inbound(
            message,
            contact,
            phone_number_id=PNID,
            participant=PARTICIPANT,
            media_url_for=MediaLinks(),
        )


def test_string_timestamp_with_spaces_is_accepted() -> None:
    message, contact = message_of("meta_text.json")
    message["timestamp"] = " 1749416383 "
    [body] = to_genesys_inbound(
        message,
        contact,
        phone_number_id=PNID,
        participant=PARTICIPANT,
        media_url_for=MediaLinks(),
    )
    assert body["channel"]["time"] == "2025-06-08T20:59:43.000Z"


BROKEN = [
    ("meta_text.json", lambda m: m.pop("id")),
    ("meta_text.json", lambda m: m.update(id=7)),
    ("meta_text.json", lambda m: m.pop("type")),
    ("meta_text.json", lambda m: m.pop("text")),
    ("meta_text.json", lambda m: m.update(text="hello")),
    ("meta_text.json", lambda m: m.update(text={"body": 5})),
    ("meta_text.json", lambda m: m.update(text={"body": ""})),
    ("meta_image.json", lambda m: m["image"].pop("id")),
    ("meta_image.json", lambda m: m["image"].pop("mime_type")),
    ("meta_image.json", lambda m: m["image"].update(mime_type="jpeg")),
    ("meta_image.json", lambda m: m["image"].update(caption=["x"])),
    ("meta_image.json", lambda m: m.update(image=None)),
    ("meta_document.json", lambda m: m["document"].update(filename=3)),
    ("meta_location.json", lambda m: m["location"].pop("latitude")),
    ("meta_location.json", lambda m: m["location"].update(latitude="north")),
    ("meta_location.json", lambda m: m["location"].update(longitude=500)),
    ("meta_location.json", lambda m: m["location"].update(latitude=float("nan"))),
    ("meta_location.json", lambda m: m["location"].update(latitude=True)),
    ("meta_contacts.json", lambda m: m.update(contacts=[])),
    ("meta_contacts.json", lambda m: m.update(contacts="Ana")),
    ("meta_contacts.json", lambda m: m["contacts"][0].update(phones="x")),
    ("meta_contacts.json", lambda m: m["contacts"][0].update(phones=["x"])),
    ("meta_button_reply.json", lambda m: m["interactive"].pop("type")),
    ("meta_button_reply.json", lambda m: m["interactive"].update(button_reply={})),
    ("meta_button_reply.json", lambda m: m["interactive"].update(button_reply="x")),
    ("meta_template_button.json", lambda m: m.update(button={})),
    ("meta_reaction.json", lambda m: m.update(reaction=[])),
    ("meta_reaction.json", lambda m: m["reaction"].update(emoji=1)),
    ("meta_order.json", lambda m: m["order"].update(product_items="x")),
    ("meta_order.json", lambda m: m["order"].update(product_items=[1])),
    ("meta_system.json", lambda m: m.update(system="changed")),
]


@pytest.mark.parametrize(("name", "breaker"), BROKEN)
def test_malformed_items_raise_mapping_error(name: str, breaker: Any) -> None:
    message, contact = message_of(name)
    breaker(message)
    with pytest.raises(MappingError) as caught:
        to_genesys_inbound(
            message,
            contact,
            phone_number_id=PNID,
            participant=PARTICIPANT,
            media_url_for=MediaLinks(),
        )
    assert "wamid." not in str(caught.value)  # messages name fields, never payload content


def test_media_url_callback_must_return_a_url() -> None:
    message, contact = message_of("meta_image.json")
    with pytest.raises(MappingError):
        to_genesys_inbound(
            message,
            contact,
            phone_number_id=PNID,
            participant=PARTICIPANT,
            media_url_for=lambda ref: "",
        )


def test_input_is_not_mutated() -> None:
    message, contact = message_of("meta_image.json")
    before = json.dumps(message, sort_keys=True)
    to_genesys_inbound(
        message, contact, phone_number_id=PNID, participant=PARTICIPANT, media_url_for=MediaLinks()
    )
    assert json.dumps(message, sort_keys=True) == before
