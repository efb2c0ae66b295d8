"""The other ends of the wire: a WhatsApp user (Meta's webhooks) and a Genesys agent (Open
Messaging outbound webhooks), both signing exactly as the real services do.

``UserDriver`` posts ``X-Hub-Signature-256: sha256=<hex HMAC(app_secret, raw)>`` (serialised with
escaped unicode, as Meta does); ``AgentDriver`` posts ``sha256=<base64 HMAC(webhookSecret,
raw)>`` (raw UTF-8). Every delivery is recorded (kind ``meta.webhook`` / ``genesys.webhook``,
direction ``out``) with the status interlink answered.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests

from interlink.sim import whatsapp_payloads as wa
from interlink.sim.errors import webhook_error
from interlink.sim.genesys import AgentMessage, genesys_signature
from interlink.sim.meta import MetaNumber, SentMessage
from interlink.sim.whatsapp_payloads import WhatsAppUser, meta_signature

if TYPE_CHECKING:
    from interlink.sim.state import SimState

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0  # Genesys waits 10 s for a webhook answer
STATUS_ORDER = ("sent", "delivered", "read", "played", "failed")
_SESSION_POOL = 64

#: A small valid-looking payload per media kind when the caller gives no bytes.
SAMPLE_MEDIA = {
    "image": ("image/jpeg", b"\xff\xd8\xff\xe0" + b"sim-image" * 8, None),
    "video": ("video/mp4", b"\x00\x00\x00\x18ftypmp42" + b"sim-video" * 8, None),
    "audio": ("audio/mpeg", b"ID3" + b"sim-audio" * 8, None),
    "voice": ("audio/ogg; codecs=opus", b"OggS" + b"sim-voice" * 8, None),
    "document": ("application/pdf", b"%PDF-1.4\n" + b"sim-document" * 8, "document.pdf"),
    "sticker": ("image/webp", b"RIFF\x00\x00\x00\x00WEBP" + b"sim-sticker" * 8, None),
}


@dataclass(slots=True)
class Delivery:
    """The outcome of one webhook POST: ``status`` 0 means the connection failed (``error``)."""

    url: str
    status: int
    response_body: str
    payload: dict[str, Any]
    raw: bytes = field(repr=False)
    headers: dict[str, str]
    error: str | None = None
    wamids: list[str] = field(default_factory=list)
    message_id: str | None = None
    kind: str = ""
    tenant: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "status": self.status,
            "responseBody": self.response_body,
            "error": self.error,
            "payload": self.payload,
            "headers": self.headers,
            "wamids": self.wamids,
            "messageId": self.message_id,
        }


def _session() -> requests.Session:
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=_SESSION_POOL, pool_maxsize=_SESSION_POOL
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class _Poster:
    def __init__(self, state: SimState) -> None:
        self.state = state
        self._session = _session()

    def post(
        self,
        *,
        kind: str,
        tenant: str,
        url: str,
        payload: dict[str, Any],
        raw: bytes,
        headers: dict[str, str],
        timeout: float,
    ) -> Delivery:
        status, text, error = 0, "", None
        try:
            response = self._session.post(
                url, data=raw, headers=headers, timeout=timeout, allow_redirects=False
            )
            status, text = response.status_code, response.text
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
        self.state.recorder.record(
            time=self.state.clock(),
            kind=kind,
            tenant=tenant,
            direction="out",
            method="POST",
            path=url,
            query="",
            headers={k.lower(): v for k, v in headers.items()},
            body=payload,
            status=status,
            extra={"error": error} if error else {},
        )
        return Delivery(
            url=url,
            status=status,
            response_body=text,
            payload=payload,
            raw=raw,
            headers=headers,
            error=error,
            kind=kind,
            tenant=tenant,
        )

    def redeliver(self, delivery: Delivery, *, timeout: float = DEFAULT_TIMEOUT) -> Delivery:
        """The same webhook again, byte for byte (same message ids, same signature): what Meta
        and Genesys do with one that was not acknowledged with a 2xx."""
        again = self.post(
            kind=delivery.kind,
            tenant=delivery.tenant,
            url=delivery.url,
            payload=delivery.payload,
            raw=delivery.raw,
            headers=delivery.headers,
            timeout=timeout,
        )
        again.wamids, again.message_id = delivery.wamids, delivery.message_id
        return again


class UserDriver(_Poster):
    """Plays WhatsApp users writing to business numbers, and the delivery statuses of messages
    the business sent. The webhook goes to ``webhook_url`` or the number's configured one."""

    def _number(self, phone_number_id: str) -> MetaNumber:
        number = self.state.meta.numbers.get(phone_number_id)
        if number is None:
            raise KeyError(f"unknown phone number id {phone_number_id}")
        return number

    def _url(self, number: MetaNumber, webhook_url: str | None) -> str:
        url = webhook_url or number.webhook_url
        if not url:
            raise ValueError(f"no webhook URL for phone number id {number.phone_number_id}")
        return url

    def build_message(
        self,
        phone_number_id: str,
        user: WhatsAppUser,
        kind: str,
        *,
        include_media_url: bool = False,
        **options: Any,
    ) -> dict[str, Any]:
        """One ``messages[]`` item; media kinds store a blob (``data``/``mime_type``/``filename``
        options, or a sample) owned by the number, so interlink can fetch it by id."""
        number = self._number(phone_number_id)
        media = None
        if kind in wa.MEDIA_KINDS:
            sample_mime, sample_data, sample_name = SAMPLE_MEDIA[kind]
            blob = self.state.meta.add_media(
                phone_number_id,
                options.pop("data", None) or sample_data,
                options.pop("mime_type", None) or sample_mime,
                options.get("filename") or sample_name,
            )
            media = {
                "id": blob.id,
                "mime_type": blob.mime_type,
                "sha256": blob.sha256,
                "filename": blob.filename,
            }
            if include_media_url:
                # Since Nov 2025 some webhooks carry the download URL itself (S-R-IMG).
                query = self.state.meta.media_url_query(blob.id)
                media["url"] = (
                    f"{self.state.base_url}/meta/lookaside/whatsapp_business/attachments/?{query}"
                )
        return wa.message(
            kind,
            user,
            wamid=options.pop("wamid", None) or wa.new_wamid(),
            timestamp=int(self.state.clock()),
            business_number=number.display_phone_number,
            media=media,
            **options,
        )

    def send(
        self,
        phone_number_id: str,
        user: WhatsAppUser,
        messages: Iterable[dict[str, Any]],
        *,
        webhook_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Delivery:
        """One webhook carrying ``messages`` (built with :meth:`build_message`) from ``user``.
        The user's 24 h window opens. ``system`` messages carry no ``contacts`` block."""
        return self.send_batch(
            phone_number_id, [(user, list(messages))], webhook_url=webhook_url, timeout=timeout
        )

    def send_batch(
        self,
        phone_number_id: str,
        batch: list[tuple[WhatsAppUser, list[dict[str, Any]]]],
        *,
        webhook_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Delivery:
        """One webhook with the messages of several users (contacts listed once each)."""
        number = self._number(phone_number_id)
        contacts, messages = [], []
        for user, items in batch:
            if any(item.get("type") != "system" for item in items):
                contacts.append(wa.contact(user))
            messages.extend(items)
            for item in items:
                if item.get("type") == "system":
                    continue  # the user did not write: no window opens, nothing to mark read
                self.state.meta.note_inbound(
                    phone_number_id, item["id"], [k for k in (user.wa_id, user.user_id) if k]
                )
        payload = wa.envelope(
            waba_id=number.waba_id,
            display_phone_number=number.display_phone_number,
            phone_number_id=phone_number_id,
            contacts=contacts,
            messages=messages,
        )
        delivery = self._deliver(number, payload, webhook_url, timeout)
        delivery.wamids = [item["id"] for item in messages]
        return delivery

    def say(
        self,
        phone_number_id: str,
        user: WhatsAppUser,
        kind: str = "text",
        *,
        webhook_url: str | None = None,
        **options: Any,
    ) -> Delivery:
        """Shorthand: build one message of ``kind`` and send it alone."""
        item = self.build_message(phone_number_id, user, kind, **options)
        return self.send(phone_number_id, user, [item], webhook_url=webhook_url)

    def change_number(
        self,
        phone_number_id: str,
        user: WhatsAppUser,
        new_wa_id: str,
        *,
        new_user_id: str | None = None,
    ) -> tuple[Delivery, WhatsAppUser]:
        """The user moves their WhatsApp account to ``new_wa_id`` (``system``
        ``user_changed_number``, from the old number; with a new BSUID when the user had one).
        The old number stops being theirs: sends to it fail (131026). Returns the delivery and
        the user as they are now."""
        item = self.build_message(
            phone_number_id, user, "system", new_wa_id=new_wa_id, new_user_id=new_user_id
        )
        moved = WhatsAppUser(wa_id=new_wa_id, user_id=new_user_id or None, name=user.name)
        self.state.meta.retire([k for k in (user.wa_id, user.user_id) if k])
        return self.send(phone_number_id, user, [item]), moved

    def change_user_id(
        self, phone_number_id: str, user: WhatsAppUser, new_user_id: str
    ) -> tuple[Delivery, WhatsAppUser]:
        """The user's business-scoped id changes (``system`` ``user_changed_user_id``, Aug 2026:
        no phone in it). The old id stops reaching them."""
        item = self.build_message(
            phone_number_id, user, "system", system_type="user_changed_user_id",
            new_user_id=new_user_id,
        )  # fmt: skip
        moved = WhatsAppUser(wa_id=user.wa_id, user_id=new_user_id, name=user.name)
        if user.user_id:
            self.state.meta.retire([user.user_id])
        return self.send(phone_number_id, user, [item]), moved

    def status_item(
        self,
        wamid: str,
        status_name: str,
        *,
        error_code: int | None = None,
        error_details: str | None = None,
    ) -> tuple[SentMessage, dict[str, Any]]:
        sent = self.state.meta.sent.get(wamid)
        if sent is None:
            raise KeyError(f"the simulator sent no message {wamid}")
        if status_name not in STATUS_ORDER:
            raise ValueError(f"status is one of {', '.join(STATUS_ORDER)}")
        errors = None
        if status_name == "failed":
            errors = [webhook_error(error_code or 131000, details=error_details)]
        to_is_bsuid = "." in sent.to
        item = wa.status(
            wamid=wamid,
            status_name=status_name,
            timestamp=int(self.state.clock()),
            recipient_id=sent.to,
            recipient_user_id=sent.to if to_is_bsuid else None,
            biz_opaque_callback_data=sent.biz_opaque_callback_data,
            errors=errors,
            with_pricing=status_name == "sent",
        )
        sent.statuses.append(status_name)
        return sent, item

    def statuses(
        self,
        updates: list[tuple[str, str] | tuple[str, str, int]],
        *,
        webhook_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Delivery:
        """One webhook with statuses ``(wamid, status[, error_code])`` of messages the business
        sent through the simulator (all of one number); ``biz_opaque_callback_data`` is echoed."""
        items, number = [], None
        for update in updates:
            code = update[2] if len(update) > 2 else None
            sent, item = self.status_item(update[0], update[1], error_code=code)
            number = number or self._number(sent.phone_number_id)
            items.append(item)
        if number is None:
            raise ValueError("no statuses given")
        payload = wa.envelope(
            waba_id=number.waba_id,
            display_phone_number=number.display_phone_number,
            phone_number_id=number.phone_number_id,
            statuses=items,
        )
        return self._deliver(number, payload, webhook_url, timeout)

    def status(
        self,
        wamid: str,
        status_name: str,
        *,
        error_code: int | None = None,
        webhook_url: str | None = None,
    ) -> Delivery:
        return self.statuses(
            [(wamid, status_name, error_code)] if error_code else [(wamid, status_name)],
            webhook_url=webhook_url,
        )

    def _deliver(
        self, number: MetaNumber, payload: dict[str, Any], webhook_url: str | None, timeout: float
    ) -> Delivery:
        # Meta signs the escaped-unicode form of the JSON (non-ASCII as \uXXXX).
        raw = json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": meta_signature(number.app_secret, raw),
        }
        return self.post(
            kind="meta.webhook",
            tenant=number.phone_number_id,
            url=self._url(number, webhook_url),
            payload=payload,
            raw=raw,
            headers=headers,
            timeout=timeout,
        )


class AgentDriver(_Poster):
    """Plays a Genesys agent answering in a conversation: posts the Open Messaging outbound
    webhook to ``webhook_url`` (or the org's configured outbound notification URL)."""

    def attachment(
        self,
        integration_id: str,
        *,
        data: bytes,
        mime: str,
        filename: str,
        media_type: str = "Image",
    ) -> dict[str, Any]:
        """Store a file as a Genesys download; the ``content[].attachment`` pointing at it."""
        org = self.state.genesys.org_for_integration(integration_id)
        if org is None:
            raise KeyError(f"unknown integration {integration_id}")
        download = self.state.genesys.add_download(org.org_id, data, mime, filename)
        return {
            "id": download.id,
            "mediaType": media_type,
            "url": self.state.download_url(org.region, download.id),
            "mime": mime,
            "filename": filename,
            "contentSizeBytes": len(data),
        }

    def send(
        self,
        integration_id: str,
        to_id: str,
        *,
        text: str | None = None,
        attachment: Mapping[str, Any] | None = None,
        id_type: str = "Opaque",
        webhook_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Delivery:
        """One agent message to participant ``to_id`` (the ``channel.from.id`` interlink sent
        inbound). ``attachment`` is one made by :meth:`attachment`."""
        message: AgentMessage = self.state.genesys.outbound_message(
            integration_id,
            {"id": to_id, "idType": id_type},
            text=text,
            attachment=dict(attachment) if attachment else None,
        )
        delivery = self.deliver(
            integration_id, message.body, webhook_url=webhook_url, timeout=timeout
        )
        delivery.message_id = message.id
        return delivery

    def deliver(
        self,
        integration_id: str,
        body: Mapping[str, Any],
        *,
        webhook_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Delivery:
        """Any outbound notification ``body`` (a Structured menu, a typing Event, ...), signed
        with the integration's webhook secret and posted to its webhook, as Genesys does."""
        org = self.state.genesys.org_for_integration(integration_id)
        if org is None:
            raise KeyError(f"unknown integration {integration_id}")
        url = webhook_url or org.webhook_url
        if not url:
            raise ValueError(f"no webhook URL for integration {integration_id}")
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": genesys_signature(org.webhook_secret, raw),
        }
        return self.post(
            kind="genesys.webhook",
            tenant=org.org_id,
            url=url,
            payload=dict(body),
            raw=raw,
            headers=headers,
            timeout=timeout,
        )
