"""A fake tenant context for the flows: a real Genesys client and a real WhatsApp sender, whose
HTTP the tests answer with ``responses``; Redis is the embedded store."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pykka
import pytest
import requests

from interlink.actors.conversation import Conversation
from interlink.actors.supervision import ChildStatus
from interlink.actors.tree import TreeSpec
from interlink.actors.whatsapp_sender import SendLane, WhatsAppSender
from interlink.inbox import Entry, Kind
from interlink.mapping import read_meta_webhook
from interlink.providers.genesys import OpenMessagingClient
from interlink.providers.retry import RetryPolicy
from interlink.services import Services
from interlink.settings import Settings
from interlink.tenancy.config import GenesysCredentials, TenantConfig, WhatsAppConfig

PAYLOADS = Path(__file__).parents[2] / "support" / "payloads"
PNID = "106540352242922"
REGION = "mypurecloud.ie"
INTEGRATION = "3c1a52e4-6f0b-4b4e-9a2f-1d2e3f4a5b6c"
GENESYS = f"https://api.{REGION}/api/v2/conversations/messages/{INTEGRATION}/inbound/open"
GRAPH_SEND = f"https://graph.facebook.com/v25.0/{PNID}/messages"


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def meta_update(name: str) -> dict[str, Any]:
    """The inbox payload of the one update of a sample Meta webhook, as the webhook stores it."""
    [update] = read_meta_webhook(load(name)).updates()
    return update.as_payload()


def entry(config: TenantConfig, kind: Kind, payload: dict[str, Any]) -> Entry:
    return Entry(config.tenant_id, kind, payload, conversation="16505551234")


def tenant_config(settings: dict[str, object] | None = None) -> TenantConfig:
    return TenantConfig(
        tenant_id=f"t-{secrets.token_hex(4)}",
        version=1,
        genesys=GenesysCredentials(
            client_id="client",
            client_secret=secrets.token_urlsafe(16),
            region=REGION,
            integration_id=INTEGRATION,
            webhook_secret=secrets.token_urlsafe(16),
        ),
        whatsapp=WhatsAppConfig(
            phone_number_id=PNID,
            business_account_id="102290129340398",
            access_token=secrets.token_urlsafe(16),
            app_secret=secrets.token_urlsafe(16),
            verify_token=secrets.token_urlsafe(16),
        ),
        settings=settings or {},
    )


class FakeContext:
    """What a flow asks of its tenant, without a token manager: a fixed Genesys token."""

    def __init__(self, config: TenantConfig, settings: Settings, sender: Any = None) -> None:
        self.config = config
        self.settings = settings
        self.session = requests.Session()
        self._sender = sender
        self.genesys: OpenMessagingClient | None = OpenMessagingClient(
            self.session,
            settings.genesys_api_base(REGION),
            INTEGRATION,
            self.token,
            lambda token: None,
            policy=RetryPolicy(max_attempts=1),
        )

    @property
    def tenant_id(self) -> str:
        return self.config.tenant_id

    def token(self) -> str:
        return "genesys-token"

    def sender(self) -> WhatsAppSender:
        assert self._sender is not None, "this flow must not send to WhatsApp"
        return self._sender


@pytest.fixture
def sender_for(services: Services) -> Iterator[Any]:
    """The real WhatsApp sender for a configuration, on the shard's provider session."""
    lanes: list[SendLane] = []

    def make(config: TenantConfig) -> WhatsAppSender:
        lane = SendLane(config)
        lanes.append(lane)
        return WhatsAppSender(config, lane, services.http, services.settings.meta_graph_url)

    yield make
    for lane in lanes:
        assert lane.in_flight == 0, "a send slot was never given back"


@contextmanager
def conversation(
    config: TenantConfig, spec: TreeSpec, context: Callable[[], Any], user: str = "16505551234"
) -> Iterator[pykka.ActorRef[Any]]:
    """A real conversation actor of ``config``'s tenant for ``user``, taking its tenant context
    from ``context``; stopped on the way out."""
    ref = Conversation.start(
        config,
        user,
        spec=spec,
        tenant=cast(pykka.ActorRef[Any], None),  # not asked while messages are handled
        status=ChildStatus("conversation"),
        context=context,
    )
    try:
        yield ref
    finally:
        ref.stop()
