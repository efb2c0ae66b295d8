"""A WhatsApp user's message → Genesys Open Messaging inbound messages (``wa.message``).

The user's identifiers are resolved to their one Genesys participant and recorded (with the time
they wrote, which opens the 24-hour window); each inbound body is sent once: a step already done
(a redelivery after a crash) is skipped. The Genesys conversation a body went to is remembered, so
the Genesys webhook finds this tenant from it. A button or list tap answering a menu the agent
flow mapped to a Genesys message (a bot's quick reply, a card's buttons, a date picker) goes as a
structured response instead, and so does a text that names an option of the numbered menu the
user was last shown. A ``request_welcome`` opens nothing at Genesys; the tenant's
``welcomeText``, when set, answers it on WhatsApp. A ``system`` message that the user's number or business-scoped id changed
points the new identifiers to the same participant and readdresses the conversation, so the
user's next messages keep their Genesys ``channel.from.id`` and replies go to the new address.
"""

from __future__ import annotations

import logging
from typing import Any

from interlink.actors.actor import describe
from interlink.actors.flows.common import FlowContext, GiveUp
from interlink.inbox import Entry
from interlink.mapping import identity
from interlink.mapping.inbound import (
    InboundOptions,
    answered_menu,
    structured_response,
    to_genesys_inbound,
    to_structured_response,
)
from interlink.mapping.media import MediaRef
from interlink.mapping.outbound import text_send
from interlink.mapping.structured import numbered_answer
from interlink.mapping.wire import unix_seconds
from interlink.providers.errors import MetaError, SendUncertain, TransientError
from interlink.security import media_links
from interlink.store.conversations import ConversationStore
from interlink.tenancy.config import TenantConfig

log = logging.getLogger(__name__)


def customer_message(
    context: FlowContext,
    store: ConversationStore,
    work: Entry,
    *,
    secret_keys: tuple[bytes, ...],
) -> None:
    """Carry one ``messages[]`` item to Genesys. ``secret_keys`` sign the media links Genesys
    fetches attachments through. GiveUp when the tenant has no Genesys credentials."""
    payload = work.payload
    message, contact = payload["element"], payload.get("contact")
    number = str(payload["phone_number_id"])
    change = identity.identity_change(message)
    ids = change.old if change else identity.identifiers_of_message(message, contact)
    known = store.known_alias(identity.alias_keys(ids.phone, ids.bsuid))
    participant = identity.participant_id(ids.phone, ids.bsuid, known)
    if change is not None:
        # Not the user writing (no window opens); their new address is theirs from now on.
        store.readdress(
            participant,
            phone=change.new_phone,
            bsuid=change.new_bsuid,
            aliases={
                **identity.aliases_to_record(participant, ids.phone, ids.bsuid),
                **identity.aliases_to_record(participant, change.new_phone, change.new_bsuid),
            },
        )
        numbered = None
    else:
        wamid = message.get("id") if isinstance(message.get("id"), str) else None
        # The step the message most likely goes as (its first body, or the structured response
        # a menu answer is: the same step) and the menu a tap answers are read in the round trip
        # that records the user's message: one round trip before the POST.
        likely = f"in:{wamid}:0" if wamid and context.genesys is not None else None
        if message.get("type") == "request_welcome":
            likely = None
        numbered = store.user_wrote(
            participant,
            float(unix_seconds(message.get("timestamp"), "message.timestamp")),
            ids.phone,
            identity.aliases_to_record(participant, ids.phone, ids.bsuid),
            wamid=wamid,
            bsuid=ids.bsuid,
            then_start=likely,
            read_part=answered_menu(message),
            # Only a text answers a numbered menu (see menu_answer): for anything else the
            # menu's read would be a command whose reply nobody looks at.
            read_menu=message.get("type") == "text",
        )
    genesys_participant = identity.genesys_participant(participant, ids.name)
    response = menu_answer(message, store, number, genesys_participant, numbered)
    if response is not None:
        # An answer to a menu that came from Genesys: the bot matches the payload, not the text.
        answer_quick_reply(context, store, response)
        if numbered is not None and message.get("type") == "text":
            store.forget_menu(participant)
        return
    bodies = to_genesys_inbound(
        message,
        contact,
        phone_number_id=number,
        participant=genesys_participant,
        media_url_for=lambda ref: media_link(context, ref, secret_keys),
        options=inbound_options(context.config),
    )
    if not bodies:
        # Nothing for the agent (request_welcome, a dropped reaction): opening a Genesys
        # conversation, or dead-lettering for want of credentials, would be wrong.
        store.abandon(f"in:{message.get('id')}:0")
        if message.get("type") == "request_welcome":
            welcome(
                context,
                store,
                message,
                identity.whatsapp_recipient(participant, ids.phone, ids.bsuid),
            )
        return
    if context.genesys is None:
        raise GiveUp("the tenant has no Genesys credentials")
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


