"""What every flow shares: the tenant context it runs in, and how it says a message cannot pass."""

from __future__ import annotations

from typing import Protocol

from interlink.actors.whatsapp_sender import WhatsAppSender
from interlink.providers.genesys import OpenMessagingClient
from interlink.settings import Settings
from interlink.tenancy.config import TenantConfig


class GiveUp(Exception):
    """The message cannot be delivered; ``str()`` is the dead letter's reason."""


class FlowContext(Protocol):
    """What a flow needs of its tenant: one configuration version, its Genesys client (None
    without Genesys credentials), a Genesys token (for attachment downloads) and the tenant's
    WhatsApp sender, called in the flow's own greenlet.
    :class:`interlink.actors.context.TenantContext` is the production one."""

    config: TenantConfig
    settings: Settings
    genesys: OpenMessagingClient | None

    @property
    def tenant_id(self) -> str: ...

    def token(self) -> str: ...

    def sender(self) -> WhatsAppSender: ...
