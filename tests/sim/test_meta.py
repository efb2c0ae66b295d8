"""The Meta Graph API simulator and the WhatsApp user driver behave as the Graph API and its
webhooks do."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import falcon.testing
import pytest
import requests

from interlink.sim import SimServer, SimState, WhatsAppUser, create_sim_app
from interlink.sim.meta import MetaNumber
from interlink.sim.sink import WebhookSink
from interlink.sim.whatsapp_payloads import KINDS

GRAPH = "/meta/v25.0"
USER = WhatsAppUser(wa_id="351910000001", name="Ana")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_760_000_000.0

    def __call__(self) -> float:
        return self.now


def _number(state: SimState, **options: Any) -> MetaNumber:
    return state.meta.add_number(
        str(secrets.randbelow(10**15)),
        access_token=secrets.token_urlsafe(32),
        app_secret=secrets.token_hex(16),
        **options,
    )


@dataclass
class World:
    state: SimState
    clock: FakeClock
    client: falcon.testing.TestClient
    number: MetaNumber


@pytest.fixture
def world() -> World:
    clock = FakeClock()
    state = SimState(clock=clock)
    return World(state, clock, falcon.testing.TestClient(create_sim_app(state)), _number(state))


def send(
    world: World,
    body: dict[str, Any],
    *,
    token: str | None = None,
    number: MetaNumber | None = None,
) -> falcon.testing.Result:
    number = number or world.number
    return world.client.simulate_post(
        f"{GRAPH}/{number.phone_number_id}/messages",
        headers={
            "Authorization": f"Bearer {token or number.access_token}",
            "Content-Type": "application/json",
        },
        body=json.dumps(body),
    )


def text(to: str = "+351 910 000 001", body: str = "hello", **extra: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "to": to,
        "type": "text",
        "text": {"body": body},
        **extra,
    }


def test_send_text_answers_like_graph_and_is_recorded_with_its_token(world: World) -> None:
    result = send(world, text(biz_opaque_callback_data="genesys:abc"))
    assert result.status_code == 200
    assert result.json["messaging_product"] == "whatsapp"
    assert result.json["contacts"] == [{"input": "+351 910 000 001", "wa_id": "351910000001"}]
    wamid = result.json["messages"][0]["id"]
    assert wamid.startswith("wamid.")
    sent = world.state.meta.sent[wamid]
    assert sent.to == "351910000001" and sent.biz_opaque_callback_data == "genesys:abc"
    record = world.state.requests(kind="meta.messages", tenant=world.number.phone_number_id)[-1]
    assert record.authorization == f"Bearer {world.number.access_token}"
    assert record.body["text"]["body"] == "hello"


def test_bad_token_is_190_and_another_numbers_token_cannot_see_the_number(world: World) -> None:
    bad = send(world, text(), token=secrets.token_urlsafe(32))
    assert bad.status_code == 401
    error = bad.json["error"]
    assert error["code"] == 190 and error["type"] == "OAuthException" and error["fbtrace_id"]
    other = _number(world.state)
    foreign = send(world, text(), token=other.access_token)
    assert foreign.status_code == 400
    assert (foreign.json["error"]["code"], foreign.json["error"]["error_subcode"]) == (100, 33)
    assert not world.state.meta.sent


@pytest.mark.parametrize(
    "body",
    [
        {"to": "351910000001", "type": "text", "text": {"body": "x"}},
        {"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}},
        text(body="x" * 4097),
        {
            "messaging_product": "whatsapp",
            "to": "1",
            "type": "image",
            "image": {"id": "1", "link": "https://x/y.jpg"},
        },
        {
            "messaging_product": "whatsapp",
            "to": "1",
            "type": "audio",
            "audio": {"link": "https://x/y.ogg", "caption": "no"},
        },
    ],
)
def test_invalid_sends_are_code_100(world: World, body: dict[str, Any]) -> None:
    result = send(world, body)
    assert result.status_code == 400
    assert result.json["error"]["code"] == 100


def test_media_link_reaction_and_template_sends(world: World) -> None:
    image = {
        "messaging_product": "whatsapp",
        "to": "1",
        "type": "image",
        "image": {"link": "https://x/y.jpg", "caption": "c"},
    }
    reaction = {
        "messaging_product": "whatsapp",
        "to": "1",
        "type": "reaction",
        "reaction": {"message_id": "wamid.x", "emoji": "👍"},
    }
    for body in (image, reaction):
        assert send(world, body).status_code == 200
    unknown_id = {
        "messaging_product": "whatsapp",
        "to": "1",
        "type": "document",
        "document": {"id": "999"},
    }
    assert send(world, unknown_id).json["error"]["code"] == 131053


def test_a_gif_goes_as_a_document_never_as_an_image(world: World) -> None:
    """Meta's image sends take JPEG and PNG only; an uploaded GIF is refused as an image (131053)
    and taken as a document."""
    owner = world.number.phone_number_id
    gif = world.state.meta.add_media(owner, b"GIF89a" + bytes(32), "image/gif", "funny.gif")
    as_image = {"messaging_product": "whatsapp", "to": "1", "type": "image", "image": {"id": gif.id}}
    refused = send(world, as_image)
    assert refused.status_code == 400
    assert refused.json["error"]["code"] == 131053
    as_document = {
        "messaging_product": "whatsapp",
        "to": "1",
        "type": "document",
        "document": {"id": gif.id, "filename": "funny.gif"},
    }
    assert send(world, as_document).status_code == 200
    png = world.state.meta.add_media(owner, b"\x89PNG" + bytes(32), "image/png", "a.png")
    as_image["image"] = {"id": png.id}
    assert send(world, as_image).status_code == 200


def test_window_enforced_per_recipient(world: World) -> None:
    number = _number(world.state, enforce_window=True)
    closed = send(world, text(), number=number)
    assert closed.status_code == 400 and closed.json["error"]["code"] == 131047
    template = {
        "messaging_product": "whatsapp",
        "to": "351910000001",
        "type": "template",
        "template": {"name": "hello", "language": {"code": "en_US"}},
    }
    assert send(world, template, number=number).status_code == 200
    world.state.user.build_message(
        number.phone_number_id, USER, "text", body="hi"
    )  # building sends nothing
    world.state.meta.note_inbound(number.phone_number_id, "wamid.in", ["351910000001"])
    assert send(world, text(), number=number).status_code == 200
    world.clock.now += 24 * 3600 + 1
    assert send(world, text(), number=number).json["error"]["code"] == 131047
    world.state.meta.set_window(number.phone_number_id, "+351910000001", True)
    assert send(world, text(), number=number).status_code == 200
    world.state.meta.set_window(
        world.number.phone_number_id, "351910000001", False
    )  # override without enforcement
    assert send(world, text()).json["error"]["code"] == 131047


def test_pair_rate_and_throughput_limits(world: World) -> None:
    paired = _number(world.state, pair_rate=True)
    statuses = [send(world, text(), number=paired).status_code for _ in range(46)]
    assert statuses[:45] == [200] * 45
    last = send(world, text(), number=paired)
    assert last.status_code == 429 and last.json["error"]["code"] == 131056
    assert (
        send(world, text(to="351910000002"), number=paired).status_code == 200
    )  # other users unaffected
    world.clock.now += 6.0
    assert send(world, text(), number=paired).status_code == 200

    limited = _number(world.state, throughput_mps=2)
    codes = [send(world, text(), number=limited).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    world.clock.now += 1.0
    assert send(world, text(), number=limited).status_code == 200


def test_mark_as_read_only_for_messages_the_user_sent(world: World) -> None:
    read = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.unknown"}
    assert send(world, read).json["error"]["code"] == 100
    world.state.meta.note_inbound(world.number.phone_number_id, "wamid.known", ["351910000001"])
    assert send(world, {**read, "message_id": "wamid.known"}).json == {"success": True}


@pytest.fixture
def served() -> Iterator[tuple[SimServer, WebhookSink]]:
    with SimServer(SimState()) as server, WebhookSink() as sink:
        yield server, sink


def test_media_upload_lookup_and_expiring_download(served: tuple[SimServer, WebhookSink]) -> None:
    server, _ = served
    number = _number(server.state)
    graph = server.env()["INTERLINK_META_GRAPH_URL"]
    auth = {"Authorization": f"Bearer {number.access_token}"}
    data = b"%PDF-1.4 " + secrets.token_bytes(200)
    upload = requests.post(
        f"{graph}/{number.phone_number_id}/media",
        headers=auth,
        data={"messaging_product": "whatsapp", "type": "application/pdf"},
        files={"file": ("a.pdf", data, "application/pdf")},
        timeout=5,
    )
    assert upload.status_code == 200, upload.text
    media_id = upload.json()["id"]
    bad_type = requests.post(
        f"{graph}/{number.phone_number_id}/media",
        headers=auth,
        data={"messaging_product": "whatsapp"},
        files={"file": ("a.exe", b"MZ", "application/x-msdownload")},
        timeout=5,
    )
    assert bad_type.json()["error"]["code"] == 131053

    info = requests.get(f"{graph}/{media_id}", headers=auth, timeout=5).json()
    assert info["id"] == media_id and info["mime_type"] == "application/pdf"
    assert info["file_size"] == str(len(data))
    assert info["sha256"] and info["messaging_product"] == "whatsapp"
    assert (
        requests.get(
            f"{graph}/{media_id}",
            headers={"Authorization": f"Bearer {_number(server.state).access_token}"},
            timeout=5,
        ).status_code
        == 400
    )
    assert requests.get(info["url"], timeout=5).status_code == 401  # the URL needs the token
    download = requests.get(info["url"], headers=auth, timeout=5)
    assert download.status_code == 200 and download.content == data
    server.state.meta.media_url_ttl = 0  # URLs handed out from now on are already expired
    stale = requests.get(f"{graph}/{media_id}", headers=auth, timeout=5).json()["url"]
    assert requests.get(stale, headers=auth, timeout=5).status_code == 404
    # a media id from an upload can be sent by id
    sent = requests.post(
        f"{graph}/{number.phone_number_id}/messages",
        headers=auth,
        timeout=5,
        json={
            "messaging_product": "whatsapp",
            "to": "351910000001",
            "type": "document",
            "document": {"id": media_id, "filename": "a.pdf"},
        },
    )
    assert sent.status_code == 200


def _verify_meta(number: MetaNumber, raw: bytes, header: str) -> None:
    assert (
        header == "sha256=" + hmac.new(number.app_secret.encode(), raw, hashlib.sha256).hexdigest()
    )


def test_user_driver_sends_every_kind_signed_in_one_batch(
    served: tuple[SimServer, WebhookSink],
) -> None:
    server, sink = served
    state = server.state
    number = _number(state, webhook_url=sink.url, display_phone_number="15550783881")
    pnid = number.phone_number_id
    options: dict[str, dict[str, Any]] = {
        "text": {"body": "Olá — açúcar"},
        "reaction": {"message_id": "wamid.target", "emoji": "👍"},
        "system": {"new_wa_id": "351910000009"},
    }
    items = [state.user.build_message(pnid, USER, kind, **options.get(kind, {})) for kind in KINDS]
    delivery = state.user.send(pnid, USER, items)
    assert delivery.status == 200
    captured = sink.wait_for(1)[0]
    _verify_meta(number, captured.raw, captured.headers["x-hub-signature-256"])
    assert b"\\u00e1" in captured.raw  # escaped unicode, as Meta signs it
    payload = json.loads(captured.raw)
    value = payload["entry"][0]["changes"][0]["value"]
    assert payload["object"] == "whatsapp_business_account"
    assert value["metadata"] == {"display_phone_number": "15550783881", "phone_number_id": pnid}
    assert value["contacts"] == [{"profile": {"name": "Ana"}, "wa_id": "351910000001"}]
    by_type = {}
    for item in value["messages"]:
        assert item["from"] == "351910000001" and isinstance(item["timestamp"], str)
        by_type.setdefault(item["type"], []).append(item)
    assert set(by_type) == {
        "text",
        "image",
        "video",
        "audio",
        "document",
        "sticker",
        "location",
        "contacts",
        "interactive",
        "button",
        "reaction",
        "unsupported",
        "system",
        "order",
    }
    assert [a["audio"]["voice"] for a in by_type["audio"]] == [False, True]
    assert {i["interactive"]["type"] for i in by_type["interactive"]} == {
        "button_reply",
        "list_reply",
    }
    assert all("context" in i for i in by_type["interactive"] + by_type["button"])
    assert by_type["reaction"][0]["reaction"] == {"message_id": "wamid.target", "emoji": "👍"}
    assert by_type["unsupported"][0]["errors"][0]["code"] == 131051
    assert by_type["system"][0]["system"]["type"] == "user_changed_number"
    assert by_type["document"][0]["document"]["filename"]
    # media of the webhook resolve through the Graph API with the number's token
    image_id = by_type["image"][0]["image"]["id"]
    info = requests.get(
        f"{server.env()['INTERLINK_META_GRAPH_URL']}/{image_id}",
        headers={"Authorization": f"Bearer {number.access_token}"},
        timeout=5,
    ).json()
    assert info["sha256"] == by_type["image"][0]["image"]["sha256"]
    assert delivery.wamids == [item["id"] for item in value["messages"]]
    assert state.requests(kind="meta.webhook", tenant=pnid)[-1].status == 200


def test_bsuid_only_user_reaction_removal_and_system_without_contacts(
    served: tuple[SimServer, WebhookSink],
) -> None:
    server, sink = served
    state = server.state
    number = _number(state, webhook_url=sink.url)
    hidden = WhatsAppUser(user_id="US.13491208655302741918", name="Hidden")
    state.user.say(number.phone_number_id, hidden, "reaction", message_id="wamid.t", emoji=None)
    state.user.say(number.phone_number_id, USER, "system", new_wa_id="351910000009")
    first, second = (json.loads(c.raw)["entry"][0]["changes"][0]["value"] for c in sink.wait_for(2))
    assert first["contacts"] == [
        {"profile": {"name": "Hidden"}, "user_id": "US.13491208655302741918"}
    ]
    message = first["messages"][0]
    assert "from" not in message and message["from_user_id"] == "US.13491208655302741918"
    assert message["reaction"] == {"message_id": "wamid.t"}
    assert "contacts" not in second


def test_statuses_echo_opaque_data_and_carry_errors(served: tuple[SimServer, WebhookSink]) -> None:
    server, sink = served
    state = server.state
    number = _number(state, webhook_url=sink.url)
    graph = server.env()["INTERLINK_META_GRAPH_URL"]
    wamid = requests.post(
        f"{graph}/{number.phone_number_id}/messages",
        timeout=5,
        headers={"Authorization": f"Bearer {number.access_token}"},
        json=text(biz_opaque_callback_data="genesys:msg:7f3c2a"),
    ).json()["messages"][0]["id"]
    result = requests.post(
        f"{server.url}/_sim/meta/statuses",
        timeout=5,
        json={
            "statuses": [
                {"wamid": wamid, "status": "delivered"},
                {"wamid": wamid, "status": "failed", "errorCode": 131047},
            ]
        },
    ).json()
    assert result["status"] == 200
    captured = sink.wait_for(1)[0]
    _verify_meta(number, captured.raw, captured.headers["x-hub-signature-256"])
    delivered, failed = json.loads(captured.raw)["entry"][0]["changes"][0]["value"]["statuses"]
    assert delivered["id"] == failed["id"] == wamid
    assert (
        delivered["biz_opaque_callback_data"]
        == failed["biz_opaque_callback_data"]
        == "genesys:msg:7f3c2a"
    )
    assert delivered["recipient_id"] == "351910000001"
    assert failed["errors"][0]["code"] == 131047 and "pricing" not in failed
    assert state.meta.sent[wamid].statuses == ["delivered", "failed"]


def test_async_window_failure_arrives_as_a_failed_status(
    served: tuple[SimServer, WebhookSink],
) -> None:
    server, sink = served
    number = _number(
        server.state, webhook_url=sink.url, enforce_window=True, window_failure="async"
    )
    answer = requests.post(
        f"{server.env()['INTERLINK_META_GRAPH_URL']}/{number.phone_number_id}/messages",
        timeout=5,
        headers={"Authorization": f"Bearer {number.access_token}"},
        json=text(),
    )
    assert answer.status_code == 200
    status = json.loads(sink.wait_for(1)[0].raw)["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert (status["status"], status["errors"][0]["code"]) == ("failed", 131047)


def test_user_driver_over_http(served: tuple[SimServer, WebhookSink]) -> None:
    server, sink = served
    number = _number(server.state, webhook_url=sink.url)
    result = requests.post(
        f"{server.url}/_sim/meta/users/messages",
        timeout=5,
        json={
            "phoneNumberId": number.phone_number_id,
            "from": {"waId": "351910000001", "name": "Ana"},
            "messages": [{"kind": "text", "body": "one"}, {"kind": "voice"}],
        },
    ).json()
    assert result["status"] == 200 and len(result["wamids"]) == 2
    captured = sink.wait_for(1)[0]
    _verify_meta(number, captured.raw, captured.headers["x-hub-signature-256"])
