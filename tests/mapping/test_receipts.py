"""Meta statuses → Genesys receipts: the never-regressing state machine, exhaustively; bodies;
the Genesys reason of a Meta error code."""

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from interlink.mapping import (
    MappingError,
    failed_receipt,
    failure_reasons,
    genesys_reason,
    next_receipt,
    read_meta_webhook,
    receipt_body,
    unix_seconds,
)

PAYLOADS = Path(__file__).parents[1] / "support" / "payloads"
STATUSES = ("sent", "delivered", "read", "failed")
GID = "8085cbb3f778c34de0bd14c5318ec44c"
USER = "16505551234"


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def status_of(name: str) -> dict[str, Any]:
    [item] = read_meta_webhook(load(name)).updates()
    assert item.kind == "status"
    return dict(item.element)


def run(sequence: tuple[str, ...]) -> tuple[str | None, list[str]]:
    state: str | None = None
    receipts = []
    for status in sequence:
        state, receipt = next_receipt(state, status)
        if receipt:
            receipts.append(receipt)
    return state, receipts


def expected(sequence: tuple[str, ...]) -> tuple[str | None, list[str]]:
    """An independent oracle: the first decisive status decides the one receipt."""
    decisive = next((s for s in sequence if s in ("delivered", "read", "played", "failed")), None)
    if decisive is None:
        return ("sent" if "sent" in sequence else None), []
    if decisive == "failed":
        return "failed", ["Failed"]
    rank = {"sent": 1, "delivered": 2, "read": 3, "played": 3}
    best = max((s for s in sequence if s != "failed"), key=lambda s: rank[s])
    return ("read" if best == "played" else best), ["Delivered"]


@pytest.mark.parametrize("length", [1, 2, 3, 4])
def test_every_order_with_repeats_matches_the_oracle(length: int) -> None:
    for sequence in itertools.product((*STATUSES, "played"), repeat=length):
        assert run(sequence) == expected(sequence), sequence


def test_every_permutation_of_the_four_statuses() -> None:
    for sequence in itertools.permutations(STATUSES):
        state, receipts = run(sequence)
        assert len(receipts) == 1
        assert receipts == expected(sequence)[1]
        assert state == expected(sequence)[0]


def test_named_cases() -> None:
    assert next_receipt(None, "sent") == ("sent", None)
    assert next_receipt("sent", "delivered") == ("delivered", "Delivered")
    assert next_receipt("delivered", "read") == ("read", None)
    assert next_receipt(None, "read") == ("read", "Delivered")  # read without delivered
    assert next_receipt("read", "delivered") == ("read", None)  # never regress
    assert next_receipt("sent", "failed") == ("failed", "Failed")
    assert next_receipt("failed", "delivered") == ("failed", None)  # nothing after Failed
    assert next_receipt("failed", "failed") == ("failed", None)
    assert next_receipt("delivered", "failed") == ("delivered", None)
    assert next_receipt("delivered", "played") == ("read", None)


def test_unknown_status_changes_nothing_unknown_state_raises() -> None:
    assert next_receipt("sent", "deleted") == ("sent", None)
    assert next_receipt(None, "warning") == (None, None)
    with pytest.raises(MappingError):
        next_receipt("bogus", "sent")


def test_delivered_status_to_receipt() -> None:
    status = status_of("meta_status_delivered.json")
    assert next_receipt("sent", status["status"]) == ("delivered", "Delivered")
    body = receipt_body(
        "Delivered",
        genesys_message_id=GID,
        recipient=USER,
        at=unix_seconds(status["timestamp"], "status.timestamp"),
    )
    assert body == {
        "id": GID,
        "channel": {"to": {"id": USER, "idType": "Opaque"}, "time": "2025-06-15T23:28:00.000Z"},
        "status": "Delivered",
        "isFinalReceipt": True,
    }
    assert_valid_receipt(body)


def test_sent_and_read_after_delivered_give_no_receipt() -> None:
    assert next_receipt(None, status_of("meta_status_sent.json")["status"]) == ("sent", None)
    assert next_receipt("delivered", status_of("meta_status_read.json")["status"]) == (
        "read",
        None,
    )