def welcome(
    context: FlowContext, store: ConversationStore, message: dict[str, Any], recipient: str
) -> None:
    """Answer a user opening the chat for the first time with the tenant's ``welcomeText``, if
    it has one (the request opened the user's window), once. Best effort: a refusal is logged
    and dropped, never retried into a dead letter; what may pass is retried."""
    text = context.config.settings.get("welcomeText")
    if not isinstance(text, str) or not text.strip() or context.config.whatsapp is None:
        return
    step = f"welcome:{message['id']}"
    if not store.start(step):
        return
    try:
        wamid = context.sender().send(text_send(text, recipient=recipient), recipient)
    except SendUncertain:
        store.mark_done(step, "uncertain")  # Meta may have it: never send twice
        return
    except MetaError as exc:
        if exc.kind == "retry":
            raise TransientError(describe(exc)) from None
        log.info(
            "welcome text refused", extra={"tenant": context.tenant_id, "error": describe(exc)}
        )
        wamid = "refused"
    store.mark_done(step, str(wamid))


def menu_answer(
    message: dict[str, Any],
    store: ConversationStore,
    number: str,
    participant: identity.GenesysParticipant,
    numbered: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """The structured response ``message`` is, or None when it is just a message: a tap on a
    menu the agent flow mapped to a Genesys message, or a text that is the number or title of an
    option of the numbered menu the user was last shown."""
    menu = answered_menu(message)
    if menu is not None:
        part = store.part(menu)
        if part.genesys is None:
            return None
        return to_structured_response(
            message,
            phone_number_id=number,
            participant=participant,
            originating_message_id=part.genesys,
            response_type=part.menu or "QuickReply",
        )
    text = message.get("text")
    body = text.get("body") if isinstance(text, dict) else None
    if numbered is None or message.get("type") != "text" or not isinstance(body, str):
        return None
    options = [
        (str(o[0]), str(o[1])) for o in numbered["options"] if isinstance(o, list) and len(o) == 2
    ]
    picked = numbered_answer(body, options)
    if picked is None or not isinstance(numbered.get("id"), str):
        return None
    return structured_response(
        message,
        phone_number_id=number,
        participant=participant,
        originating_message_id=numbered["id"],
        response_type="QuickReply",
        text=picked[0],
        payload=picked[1],
    )


def answer_quick_reply(
    context: FlowContext, store: ConversationStore, body: dict[str, Any]
) -> None:
    """Send one structured response once (a redelivery skips it)."""
    if context.genesys is None:
        raise GiveUp("the tenant has no Genesys credentials")
    step = f"in:{body['channel']['messageId']}:0"
    if not store.start(step):
        return
    result = context.genesys.send_structured_response(body)
    store.mark_done(step, str(result.get("id") or "1"))


def media_link(context: FlowContext, ref: MediaRef, secret_keys: tuple[bytes, ...]) -> str:
    """The signed interlink URL Genesys fetches a WhatsApp attachment through: Meta's own media
    URLs need the tenant's access token, which Genesys does not have."""
    token = media_links.make(
        context.tenant_id, ref.media_id, secret_keys, mime=ref.mime_type, filename=ref.filename
    )
    return f"{context.settings.base_url}/media/{token}"


def inbound_options(config: TenantConfig) -> InboundOptions:
    """The tenant's choices of what reaches the agent (``reactionsAsText``, default on)."""
    reactions = config.settings.get("reactionsAsText", True)
    return InboundOptions(
        reactions_as_text=bool(reactions), reaction_removals_as_text=bool(reactions)
    )
