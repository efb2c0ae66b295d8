"""Hostile input: every field of every sample payload replaced by junk of every JSON type. The
mappers may succeed or raise MappingError — never KeyError, TypeError, AttributeError or others."""

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from interlink.mapping import (
    MappingError,
    failure_reasons,
    genesys_participant,
    identifiers_of_message,
    identifiers_of_status,
    next_receipt,
    parse_genesys_notification,
    participant_id,
    read_meta_webhook,
    to_genesys_inbound,
    to_meta_sends,
    unix_seconds,
)

PAYLOADS = Path(__file__).parents[1] / "support" / "payloads"
JUNK: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    1.5,
    "",
    "x",
    [],
    ["x"],
    {},
    {"x": 1},
    "\u202e\x00",
    10**30,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a node (objects and arrays included), the root excluded."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*prefix, key)
            yield from paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield (*prefix, index)
            yield from paths(child, (*prefix, index))


def mutations(body: Any) -> Iterator[Any]:
    for path in paths(body):
        for junk in (*JUNK, KeyError):
            mutated = copy.deepcopy(body)
            target = mutated
            for key in path[:-1]:
                target = target[key]
            if junk is KeyError:
                if isinstance(target, dict):
                    del target[path[-1]]
                else:
                    continue
            else:
                target[path[-1]] = copy.deepcopy(junk)
            yield mutated


def only_mapping_errors(run: Callable[[Any], object], body: Any) -> int:
    count = 0
    for mutated in mutations(body):
        try:
            run(mutated)
        except MappingError:
            pass
        count += 1
    return count


def meta_pipeline(body: Any) -> None:
    for item in read_meta_webhook(body).updates():
        if item.kind == "message":
            ids = identifiers_of_message(item.element, item.contact)
            participant = genesys_participant(participant_id(ids.phone, ids.bsuid, None), ids.name)
            to_genesys_inbound(
                item.element,
                item.contact,
                phone_number_id=item.phone_number_id,
                participant=participant,
                media_url_for=lambda ref: "https://interlink.example/m",
            )
        elif item.kind == "status":
            ids = identifiers_of_status(item.element, item.contact)
            next_receipt(None, str(item.element.get("status")))
            unix_seconds(item.element.get("timestamp"), "status.timestamp")
            failure_reasons(item.element)
        json.dumps(item.as_payload())


def genesys_pipeline(body: Any) -> None:
    notification = parse_genesys_notification(body)
    to_meta_sends(notification, recipient="+16505551234", callback_data="g")


META = sorted(p.name for p in PAYLOADS.glob("meta_*.json"))
GENESYS = sorted(p.name for p in PAYLOADS.glob("genesys_*.json"))


@pytest.mark.parametrize("name", META)
def test_meta_payloads_with_junk(name: str) -> None:
    assert only_mapping_errors(meta_pipeline, json.loads((PAYLOADS / name).read_text())) > 0


@pytest.mark.parametrize("name", GENESYS)
def test_genesys_payloads_with_junk(name: str) -> None:
    assert only_mapping_errors(genesys_pipeline, json.loads((PAYLOADS / name).read_text())) > 0
