"""A message retried after its tenant's configuration changed runs its retry on the new one: a
rotated credential reaches the messages already waiting to be retried, instead of them failing
with the revoked one until they are dead letters."""

from __future__ import annotations

from typing import Any, cast

import pytest
import responses

from interlink.actors import conversation as conversation_module
from interlink.actors.tree import TreeSpec
from interlink.services import Services
from tests.actors.flows.conftest import (
    GENESYS,
    FakeContext,
    conversation,
    entry,
    meta_update,
    tenant_config,
)


class _Context(FakeContext):
    def __init__(self, *args: Any, token: str) -> None:
        super().__init__(*args)
        self._token = token

    def token(self) -> str:
        return self._token


@responses.activate
def test_a_retry_after_a_credential_rotation_carries_the_new_credential(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conversation_module, "RETRY_BASE", 0.01)
    config = tenant_config()
    old = _Context(config, services.settings, token="old-token")
    new = _Context(config, services.settings, token="new-token")
    current = [old]
    seen: list[str] = []

    def genesys(request: Any) -> tuple[int, dict[str, str], str]:
        seen.append(request.headers["Authorization"])
        if len(seen) == 1:
            current[0] = new  # rotated while the first attempt was under way
            return 503, {}, "{}"
        return 200, {}, '{"id": "gc"}'

    responses.add_callback(responses.POST, f"{GENESYS}/message", callback=genesys)
    spec = TreeSpec(load_config=lambda tenant_id: config, services=services)
    with conversation(config, spec, lambda: cast(Any, current[0])) as ref:
        ref.ask(entry(config, "wa.message", meta_update("meta_text.json")), timeout=10)
    assert seen == ["Bearer old-token", "Bearer new-token"]
