"""A Genesys agent's message → WhatsApp sends, attachments uploaded first (``gc.message``).

A ``Notification`` naming a WhatsApp template (a proactive message) goes as that template, inside
the 24-hour window or not.

Outside the 24-hour window only a template may reach the user: a text (a Structured message as
its readable text, a quick reply's options numbered) is sent as the tenant's ``fallbackTemplate``
when it has one, else the agent gets a ``Failed`` receipt. Each send is made
once (a step already done is skipped) and never repeated when its outcome is unknown; a refusal
that cannot pass (a rejected attachment, a fatal Graph error) becomes a ``Failed`` receipt rather
than a retry. That receipt is the Genesys message's one final receipt, decided in the same place
as the one its WhatsApp parts' statuses give (``flows.status``): parts sent before the failure
never turn it into a ``Delivered``, and nothing is sent twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import redis
import requests

from interlink.actors.actor import describe
from interlink.actors.flows.common import FlowContext, GiveUp
from interlink.actors.whatsapp_sender import WhatsAppSender
from interlink.inbox import Entry
from interlink.mapping import (
    GenesysAttachment,
    MappingError,
    MediaRejected,
    failed_receipt,
    found_too_large,
    genesys_reason,
    identity,
    media_limit,
    notification_send,
    notification_template,
    parse_genesys_notification,
    template_send,
    to_meta_sends,
    with_media_id,
    within_service_window,
)
from interlink.mapping.structured import Rendered, render_structured
from interlink.providers.errors import (
    MetaError,
    PermanentError,
    ProviderError,
    SendUncertain,
    TooLarge,
    TransientError,
)
from interlink.providers.genesys import download_attachment, genesys_download_hosts
from interlink.providers.meta import GraphClient
from interlink.store.conversations import ConversationStore

log = logging.getLogger(__name__)

OUTSIDE_WINDOW = (
    "More than 24 hours have passed since the customer last wrote: "
    "WhatsApp only accepts templates now."
)
TYPING_INTERVAL = 5.0  # seconds between two typing indicators of one conversation
NOTHING_TO_SHOW = "The message has no content WhatsApp can show."
DOWNLOAD_REFUSED = "Genesys refused the download of an attachment, so it could not be sent."
NOT_SENT = "The message could not be sent to WhatsApp; it waits for an operator as a dead letter."
# The field a failure found before or while sending takes among the parts' outcomes in the
# Genesys message's receipt hash (the parts themselves are named by their wamids).
UNSENT_PART = "unsent"


class DownloadRefused(Exception):
    """Genesys refused an attachment's download for good (401/403/404/410, or a URL outside
    the hosts interlink may fetch from); ``str()`` says how, for the dead letter."""


def agent_message(
    context: FlowContext,
    store: ConversationStore,
    work: Entry,
    *,
    session: requests.Session,
) -> None:
    """Carry one Genesys notification to the WhatsApp user. ``session`` downloads attachments."""
    notification = parse_genesys_notification(work.payload)
    if notification.is_typing:
        assert notification.user_id is not None
        return show_typing(context, store, notification.user_id, session)
    genesys_id, participant = notification.message_id, notification.user_id
    assert genesys_id is not None and participant is not None
    # The first send's step is checked in the same round trip (the steady path: one round
    # trip before the send); a path that sends nothing abandons it (see ``failed``).
    last_inbound, phone, bsuid = store.address(participant, then_start=f"out:{genesys_id}:0")
    template: dict[str, Any] | None = None  # set when only a template may reach the user
    proactive = notification_template(notification)  # a template: no window needed
    structured = notification.type == "Structured" and proactive is None
    rendered: Rendered | None = None  # what a Structured message shows (its menu, if any)
    text = notification.text
    if proactive is None and not within_service_window(last_inbound, time.time()):
        if structured:
            # Only text goes in a template: a quick reply's options as a numbered menu in it,
            # remembered below so that the user's answer by number or title is an answer.
            rendered = render_structured(notification.raw, text, interactive=False)
            text = rendered.text
        configured = context.config.settings.get("fallbackTemplate")
        if isinstance(configured, dict) and text and not notification.attachments:
            template = configured
        else:
            return failed(context, store, genesys_id, participant, "MessageExpired", OUTSIDE_WINDOW)
    elif structured:
        rendered = render_structured(notification.raw, text)
    try:
        recipient = identity.whatsapp_recipient(participant, phone, bsuid)
        if proactive is not None:
            sends = [notification_send(proactive, recipient=recipient, callback_data=genesys_id)]
        elif template is None:
            sends = to_meta_sends(notification, recipient=recipient, callback_data=genesys_id)
        else:
            sends = [
                template_send(
                    str(text),
                    name=str(template["name"]),
                    language=str(template["language"]),
                    recipient=recipient,
                    callback_data=genesys_id,
                )
            ]
    except MediaRejected as exc:
        return failed(context, store, genesys_id, participant, exc.reason, str(exc))
    except MappingError as exc:
        return failed(context, store, genesys_id, participant, "GeneralError", str(exc))
    if not sends and notification.is_agent_message:
        # Nothing WhatsApp could show (e.g. a Structured message with no readable content):
        # the agent must learn it never arrived.
        return failed(
            context, store, genesys_id, participant, "UnsupportedMessage", NOTHING_TO_SHOW
        )
    menu = rendered.menu if rendered is not None else None
    numbered = rendered.numbered if rendered is not None else ()
    if numbered and store.start(f"menu:{genesys_id}"):
        # Shown as numbered text: the user's answer by number or title must find it.
        store.remember_menu(participant, genesys_id, [(o.text, o.payload) for o in numbered])
        store.mark_done(f"menu:{genesys_id}")
    sender = context.sender()
    for index, body in enumerate(sends):
        step = f"out:{genesys_id}:{index}"
        if not store.start(step):
            continue
        try:
            if "link" in body.get(body.get("type", ""), {}):
                media_id = upload(context, session, sender, body, notification.attachments)
                body = with_media_id(body, media_id)
            wamid = sender.send(body, recipient)
        except MediaRejected as exc:
            return failed(context, store, genesys_id, participant, exc.reason, str(exc))
        except DownloadRefused as exc:
            failed(context, store, genesys_id, participant, "GeneralError", DOWNLOAD_REFUSED)
            # The agent knows; the dead letter is for the operator, who may be able to remove
            # the cause (the OAuth client lacks a role, a download host is not allowed) and
            # replay it: the parts already sent are skipped then.
            raise GiveUp(str(exc)) from None
        except SendUncertain:
            # Meta may have it: never send twice. Its status webhook will tell what happened.
            store.mark_done(step, "uncertain")
            log.warning("send outcome unknown; not resent", extra={"tenant": context.tenant_id})
            continue
        except MetaError as exc:
            if exc.kind in ("fatal", "pair_rate"):
                code = exc.code or 0
                reason, text = genesys_reason(code), f"WhatsApp {code}: {exc}"
                return failed(context, store, genesys_id, participant, reason, text)
            raise TransientError(describe(exc)) from None
        store.mark_done(step, str(wamid))
        store.map_message(
            str(wamid),
            genesys_id,
            participant,
            parts=len(sends),
            menu=menu if body.get("type") == "interactive" else None,
            answers_menu=bool(numbered),
        )
    store.abandon(f"out:{genesys_id}:0")  # when there was nothing to send
    return None


def show_typing(
    context: FlowContext, store: ConversationStore, participant: str, session: requests.Session
) -> None:
    """Show "typing..." to the user with their last message (which it also marks read), at most
    once per TYPING_INTERVAL: Genesys repeats the event while the agent types. Best effort: with
    no message of the user known, or on any Graph error, nothing is shown and nothing retried.
    The tenant setting ``typingIndicator: false`` turns it (and so the read mark) off."""
    whatsapp = context.config.whatsapp
    if whatsapp is None or context.config.settings.get("typingIndicator") is False:
        return  # the tenant turned typing indicators, and the read marks they carry, off
    wamid = store.typing_due(participant, TYPING_INTERVAL)
    if not wamid:
        return
    graph = GraphClient(
        session, context.settings.meta_graph_url, whatsapp.phone_number_id, whatsapp.access_token
    )
    try:
        graph.mark_read(wamid, typing=True)
    except (MetaError, TransientError) as exc:
        log.info(
            "typing indicator not shown",
            extra={"tenant": context.tenant_id, "error": describe(exc)},
        )


def upload(
    context: FlowContext,
    session: requests.Session,
    sender: WhatsAppSender,
    send: dict[str, Any],
    attachments: Sequence[GenesysAttachment],
) -> str:
    """Download the attachment ``send`` links to from Genesys and upload it to Meta; its media id.

    Meta cannot fetch a Genesys download URL (it needs the tenant's Genesys token), so agent
    attachments reach Meta as uploads, no larger than Meta accepts for their type."""
    kind = send["type"]
    url = send[kind]["link"]
    creds = context.config.genesys
    if creds is None:
        raise GiveUp("the tenant has no Genesys credentials")
    declared = next((a for a in attachments if a.url == url), None)
    mime = (declared.mime if declared is not None else None) or ""
    token = context.token()
    try:
        data, _ = download_attachment(
            session,
            url,
            allowed_hosts=genesys_download_hosts(context.settings, creds.region),
            token=token,
            max_bytes=media_limit(mime).max_bytes,
        )
    except TooLarge:
        # Genesys's contentSizeBytes was absent or wrong: the limit shows only now.
        raise found_too_large(mime) from None
    except PermanentError as exc:
        how = f"answered {exc.status}" if exc.status else f"may not be fetched: {exc.message}"
        where = f" (correlation id {exc.correlation_id})" if exc.correlation_id else ""
        raise DownloadRefused(f"attachment download {how}{where}") from None
    filename = (declared.filename if declared is not None else None) or f"{kind}"
    return sender.upload(data, mime.split(";")[0].strip(), filename)


def gave_up(context: FlowContext, store: ConversationStore, work: Entry) -> None:
    """An agent's message ends as a dead letter (a failure that outlasted its retries, a bug):
    the agent learns it will not arrive through a ``Failed`` receipt, as for a refusal.

    Best effort: Genesys may be what failed. Nothing is sent when the message already has its
    final receipt (a refused download, a part that failed before)."""
    try:
        notification = parse_genesys_notification(work.payload)
    except MappingError:
        return  # refused before anything was sent: Genesys got a 400 for it
    genesys_id, participant = notification.message_id, notification.user_id
    if not notification.is_agent_message or genesys_id is None or participant is None:
        return
    try:
        failed(context, store, genesys_id, participant, "GeneralError", NOT_SENT)
    except (ProviderError, redis.RedisError) as exc:
        log.warning(
            "failed receipt not sent",
            extra={"tenant": context.tenant_id, "error": type(exc).__name__},
        )


def failed(
    context: FlowContext,
    store: ConversationStore,
    genesys_id: str,
    participant: str,
    reason: str,
    text: str,
) -> None:
    """Tell the agent, through a ``Failed`` receipt, that this message will not arrive.

    It is the message's one final receipt: recorded as a failed part in the receipt hash its
    sent parts' statuses are folded into, so that no ``Delivered`` follows it and no status
    sends another ``Failed``; nothing is sent when the final receipt was already given."""
    store.abandon(f"out:{genesys_id}:0")  # checked ahead by agent_message; no-op once sent
    if context.genesys is None:
        return
    final = store.part_status(
        UNSENT_PART, genesys_id, expected=None, new=None, outcome="f", parts=1
    )
    if final != "Failed":
        return  # a final receipt was given (or a Delivered is due, sent by its status)
    step = f"receipt:{genesys_id}:Failed"
    if not store.start(step):
        store.receipt_sent(step, genesys_id)  # sent before a crash: only the record was lost
        return
    context.genesys.send_receipt(failed_receipt(genesys_id, participant, reason, text))
    store.receipt_sent(step, genesys_id)
