"""The Meta simulator takes reply buttons and lists within Meta's limits and refuses the rest
with 131009, as Graph does."""

from __future__ import annotations

from typing import Any

import falcon.testing
import pytest

from interlink.sim import SimState, create_sim_app
from tests.sim.test_meta import FakeClock, World, _number, send


@pytest.fixture
def world() -> World:
    clock = FakeClock()
    state = SimState(clock=clock)
    return World(state, clock, falcon.testing.TestClient(create_sim_app(state)), _number(state))


TO = "+351 910 000 001"


def interactive(content: dict[str, Any]) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "to": TO,
        "type": "interactive",
        "interactive": content,
    }


def buttons(*replies: tuple[str, str], body: str = "Pick") -> dict[str, Any]:
    return interactive(
        {
            "type": "button",
            "body": {"text": body},
            "action": {
                "buttons": [{"type": "reply", "reply": {"id": i, "title": t}} for i, t in replies]
            },
        }
    )


def rows(count: int, title: str = "Row", sections: int = 1) -> dict[str, Any]:
    per = [
        [{"id": f"s{s}-{n}", "title": f"{title} {n}"[:30]} for n in range(count)]
        for s in range(sections)
    ]
    return interactive(
        {
            "type": "list",
            "body": {"text": "Pick"},
            "action": {"button": "Options", "sections": [{"title": "S", "rows": r} for r in per]},
        }
    )


def test_buttons_and_lists_within_limits_are_sent_and_recorded(world: World) -> None:
    ok = send(world, buttons(("yes-1", "Yes"), ("no-2", "No"), ("x" * 256, "y" * 20)))
    assert ok.status_code == 200
    sent = world.state.meta.sent[ok.json["messages"][0]["id"]]
    assert sent.type == "interactive"
    assert [b["reply"]["id"] for b in sent.body["interactive"]["action"]["buttons"]][:2] == [
        "yes-1",
        "no-2",
    ]
    assert send(world, rows(10)).status_code == 200
    assert send(world, rows(5, sections=2)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        buttons(("a", "A"), ("b", "B"), ("c", "C"), ("d", "D")),
        buttons(("a", "x" * 21)),
        buttons(("a", "A"), ("a", "B")),
        buttons(("a", "A"), ("b", "A")),
        buttons(("x" * 257, "A")),
        buttons(("a", "A"), body="b" * 1025),
        rows(11),
        rows(6, sections=2),
        rows(2, title="t" * 25),
    ],
    ids=[
        "4-buttons",
        "title-21",
        "duplicate-ids",
        "duplicate-titles",
        "id-257",
        "body-1025",
        "11-rows",
        "12-rows-in-2-sections",
        "row-title-25",
    ],
)
def test_what_meta_refuses_is_131009(world: World, body: dict[str, Any]) -> None:
    result = send(world, body)
    assert result.status_code == 400
    error = result.json["error"]
    assert error["code"] == 131009
    assert error["type"] == "OAuthException" and error["fbtrace_id"]
    assert error["error_data"]["details"]
    assert not world.state.meta.sent
