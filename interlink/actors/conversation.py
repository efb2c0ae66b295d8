"""One actor per (tenant, WhatsApp user): the order of that user's messages, both ways.

Its state lives in Redis, so the actor is cheap to retire when idle and to start again.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pykka

from interlink.actors.base import Actor
from interlink.actors.messages import ConfigChanged, Work
from interlink.actors.supervision import ChildStatus
from interlink.actors.tree import TreeSpec
from interlink.model import TenantConfig

log = logging.getLogger(__name__)


class Conversation(Actor):
    def __init__(
        self,
        config: TenantConfig,
        user: str,
        *,
        spec: TreeSpec,
        tenant: pykka.ActorRef[Any],
        status: ChildStatus,
    ) -> None:
        super().__init__(status=status)
        self.config = config
        self.user = user
        self.spec = spec
        self.tenant = tenant
        self.last_active = time.monotonic()
        self.handled = 0

    def receive(self, message: Any) -> Any:
        self.last_active = time.monotonic()
        if isinstance(message, Work):
            return self.handle(message)
        if isinstance(message, ConfigChanged):
            self.config = message.config
            return None
        return super().receive(message)

    def handle(self, work: Work) -> Any:
        """Carry one item to the other side. The flows fill this in by ``kind``."""
        self.handled += 1
        self.spec.ack(work)
        return None
