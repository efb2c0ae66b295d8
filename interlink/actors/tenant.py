"""The root of one tenant's tree: its configuration and its conversations.

Children: one Conversation per active WhatsApp user (transient: a crashed or idle one is forgotten
and started again by its next message, its state being in Redis).

What the conversations share is no actor: they call it in their own greenlets, through the
:class:`TenantContext` of the configuration version they started a message on. The tenant's
``TokenManager`` (its Genesys token, :mod:`interlink.actors.token_manager`), its ``SendLane``
(WhatsApp pacing, at most 32 sends at once, :mod:`interlink.actors.whatsapp_sender`) and its
Genesys pacer are built when the tenant starts and outlive reloads; a tenant tree is its own
actor plus one per active conversation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
import pykka
import redis

from interlink.actors.actor import Actor, describe
from interlink.actors.context import TenantContext
from interlink.actors.conversation import Conversation
from interlink.actors.messages import (
    ChildStopped,
    ConfigChanged,
    Control,
    Salvaged,
    Sweep,
    TenantChanged,
)
from interlink.actors.supervision import Children, ChildStatus
from interlink.actors.token_manager import TokenManager
from interlink.actors.tree import TreeSpec, first_config, http_session
from interlink.actors.whatsapp_sender import SendLane
from interlink.inbox import Entry
from interlink.providers.pacing import genesys_pacer
from interlink.store.dead_letters import DeadLetters
from interlink.store.tokens import TokenStore
from interlink.tenancy.config import TenantConfig

log = logging.getLogger(__name__)

CONVERSATION_PREFIX = "conversation:"
CONFIG_LOAD_ATTEMPTS = 5


class TenantActor(Actor):
    def __init__(self, tenant_id: str, *, spec: TreeSpec, status: ChildStatus) -> None:
        super().__init__(status=status)
        self.tenant_id = tenant_id
        self.spec = spec
        self.config: TenantConfig | None = None
        self.conversations = Children(self.actor_ref, spec.policy)
        self.last_active: dict[str, float] = {}
        self._sweeper: _Ticker | None = None
        self.context: TenantContext | None = None
        # One Genesys budget per tenant token, kept across reloads (the token is the same).
        self.genesys_pacer = genesys_pacer()
        self.send_lane: SendLane | None = None
        self.token_manager: TokenManager | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def started(self) -> None:
        config = self._load_config(first_config(self.spec))
        if config is None:
            # Deleted or never created: stop quietly, this is no crash to restart.
            self.status.intended_stop = True
            self.status.last_error = "unknown or deleted tenant"
            self.actor_ref.stop(block=False)
            return
        self.config = config
        self.session = http_session(self.spec)
        self.send_lane = SendLane(config)
        services = self.spec.services
        if services is not None:
            self.token_manager = TokenManager(
                config, TokenStore(services.redis), self.session, services.settings
            )
        self.context = self._context(config)

    def stopping(self) -> None:
        if self._sweeper is not None:
            self._sweeper.stop()
        deadline = time.monotonic() + self.spec.stop_timeout
        # The conversations finish the message they are on, sends included; a late one's next
        # send is refused as transient (its entry stays pending for the next owner).
        self.conversations.stop_all(deadline)
        if self.send_lane is not None:
            self.send_lane.close()

    def _context(self, config: TenantConfig) -> TenantContext | None:
        """The clients a configuration version needs; None for a bare tree (tests)."""
        services = self.spec.services
        if services is None or self.send_lane is None or self.token_manager is None:
            return None
        return TenantContext(
            config,
            services.settings,
            token_manager=self.token_manager,
            send_lane=self.send_lane,
            genesys_pacer=self.genesys_pacer,
            session=self.session,
        )

    def current_context(self) -> TenantContext | None:
        return self.context

    def _load_config(
        self, load: Callable[[str], TenantConfig | None] | None = None
    ) -> TenantConfig | None:
        """Redis may be briefly away (a restart): retry a little before counting it as a crash.
        ``load``: how (default: the tree's ``load_config``, straight from the store)."""
        load = load or self.spec.load_config
        for attempt in range(CONFIG_LOAD_ATTEMPTS):
            try:
                return load(self.tenant_id)
            except (redis.ConnectionError, redis.TimeoutError):
                if attempt == CONFIG_LOAD_ATTEMPTS - 1:
                    raise
                gevent.sleep(0.1 * 2**attempt)
        return None

    # -- messages -------------------------------------------------------------------------------
    def receive(self, message: Any) -> Any:
        if isinstance(message, Entry):
            return self.route(message)
        if isinstance(message, ChildStopped):
            return self._child_stopped(message)
        if isinstance(message, Salvaged):
            return self._salvaged(message)
        if isinstance(message, Sweep):
            return self._sweep()
        if isinstance(message, TenantChanged):
            return self._reload(message)
        if isinstance(message, Control):
            return self.control(message)
        return super().receive(message)

    def route(self, work: Entry) -> Any:
        """Conversation work goes to that user's actor (started on demand); the rest stays here."""
        if self.config is None:
            # Accepted just before the tenant was deleted: there is nobody left to deliver it for.
            log.warning(
                "work of a deleted tenant dropped",
                extra={"tenant": self.tenant_id, "kind": work.kind},
            )
            self.spec.ack(work)
            return None
        if work.conversation is None:
            return self.handle(work)
        key = CONVERSATION_PREFIX + work.conversation
        ref = self.conversations.ref(key)
        if ref is None or not ref.is_alive():
            # A crashed conversation whose ChildStopped is still on its way counts as gone already.
            self.conversations.forget(key)
            ref = self._start_conversation(key, work.conversation)
        self.last_active[key] = time.monotonic()
        ref.tell(work)
        return None

    def handle(self, work: Entry) -> Any:
        """Tenant-level work: none exists, so an entry naming no conversation (a message with
        neither a sender nor a contact) is dead-lettered and acknowledged, not left pending with
        the tenant's backlog raised."""
        reason = "no conversation: the item names no WhatsApp user"
        log.warning(
            "dead letter", extra={"tenant": self.tenant_id, "kind": work.kind, "reason": reason}
        )
        services = self.spec.services
        if services is not None:
            DeadLetters(services.redis, self.tenant_id, services.settings.shard_count).add(
                work.kind, work.payload, None, reason
            )
        self.spec.ack(work)
        return None

    def _start_conversation(self, key: str, user: str) -> pykka.ActorRef[Any]:
        cls = self.spec.conversation or Conversation
        spec, tenant, context = self.spec, self.actor_ref, self.current_context
        ref = self.conversations.start(
            key,
            lambda s: cls.start(
                self.config, user, spec=spec, tenant=tenant, status=s, context=context
            ),
            permanent=False,
        )
        if self._sweeper is None:
            interval = max(self.spec.idle_timeout / 2, 0.01)
            self._sweeper = _Ticker(self.actor_ref, interval)
        return ref

    def _child_stopped(self, message: ChildStopped) -> None:
        # Conversations are transient: a stopped one is forgotten, never restarted here.
        if self.conversations.stopped(message.key, message.ref) == "removed":
            self.last_active.pop(message.key, None)

    def _salvaged(self, message: Salvaged) -> None:
        """A crashed conversation's unstarted work goes to its next incarnation, in order."""
        for item in message.messages:
            if isinstance(item, Entry):
                self.route(item)

    def _sweep(self) -> None:
        """Retire conversations idle longer than the idle timeout whose mailbox is empty."""
        horizon = time.monotonic() - self.spec.idle_timeout
        for key in self.conversations.keys():
            ref = self.conversations.ref(key)
            if self.last_active.get(key, 0.0) > horizon or ref is None:
                continue
            if ref.is_alive() and not ref.actor_inbox.empty():
                continue
            self.conversations.stop(key)
            self.conversations.forget(key)
            self.last_active.pop(key, None)
        if not self.conversations and self._sweeper is not None:
            self._sweeper.stop()
            self._sweeper = None

    # -- reload ---------------------------------------------------------------------------------
    def _reload(self, change: TenantChanged) -> dict[str, Any]:
        """Apply a new configuration through this mailbox, so every message before it finishes
        on the old one. A configuration that cannot be loaded leaves the old one running."""
        if change.kind == "deleted":
            self.status.intended_stop = True
            self.actor_ref.stop(block=False)
            return {"reloaded": False, "stopping": True}
        current = self.config
        if current is not None and change.version is not None and change.version <= current.version:
            return {"reloaded": False, "version": current.version}
        try:
            config = self._load_config()
        except Exception as exc:
            self.status.last_error = (
                f"reload failed, still on version {current and current.version}: {describe(exc)}"
            )
            log.warning(
                "tenant reload failed", extra={"tenant": self.tenant_id, "error": describe(exc)}
            )
            return {"reloaded": False, "error": describe(exc)}
        if config is None:
            self.status.intended_stop = True
            self.actor_ref.stop(block=False)
            return {"reloaded": False, "stopping": True}
        changed = (
            current is None or config.credentials_fingerprint() != current.credentials_fingerprint()
        )
        login_changed = current is None or config.genesys_login() != current.genesys_login()
        self.config = config
        if self.send_lane is not None:
            self.send_lane.configure(config)  # a new messagesPerSecond paces from now on
        if self.token_manager is not None:
            # A new Meta token alone must not cost a Genesys token request.
            self.token_manager.configure(config, genesys_login_changed=login_changed)
        # Conversations take the context at each message: from the next one on they use the new
        # Genesys client (integration, region), Graph client and settings; calls in flight
        # finish on the old.
        self.context = self._context(config)
        notice = ConfigChanged(
            config, credentials_changed=changed, genesys_login_changed=login_changed
        )
        for key in self.conversations.keys():
            ref = self.conversations.ref(key)
            if ref is not None and ref.is_alive():
                ref.tell(notice)
        return {"reloaded": True, "version": config.version, "credentialsChanged": changed}

    # -- operator messages ----------------------------------------------------------------------
    def control(self, message: Control) -> dict[str, Any]:
        if message.type == "ping":
            return {"pong": True}
        if message.type == "stats":
            return self.snapshot()
        if message.type == "reload":
            return self._reload(TenantChanged(self.tenant_id, None))
        if message.type == "invalidate-token":
            # Dropped from Redis for every shard before the operator gets the answer.
            if self.context is not None:
                self.context.drop_token(None)
            return {"invalidated": True}
        if message.type in ("dead-letters", "replay-dead-letters", "drop-dead-letters"):
            return self._dead_letters(message)
        return {"unsupported": message.type}

    def _dead_letters(self, message: Control) -> dict[str, Any]:
        """List, replay (back into the inbox, in order) or drop the tenant's dead letters:
        ``{"limit": n}`` (default 100, at most 10,000) or ``{"ids": [...]}`` choose which."""
        services = self.spec.services
        if services is None:
            return {"deadLetters": 0}
        inbox = services.inbox
        letters = DeadLetters(services.redis, self.tenant_id, inbox.shard_count, inbox.generation)
        limit = message.args.get("limit", 100)
        ids = message.args.get("ids")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10_000:
            raise ValueError("limit must be an integer from 1 to 10000")
        if ids is not None and (
            not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)
        ):
            raise ValueError("ids must be a list of strings")
        if message.type == "dead-letters":
            return {"deadLetters": letters.count(), "entries": letters.entries(limit)}
        if message.type == "replay-dead-letters":
            return {"replayed": letters.replay(ids, limit), "deadLetters": letters.count()}
        return {"dropped": letters.drop(ids, limit), "deadLetters": letters.count()}

    def snapshot(self) -> dict[str, Any]:
        actors = [self.status.snapshot()]
        for key in self.conversations.keys():
            status = self.conversations.status(key)
            if status is not None:
                actors.append(status.snapshot())
        snapshot: dict[str, Any] = {
            "tenantId": self.tenant_id,
            "version": self.config.version if self.config else None,
            "conversations": len(self.conversations),
            "actors": actors,
        }
        if self.send_lane is not None:
            # What a sender actor's mailbox depth used to show: sends waiting for a slot.
            snapshot["sends"] = self.send_lane.snapshot()
        return snapshot


class _Ticker:
    """Tells ``ref`` to sweep every ``interval`` seconds: a timer of the hub's loop, not a
    greenlet, since each greenlet holds about 8 KiB and 10,000 active tenants each had one."""

    def __init__(self, ref: pykka.ActorRef[Any], interval: float) -> None:
        self.ref: pykka.ActorRef[Any] | None = ref
        self.timer = gevent.get_hub().loop.timer(interval, interval)
        self.timer.start(self._tick)

    def _tick(self) -> None:
        if self.ref is None:
            return
        try:
            self.ref.tell(Sweep())
        except pykka.ActorDeadError:
            self.stop()

    def stop(self) -> None:
        if self.ref is not None:
            self.ref = None
            self.timer.stop()
            self.timer.close()
