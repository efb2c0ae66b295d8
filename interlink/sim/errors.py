"""Error bodies in the shapes the real services use, and the codes the simulators can answer with.

Graph (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes):
``{"error": {"message", "type", "code", "error_data": {"messaging_product", "details"},
"error_subcode"?, "fbtrace_id"}}``; the HTTP status per code is the one of Meta's table.

Genesys Platform API: ``ErrorBody`` ``{"message", "code", "status",
"messageWithParams", "messageParams", "contextId", "details", "errors"}``; the login service
answers OAuth errors as ``{"error", "description"}`` (what the Go client
github.com/gildas/go-gcloudcx reads).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class GraphErrorSpec:
    status: int
    title: str
    details: str
    type: str = "OAuthException"
    subcode: int | None = None


META_ERRORS: dict[int, GraphErrorSpec] = {
    0: GraphErrorSpec(401, "AuthException", "We were unable to authenticate the app user."),
    1: GraphErrorSpec(400, "API Unknown", "Invalid request or possible server error."),
    2: GraphErrorSpec(503, "API Service", "Temporary due to downtime or due to being overloaded."),
    4: GraphErrorSpec(429, "API Too Many Calls", "The app has reached its API call rate limit."),
    100: GraphErrorSpec(400, "Invalid parameter", "Invalid parameter."),
    190: GraphErrorSpec(
        401,
        "Invalid OAuth access token - Cannot parse access token",
        "Access token invalid.",
        subcode=463,
    ),
    200: GraphErrorSpec(403, "Permission denied", "Permission is either not granted or removed."),
    368: GraphErrorSpec(403, "Temporarily blocked for policies violations", "Policy violation."),
    80007: GraphErrorSpec(
        429, "Rate limit issues", "The WhatsApp Business Account has reached its rate limit."
    ),
    130429: GraphErrorSpec(
        429, "Rate limit hit", "Cloud API message throughput has been reached.", subcode=2494055
    ),
    130472: GraphErrorSpec(
        400, "User's number is part of an experiment", "Message not sent as part of an experiment."
    ),
    131000: GraphErrorSpec(
        500, "Something went wrong", "Message failed to send due to an unknown error."
    ),
    131008: GraphErrorSpec(
        400, "Required parameter is missing", "The request is missing a required parameter."
    ),
    131009: GraphErrorSpec(
        400, "Parameter value is not valid", "One or more parameter values are invalid."
    ),
    131016: GraphErrorSpec(503, "Service unavailable", "A service is temporarily unavailable."),
    131026: GraphErrorSpec(400, "Message Undeliverable", "Unable to deliver message."),
    131031: GraphErrorSpec(
        403, "Account has been locked", "The WhatsApp Business Account is restricted."
    ),
    131042: GraphErrorSpec(
        400,
        "Business eligibility payment issue",
        "There was an error related to your payment method.",
    ),
    131047: GraphErrorSpec(
        400,
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer last "
        "replied to this number.",
    ),
    131048: GraphErrorSpec(
        429,
        "Spam rate limit hit",
        "Message failed to send because there are restrictions on how many messages can be sent from this phone number.",
    ),
    131049: GraphErrorSpec(
        400,
        "Meta chose not to deliver.",
        "This message was not delivered to maintain healthy ecosystem engagement.",
    ),
    131050: GraphErrorSpec(
        400, "Unable to deliver the message", "The user has stopped marketing messages."
    ),
    131051: GraphErrorSpec(
        400, "Unsupported message type", "Message type is not currently supported."
    ),
    131052: GraphErrorSpec(
        400, "Media download error", "Unable to download the media sent by the user."
    ),
    131053: GraphErrorSpec(
        400, "Media upload error", "Unable to upload the media used in the message."
    ),
    131056: GraphErrorSpec(
        429,
        "(Business Account, Consumer Account) pair rate limit hit",
        "Message failed to send because there were too many messages sent from this phone number "
        "to the same phone number in a short period of time.",
    ),
    131057: GraphErrorSpec(
        503,
        "Account in maintenance mode",
        "Business account is in maintenance mode (throughput upgrade).",
    ),
    132000: GraphErrorSpec(
        400,
        "Number of parameters does not match the expected number of params",
        "The number of variable parameter values in the request did not match the number "
        "required by the template.",
    ),
    132001: GraphErrorSpec(
        404,
        "Template does not exist",
        "The template does not exist in the specified language or has not been approved.",
    ),
    133004: GraphErrorSpec(
        503, "Server temporarily unavailable", "The server is temporarily unavailable."
    ),
    133010: GraphErrorSpec(
        400,
        "Phone number not registered",
        "The phone number is not registered on the WhatsApp Business Platform.",
    ),
}

#: The Graph code a bare status fault answers with when no ``meta_error`` is named.
META_CODE_FOR_STATUS = {400: 100, 401: 190, 403: 200, 429: 130429, 500: 131000, 503: 2}

ERROR_CODES_HREF = "/documentation/business-messaging/whatsapp/support/error-codes"


def fbtrace_id() -> str:
    return secrets.token_urlsafe(15)


def graph_error(
    code: int, *, details: str | None = None, status: int | None = None, subcode: int | None = None
) -> tuple[int, dict[str, Any]]:
    """``(http status, body)`` of a Graph error with ``code``; unknown codes answer 400."""
    spec = META_ERRORS.get(code, GraphErrorSpec(400, "Error", "Unknown error."))
    error: dict[str, Any] = {
        "message": f"(#{code}) {spec.title}",
        "type": spec.type,
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details or spec.details},
        "fbtrace_id": fbtrace_id(),
    }
    chosen_subcode = subcode if subcode is not None else spec.subcode
    if chosen_subcode is not None:
        error["error_subcode"] = chosen_subcode
    return status or spec.status, {"error": error}


def webhook_error(code: int, *, details: str | None = None) -> dict[str, Any]:
    """The ``errors[]`` item of a status or message webhook (``{"code", "title", "message",
    "error_data": {"details"}}``)."""
    spec = META_ERRORS.get(code, GraphErrorSpec(400, "Error", "Unknown error."))
    return {
        "code": code,
        "title": spec.title,
        "message": spec.title,
        "error_data": {"details": details or spec.details},
        "href": ERROR_CODES_HREF,
    }


GENESYS_CODE_FOR_STATUS = {
    400: "bad.request",
    401: "bad.credentials",
    403: "not.authorized",
    404: "not.found",
    408: "client.timeout",
    409: "request.conflict",
    413: "request.entity.too.large",
    415: "unsupported.media.type",
    429: "too.many.requests.retry.after",
    500: "internal.server.error",
    502: "bad.gateway",
    503: "service.unavailable",
    504: "request.timeout",
}


def genesys_error(
    status: int, code: str | None = None, message: str | None = None
) -> dict[str, Any]:
    """A Platform API ``ErrorBody``."""
    code = code or GENESYS_CODE_FOR_STATUS.get(status, "error")
    message = message or code.replace(".", " ").capitalize()
    return {
        "message": message,
        "code": code,
        "status": status,
        "messageWithParams": message,
        "messageParams": {},
        "contextId": str(uuid.uuid4()),
        "details": [],
        "errors": [],
    }