def test_failed_status_to_receipt_with_reason() -> None:
    status = status_of("meta_status_failed.json")
    assert next_receipt("sent", status["status"]) == ("failed", "Failed")
    body = receipt_body(
        "Failed",
        genesys_message_id=GID,
        recipient=USER,
        at=unix_seconds(status["timestamp"], "status.timestamp"),
        reasons=failure_reasons(status),
    )
    assert body["status"] == "Failed" and body["isFinalReceipt"] is True
    assert body["reasons"] == [
        {
            "code": "MessageExpired",
            "message": "WhatsApp 131047: Re-engagement message. Message failed to send because more than "
            "24 hours have passed since the customer last replied to this number",
        }
    ]
    assert_valid_receipt(body)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (131047, "MessageExpired"),
        (131026, "InvalidDestination"),
        (130429, "RateLimited"),
        (131056, "RateLimited"),
        (131051, "UnsupportedMessage"),
        (131053, "MediaTypeNotAllowed"),
        (131049, "GeneralError"),
        (100, "GeneralError"),
        ("131026", "InvalidDestination"),
        (132000, "InvalidMessageStructure"),
        (132012, "InvalidMessageStructure"),
        (132001, "MessageNotAllowed"),
        (132015, "MessageNotAllowed"),
        (132016, "MessageNotAllowed"),
        (132068, "GeneralError"),
    ],
)
def test_failure_reason_codes(code: object, reason: str) -> None:
    reasons = failure_reasons({"errors": [{"code": code, "title": "t"}]})
    assert reasons == [{"code": reason, "message": f"WhatsApp {int(str(code))}: t"}]


def test_failure_without_errors_is_general_error() -> None:
    assert failure_reasons({"status": "failed"}) == [
        {"code": "GeneralError", "message": "WhatsApp reported the message as failed"},
    ]


def test_reason_message_is_clipped() -> None:
    [reason] = failure_reasons({"errors": [{"code": 1, "message": "x" * 5000}]})
    assert len(reason["message"]) == 500


@pytest.mark.parametrize("timestamp", [None, "yesterday"])
def test_a_status_time_that_is_not_unix_seconds_raises(timestamp: object) -> None:
    with pytest.raises(MappingError):
        unix_seconds(timestamp, "status.timestamp")


@pytest.mark.parametrize("errors", ["x", ["x"], [{"code": "abc"}], [{"code": True}]])
def test_malformed_errors_of_a_failed_status_raise(errors: object) -> None:
    with pytest.raises(MappingError):
        failure_reasons({"status": "failed", "timestamp": "1750030080", "errors": errors})


@pytest.mark.parametrize("status", [{"timestamp": "1750030080"}, {"status": 3}])
def test_a_status_without_a_status_name_never_reaches_a_receipt(status: dict[str, Any]) -> None:
    body = load("meta_status_delivered.json")
    element = body["entry"][0]["changes"][0]["value"]["statuses"][0]
    element.pop("status")
    element.update(status)
    [item] = read_meta_webhook(body).updates()
    assert (
        item.kind == "invalid" and item.problem == "statuses[0]: status must be a non-empty string"
    )


def test_failed_receipt_for_synchronous_errors() -> None:
    body = failed_receipt(
        GID,
        USER,
        "MediaTypeNotAllowed",
        "WhatsApp does not accept image/gif attachments",
        at=1750030080,
    )
    assert body == {
        "id": GID,
        "channel": {"to": {"id": USER, "idType": "Opaque"}, "time": "2025-06-15T23:28:00.000Z"},
        "status": "Failed",
        "isFinalReceipt": True,
        "reasons": [
            {
                "code": "MediaTypeNotAllowed",
                "message": "WhatsApp does not accept image/gif attachments",
            }
        ],
    }
    assert_valid_receipt(body)
    assert failed_receipt(GID, USER, "GeneralError", "x")["channel"]["time"].endswith("Z")
    with pytest.raises(MappingError):
        failed_receipt(GID, USER, "NotAReason", "x")
    with pytest.raises(MappingError):
        failed_receipt("", USER, "GeneralError", "x")


def test_receipt_body_refuses_other_statuses() -> None:
    with pytest.raises(MappingError):
        receipt_body("Read", genesys_message_id=GID, recipient=USER, at=1750030080)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (4, "RateLimited"),
        (80007, "RateLimited"),
        (130429, "RateLimited"),
        (131000, "ServerError"),
        (2, "ServerError"),
        (133004, "ServerError"),
        (131056, "RateLimited"),
        (131047, "MessageExpired"),
        (131026, "InvalidDestination"),
        (131051, "UnsupportedMessage"),
        (131053, "MediaTypeNotAllowed"),
        (100, "GeneralError"),
        (190, "GeneralError"),
        (0, "GeneralError"),
    ],
)
def test_genesys_reason_of_a_meta_error_code(code: int, reason: str) -> None:
    """Whether to retry a code is the provider client's call (tests/providers/test_meta.py);
    what the agent is told when it ends as a failure is this."""
    assert genesys_reason(code) == reason


def assert_valid_receipt(body: dict[str, Any]) -> None:
    try:
        from interlink.sim.genesys import check_receipt
    except ImportError:  # the simulator is optional here
        return
    assert check_receipt(body) is None
