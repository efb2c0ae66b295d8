"""Pure mapping between Meta's WhatsApp Cloud API formats and Genesys Open Messaging formats.

No I/O here: the callers (actors) fetch, store and send; these functions only read and build
plain dicts. Every function given a malformed payload raises :class:`MappingError` (a
``ValueError``) whose message names the field, never the payload.

- ``webhooks``: split a Meta webhook body into items; parse a Genesys notification.
- ``identity``: the stable Genesys participant of a WhatsApp user (phone and/or BSUID) and the
  WhatsApp recipient of a Genesys reply.
- ``inbound``: a WhatsApp message → Open Messaging inbound message bodies.
- ``outbound``: a Genesys agent message → Graph API send bodies; the 24-hour window.
- ``receipts``: Meta statuses → Genesys receipts; Meta error classification.
"""

from interlink.mapping.identity import (
    GenesysParticipant,
    UserIdentifiers,
    alias_keys,
    aliases_to_record,
    genesys_participant,
    identifiers_of_message,
    identifiers_of_status,
    participant_id,
    recipient_fields,
    whatsapp_recipient,
)
from interlink.mapping.inbound import InboundOptions, MediaRef, media_ref, to_genesys_inbound
from interlink.mapping.outbound import (
    MediaRejected,
    media_limit,
    to_meta_sends,
    with_media_id,
    within_service_window,
)
from interlink.mapping.receipts import (
    MetaErrorClass,
    classify_meta_error,
    failed_receipt,
    failure_reasons,
    next_receipt,
    receipt_body,
    receipt_for_status,
)
from interlink.mapping.webhooks import (
    GenesysAttachment,
    GenesysNotification,
    MetaItem,
    MetaWebhook,
    parse_genesys_notification,
    phone_number_ids,
    read_meta_webhook,
    split_meta_webhook,
)
from interlink.mapping.wire import MappingError

__all__ = [
    "GenesysAttachment",
    "GenesysNotification",
    "GenesysParticipant",
    "InboundOptions",
    "MappingError",
    "MediaRef",
    "MediaRejected",
    "MetaErrorClass",
    "MetaItem",
    "MetaWebhook",
    "UserIdentifiers",
    "alias_keys",
    "aliases_to_record",
    "classify_meta_error",
    "failed_receipt",
    "failure_reasons",
    "genesys_participant",
    "identifiers_of_message",
    "identifiers_of_status",
    "media_limit",
    "media_ref",
    "next_receipt",
    "parse_genesys_notification",
    "participant_id",
    "phone_number_ids",
    "read_meta_webhook",
    "receipt_body",
    "receipt_for_status",
    "recipient_fields",
    "split_meta_webhook",
    "to_genesys_inbound",
    "to_meta_sends",
    "whatsapp_recipient",
    "with_media_id",
    "within_service_window",
]
