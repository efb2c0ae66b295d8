"""Sends to Meta's Graph API with the tenant's access token, paced, without blocking its mailbox.

Each send runs in a greenlet of a bounded pool, so one slow round trip never holds up the next
request in the mailbox; when the pool is full the mailbox waits (backpressure, bounded memory).
Pacing: the business number's messages per second, and per recipient Meta's pair rate (after a
131056 that recipient alone waits 4^X seconds, X counting its consecutive refusals).
"""

from __future__ import annotations

import contextvars
import logging
from dataclasses import dataclass, field
from typing import Any

import gevent.event
import gevent.pool

from interlink.actors.actor import Actor
from interlink.actors.messages import ConfigChanged
from interlink.actors.supervision import ChildStatus
from interlink.actors.tree import TreeSpec, http_session
from interlink.providers.errors import MetaError, PermanentError
from interlink.providers.meta import GraphClient, send_with_retry
from interlink.providers.pacing import (
    DEFAULT_META_MESSAGES_PER_SECOND,
    META_MESSAGES_PER_SECOND,
    META_PACED_SHARE,
    meta_number_pacer,
    pair_pacer,
)
from interlink.tenancy.config import TenantConfig

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 32
PAIR_BURST = 45  # Meta tolerates bursts of 45 messages in 6 s to one user before 131056
MAX_PAIR_REFUSALS = 4  # 1 + 4 + 16 + 64 s of waiting for one recipient, then give up


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``body`` (a Graph API message) to ``recipient``; ``reply`` gets the wamid or the error."""

    body: dict[str, Any]
    recipient: str
    reply: gevent.event.AsyncResult = field(default_factory=gevent.event.AsyncResult, compare=False)
    # Where the request was made (its log fields: the tenant, the message being handled).
    context: contextvars.Context = field(default_factory=contextvars.copy_context, compare=False)


@dataclass(frozen=True, slots=True)
class Upload:
    """Upload an attachment to Meta; ``reply`` gets the media id or the error."""

    data: bytes
    mime: str
    filename: str
    reply: gevent.event.AsyncResult = field(default_factory=gevent.event.AsyncResult, compare=False)
    context: contextvars.Context = field(default_factory=contextvars.copy_context, compare=False)


class WhatsAppSender(Actor):
    def __init__(self, config: TenantConfig, *, spec: TreeSpec, status: ChildStatus) -> None:
        super().__init__(status=status)
        self.config = config
        self.spec = spec
        self.number_pacer = meta_number_pacer(_rate(config))
        self.pair_pacer = pair_pacer(burst=PAIR_BURST)
        self.pool = gevent.pool.Pool(DEFAULT_CONCURRENCY)
        self.client: GraphClient | None = None
        self.sent = 0

    def started(self) -> None:
        self.session = http_session(self.spec)
        self.client = self._client(self.config)

    def stopping(self) -> None:
        # Sends already started finish (their replies are awaited); nothing new starts.
        self.pool.join(timeout=self.spec.stop_timeout)

    def _client(self, config: TenantConfig) -> GraphClient | None:
        whatsapp = config.whatsapp
        if whatsapp is None or self.spec.services is None:
            return None
        graph = self.spec.services.settings.meta_graph_url
        return GraphClient(self.session, graph, whatsapp.phone_number_id, whatsapp.access_token)

    def receive(self, message: Any) -> Any:
        # Each request runs in a greenlet of the pool, in the context it was made in, so that its
        # log lines name the tenant and the message it is for.
        if isinstance(message, Send):
            self.pool.spawn(message.context.run, self._guarded, message.reply, self._send, message)
            return None
        if isinstance(message, Upload):
            self.pool.spawn(
                message.context.run, self._guarded, message.reply, self._upload, message
            )
            return None
        if isinstance(message, ConfigChanged):
            if _rate(message.config) != _rate(self.config):
                self.number_pacer = meta_number_pacer(_rate(message.config))
            self.config = message.config
            self.client = self._client(message.config)
            return None
        return super().receive(message)

    def _guarded(self, reply: gevent.event.AsyncResult, work: Any, message: Any) -> None:
        """Whatever happens in a send, the asker hears of it and nothing escapes the greenlet."""
        try:
            reply.set(work(message))
        except BaseException as exc:  # a gevent.Timeout must not escape either
            reply.set_exception(
                exc if isinstance(exc, Exception) else RuntimeError(type(exc).__name__)
            )

    def _send(self, message: Send) -> str:
        client = self.client
        if client is None:
            raise PermanentError(None, "not.configured", "the tenant has no WhatsApp configuration")
        refusals = 0
        while True:
            self.number_pacer.acquire()
            self.pair_pacer.acquire(message.recipient)
            try:
                wamid = send_with_retry(client, message.body)
            except MetaError as exc:
                if exc.kind != "pair_rate" or refusals >= MAX_PAIR_REFUSALS:
                    raise
                delay = self.pair_pacer.penalize(message.recipient, refusals)
                log.info(
                    "pair rate hit; backing off",
                    extra={"tenant": self.config.tenant_id, "delay": delay},
                )
                refusals += 1
                continue
            self.sent += 1
            return wamid

    def _upload(self, message: Upload) -> str:
        client = self.client
        if client is None:
            raise PermanentError(None, "not.configured", "the tenant has no WhatsApp configuration")
        return client.upload(message.data, message.mime, message.filename)


def _rate(config: TenantConfig) -> float:
    """Sends per second: a share of the number's throughput (the ``messagesPerSecond`` setting),
    as the default pace is of Meta's default throughput."""
    throughput = config.settings.get("messagesPerSecond", META_MESSAGES_PER_SECOND)
    if not isinstance(throughput, int | float):
        return DEFAULT_META_MESSAGES_PER_SECOND
    return float(throughput) * META_PACED_SHARE
