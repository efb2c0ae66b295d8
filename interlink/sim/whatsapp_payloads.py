"""Webhook payloads exactly as Meta sends them (``webhooks/overview`` and the message and status
references under https://developers.facebook.com/documentation/business-messaging/whatsapp/).
Pure functions.

``message(kind, ...)`` builds one ``messages[]`` item; ``contact(...)``, ``status(...)`` and
``envelope(...)`` build the rest. Kinds: ``text image video audio voice document sticker
location contacts button_reply list_reply button reaction unsupported system order
request_welcome edit revoke`` (``voice`` is an ``audio`` with ``voice: true``;
``button_reply``/``list_reply`` are ``interactive`` messages; ``request_welcome`` is a user
opening the chat for the first time, with no content; ``edit``/``revoke`` come from numbers
shared with the WhatsApp Business app).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

MEDIA_KINDS = ("image", "video", "audio", "voice", "document", "sticker")
KINDS = (
    "text",
    *MEDIA_KINDS,
    "location",
    "contacts",
    "button_reply",
    "list_reply",
    "button",
    "reaction",
    "unsupported",
    "system",
    "order",
)
CHAT_EVENT_KINDS = ("request_welcome", "edit", "revoke")
"""Kinds that are something the user did to the chat rather than content they sent; kept out of
``KINDS`` so that "every kind" batches stay the content kinds."""


@dataclass(frozen=True, slots=True)
class WhatsAppUser:
    """A WhatsApp user as webhooks show them: a phone (``wa_id``), a business-scoped user id
    (``user_id``, BSUID, 2026+), or both. A username user may come with the BSUID only."""

    wa_id: str | None = None
    user_id: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if not self.wa_id and not self.user_id:
            raise ValueError("a WhatsApp user needs a wa_id or a user_id")

    @property
    def key(self) -> str:
        """The address a business uses to reach this user (phone first, as ``to`` wins)."""
        return self.wa_id or self.user_id or ""


def meta_signature(app_secret: str, raw: bytes) -> str:
    """``X-Hub-Signature-256`` value Meta sends: ``sha256=`` + lowercase HEX HMAC-SHA256."""
    return "sha256=" + hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()


def new_wamid() -> str:
    """A well-formed, unique WhatsApp message id (base64 of a protobuf-ish blob)."""
    return "wamid." + base64.b64encode(b"\x18\x0b" + secrets.token_bytes(31)).decode()


def contact(user: WhatsAppUser) -> dict[str, Any]:
    """A ``contacts[]`` item; ``wa_id`` is omitted for a user known only by a business-scoped
    user id (BSUID)."""
    item: dict[str, Any] = {"profile": {"name": user.name or ""}}
    if user.wa_id:
        item["wa_id"] = user.wa_id
    if user.user_id:
        item["user_id"] = user.user_id
    return item


def _media_object(kind: str, media: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "mime_type": media["mime_type"],
        "sha256": media["sha256"],
        "id": media["id"],
    }
    if media.get("url"):
        body["url"] = media["url"]
    if kind in ("image", "video", "document") and options.get("caption"):
        body["caption"] = options["caption"]
    if kind == "document":
        body["filename"] = options.get("filename") or media.get("filename") or "file"
    if kind in ("audio", "voice"):
        body["voice"] = kind == "voice"
    if kind == "sticker":
        body["animated"] = bool(options.get("animated", False))
    return body


def message(
    kind: str,
    user: WhatsAppUser,
    *,
    wamid: str,
    timestamp: int,
    business_number: str,
    media: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """One ``messages[]`` item of ``kind`` sent by ``user``.

    Options by kind: text ``body``; media ``caption``, ``filename``, ``animated`` (``media`` is
    the stored blob's ``{id, mime_type, sha256, url?}``); location ``latitude``, ``longitude``,
    ``name``, ``address``; contacts ``contacts``; button_reply/list_reply ``reply_id``,
    ``title``, ``description``, ``context_id``; button ``payload``, ``text``, ``context_id``;
    reaction ``message_id``, ``emoji`` (``None`` = removal: the key is absent); unsupported
    ``unsupported_type``; system ``system_type`` (``user_changed_number`` or
    ``user_changed_user_id``), ``body``, ``new_wa_id``, ``new_user_id``; order ``catalog_id``,
    ``product_items``, ``text``; edit ``original_message_id``, ``body`` (the new text);
    revoke ``original_message_id``. Any kind: ``context_id`` (a reply to that wamid).
    """
    if kind not in KINDS + CHAT_EVENT_KINDS:
        raise ValueError(
            f"unknown message kind {kind!r}; one of {', '.join(KINDS + CHAT_EVENT_KINDS)}"
        )
    item: dict[str, Any] = {}
    if user.wa_id:
        item["from"] = user.wa_id
    if user.user_id:
        item["from_user_id"] = user.user_id
    item.update({"id": wamid, "timestamp": str(timestamp)})
    context_id = options.get("context_id")
    if context_id:
        item["context"] = {"from": business_number, "id": context_id}

    if kind == "text":
        item.update(type="text", text={"body": options.get("body", "")})
    elif kind in MEDIA_KINDS:
        if media is None:
            raise ValueError(f"a {kind} message needs media")
        wire_kind = "audio" if kind == "voice" else kind
        item.update({"type": wire_kind, wire_kind: _media_object(kind, media, options)})
    elif kind == "location":
        location: dict[str, Any] = {
            "latitude": float(options.get("latitude", 38.7223)),
            "longitude": float(options.get("longitude", -9.1393)),
        }
        for name in ("name", "address", "url"):
            if options.get(name):
                location[name] = options[name]
        item.update(type="location", location=location)
    elif kind == "contacts":
        item.update(type="contacts", contacts=options.get("contacts") or [_sample_card()])
    elif kind in ("button_reply", "list_reply"):
        reply: dict[str, Any] = {
            "id": options.get("reply_id", "option-1"),
            "title": options.get("title", "Option 1"),
        }
        if kind == "list_reply" and options.get("description"):
            reply["description"] = options["description"]
        item.update(type="interactive", interactive={"type": kind, kind: reply})
        item.setdefault("context", {"from": business_number, "id": context_id or new_wamid()})
    elif kind == "button":
        item.update(
            type="button",
            button={"payload": options.get("payload", "yes"), "text": options.get("text", "Yes")},
        )
        item.setdefault("context", {"from": business_number, "id": context_id or new_wamid()})
    elif kind == "reaction":
        reaction: dict[str, Any] = {"message_id": options["message_id"]}
        if options.get("emoji") is not None:
            reaction["emoji"] = options["emoji"]
        item.update(type="reaction", reaction=reaction)
    elif kind == "unsupported":
        unsupported_type = options.get("unsupported_type", "edit")
        item.update(
            type="unsupported",
            unsupported={"type": unsupported_type},
            errors=[
                {
                    "code": 131051,
                    "title": "Message type unknown",
                    "message": "Message type unknown",
                    "error_data": {"details": "Message type is currently not supported."},
                }
            ],
        )
    elif kind == "system":
        # System messages carry no contacts block; since Aug 2026 both kinds also name the new
        # and previous business-scoped ids (a number change gives the user a new one too).
        system_type = options.get("system_type", "user_changed_number")
        system: dict[str, Any] = {"type": system_type}
        if system_type == "user_changed_number":
            new_wa_id = options.get("new_wa_id", "")
            system = {
                "body": options.get("body")
                or f"User {user.name or ''} changed from {user.wa_id} to {new_wa_id}",
                "wa_id": new_wa_id,
                "type": system_type,
            }
        else:
            # Only the BSUID changed and no phone may be shared: the message has no ``from``.
            item.pop("from", None)
            system["body"] = options.get("body") or f"User {user.name or ''} changed their user id"
        if options.get("new_user_id"):
            system["user_id"] = options["new_user_id"]
        if user.user_id:
            system["previous_user_id"] = user.user_id
        item.update(type="system", system=system)
    elif kind == "order":
        order: dict[str, Any] = {
            "catalog_id": options.get("catalog_id", "1234567890"),
            "product_items": options.get("product_items")
            or [
                {
                    "product_retailer_id": "sku-1",
                    "quantity": 2,
                    "item_price": 9.99,
                    "currency": "EUR",
                }
            ],
        }
        if options.get("text"):
            order["text"] = options["text"]
        item.update(type="order", order=order)
    elif kind == "request_welcome":
        item["type"] = "request_welcome"
    elif kind == "edit":
        item.update(
            type="edit",
            edit={
                "original_message_id": options.get("original_message_id") or new_wamid(),
                "message": {"type": "text", "text": {"body": options.get("body", "")}},
            },
        )
    elif kind == "revoke":
        item.update(
            type="revoke",
            revoke={"original_message_id": options.get("original_message_id") or new_wamid()},
        )
    return item


def _sample_card() -> dict[str, Any]:
    return {
        "name": {"formatted_name": "Ana Lima", "first_name": "Ana", "last_name": "Lima"},
        "org": {"company": "Example Lda"},
        "phones": [{"phone": "+351 912 345 678", "wa_id": "351912345678", "type": "CELL"}],
        "emails": [{"email": "ana@example.com", "type": "WORK"}],
    }


def status(
    *,
    wamid: str,
    status_name: str,
    timestamp: int,
    recipient_id: str,
    recipient_user_id: str | None = None,
    biz_opaque_callback_data: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    with_pricing: bool = False,
) -> dict[str, Any]:
    """One ``statuses[]`` item. Pricing never rides on ``failed``."""
    item: dict[str, Any] = {
        "id": wamid,
        "status": status_name,
        "timestamp": str(timestamp),
        "recipient_id": recipient_id,
    }
    if recipient_user_id:
        item["recipient_user_id"] = recipient_user_id
    if biz_opaque_callback_data is not None:
        item["biz_opaque_callback_data"] = biz_opaque_callback_data
    if with_pricing and status_name != "failed":
        item["pricing"] = {
            "billable": False,
            "pricing_model": "PMP",
            "type": "free_customer_service",
            "category": "service",
        }
    if errors:
        item["errors"] = errors
    return item


def envelope(
    *,
    waba_id: str,
    display_phone_number: str,
    phone_number_id: str,
    contacts: list[dict[str, Any]] | None = None,
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The notification around messages or statuses (one entry, one ``messages`` change)."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": display_phone_number,
            "phone_number_id": phone_number_id,
        },
    }
    if contacts:
        value["contacts"] = contacts
    if messages:
        value["messages"] = messages
    if statuses:
        value["statuses"] = statuses
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": [{"field": "messages", "value": value}]}],
    }
