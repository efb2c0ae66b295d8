"""The Meta simulator's typing indicator: shown only with a message the user sent to that number,
and recorded so that tests can see it."""

from __future__ import annotations

from tests.sim.test_meta import World, _number, send, world

__all__ = ["world"]  # the fixture, imported to be used here

TYPING = {
    "messaging_product": "whatsapp",
    "status": "read",
    "message_id": "wamid.known",
    "typing_indicator": {"type": "text"},
}


def test_typing_indicator_with_the_users_message_is_shown_and_recorded(world: World) -> None:
    number = world.number.phone_number_id
    world.state.meta.note_inbound(number, "wamid.known", ["351910000001"])
    assert send(world, TYPING).json == {"success": True}
    assert world.state.meta.typing_shown(number) == ["wamid.known"]


def test_typing_indicator_without_a_known_message_is_refused(world: World) -> None:
    number = world.number.phone_number_id
    refused = send(world, {**TYPING, "message_id": "wamid.unknown"})
    assert refused.status_code == 400
    assert refused.json["error"]["code"] == 100
    other = _number(world.state)
    world.state.meta.note_inbound(other.phone_number_id, "wamid.known", ["351910000001"])
    assert send(world, TYPING).json["error"]["code"] == 100  # another number's message
    assert world.state.meta.typing_shown(number) == []


def test_typing_indicator_of_an_unknown_type_is_refused(world: World) -> None:
    number = world.number.phone_number_id
    world.state.meta.note_inbound(number, "wamid.known", ["351910000001"])
    assert (
        send(world, {**TYPING, "typing_indicator": {"type": "audio"}}).json["error"]["code"] == 100
    )
    assert (
        send(world, {**TYPING, "message_id": "wamid.known", "typing_indicator": None}).json[
            "error"
        ]["code"]
        == 100
    )
    assert world.state.meta.typing_shown(number) == []
