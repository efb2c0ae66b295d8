"""One actor per (tenant, WhatsApp user): that user's messages, both ways, one at a time, in order.

Its state lives in Redis (``interlink.store.conversations``), so the actor is cheap to retire when
idle and to start again. Each message is carried to the other side with the tenant configuration
it started on; every provider call is recorded as done once it succeeds, so a message that is
redelivered after a crash skips what already happened. A failure that may pass (429, 5xx, a
timeout) is retried here, holding the conversation's later messages back so order is kept; one
that cannot pass becomes a dead letter, or for an agent's message a ``Failed`` receipt.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
import pykka
import redis

from interlink.actors.actor import Actor, describe
from interlink.actors.context import TenantContext
from interlink.actors.messages import ConfigChanged
from interlink.actors.supervision import ChildStatus
from interlink.actors.tree import TreeSpec
from interlink.actors.whatsapp_sender import Send, Upload
from interlink.inbox import Entry
from interlink.mapping import identity
from interlink.mapping.inbound import InboundOptions, MediaRef, to_genesys_inbound
from interlink.mapping.outbound import (
    MediaRejected,
    media_limit,
    template_send,
    to_meta_sends,
    with_media_id,
    within_service_window,
)
from interlink.mapping.receipts import (
    failed_receipt,
    failure_reasons,
    genesys_reason,
    next_receipt,
    receipt_body,
)
from interlink.mapping.webhooks import parse_genesys_notification
from interlink.mapping.wire import MappingError, unix_seconds
from interlink.providers.errors import (
    AuthError,
    MetaError,
    PermanentError,
    SendUncertain,
    TransientError,
)
from interlink.providers.genesys import download_attachment, genesys_download_hosts
from interlink.providers.retry import backoff
from interlink.providers.session import lazy_session
from interlink.security import media_links
from interlink.store.conversations import ConversationStore
from interlink.telemetry.metrics import REGISTRY
from interlink.tenancy.config import TenantConfig

log = logging.getLogger(__name__)

RETRY_FOR = 600.0  # seconds a message that may still pass is retried before it is a dead letter
RETRY_BASE = 1.0
RETRY_CAP = 30.0
SEND_TIMEOUT = 120.0  # pacing may hold a send; past this the outcome is unknown
UNEXPECTED_REASON = 200  # characters of an unexpected exception kept in a dead letter's reason

POISON = REGISTRY.counter(
    "interlink_poison_entries_total",
    "Inbox entries dead-lettered because handling them raised an unexpected exception.",
)


class GiveUp(Exception):
    """The message cannot be delivered; ``str()`` is the dead letter's reason."""


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

    def started(self) -> None:
        self.session = lazy_session()  # attachment downloads

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
        flow = {
            "wa.message": self._whatsapp_message,
            "wa.status": self._whatsapp_status,
            "gc.message": self._agent_message,
        }.get(work.kind)
        store = ConversationStore(self.spec.services.redis, context.tenant_id)
        if flow is None:
            log.warning(
                "unknown work kind dropped", extra={"tenant": context.tenant_id, "kind": work.kind}
            )
        else:
            reason = self._with_retries(flow, context, store, work)
            if reason is not None:
                log.warning(
                    "dead letter",
                    extra={"tenant": context.tenant_id, "kind": work.kind, "reason": reason},
                )
                # Redis failing here raises: the entry stays pending and comes back, not lost.
                store.dead_letter(work.kind, work.payload, work.conversation, reason)
        self.spec.ack(work)
        return None

    def _with_retries(
        self,
        flow: Callable[[TenantContext, ConversationStore, Entry], None],
        context: TenantContext,
        store: ConversationStore,
        work: Entry,
    ) -> str | None:
        """Carry one inbox entry through ``flow``; None when done, else the dead letter's reason.

        The one rule for a poison entry: whatever ``flow`` raises (an Exception, not a stop of
        the actor) ends as a reason here, so the entry is dead-lettered and acknowledged and the
        conversation goes on with its next message, instead of the actor dying on it again at
        every redelivery while the tenant's backlog stays raised.
        """
        give_up_at = time.monotonic() + RETRY_FOR
        for attempt in itertools.count():
            try:
                flow(context, store, work)
                return None
            except (TransientError, redis.RedisError, pykka.ActorDeadError) as exc:
                # pykka.ActorDeadError: the sender is between crash and restart.
                reason = f"still failing after {attempt + 1} attempts: {describe(exc)}"
                if time.monotonic() >= give_up_at:
                    return reason
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
            except AuthError as exc:
                return f"Genesys refused the tenant's credentials: {describe(exc)}"
            except (GiveUp, PermanentError, MetaError, MappingError) as exc:
                return describe(exc)
            except Exception as exc:
                POISON.inc(kind=work.kind)
                # A bug of ours met by this payload: the type and the start of the message say
                # which (our messages carry no secrets; payload text is cut short).
                return f"unexpected {describe(exc)[:UNEXPECTED_REASON]}"
        return None  # not reached: the loop ends by returning

    # -- WhatsApp user -> Genesys ---------------------------------------------------------------
    def _whatsapp_message(
        self, context: TenantContext, store: ConversationStore, work: Entry
    ) -> None:
        payload = work.payload
        message, contact = payload["element"], payload.get("contact")
        number = str(payload["phone_number_id"])
        ids = identity.identifiers_of_message(message, contact)
        known = store.known_alias(identity.alias_keys(ids.phone, ids.bsuid))
        participant = identity.participant_id(ids.phone, ids.bsuid, known)
        store.user_wrote(
            participant,
            float(unix_seconds(message.get("timestamp"), "message.timestamp")),
            ids.phone,
            identity.aliases_to_record(participant, ids.phone, ids.bsuid),
        )
        if context.genesys is None:
            raise GiveUp("the tenant has no Genesys credentials")
        bodies = to_genesys_inbound(
            message,
            contact,
            phone_number_id=number,
            participant=identity.genesys_participant(participant, ids.name),
            media_url_for=lambda ref: self._media_link(context, ref),
            options=_inbound_options(context.config),
        )
        wamid = str(message["id"])
        for index, body in enumerate(bodies):
            step = f"in:{wamid}:{index}"
            if not store.start(step):
                continue
            result = context.genesys.send_inbound(body)
            conversation_id = result.get("conversationId")
            store.mark_done(
                step,
                str(result.get("id") or "1"),
                genesys_conversation=conversation_id if isinstance(conversation_id, str) else None,
            )

    def _media_link(self, context: TenantContext, ref: MediaRef) -> str:
        token = media_links.make(
            context.tenant_id,
            ref.media_id,
            self.spec.services.secret_keys,
            mime=ref.mime_type,
            filename=ref.filename,
        )
        return f"{context.settings.base_url}/media/{token}"

    def _whatsapp_status(
        self, context: TenantContext, store: ConversationStore, work: Entry
    ) -> None:
        status = work.payload["element"]
        wamid, state_name = str(status["id"]), str(status.get("status"))
        genesys_id, participant, state = store.mapped(wamid)
        if genesys_id is None:
            callback = status.get("biz_opaque_callback_data")
            genesys_id = callback if isinstance(callback, str) and callback else None
        if genesys_id is None:
            return  # a status of a message that did not come from an agent
        if participant is None:
            ids = identity.identifiers_of_status(status, work.payload.get("contact"))
            known = store.known_alias(identity.alias_keys(ids.phone, ids.bsuid))
            participant = identity.participant_id(ids.phone, ids.bsuid, known)
        new_state, receipt = next_receipt(state, state_name)
        if receipt is not None and context.genesys is not None:
            step = f"receipt:{genesys_id}:{receipt}"
            if store.start(step):
                at = float(unix_seconds(status.get("timestamp"), "status.timestamp"))
                reasons = failure_reasons(status) if receipt == "Failed" else None
                body = receipt_body(
                    receipt,
                    genesys_message_id=genesys_id,
                    recipient=participant,
                    at=at,
                    reasons=reasons,
                )
                context.genesys.send_receipt(body)
                store.mark_done(step)
        if new_state is not None and new_state != state:
            store.advance(wamid, state, new_state)

    # -- Genesys agent -> WhatsApp user ---------------------------------------------------------
    def _agent_message(self, context: TenantContext, store: ConversationStore, work: Entry) -> None:
        notification = parse_genesys_notification(work.payload)
        genesys_id, participant = notification.message_id, notification.user_id
        assert genesys_id is not None and participant is not None
        last_inbound, phone = store.state(participant)
        template: dict[str, Any] | None = None  # set when only a template may reach the user
        if not within_service_window(last_inbound, time.time()):
            configured = context.config.settings.get("fallbackTemplate")
            if isinstance(configured, dict) and notification.text and not notification.attachments:
                template = configured
            else:
                return self._failed(
                    context, store, genesys_id, participant, "MessageExpired",
                    "More than 24 hours have passed since the customer last wrote: WhatsApp only accepts templates now.",
                )  # fmt: skip
        try:
            recipient = identity.whatsapp_recipient(participant, phone)
            if template is None:
                sends = to_meta_sends(notification, recipient=recipient, callback_data=genesys_id)
            else:
                sends = [
                    template_send(
                        str(notification.text),
                        name=str(template["name"]),
                        language=str(template["language"]),
                        recipient=recipient,
                        callback_data=genesys_id,
                    )
                ]
        except MediaRejected as exc:
            return self._failed(context, store, genesys_id, participant, exc.reason, str(exc))
        except MappingError as exc:
            return self._failed(context, store, genesys_id, participant, "GeneralError", str(exc))
        sender = context.sender()
        for index, body in enumerate(sends):
            step = f"out:{genesys_id}:{index}"
            if not store.start(step):
                continue
            try:
                if "link" in body.get(body.get("type", ""), {}):
                    body = with_media_id(
                        body, self._upload(context, sender, body, notification.attachments)
                    )
                request = Send(body, recipient)
                sender.tell(request)
                wamid = request.reply.get(timeout=SEND_TIMEOUT)
            except MediaRejected as exc:
                return self._failed(context, store, genesys_id, participant, exc.reason, str(exc))
            except SendUncertain:
                # Meta may have it: never send twice. Its status webhook will tell what happened.
                store.mark_done(step, "uncertain")
                log.warning("send outcome unknown; not resent", extra={"tenant": context.tenant_id})
                continue
            except (gevent.Timeout, pykka.Timeout):
                raise TransientError("the WhatsApp sender did not answer in time") from None
            except MetaError as exc:
                if exc.kind == "fatal" or (exc.kind == "pair_rate"):
                    code = exc.code or 0
                    return self._failed(
                        context,
                        store,
                        genesys_id,
                        participant,
                        genesys_reason(code),
                        f"WhatsApp {code}: {exc}",
                    )
                raise TransientError(describe(exc)) from None
            store.mark_done(step, str(wamid))
            store.map_message(str(wamid), genesys_id, participant)
        return None

    def _upload(
        self,
        context: TenantContext,
        sender: pykka.ActorRef[Any],
        send: dict[str, Any],
        attachments: Any,
    ) -> str:
        """Agent attachments reach Meta as uploads: Meta cannot fetch a Genesys download URL."""
        kind = send["type"]
        url = send[kind]["link"]
        creds = context.config.genesys
        if creds is None:
            raise GiveUp("the tenant has no Genesys credentials")
        declared = next((a for a in attachments if a.url == url), None)
        mime = (declared.mime if declared is not None else None) or ""
        limit = media_limit(mime)
        data, _ = download_attachment(
            self.session,
            url,
            allowed_hosts=genesys_download_hosts(context.settings, creds.region),
            token=context.token(),
            max_bytes=limit.max_bytes,
        )
        filename = (declared.filename if declared is not None else None) or f"{kind}"
        request = Upload(data, mime.split(";")[0].strip(), filename)
        sender.tell(request)
        try:
            media_id: str = request.reply.get(timeout=SEND_TIMEOUT)
        except (gevent.Timeout, pykka.Timeout):
            raise TransientError("the upload did not finish in time") from None
        return media_id

    def _failed(
        self,
        context: TenantContext,
        store: ConversationStore,
        genesys_id: str,
        participant: str,
        reason: str,
        text: str,
    ) -> None:
        """Tell the agent, through a ``Failed`` receipt, that this message will not arrive."""
        step = f"receipt:{genesys_id}:Failed"
        if context.genesys is None or not store.start(step):
            return
        context.genesys.send_receipt(failed_receipt(genesys_id, participant, reason, text))
        store.mark_done(step)


def _inbound_options(config: TenantConfig) -> InboundOptions:
    reactions = config.settings.get("reactionsAsText", True)
    return InboundOptions(
        reactions_as_text=bool(reactions), reaction_removals_as_text=bool(reactions)
    )
