"""What a tenant's conversations share for one configuration version.

The tenant actor builds one :class:`TenantContext` per configuration and swaps it whole on reload;
a conversation takes the current one when it starts a message and keeps it to the end of that
attempt, so every attempt finishes on the configuration it started with: its Genesys client and
its WhatsApp sender (an attempt that failed in a way that may pass is retried on the current
one, so a rotated credential reaches messages already waiting to be retried). What outlives a version is the tenant's: its token manager, its
:class:`SendLane` (WhatsApp pacing and concurrency) and its Genesys pacer.
"""

from __future__ import annotations

import time

import requests

from interlink.actors.token_manager import TokenManager
from interlink.actors.whatsapp_sender import SendLane, WhatsAppSender
from interlink.providers.genesys import OpenMessagingClient
from interlink.providers.pacing import Pacer
from interlink.settings import Settings
from interlink.tenancy.config import TenantConfig


class TenantContext:
    def __init__(
        self,
        config: TenantConfig,
        settings: Settings,
        *,
        token_manager: TokenManager,
        send_lane: SendLane,
        genesys_pacer: Pacer,
        session: requests.Session,
    ) -> None:
        self.config = config
        self.settings = settings
        self._token_manager = token_manager
        self._sender = WhatsAppSender(config, send_lane, session, settings.meta_graph_url)
        self._token: str | None = None
        self._token_until = 0.0
        self._token_generation = 0
        self.genesys: OpenMessagingClient | None = None
        if config.genesys is not None:
            self.genesys = OpenMessagingClient(
                session,
                settings.genesys_api_base(config.genesys.region),
                config.genesys.integration_id,
                self.token,
                self.drop_token,
                pacer=genesys_pacer,
            )

    @property
    def tenant_id(self) -> str:
        return self.config.tenant_id

    def token(self) -> str:
        """The tenant's Genesys token, from memory while its lease runs (until its renewal
        time), else from the tenant's token manager, in this greenlet. A token another shard
        dropped in Redis is still used here until Genesys answers 401 to it, which drops it here
        too: only the owner shard delivers, so that is at most one refused call per ownership
        change. New credentials end the lease at once, here too: a context of the version before
        (a message that started before the rotation, waiting for its turn at Genesys's pace)
        would otherwise keep calling with the old client's token until its renewal time."""
        manager = self._token_manager
        if (
            self._token is not None
            and time.monotonic() < self._token_until
            and self._token_generation == manager.generation
        ):
            return self._token
        generation = manager.generation
        lease = manager.lease()
        self._token, self._token_until = lease.token, time.monotonic() + lease.fresh_for
        self._token_generation = generation
        return lease.token

    def drop_token(self, token: str | None) -> None:
        """Drop ``token`` (or whatever token is cached, for None) here and in Redis."""
        if token is None or token == self._token:
            self._token, self._token_until = None, 0.0
        self._token_manager.drop(token)

    def sender(self) -> WhatsAppSender:
        return self._sender
