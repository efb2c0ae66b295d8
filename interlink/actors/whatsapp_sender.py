"""A tenant's sends to Meta's Graph API: paced, bounded, made in the asking conversation's greenlet.

No actor: a conversation calls :meth:`WhatsAppSender.send` (or :meth:`WhatsAppSender.upload`)
itself and gets the wamid (or the media id) or the error back, so a send costs no mailbox hop,
no extra greenlet and no reply future, and a tenant tree one actor less.

What the tenant's sends share, kept across configuration reloads (:class:`SendLane`):
- the business number's messages per second (the ``messagesPerSecond`` setting, 90 % of it);
- per recipient, Meta's pair rate (after a 131056 that recipient alone waits 4^X seconds, X
  counting its consecutive refusals);
- at most ``DEFAULT_CONCURRENCY`` sends at once: more conversations wait for a slot (backpressure,
  bounded sockets), at most ``SLOT_WAIT`` seconds, then the send counts as not made (a
  :class:`TransientError`, retried by the conversation).

One :class:`WhatsAppSender` per configuration version, built with the tenant's
:class:`interlink.actors.context.TenantContext`: an attempt at a message finishes with the Graph
client (number, token) it started with; a retry takes the current one. Stopping the tenant closes the lane: sends already going finish in their
conversations (which the tenant waits for, up to its stop timeout); a new one is refused as
transient, so its entry stays pending for the next owner.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import gevent.lock
import requests

from interlink.providers.errors import MetaError, PermanentError, TransientError
from interlink.providers.meta import GraphClient, send_with_retry
from interlink.providers.pacing import (
    DEFAULT_META_MESSAGES_PER_SECOND,
    META_MESSAGES_PER_SECOND,
    META_PACED_SHARE,
    KeyedPacer,
    Pacer,
    meta_number_pacer,
    pair_pacer,
)
from interlink.tenancy.config import TenantConfig, WhatsAppConfig

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 32
SLOT_WAIT = 120.0  # seconds a send waits for one of the tenant's slots before it is retried later
PAIR_BURST = 45  # Meta tolerates bursts of 45 messages in 6 s to one user before 131056
MAX_PAIR_REFUSALS = 4  # 1 + 4 + 16 + 64 s of waiting for one recipient, then give up


class SendLane:
    """What one tenant's sends share whatever its configuration version: the pacers of its
    business number and the bound on concurrent sends. Owned by the tenant actor."""

    def __init__(
        self,
        config: TenantConfig,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        slot_wait: float = SLOT_WAIT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.concurrency = concurrency
        self.slot_wait = slot_wait
        # The pacers' time (time.sleep yields under gevent).
        self._timing: dict[str, Any] = {"clock": clock, "sleep": sleep}
        self.slots = gevent.lock.BoundedSemaphore(concurrency)
        self.number = _number(config)
        self.rate = _rate(config)
        self.latest = config  # the newest configuration: its token is what a send carries
        self.number_pacer: Pacer = meta_number_pacer(self.rate, **self._timing)
        self.pair_pacer: KeyedPacer = pair_pacer(burst=PAIR_BURST, **self._timing)
        self.waiting = 0
        self.sent = 0
        self.closed = False

    def configure(self, config: TenantConfig) -> None:
        """Follow a reload: a new rate paces from now on; another business number has budgets
        of its own at Meta, so it starts with fresh pacers."""
        number, rate = _number(config), _rate(config)
        if number != self.number:
            self.pair_pacer = pair_pacer(burst=PAIR_BURST, **self._timing)
        if number != self.number or rate != self.rate:
            self.number_pacer = meta_number_pacer(rate, **self._timing)
        self.number, self.rate = number, rate
        self.latest = config

    def close(self) -> None:
        """No send starts any more; those going finish in their own greenlets."""
        self.closed = True

    @property
    def in_flight(self) -> int:
        return self.concurrency - self.slots.counter

    def enter(self) -> None:
        """Take a send slot, waiting at most ``slot_wait`` seconds."""
        if self.closed:
            raise TransientError("the tenant is stopping: the send was not made")
        if not self.slots.acquire(blocking=False):
            self.waiting += 1
            try:
                got = self.slots.acquire(timeout=self.slot_wait)
            finally:
                self.waiting -= 1
            if not got:
                raise TransientError(
                    f"all {self.concurrency} send slots of the tenant stayed busy for "
                    f"{self.slot_wait:g} s: the send was not made"
                )
            if self.closed:
                self.slots.release()
                raise TransientError("the tenant is stopping: the send was not made")

    def leave(self) -> None:
        self.slots.release()

    def snapshot(self) -> dict[str, int]:
        return {"inFlight": self.in_flight, "waiting": self.waiting, "sent": self.sent}


class WhatsAppSender:
    """One configuration version's way to Meta; every call runs in the caller's greenlet.

    - ``config``: the tenant configuration (its ``whatsapp`` part names the number and token).
    - ``lane``: the tenant's :class:`SendLane` (pacing, concurrency), shared by every version.
    - ``session`` / ``graph_base``: the shard's provider session and ``Settings.meta_graph_url``.

    Errors are :meth:`GraphClient.send`'s (``MetaError``, ``SendUncertain``, ``TransientError``),
    :class:`PermanentError` ``not.configured`` without a WhatsApp configuration, and
    :class:`TransientError` when no send slot came in time or the tenant is stopping (nothing
    was sent then).
    """

    __slots__ = ("_graph_base", "_rotated", "_session", "client", "config", "lane")

    def __init__(
        self, config: TenantConfig, lane: SendLane, session: requests.Session, graph_base: str
    ) -> None:
        self.config = config
        self.lane = lane
        self._session, self._graph_base = session, graph_base
        self._rotated: tuple[WhatsAppConfig, GraphClient] | None = None
        whatsapp = config.whatsapp
        self.client: GraphClient | None = None
        if whatsapp is not None:
            self.client = GraphClient(
                session, graph_base, whatsapp.phone_number_id, whatsapp.access_token
            )

    def __repr__(self) -> str:
        return f"WhatsAppSender(tenant={self.config.tenant_id!r}, client={self.client!r})"

    @property
    def number_pacer(self) -> Pacer:
        return self.lane.number_pacer

    def _graph(self) -> GraphClient:
        if self.client is None:
            raise PermanentError(None, "not.configured", "the tenant has no WhatsApp configuration")
        return self.client

    def _current(self, client: GraphClient) -> GraphClient:
        """``client``, or the same number's client with the access token of the tenant's newest
        configuration: a send that waited for its turn (pacing, a slot) across a token rotation
        must not carry the token the rotation replaced (perhaps because it was revoked)."""
        mine, latest = self.config.whatsapp, self.lane.latest.whatsapp
        if mine is None or latest is None or latest.phone_number_id != mine.phone_number_id:
            return client  # another number is another configuration's business
        if latest.access_token == mine.access_token:
            return client
        rotated = self._rotated
        if rotated is None or rotated[0] is not latest:
            rotated = self._rotated = (
                latest,
                GraphClient(
                    self._session, self._graph_base, latest.phone_number_id, latest.access_token
                ),
            )
        return rotated[1]

    def send(self, body: Mapping[str, Any], recipient: str) -> str:
        """Send ``body`` (a Graph API message) to ``recipient``; its wamid."""
        client = self._graph()
        lane = self.lane
        refusals = 0
        while True:
            # Outside the slot: a recipient's pair pacing holds up that conversation only.
            lane.pair_pacer.acquire(recipient)
            lane.enter()
            try:
                lane.number_pacer.acquire()
                wamid = send_with_retry(self._current(client), body)
            except MetaError as exc:
                if exc.kind != "pair_rate" or refusals >= MAX_PAIR_REFUSALS:
                    raise
                delay = lane.pair_pacer.penalize(recipient, refusals)
                log.info(
                    "pair rate hit; backing off",
                    extra={"tenant": self.config.tenant_id, "delay": delay},
                )
                refusals += 1
                continue
            finally:
                lane.leave()
            lane.sent += 1
            return wamid

    def upload(self, data: bytes, mime: str, filename: str) -> str:
        """Upload an attachment for this number; its media id."""
        client = self._graph()
        lane = self.lane
        lane.enter()
        try:
            return client.upload(data, mime, filename)
        finally:
            lane.leave()


def _number(config: TenantConfig) -> str | None:
    return config.whatsapp.phone_number_id if config.whatsapp is not None else None


def _rate(config: TenantConfig) -> float:
    """Sends per second: a share of the number's throughput (the ``messagesPerSecond`` setting),
    as the default pace is of Meta's default throughput."""
    throughput = config.settings.get("messagesPerSecond", META_MESSAGES_PER_SECOND)
    if not isinstance(throughput, int | float):
        return DEFAULT_META_MESSAGES_PER_SECOND
    return float(throughput) * META_PACED_SHARE
