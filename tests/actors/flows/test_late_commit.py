"""A conversation still finishing a message once the inbox reader has stopped (a stop or a
handover's drain past its deadline): its acknowledgement cannot go, but the writes that were
to go with it are stored by themselves, so the next delivery skips the calls already made."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import redis
import responses

from interlink.actors.tree import TreeSpec
from interlink.inbox import InboxReader
from interlink.services import Services
from tests.actors.flows.conftest import (
    GENESYS,
    FakeContext,
    conversation,
    entry,
    meta_update,
    tenant_config,
)


@responses.activate
def test_a_message_finished_after_the_reader_stopped_is_not_sent_again(
    services: Services, redis_client: redis.Redis
) -> None:
    config = tenant_config()
    context = FakeContext(config, services.settings)
    reader = InboxReader(services.redis, 0, lambda work: True)
    reader.start()
    reader.stop(timeout=0.5)
    post = responses.post(f"{GENESYS}/message", json={"id": "gc"})
    work = entry(config, "wa.message", meta_update("meta_text.json"))

    def handle(spec: TreeSpec) -> None:
        with conversation(config, spec, lambda: cast(Any, context)) as ref:
            ref.ask(work, timeout=10)

    base = TreeSpec(load_config=lambda tenant_id: config, services=services)
    handle(dataclasses.replace(base, commit=reader.commit))  # "message not acknowledged"
    assert post.call_count == 1
    handle(base)  # the same entry again, as the next owner gets it
    assert post.call_count == 1
