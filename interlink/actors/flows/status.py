"""A Meta status of an agent's message → at most one Genesys receipt (``wa.status``).

The agent's message is found from the wamid (the message map) or, failing that, from the
``biz_opaque_callback_data`` it was sent with; a status of a message that did not come from an
agent is ignored. A Genesys message may have gone out as several WhatsApp messages (a long text, a
text and attachments): it gets one final receipt for all of them, ``Delivered`` once every part
was delivered (or read), ``Failed`` as soon as one part failed, never both and never twice. Each
part's delivery state only moves forward, and the parts' outcomes are folded into the final
receipt by one atomic step, so two statuses racing cannot both send a receipt.
"""

from __future__ import annotations

from typing import cast

from interlink.actors.flows.common import FlowContext
from interlink.inbox import Entry
from interlink.mapping import identity
from interlink.mapping.receipts import ReceiptKind, failure_reasons, next_receipt, receipt_body
from interlink.mapping.wire import unix_seconds
from interlink.store.conversations import PART_STATES, ConversationStore

_OUTCOME = {"Delivered": "d", "Failed": "f"}
_PART_FAILED = {"code": "GeneralError", "message": "WhatsApp reported a part of it as failed"}


def status(context: FlowContext, store: ConversationStore, work: Entry) -> None:
    """Record one ``statuses[]`` item and send the final receipt it completes, if any."""
    element = work.payload["element"]
    wamid, state_name = str(element["id"]), str(element.get("status"))
    callback = element.get("biz_opaque_callback_data")
    callback = callback if isinstance(callback, str) and callback else None
    found = None
    if callback is not None:
        # Every part of an agent's message carries its Genesys id as callback data, which Meta
        # echoes: the map is read and the status recorded in one round trip.
        moves = []
        for previous in PART_STATES:
            new, receipt = next_receipt(previous, state_name)
            moves.append((new, _OUTCOME.get(receipt or "", "")))
        found = store.status_of(wamid, callback, moves)
    genesys_id: str | None = callback
    if found is not None:
        final, participant = found
    else:
        part = store.part(wamid)
        participant, state = part.participant, part.state
        if part.genesys is not None:
            genesys_id = part.genesys
        # else a part whose send outcome was unknown is not in the map; Meta echoes its callback
        # data. Its number of parts is unknown too: it counts as a message of its own.
        if genesys_id is None:
            return
        new_state, part_receipt = next_receipt(state, state_name)
        final = store.part_status(
            wamid,
            genesys_id,
            expected=state,
            new=new_state if new_state != state else None,
            outcome=_OUTCOME.get(part_receipt or "", ""),
            parts=part.parts,
        )
    if final is None or genesys_id is None or context.genesys is None:
        return
    if participant is None:
        ids = identity.identifiers_of_status(element, work.payload.get("contact"))
        known = store.known_alias(identity.alias_keys(ids.phone, ids.bsuid))
        participant = identity.participant_id(ids.phone, ids.bsuid, known)
    step = f"receipt:{genesys_id}:{final}"
    if not store.start(step):
        store.receipt_sent(step, genesys_id)  # sent before a crash: only the record was lost
        return
    at = float(unix_seconds(element.get("timestamp"), "status.timestamp"))
    reasons = None
    if final == "Failed":
        reasons = failure_reasons(element) if state_name == "failed" else [_PART_FAILED]
    body = receipt_body(
        cast(ReceiptKind, final),
        genesys_message_id=genesys_id,
        recipient=participant,
        at=at,
        reasons=reasons,
    )
    context.genesys.send_receipt(body)
    store.receipt_sent(step, genesys_id)
