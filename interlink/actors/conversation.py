"""One actor per (tenant, WhatsApp user): that user's messages, both ways, one at a time, in order.

Its state lives in Redis (``interlink.store.conversations``), so the actor is cheap to retire when
idle and to start again. Each message is carried to the other side by its flow
(``interlink.actors.flows``) with the tenant configuration it started on (a retry, with the one
of its time); every provider call is
recorded as done once it succeeds, so a message that is redelivered after a crash skips what
already happened. A failure that may pass (429, 5xx, a timeout) is retried here, holding the
conversation's later messages back so order is kept, for up to ``RETRY_FOR``. One that cannot pass,
or still fails then, becomes a dead letter; an agent's message becomes a ``Failed`` receipt too,
so that the agent knows it will not arrive.
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import gevent
import pykka
import redis

from interlink.actors.actor import Actor, describe
from interlink.actors.context import TenantContext
from interlink.actors.flows.agent_message import agent_message, gave_up
from interlink.actors.flows.common import FlowContext, GiveUp
from interlink.actors.flows.customer_message import customer_message
from interlink.actors.flows.status import status as status_flow
from interlink.actors.messages import ConfigChanged
from interlink.actors.supervision import ChildStatus
from interlink.actors.tree import TreeSpec
from interlink.inbox import Entry
from interlink.mapping.wire import MappingError
from interlink.providers.errors import AuthError, MetaError, PermanentError, TransientError
from interlink.providers.retry import backoff
from interlink.providers.session import lazy_session
from interlink.store.conversations import AliasCache, ConversationStore
from interlink.telemetry import logs, metrics
from interlink.tenancy.config import TenantConfig

log = logging.getLogger(__name__)

RETRY_FOR = 600.0  # seconds a message that may still pass is retried before it is a dead letter
RETRY_BASE = 1.0
RETRY_CAP = 30.0
UNEXPECTED_REASON = 200  # characters of an unexpected exception kept in a dead letter's reason

Flow = Callable[[FlowContext, ConversationStore, Entry], None]


class Conversation(Actor):
    def __init__(
        self,
        config: TenantConfig,
        user: str,
        *,
        spec: TreeSpec,
        tenant: pykka.ActorRef[Any],
        status: ChildStatus,
        context: Callable[[], TenantContext | None] | None = None,
    ) -> None:
        super().__init__(status=status)
        self.config = config
        self.user = user
        self.spec = spec
        self.tenant = tenant
        self.context = context
        self.last_active = time.monotonic()
        self.handled = 0
        self.aliases = AliasCache()  # the user's aliases, read once per actor (see AliasCache)

    def started(self) -> None:
        self.session = lazy_session()  # attachment downloads
        secret_keys = self.spec.services.secret_keys if self.spec.services is not None else ()
        self.flows: dict[str, Flow] = {
            "wa.message": functools.partial(customer_message, secret_keys=secret_keys),
            "wa.status": status_flow,
            "gc.message": functools.partial(agent_message, session=self.session),
        }

    def stopping(self) -> None:
        session = getattr(self, "session", None)
        if session is not None:
            session.close()

    def receive(self, message: Any) -> Any:
        self.last_active = time.monotonic()
        if isinstance(message, Entry):
            return self.handle(message)
        if isinstance(message, ConfigChanged):
            self.config = message.config
            return None
        return super().receive(message)

    # -- one message ----------------------------------------------------------------------------
    def handle(self, work: Entry) -> Any:
        self.handled += 1
        context = self.context() if self.context is not None else None
        if context is None:  # a bare tree (unit tests of the runtime): nothing to carry
            self.spec.ack(work)
            return None
        with logs.bound(**_message_ids(work)):
            store = self._handle(work, context)
            commit = self.spec.commit
            if commit is None:
                store.flush()  # a dead letter's writes (its Failed receipt's record) too
                self.spec.ack(work)
                return None
            try:
                # The writes still held back go with the acknowledgement, in a round trip shared
                # with other conversations'; the next message waits for them, as it must see them.
                store.flush(functools.partial(commit, work))
            except redis.RedisError as exc:
                # The inbox stopped first (a drain past its deadline), or Redis refused this
                # entry's writes or acknowledgement: the message stays pending and comes back.
                log.warning(
                    "message not acknowledged",
                    extra={"tenant": context.tenant_id, "error": type(exc).__name__},
                )
                try:
                    # Its done markers at least, as before the acknowledgement carried them:
                    # the next delivery then skips the calls made.
                    store.flush()
                except redis.RedisError as error:
                    log.warning(
                        "conversation writes not stored",
                        extra={"tenant": context.tenant_id, "error": type(error).__name__},
                    )
        return None

    def _handle(self, work: Entry, context: TenantContext) -> ConversationStore:
        flow = self.flows.get(work.kind)
        store = ConversationStore(
            self.spec.services.redis, context.tenant_id, write_behind=True, aliases=self.aliases
        )
        if flow is None:
            log.warning(
                "unknown work kind dropped", extra={"tenant": context.tenant_id, "kind": work.kind}
            )
        else:
            outcome = self._with_retries(flow, context, store, work)
            if outcome is not None:
                reason, genesys_answers = outcome
                log.warning(
                    "dead letter",
                    extra={"tenant": context.tenant_id, "kind": work.kind, "reason": reason},
                )
                # Redis failing here raises: the entry stays pending and comes back, not lost.
                store.dead_letter(work.kind, work.payload, work.conversation, reason)
                if work.kind == "gc.message" and genesys_answers:
                    gave_up(context, store, work)
            else:
                metrics.delivered(work.kind, work.entry_id)
        return store

    def _with_retries(
        self,
        flow: Flow,
        context: TenantContext,
        store: ConversationStore,
        work: Entry,
    ) -> tuple[str, bool] | None:
        """Carry one inbox entry through ``flow``; None when done, else the dead letter's reason
        and whether Genesys may still be told (not when it refused the tenant's credentials).

        The one rule for a poison entry: whatever ``flow`` raises (an Exception, not a stop of
        the actor) ends as a reason here, so the entry is dead-lettered and acknowledged and the
        conversation goes on with its next message, instead of the actor dying on it again at
        every redelivery while the tenant's backlog stays raised.
        """
        give_up_at = time.monotonic() + RETRY_FOR
        for attempt in itertools.count():
            try:
                flow(context, store, work)
                if self.spec.commit is None:
                    # Its writes are stored before it is acknowledged; Redis failing here retries
                    # the flow, which skips the steps this store knows are done.
                    store.flush()
                return None
            except (TransientError, redis.RedisError) as exc:
                reason = f"still failing after {attempt + 1} attempts: {describe(exc)}"
                if time.monotonic() >= give_up_at:
                    return reason, True
                delay = backoff(attempt, base=RETRY_BASE, cap=RETRY_CAP)
                log.info(
                    "retrying",
                    extra={
                        "tenant": context.tenant_id,
                        "kind": work.kind,
                        "delay": round(delay, 2),
                        "error": describe(exc),
                    },
                )
                gevent.sleep(delay)
                # The next attempt runs on the tenant's configuration of now: a credential
                # rotated meanwhile (say, a revoked WhatsApp token) is what it must carry. It
                # starts the flow over, skipping the steps already done, so nothing mixes two
                # versions within one attempt.
                if self.context is not None:
                    context = self.context() or context
            except AuthError as exc:
                return f"Genesys refused the tenant's credentials: {describe(exc)}", False
            except (GiveUp, PermanentError, MetaError, MappingError) as exc:
                return describe(exc), True
            except Exception as exc:
                metrics.POISON.labels(work.kind).inc()
                # A bug of ours met by this payload: the type and the start of the message say
                # which (our messages carry no secrets; payload text is cut short).
                return f"unexpected {describe(exc)[:UNEXPECTED_REASON]}", True
        return None  # not reached: the loop ends by returning


def _message_ids(work: Entry) -> dict[str, str]:
    """The provider's id of the message an entry is about, for every log line while it is
    handled: a WhatsApp message or status names its ``wamid``, a Genesys message its own id."""
    payload = work.payload
    if work.kind == "gc.message":
        message_id = payload.get("id")
        return {"genesys_message_id": message_id} if isinstance(message_id, str) else {}
    element = payload.get("element")
    wamid = element.get("id") if isinstance(element, Mapping) else None
    return {"wamid": wamid} if isinstance(wamid, str) else {}
