"""Pure mapping between Meta's WhatsApp Cloud API formats and Genesys Open Messaging formats.

No I/O here: the callers (the webhooks and the conversation flows) fetch, store and send; these
functions only read and build plain dicts. Every function given a malformed payload raises
:class:`MappingError` (a ``ValueError``) whose message names the field, never the payload.

- ``meta_webhook``: read a Meta webhook body (its business numbers, every update) in one walk.
- ``genesys_webhook``: find the tenant of a Genesys notification; read and classify it.
- ``identity``: the stable Genesys participant of a WhatsApp user (phone and/or BSUID) and the
  WhatsApp recipient of a Genesys reply.
- ``inbound``: a WhatsApp message → Open Messaging inbound message bodies, with ``media`` (media
  references and file names) and ``inbound_text`` (what non-text messages read as).
- ``outbound``: a Genesys agent message → Graph API send bodies; the 24-hour window.
- ``receipts``: Meta statuses → Genesys receipts; the Genesys reason of a Meta error code.
- ``wire``: the field readers and formats the others share.
"""

from interlink.mapping.genesys_webhook import (
    GenesysAttachment,
    GenesysNotification,
    GenesysRoute,
    genesys_route,
    parse_genesys_notification,
)
from interlink.mapping.identity import (
    GenesysParticipant,
    UserIdentifiers,
    alias_keys,
    aliases_to_record,
    genesys_participant,
    identifiers_of_message,
    identifiers_of_status,
    participant_id,
    whatsapp_recipient,
)
from interlink.mapping.inbound import InboundOptions, to_genesys_inbound
from interlink.mapping.media import MediaRef
from interlink.mapping.meta_webhook import MetaItem, MetaWebhook, read_meta_webhook
from interlink.mapping.outbound import (
    MediaRejected,
    found_too_large,
    media_limit,
    notification_send,
    notification_template,
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
from interlink.mapping.wire import MappingError, unix_seconds, whole_number

__all__ = [
    "GenesysAttachment",
    "GenesysNotification",
    "GenesysParticipant",
    "GenesysRoute",
    "InboundOptions",
    "MappingError",
    "MediaRef",
    "MediaRejected",
    "MetaItem",
    "MetaWebhook",
    "UserIdentifiers",
    "alias_keys",
    "aliases_to_record",
    "failed_receipt",
    "failure_reasons",
    "found_too_large",
    "genesys_participant",
    "genesys_reason",
    "genesys_route",
    "identifiers_of_message",
    "identifiers_of_status",
    "media_limit",
    "next_receipt",
    "notification_send",
    "notification_template",
    "parse_genesys_notification",
    "participant_id",
    "read_meta_webhook",
    "receipt_body",
    "template_send",
    "to_genesys_inbound",
    "to_meta_sends",
    "unix_seconds",
    "whatsapp_recipient",
    "whole_number",
    "with_media_id",
    "within_service_window",
]
