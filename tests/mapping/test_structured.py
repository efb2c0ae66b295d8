"""Genesys Structured messages (quick replies, cards, carousels, date pickers) → WhatsApp sends."""

from typing import Any

from interlink.mapping import to_meta_sends
from interlink.mapping.structured import Rendered

TO = "+16505551234"
GID = "8085cbb3f778c34de0bd14c5318ec44c"


def structured(text: str | None, *content: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": GID,
        "channel": {
            "id": "3c1a52e4-6f0b-4b4e-9a2f-1d2e3f4a5b6c",
            "platform": "Open",
            "type": "Private",
            "messageId": GID,
            "to": {"id": "16505551234", "idType": "Opaque"},
            "time": "2026-03-25T13:20:05.493Z",
        },
        "originatingEntity": "Bot",
        "direction": "Outbound",
        "type": "Structured",
        "content": list(content),
    }
    if text is not None:
        body["text"] = text
    return body


def quick(text: str, payload: str | None = None) -> dict[str, Any]:
    reply = {"text": text, "payload": payload or f"p-{text}", "action": "Message"}
    return {"contentType": "QuickReply", "quickReply": reply}


def sends(body: dict[str, Any]) -> list[dict[str, Any]]:
    return to_meta_sends(body, recipient=TO, callback_data=GID)


def test_three_quick_replies_are_reply_buttons_with_the_payload_as_id() -> None:
    [send] = sends(
        structured("Pay now?", quick("Yes", "yes-1"), quick("No", "no-2"), quick("Later"))
    )
    assert send["type"] == "interactive" and send["to"] == TO
    assert send["biz_opaque_callback_data"] == GID
    interactive = send["interactive"]
    assert interactive["type"] == "button"
    assert interactive["body"] == {"text": "Pay now?"}
    assert interactive["action"]["buttons"] == [
        {"type": "reply", "reply": {"id": "yes-1", "title": "Yes"}},
        {"type": "reply", "reply": {"id": "no-2", "title": "No"}},
        {"type": "reply", "reply": {"id": "p-Later", "title": "Later"}},
    ]


def test_long_button_titles_are_cut_to_20_and_stay_unique() -> None:
    long = "Talk to a human agent please"
    [send] = sends(structured("?", quick(long, "a"), quick(long + " now", "b")))
    titles = [b["reply"]["title"] for b in send["interactive"]["action"]["buttons"]]
    assert all(len(t) <= 20 for t in titles)
    assert len(set(titles)) == 2
    assert titles[0].startswith("Talk to a human")


def test_a_question_without_text_gets_a_default_body() -> None:
    [send] = sends(structured(None, quick("Yes"), quick("No")))
    assert send["interactive"]["body"]["text"]


def test_a_question_too_long_for_buttons_goes_first_as_text() -> None:
    question = "q" * 1500
    text_send, menu = sends(structured(question, quick("Yes"), quick("No")))
    assert text_send["text"]["body"] == question
    assert len(menu["interactive"]["body"]["text"]) <= 1024


def test_four_and_ten_options_are_a_list() -> None:
    for count in (4, 10):
        options = [quick(f"Option number {n} with a long title", f"id-{n}") for n in range(count)]
        [send] = sends(structured("Pick one", *options))
        interactive = send["interactive"]
        assert interactive["type"] == "list"
        assert interactive["body"] == {"text": "Pick one"}
        assert 1 <= len(interactive["action"]["button"]) <= 20
        [section] = interactive["action"]["sections"]
        rows = section["rows"]
        assert [r["id"] for r in rows] == [f"id-{n}" for n in range(count)]
        assert all(len(r["title"]) <= 24 for r in rows)
        assert len({r["title"] for r in rows}) == count
        assert rows[0]["description"] == "Option number 0 with a long title"


def test_eleven_options_are_numbered_text() -> None:
    options = [quick(f"Choice {n}") for n in range(1, 12)]
    [send] = sends(structured("Which one?", *options))
    assert send["type"] == "text"
    body = send["text"]["body"]
    assert body.startswith("Which one?\n\n1. Choice 1\n2. Choice 2\n")
    assert body.endswith("11. Choice 11")


def test_duplicate_or_too_long_payloads_fall_back_to_numbered_text() -> None:
    [send] = sends(structured("?", quick("A", "same"), quick("B", "same")))
    assert send["type"] == "text" and "1. A\n2. B" in send["text"]["body"]
    [send] = sends(structured("?", quick("A", "x" * 257), quick("B")))
    assert send["type"] == "text"


CARD = {
    "title": "Blue shirt",
    "description": "Cotton, size M",
    "image": "https://shop.example/shirt.png",
    "actions": [
        {"type": "Postback", "text": "Buy", "payload": "buy-1"},
        {"type": "Link", "text": "Details", "url": "https://shop.example/shirt"},
    ],
}


def test_a_carousel_without_text_becomes_readable_text() -> None:
    second = {**CARD, "title": "Red shirt", "image": "https://shop.example/red.png"}
    [send] = sends(
        structured(None, {"contentType": "Carousel", "carousel": {"cards": [CARD, second]}})
    )
    body = send["text"]["body"]
    for part in (
        "Blue shirt",
        "Cotton, size M",
        "https://shop.example/shirt.png",
        "Buy",
        "Details: https://shop.example/shirt",
        "Red shirt",
        "https://shop.example/red.png",
    ):
        assert part in body
    assert send["text"]["preview_url"] is True


