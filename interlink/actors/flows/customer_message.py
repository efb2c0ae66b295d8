"""A WhatsApp user's message → Genesys Open Messaging inbound messages (``wa.message``).

The user's identifiers are resolved to their one Genesys participant and recorded (with the time
they wrote, which opens the 24-hour window); each inbound body is sent once: a step already done
(a redelivery after a crash) is skipped. The Genesys conversation a body went to is remembered, so
the Genesys webhook finds this tenant from it. A button or list tap answering a menu the agent
flow mapped to a Genesys message (a bot's quick reply) goes as a structured response instead.
"""

from __future__ import annotations

from typing import Any

from interlink.actors.flows.common import FlowContext, GiveUp
from interlink.inbox import Entry
from interlink.mapping import identity
from interlink.mapping.inbound import (
    InboundOptions,
    answered_menu,
    to_genesys_inbound,
    to_structured_response,
)
from interlink.mapping.media import MediaRef
from interlink.mapping.wire import unix_seconds
from interlink.security import media_links
from interlink.store.conversations import ConversationStore
from interlink.tenancy.config import TenantConfig


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
    ids = identity.identifiers_of_message(message, contact)
    known = store.known_alias(identity.alias_keys(ids.phone, ids.bsuid))
    participant = identity.participant_id(ids.phone, ids.bsuid, known)
    store.user_wrote(
        participant,
        float(unix_seconds(message.get("timestamp"), "message.timestamp")),
        ids.phone,
        identity.aliases_to_record(participant, ids.phone, ids.bsuid),
        wamid=message.get("id") if isinstance(message.get("id"), str) else None,
    )
    genesys_participant = identity.genesys_participant(participant, ids.name)
    menu = answered_menu(message)
    originating = store.mapped(menu)[0] if menu else None
    if originating is not None:
        # A tap on a menu that came from Genesys: the bot matches the payload, not the text.
        answer_quick_reply(
            context,
            store,
            to_structured_response(
                message,
                phone_number_id=number,
                participant=genesys_participant,
                originating_message_id=originating,
            ),
        )
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
