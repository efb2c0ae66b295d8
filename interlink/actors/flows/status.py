"""A Meta status of an agent's message → at most one Genesys receipt (``wa.status``).

The agent's message is found from the wamid (the message map) or, failing that, from the
``biz_opaque_callback_data`` it was sent with; a status of a message that did not come from an
agent is ignored. The delivery state only moves forward, by compare-and-set, so two statuses of
one message racing cannot both send a receipt.
"""

from __future__ import annotations

from interlink.actors.flows.common import FlowContext
from interlink.inbox import Entry
from interlink.mapping import identity
from interlink.mapping.receipts import failure_reasons, next_receipt, receipt_body
from interlink.mapping.wire import unix_seconds
from interlink.store.conversations import ConversationStore


def status(context: FlowContext, store: ConversationStore, work: Entry) -> None:
    """Send the receipt one ``statuses[]`` item calls for, then record the new delivery state."""
    element = work.payload["element"]
    wamid, state_name = str(element["id"]), str(element.get("status"))
    genesys_id, participant, state = store.mapped(wamid)
    if genesys_id is None:
        callback = element.get("biz_opaque_callback_data")
        genesys_id = callback if isinstance(callback, str) and callback else None
    if genesys_id is None:
        return
    if participant is None:
        ids = identity.identifiers_of_status(element, work.payload.get("contact"))
        known = store.known_alias(identity.alias_keys(ids.phone, ids.bsuid))
        participant = identity.participant_id(ids.phone, ids.bsuid, known)
    new_state, receipt = next_receipt(state, state_name)
    if receipt is not None and context.genesys is not None:
        step = f"receipt:{genesys_id}:{receipt}"
        if store.start(step):
            at = float(unix_seconds(element.get("timestamp"), "status.timestamp"))
            reasons = failure_reasons(element) if receipt == "Failed" else None
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