def test_a_card_with_postbacks_becomes_reply_buttons_after_the_message_text() -> None:
    from interlink.mapping.structured import render_structured

    text, card = sends(structured("Our pick", {"contentType": "Card", "card": CARD}))
    assert text["text"]["body"] == "Our pick"
    interactive = card["interactive"]
    assert interactive["type"] == "button"
    assert interactive["body"]["text"].startswith("*Blue shirt*\nCotton, size M")
    assert "Details: https://shop.example/shirt" in interactive["body"]["text"]
    assert interactive["action"]["buttons"] == [
        {"type": "reply", "reply": {"id": "buy-1", "title": "Buy"}}
    ]
    rendered = render_structured({"content": [{"contentType": "Card", "card": CARD}]}, None)
    assert rendered.menu == "Button"


def test_a_card_without_postbacks_or_with_too_many_stays_text() -> None:
    links = {**CARD, "actions": [CARD["actions"][1]]}
    [send] = sends(structured("Our pick", {"contentType": "Card", "card": links}))
    assert send["text"]["body"].startswith("Our pick\n\n*Blue shirt*")
    many = {**CARD, "actions": [{"type": "Postback", "text": f"B{n}", "payload": f"b{n}"}
                                for n in range(4)]}  # fmt: skip
    [send] = sends(structured(None, {"contentType": "Card", "card": many}))
    assert send["type"] == "text" and "B3" in send["text"]["body"]


PICKER = {
    "title": "Book a visit",
    "availableTimes": [
        {"dateTime": "2026-05-30T12:00:00.000Z", "duration": 1800},
        {"dateTime": "2026-05-31T09:00:00+02:00"},
    ],
}


def test_a_date_picker_becomes_a_list_of_its_times() -> None:
    from interlink.mapping.structured import render_structured

    [send] = sends(structured(None, {"contentType": "DatePicker", "datePicker": PICKER}))
    interactive = send["interactive"]
    assert interactive["type"] == "list" and interactive["body"]["text"] == "Book a visit"
    assert interactive["action"]["sections"][0]["rows"] == [
        {"id": "2026-05-30T12:00:00.000Z", "title": "30 May 2026 12:00 UTC",
         "description": "30 min"},
        {"id": "2026-05-31T09:00:00+02:00", "title": "31 May 2026 09:00 +0200"},
    ]  # fmt: skip
    item = {"contentType": "DatePicker", "datePicker": PICKER}
    assert render_structured({"content": [item]}, None).menu == "DatePicker"


def test_a_date_picker_beyond_ten_times_lists_them_as_text() -> None:
    times = [{"dateTime": f"2026-06-{d:02d}T10:00:00Z", "duration": 1800} for d in range(1, 12)]
    picker = {"title": "Book a visit", "availableTimes": times}
    [send] = sends(structured(None, {"contentType": "DatePicker", "datePicker": picker}))
    body = send["text"]["body"]
    assert "Book a visit" in body and "2026-06-11T10:00:00Z (30 min)" in body


def test_unknown_content_still_shows_its_texts_and_links() -> None:
    item = {
        "contentType": "ListPicker",
        "listPicker": {"title": "Menu", "items": [{"text": "Soup", "url": "https://x.example/s"}]},
    }
    [send] = sends(structured(None, item))
    assert send["text"]["body"] == "Menu\nSoup\nhttps://x.example/s"


def test_a_notification_without_text_renders_its_template() -> None:
    template = {
        "body": {"text": "Order {{1}} shipped", "parameters": [{"name": "1", "text": "67"}]}
    }
    [send] = sends(structured(None, {"contentType": "Notification", "template": template}))
    assert send["text"]["body"] == "Order 67 shipped"


def test_nothing_readable_sends_nothing_and_malformed_items_are_skipped() -> None:
    assert sends(structured(None, {"contentType": "QuickReply", "quickReply": {"text": 5}})) == []
    assert sends(structured(None, {"contentType": "Card", "card": []})) == []


def test_more_than_ten_options_go_as_numbered_text_remembered_for_the_answer() -> None:
    from interlink.mapping.structured import numbered_answer, render_structured

    content = [
        {"contentType": "QuickReply", "quickReply": {"text": f"Shop {n}", "payload": f"s{n}"}}
        for n in range(1, 12)
    ]
    rendered = render_structured({"content": content}, "Which shop?")
    assert rendered.interactive is None and rendered.menu is None
    assert [o.payload for o in rendered.numbered] == [f"s{n}" for n in range(1, 12)]
    options = [(o.text, o.payload) for o in rendered.numbered]
    assert numbered_answer("11", options) == ("Shop 11", "s11")
    assert numbered_answer(" 3. ", options) == ("Shop 3", "s3")
    assert numbered_answer("shop  4", options) == ("Shop 4", "s4")
    for other in ("12", "0", "3 please", "", "٣"):
        assert numbered_answer(other, options) is None
    few = render_structured({"content": content[:3]}, "Which shop?")
    assert few.menu == "QuickReply" and few.numbered == ()


def test_as_text_only_every_option_is_numbered_and_cards_are_text() -> None:
    from interlink.mapping.structured import render_structured

    options = [
        {"contentType": "QuickReply", "quickReply": {"text": "Small", "payload": "size-s"}},
        {"contentType": "QuickReply", "quickReply": {"text": "Large", "payload": "size-l"}},
    ]
    rendered = render_structured({"content": options}, "Which size?", interactive=False)
    assert rendered.interactive is None and rendered.menu is None
    assert rendered.text == "Which size?\n\n1. Small\n2. Large"
    assert [(o.text, o.payload) for o in rendered.numbered] == [
        ("Small", "size-s"),
        ("Large", "size-l"),
    ]
    card = {
        "contentType": "Card",
        "card": {
            "title": "Shoes",
            "actions": [{"type": "Postback", "text": "Buy", "payload": "b"}],
        },
    }
    as_text = render_structured({"content": [card]}, None, interactive=False)
    assert as_text == Rendered("*Shoes*\n• Buy", None)
