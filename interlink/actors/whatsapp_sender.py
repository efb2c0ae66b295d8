"""Sends to Meta's Graph API with the tenant's access token, paced, without blocking its mailbox."""

from __future__ import annotations

from typing import Any

from interlink.actors.base import Actor
from interlink.actors.messages import ConfigChanged
from interlink.actors.supervision import ChildStatus
from interlink.actors.tree import TreeSpec
from interlink.model import TenantConfig


class WhatsAppSender(Actor):
    def __init__(self, config: TenantConfig, *, spec: TreeSpec, status: ChildStatus) -> None:
        super().__init__(status=status)
        self.config = config
        self.spec = spec

    def receive(self, message: Any) -> Any:
        if isinstance(message, ConfigChanged):
            self.config = message.config
            return None
        return super().receive(message)
