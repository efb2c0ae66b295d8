"""Meta statuses → Genesys receipts; the Genesys reason for a Meta error code.

Genesys accepts two receipt statuses on ``…/inbound/open/receipt``: ``Delivered`` and ``Failed``
(``Read`` is not accepted,
https://developer.genesys.cloud/commdigital/digital/openmessaging/inboundReceiptMessages). So,
per agent message:

- Meta ``sent`` → no receipt;
- ``delivered`` or ``read`` (or ``played``) → one ``Delivered``, the first time only;
- ``failed`` → ``Failed`` with reasons, unless a ``Delivered`` was already given;
- nothing after a ``Failed``, nothing twice, never a step back (:func:`next_receipt`).

Both receipts are sent with ``isFinalReceipt: true``: after either, nothing more will come.

Receipt body::

    {"id": <Genesys message id>, "channel": {"to": {"id": <participant>, "idType": "Opaque"},
     "time": <ISO-8601>}, "status": "Delivered" | "Failed", "isFinalReceipt": true,
     "reasons"?: [{"code": <ConversationReason>, "message": <text>}]}
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

from interlink.mapping.wire import (
    MappingError,
    as_mapping,
    iso_utc,
    optional_list,
    whole_number,
)

ReceiptKind = Literal["Delivered", "Failed"]

# Genesys ConversationReason codes (the ``reasons[].code`` enum of a receipt).
REASON_CODES = frozenset(
    {
        "MessageExpired",
        "RateLimited",
        "MessageNotAllowed",
        "GeneralError",
        "UnsupportedMessage",
        "UnknownMessage",
        "InvalidMessageStructure",
        "InvalidDestination",
        "ServerError",
        "MediaTypeNotAllowed",
        "InvalidMediaContentLength",
        "RecipientOptedOut",
        "DataFiltered",
    }
)

# Delivery progress of one agent message, in order; "failed" is terminal and outside the order.
_RANK = {"sent": 1, "delivered": 2, "read": 3}
STATES = ("sent", "delivered", "read", "failed")
_REASON_MESSAGE_MAX = 500

# Meta error code → Genesys reason
# (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes).
# Codes not listed: GeneralError.
_REASON_BY_CODE: dict[int, str] = {
    131047: "MessageExpired",  # more than 24 h since the user's last message
    131026: "InvalidDestination",  # not a WhatsApp user, old app, terms not accepted
    130429: "RateLimited",
    131056: "RateLimited",  # pair rate: same recipient too fast
    131048: "RateLimited",  # spam rate limit
    4: "RateLimited",
    80007: "RateLimited",
    131051: "UnsupportedMessage",
    131053: "MediaTypeNotAllowed",  # media upload error, usually a MIME mismatch
    131050: "RecipientOptedOut",  # user stopped marketing messages
    # Templates. The message as built does not fit the approved template: its structure.
    132000: "InvalidMessageStructure",  # parameter count differs from the template's
    132005: "InvalidMessageStructure",  # the text with its parameters is too long
    132012: "InvalidMessageStructure",  # a parameter's format differs from the template's
    132018: "InvalidMessageStructure",  # a parameter holds a newline, tab or many spaces
    # The template itself may not be sent (unknown or unapproved in that language, against
    # the formatting policy, paused for low quality, disabled): WhatsApp does not allow it.
    132001: "MessageNotAllowed",
    132007: "MessageNotAllowed",
    132015: "MessageNotAllowed",
    132016: "MessageNotAllowed",
    2: "ServerError",
    131000: "ServerError",
    131016: "ServerError",
    133004: "ServerError",
}


def genesys_reason(code: int) -> str:
    """The Genesys ``ConversationReason`` for a Meta error code (GeneralError when unknown)."""
    return _REASON_BY_CODE.get(code, "GeneralError")


def next_receipt(previous_state: str | None, status: str) -> tuple[str | None, ReceiptKind | None]:
    """The delivery state after Meta reports ``status``, and the receipt to send (or None).

    States: None (nothing yet) → ``sent`` → ``delivered`` → ``read``; ``failed`` is terminal.
    ``played`` counts as ``read``. A status at or below the current state changes nothing (Meta
    does not guarantee order; ``read`` may come without ``delivered``). ``failed`` after a
    Delivered receipt was given changes nothing (Genesys already has a final receipt). An unknown
    status (a future Meta value) changes nothing. MappingError for an unknown ``previous_state``
    (the caller's stored state is corrupt).
    """
    if previous_state is not None and previous_state not in STATES:
        raise MappingError("unknown delivery state")
    if previous_state == "failed":
        return previous_state, None
    if status == "played":
        status = "read"
    if status == "failed":
        if previous_state in (None, "sent"):
            return "failed", "Failed"
        return previous_state, None
    rank = _RANK.get(status)
    if rank is None or rank <= _RANK.get(previous_state or "", 0):
        return previous_state, None
    already_delivered = _RANK.get(previous_state or "", 0) >= _RANK["delivered"]
    receipt: ReceiptKind | None = None if status == "sent" or already_delivered else "Delivered"
    return status, receipt


def receipt_body(
    kind: ReceiptKind,
    *,
    genesys_message_id: str,
    recipient: str,
    at: float,
    reasons: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """A receipt for ``…/inbound/open/receipt``. ``recipient`` is the participant id (the
    ``channel.to.id`` of the agent's message); ``at`` is Unix seconds."""
    if kind not in ("Delivered", "Failed"):
        raise MappingError("receipt status must be Delivered or Failed")
    if not genesys_message_id or not recipient:
        raise MappingError("a receipt needs a message id and a recipient")
    body: dict[str, Any] = {
        "id": genesys_message_id,
        "channel": {"to": {"id": recipient, "idType": "Opaque"}, "time": iso_utc(at)},
        "status": kind,
        "isFinalReceipt": True,
    }
    if reasons:
        body["reasons"] = reasons
    return body


def failed_receipt(
    genesys_message_id: str,
    recipient: str,
    reason: str,
    message: str,
    *,
    at: float | None = None,
) -> dict[str, Any]:
    """A ``Failed`` receipt for an error found before or while sending (a refused attachment, a
    fatal Graph API error, the 24-hour window). ``reason`` must be a Genesys ConversationReason;
    ``at`` defaults to now."""
    if reason not in REASON_CODES:
        raise MappingError("unknown Genesys reason code")
    return receipt_body(
        "Failed",
        genesys_message_id=genesys_message_id,
        recipient=recipient,
        at=time.time() if at is None else at,
        reasons=[{"code": reason, "message": _clip(message)}],
    )


def failure_reasons(status: Mapping[str, Any]) -> list[dict[str, str]]:
    """Genesys ``reasons`` for a failed Meta status: one per ``errors[]`` entry, the Meta code and
    text in the message (``WhatsApp 131047: Re-engagement message. <details>``); a single
    GeneralError when Meta gave no error."""
    reasons = []
    for index, error in enumerate(optional_list(status, "errors", "status")):
        where = f"status.errors[{index}]"
        entry = as_mapping(error, where)
        code = whole_number(entry.get("code"), f"{where}.code")
        reasons.append({"code": genesys_reason(code), "message": _clip(_error_text(code, entry))})
    return reasons or [
        {"code": "GeneralError", "message": "WhatsApp reported the message as failed"}
    ]


def _error_text(code: int, error: Mapping[str, Any]) -> str:
    parts = []
    for key in ("title", "message"):
        value = error.get(key)
        if isinstance(value, str) and value.strip() and value.strip() not in parts:
            parts.append(value.strip())
    data = error.get("error_data")
    if (
        isinstance(data, Mapping)
        and isinstance(data.get("details"), str)
        and data["details"].strip()
    ):
        details = data["details"].strip()
        if details not in parts:
            parts.append(details)
    text = ". ".join(part.rstrip(".") for part in parts)
    return f"WhatsApp {code}: {text}" if text else f"WhatsApp {code}"


def _clip(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _REASON_MESSAGE_MAX else text[: _REASON_MESSAGE_MAX - 1] + "…"
