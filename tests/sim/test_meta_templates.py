"""The Meta simulator's template sends: refused as Meta refuses them (no name or language: 100;
an unknown template: 132001; a wrong parameter count or names: 132000), recorded when taken."""

from __future__ import annotations

from typing import Any

from interlink.sim.meta import MetaTemplate
from tests.sim.test_meta import World, send, world

__all__ = ["world"]


def template_send(template: dict[str, Any]) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": "351910000001", "type": "template",
            "template": template}  # fmt: skip


def body(*texts: str, named: bool = False) -> list[dict[str, Any]]:
    parameters = [
        {"type": "text", "text": t, **({"parameter_name": f"p{i}"} if named else {})}
        for i, t in enumerate(texts)
    ]
    return [{"type": "body", "parameters": parameters}]


def test_a_template_needs_a_name_and_a_language(world: World) -> None:
    for template in ({"name": "x"}, {"language": {"code": "en_US"}}, {"name": "x", "language": {}}):
        answer = send(world, template_send(template))
        assert answer.status_code == 400 and answer.json["error"]["code"] == 100


def test_templates_are_checked_against_the_accounts_approved_ones(world: World) -> None:
    waba = world.number.waba_id
    world.state.meta.add_template(waba, MetaTemplate("order_shipped", "en_US", body_parameters=2))
    world.state.meta.add_template(
        waba, MetaTemplate("hello", "en_US", body_parameters=1, parameter_names=("p0",))
    )
    language = {"code": "en_US"}
    unknown = send(world, template_send({"name": "nope", "language": language}))
    assert unknown.status_code == 404 and unknown.json["error"]["code"] == 132001
    other_language = {"name": "order_shipped", "language": {"code": "pt_PT"}}
    assert send(world, template_send(other_language)).json["error"]["code"] == 132001
    for components in (body("67"), body("67", "Monday", "x"), []):
        template = {"name": "order_shipped", "language": language, "components": components}
        answer = send(world, template_send(template))
        assert answer.status_code == 400 and answer.json["error"]["code"] == 132000
    wrong_name = {"name": "hello", "language": language, "components": body("Ana")}
    assert send(world, template_send(wrong_name)).json["error"]["code"] == 132000

    good = {"name": "order_shipped", "language": language, "components": body("67", "Monday")}
    assert send(world, template_send(good)).status_code == 200
    named = {"name": "hello", "language": language, "components": body("Ana", named=True)}
    assert send(world, template_send(named)).status_code == 200
    sent = world.state.meta.template_sends(world.number.phone_number_id)
    assert [s.body["template"]["name"] for s in sent] == ["order_shipped", "hello"]
