"""The Meta (WhatsApp Cloud API) world: business numbers, media, messages sent by the business,
the users' customer-service windows (24 h from the user's last message) and the rate limits
(80 messages per second per number, about one per 6 s to one user with bursts of 45).

No HTTP here: the Falcon resources (``meta_api``) and the user driver (``driver``) call these.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from interlink.sim.whatsapp_payloads import new_wamid

WINDOW_SECONDS = 24 * 3600
DEFAULT_MEDIA_URL_TTL = 300.0  # a media URL is valid for 5 minutes
PAIR_INTERVAL = 6.0  # one message per 6 s to the same user
PAIR_BURST = 45
SEND_TYPES = (
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "reaction",
    "interactive",
    "template",
    "location",
    "contacts",
)
MEDIA_SEND_TYPES = ("image", "audio", "video", "document", "sticker")
# What each media send type may carry (Meta's "Supported media types"): an uploaded GIF may go as a
# document, never as an image. A document takes any uploaded file.
SEND_MIME_TYPES: dict[str, frozenset[str]] = {
    "image": frozenset({"image/jpeg", "image/png"}),
    "sticker": frozenset({"image/webp"}),
    "video": frozenset({"video/mp4", "video/3gpp"}),
    "audio": frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}),
}
UPLOAD_MIME_TYPES = {
    "audio/aac",
    "audio/amr",
    "audio/mpeg",
    "audio/mp4",
    "audio/ogg",
    "text/plain",
    "application/pdf",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",  # as a document: Meta keeps any file a document send names
    "video/mp4",
    "video/3gpp",
}
_NOT_DIGITS = re.compile(r"\D")


@dataclass(frozen=True, slots=True)
class GraphRefusal:
    """A Graph error to answer: its code and, optionally, specific details."""

    code: int
    details: str | None = None
    subcode: int | None = None


@dataclass(slots=True)
class MetaNumber:
    """A business phone number and the app that serves it.

    ``enforce_window``: sends of non-template messages to a user who has not written in the last
    24 h fail with 131047 (``window_failure="sync"``: a 400 answer; ``"async"``: 200, then a
    ``failed`` status webhook). ``throughput_mps``: above it, 130429. ``pair_rate``: enforce the
    per-user pair rate (1 per 6 s, burst 45) with 131056. ``auto_statuses``: statuses the user
    side sends by itself after each accepted message (e.g. ``("sent", "delivered")``) to
    ``webhook_url``.
    """

    phone_number_id: str
    access_token: str = field(repr=False)
    app_secret: str = field(repr=False)
    display_phone_number: str = "15550000000"
    waba_id: str = "100000000000000"
    verified_name: str = "Interlink Test"
    quality_rating: str = "GREEN"
    webhook_url: str | None = None
    enforce_window: bool = False
    window_failure: str = "sync"
    throughput_mps: int | None = None
    pair_rate: bool = False
    auto_statuses: tuple[str, ...] = ()


@dataclass(slots=True)
class MediaBlob:
    id: str
    owner: str  # phone number id
    data: bytes = field(repr=False)
    mime_type: str
    filename: str | None
    created: float

    @property
    def sha256(self) -> str:
        return base64.b64encode(hashlib.sha256(self.data).digest()).decode()


@dataclass(slots=True)
class SentMessage:
    """A message the business (interlink) sent through the Graph API, and its statuses since."""

    wamid: str
    phone_number_id: str
    to: str  # wa_id digits, or a BSUID
    body: dict[str, Any]
    time: float
    statuses: list[str] = field(default_factory=list)

    @property
    def type(self) -> str:
        return str(self.body.get("type", "text"))

    @property
    def biz_opaque_callback_data(self) -> str | None:
        value = self.body.get("biz_opaque_callback_data")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class MetaTemplate:
    """An approved message template of a WhatsApp Business Account: how many parameters its
    header and body take, and their names when it uses named parameters (``{{order}}``)."""

    name: str
    language: str
    body_parameters: int = 0
    header_parameters: int = 0
    parameter_names: tuple[str, ...] = ()


def check_template(
    payload: dict[str, Any], templates: dict[tuple[str, str], MetaTemplate] | None
) -> GraphRefusal | None:
    """A ``template`` send: name and language required (100); against the account's approved
    templates when it has any: an unknown one is 132001, a wrong parameter count or unknown
    parameter names 132000."""
    name, language = payload.get("name"), payload.get("language")
    code = language.get("code") if isinstance(language, dict) else None
    if not isinstance(name, str) or not name or not isinstance(code, str) or not code:
        return GraphRefusal(100, "The parameters template['name'] and ['language'] are required.")
    if templates is None:
        return None
    spec = templates.get((name, code))
    if spec is None:
        return GraphRefusal(132001, f"template name ({name}) does not exist in {code}")
    counts = {"header": 0, "body": 0}
    names: list[str] = []
    components = payload.get("components", [])
    if not isinstance(components, list):
        return GraphRefusal(100, "Param template['components'] must be an array.")
    for component in components:
        kind = component.get("type") if isinstance(component, dict) else None
        parameters = component.get("parameters") if isinstance(component, dict) else None
        if kind not in counts or not isinstance(parameters, list):
            continue
        for parameter in parameters:
            if not isinstance(parameter, dict) or not parameter.get("text"):
                return GraphRefusal(131008, "Each text parameter needs a text.")
            if parameter.get("parameter_name"):
                names.append(str(parameter["parameter_name"]))
        counts[kind] += len(parameters)
    expected = {"header": spec.header_parameters, "body": spec.body_parameters}
    for kind, count in counts.items():
        if count != expected[kind]:
            return GraphRefusal(
                132000, f"{kind}: number of localizable_params ({count}) does not match the "
                f"expected number of params ({expected[kind]})",
            )  # fmt: skip
    if sorted(names) != sorted(spec.parameter_names):
        return GraphRefusal(132000, "Parameter names do not match the template's.")
    return None


def check_interactive(payload: dict[str, Any]) -> GraphRefusal | None:
    """Meta's limits on reply buttons and lists; a breach is 131009 (parameter value is not
    valid). Other interactive types (cta_url, flow, …) are taken as they are."""
    kind = payload.get("type")
    if kind not in ("button", "list"):
        return None
    body = payload.get("body")
    text = body.get("text") if isinstance(body, dict) else None
    body_limit = 1024 if kind == "button" else 4096
    if not isinstance(text, str) or not text or len(text) > body_limit:
        return GraphRefusal(
            131009, f"interactive['body']['text'] must be 1 to {body_limit} characters."
        )
    action = payload.get("action")
    if not isinstance(action, dict):
        return GraphRefusal(100, "The parameter interactive['action'] is required.")
    if kind == "button":
        buttons = action.get("buttons")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            return GraphRefusal(131009, "Buttons count should be between 1 and 3.")
        replies = [b.get("reply") if isinstance(b, dict) else None for b in buttons]
        return _check_options(replies, "Button", title_max=20, id_max=256, unique_titles=True)
    label = action.get("button")
    if not isinstance(label, str) or not label or len(label) > 20:
        return GraphRefusal(131009, "action['button'] must be 1 to 20 characters.")
    sections = action.get("sections")
    if not isinstance(sections, list) or not 1 <= len(sections) <= 10:
        return GraphRefusal(131009, "Sections count should be between 1 and 10.")
    rows: list[Any] = []
    for section in sections:
        inner = section.get("rows") if isinstance(section, dict) else None
        if not isinstance(inner, list):
            return GraphRefusal(131009, "Each section needs rows.")
        rows += inner
    if not 1 <= len(rows) <= 10:
        return GraphRefusal(131009, "Total row count exceed max allowed count: 10")
    refusal = _check_options(rows, "Row", title_max=24, id_max=200, unique_titles=False)
    if refusal is None and any(
        len(str(r.get("description", ""))) > 72 for r in rows if isinstance(r, dict)
    ):
        return GraphRefusal(131009, "Row description is too long. Max length is 72.")
    return refusal


def _check_options(
    options: list[Any], what: str, *, title_max: int, id_max: int, unique_titles: bool
) -> GraphRefusal | None:
    ids: set[str] = set()
    titles: set[str] = set()
    for option in options:
        if not isinstance(option, dict):
            return GraphRefusal(100, f"{what} must be an object.")
        option_id, title = option.get("id"), option.get("title")
        if not isinstance(option_id, str) or not option_id or len(option_id) > id_max:
            return GraphRefusal(131009, f"{what} id must be 1 to {id_max} characters.")
        if not isinstance(title, str) or not title or len(title) > title_max:
            return GraphRefusal(
                131009, f"{what} title length is too long. Max length is {title_max}."
            )
        if option_id in ids:
            return GraphRefusal(131009, f"{what} ids must be unique.")
        if unique_titles and title in titles:
            return GraphRefusal(131009, f"{what} titles must be unique.")
        ids.add(option_id)
        titles.add(title)
    return None


def recipient_key(value: str) -> str:
    """``+1 (650) 555-1234`` → ``16505551234``; a BSUID (``US.1349…``) is kept as is."""
    if "." in value:
        return value
    return _NOT_DIGITS.sub("", value)


class MetaWorld:
    """All Meta state of the simulator. Methods are safe to call from many greenlets."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._lock = threading.RLock()
        self.numbers: dict[str, MetaNumber] = {}
        self._by_token: dict[str, MetaNumber] = {}
        self.media: dict[str, MediaBlob] = {}
        self.sent: dict[str, SentMessage] = {}
        self.received_wamids: dict[str, str] = {}  # inbound wamid -> phone number id
        # (phone number id, message id) of every typing indicator shown, in order
        self.typing_indicators: list[tuple[str, str]] = []
        self.media_url_ttl = DEFAULT_MEDIA_URL_TTL
        self._last_inbound: dict[tuple[str, str], float] = {}
        self._window_override: dict[tuple[str, str], bool] = {}
        self._pair_buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._second: dict[str, tuple[int, int]] = {}
        self._url_key = secrets.token_bytes(32)
        # Approved templates per WhatsApp Business Account id; an account with none registered
        # takes any template send that names a name and a language.
        self.templates: dict[str, dict[tuple[str, str], MetaTemplate]] = {}
        # Addresses (numbers, BSUIDs) a user left behind: sends to them are not delivered.
        self.retired: set[str] = set()

    # -- configuration ---------------------------------------------------------------------------
    def add_number(
        self, phone_number_id: str, *, access_token: str, app_secret: str, **options: Any
    ) -> MetaNumber:
        """Register (or replace) a business number; options are :class:`MetaNumber` fields."""
        options["auto_statuses"] = tuple(options.get("auto_statuses") or ())
        number = MetaNumber(
            phone_number_id=phone_number_id,
            access_token=access_token,
            app_secret=app_secret,
            **options,
        )
        if number.window_failure not in ("sync", "async"):
            raise ValueError("window_failure is 'sync' or 'async'")
        with self._lock:
            previous = self.numbers.get(phone_number_id)
            if previous is not None:
                self._by_token.pop(previous.access_token, None)
            self.numbers[phone_number_id] = number
            self._by_token[access_token] = number
        return number

    def grant_token(self, phone_number_id: str, token: str) -> None:
        """Another valid access token for the number (Meta allows several system-user tokens;
        a rotation issues the new one before revoking the old)."""
        with self._lock:
            self._by_token[token] = self.numbers[phone_number_id]

    def revoke_token(self, token: str) -> None:
        with self._lock:
            self._by_token.pop(token, None)

    def set_window(self, phone_number_id: str, user: str, open_: bool | None) -> None:
        """Force a user's 24 h window open or closed (``None``: back to the number's rule)."""
        key = (phone_number_id, recipient_key(user))
        with self._lock:
            if open_ is None:
                self._window_override.pop(key, None)
            else:
                self._window_override[key] = open_

    def window_open(self, number: MetaNumber, user: str) -> bool:
        key = (number.phone_number_id, recipient_key(user))
        override = self._window_override.get(key)
        if override is not None:
            return override
        if not number.enforce_window:
            return True
        last = self._last_inbound.get(key)
        return last is not None and self.clock() - last < WINDOW_SECONDS

    def note_inbound(self, phone_number_id: str, wamid: str, user_keys: list[str]) -> None:
        """A user wrote: their window (under every address they have) opens for 24 h."""
        now = self.clock()
        with self._lock:
            self.received_wamids[wamid] = phone_number_id
            for key in user_keys:
                self._last_inbound[(phone_number_id, recipient_key(key))] = now

    def add_template(self, waba_id: str, template: MetaTemplate) -> None:
        """Approve a template for the account: template sends are checked against it from now."""
        with self._lock:
            self.templates.setdefault(waba_id, {})[(template.name, template.language)] = template

    def template_sends(self, phone_number_id: str) -> list[SentMessage]:
        """The template messages a number sent, in order."""
        return [s for s in self.sent_to(phone_number_id) if s.type == "template"]

    def retire(self, addresses: list[str]) -> None:
        """These addresses no longer reach anyone (the user changed number or id): Meta accepts
        a send to them and then reports it ``failed`` with 131026 (undeliverable)."""
        with self._lock:
            self.retired.update(recipient_key(a) for a in addresses)

    def is_retired(self, address: str) -> bool:
        with self._lock:
            return recipient_key(address) in self.retired

    # -- auth ------------------------------------------------------------------------------------
    def number_for_token(self, authorization: str | None) -> MetaNumber | None:
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        return self._by_token.get(authorization[7:].strip())

    def authorize(
        self, authorization: str | None, phone_number_id: str
    ) -> MetaNumber | GraphRefusal:
        """The number a token may act for. A token of another number gets code 100 subcode 33
        (the object "does not exist, cannot be loaded due to missing permissions"), as Graph
        answers for an object the token cannot see; a bad or missing token gets 190."""
        number = self.number_for_token(authorization)
        if number is None:
            return GraphRefusal(190)
        if number.phone_number_id != phone_number_id:
            return GraphRefusal(
                100,
                f"Unsupported post request. Object with ID '{phone_number_id}' does not exist, "
                "cannot be loaded due to missing permissions, or does not support this operation.",
                subcode=33,
            )
        return number

    # -- media -----------------------------------------------------------------------------------
    def add_media(
        self, owner: str, data: bytes, mime_type: str, filename: str | None = None
    ) -> MediaBlob:
        blob = MediaBlob(
            id=str(secrets.randbelow(9 * 10**15) + 10**15),
            owner=owner,
            data=data,
            mime_type=mime_type,
            filename=filename,
            created=self.clock(),
        )
        with self._lock:
            self.media[blob.id] = blob
        return blob

    def media_signature(self, media_id: str, expires: int) -> str:
        return hmac.new(self._url_key, f"{media_id}:{expires}".encode(), hashlib.sha256).hexdigest()

    def media_url_query(self, media_id: str) -> str:
        expires = int(self.clock() + self.media_url_ttl)
        return f"mid={media_id}&ext={expires}&hash={self.media_signature(media_id, expires)}"

    def check_media_url(self, media_id: str, expires: str, signature: str) -> bool:
        try:
            deadline = int(expires)
        except ValueError:
            return False
        good = hmac.compare_digest(self.media_signature(media_id, deadline), signature)
        return good and deadline > self.clock()

    # -- sending ---------------------------------------------------------------------------------
    def check_send(self, number: MetaNumber, body: dict[str, Any]) -> GraphRefusal | None:
        """Shape of a ``/messages`` body (not the mark-as-read one)."""
        if body.get("messaging_product") != "whatsapp":
            return GraphRefusal(100, "The parameter messaging_product is required.")
        to = body.get("to") or body.get("recipient")
        if not isinstance(to, str) or not recipient_key(to):
            return GraphRefusal(100, "The parameter to is required.")
        kind = body.get("type", "text")
        if kind not in SEND_TYPES:
            return GraphRefusal(100, f"Param type must be one of {{{', '.join(SEND_TYPES)}}}")
        payload = body.get(kind)
        if not isinstance(payload, dict):
            return GraphRefusal(100, f"The parameter {kind} is required.")
        if kind == "text":
            text = payload.get("body")
            if not isinstance(text, str) or not text:
                return GraphRefusal(100, "The parameter text['body'] is required.")
            if len(text) > 4096:
                return GraphRefusal(100, "Param text['body'] must be at most 4096 characters long.")
        elif kind in MEDIA_SEND_TYPES:
            has_id, has_link = "id" in payload, "link" in payload
            if has_id == has_link:
                return GraphRefusal(100, f"Param {kind} must have exactly one of id or link.")
            if has_id and payload["id"] not in self.media:
                return GraphRefusal(131053, "Media id not found.")
            allowed = SEND_MIME_TYPES.get(kind)
            if has_id and allowed is not None:
                mime = self.media[payload["id"]].mime_type.split(";")[0].strip().lower()
                if mime not in allowed:
                    return GraphRefusal(131053, f"Unsupported {kind} media type: {mime}.")
            if has_link and not str(payload["link"]).startswith(("http://", "https://")):
                return GraphRefusal(100, f"Param {kind}['link'] is not a valid URI.")
            if "caption" in payload and kind in ("audio", "sticker"):
                return GraphRefusal(100, f"Param {kind}['caption'] is not supported.")
        elif kind == "reaction":
            if not isinstance(payload.get("message_id"), str):
                return GraphRefusal(100, "The parameter reaction['message_id'] is required.")
        elif kind == "template":
            refusal = check_template(payload, self.templates.get(number.waba_id))
            if refusal is not None:
                return refusal
        elif kind == "interactive":
            if not payload.get("type"):
                return GraphRefusal(100, "The parameter interactive['type'] is required.")
            refusal = check_interactive(payload)
            if refusal is not None:
                return refusal
        data = body.get("biz_opaque_callback_data")
        if data is not None and (not isinstance(data, str) or len(data) > 512):
            return GraphRefusal(
                100, "Param biz_opaque_callback_data must be at most 512 characters long."
            )
        return None

    def check_limits(self, number: MetaNumber, to: str) -> GraphRefusal | None:
        """Throughput (130429) then pair rate (131056); consumes one unit of each when allowed."""
        now = self.clock()
        with self._lock:
            if number.throughput_mps is not None:
                second, used = self._second.get(number.phone_number_id, (0, 0))
                if second != int(now):
                    second, used = int(now), 0
                if used >= number.throughput_mps:
                    return GraphRefusal(130429)
                self._second[number.phone_number_id] = (second, used + 1)
            if number.pair_rate:
                key = (number.phone_number_id, recipient_key(to))
                tokens, last = self._pair_buckets.get(key, (float(PAIR_BURST), now))
                tokens = min(float(PAIR_BURST), tokens + (now - last) / PAIR_INTERVAL)
                if tokens < 1:
                    self._pair_buckets[key] = (tokens, now)
                    return GraphRefusal(131056)
                self._pair_buckets[key] = (tokens - 1, now)
        return None

    def record_typing(self, number: MetaNumber, message_id: str) -> None:
        with self._lock:
            self.typing_indicators.append((number.phone_number_id, message_id))

    def typing_shown(self, phone_number_id: str) -> list[str]:
        """The message ids that typing indicators of this number were shown with, in order."""
        with self._lock:
            return [m for n, m in self.typing_indicators if n == phone_number_id]

    def record_sent(self, number: MetaNumber, body: dict[str, Any]) -> SentMessage:
        to = body.get("to") or body.get("recipient") or ""
        sent = SentMessage(
            wamid=new_wamid(),
            phone_number_id=number.phone_number_id,
            to=recipient_key(to),
            body=body,
            time=self.clock(),
        )
        with self._lock:
            self.sent[sent.wamid] = sent
        return sent

    def sent_to(self, phone_number_id: str, user: str | None = None) -> list[SentMessage]:
        """Messages a number sent (to one user when given), in order."""
        key = recipient_key(user) if user else None
        with self._lock:
            items = list(self.sent.values())
        return [s for s in items if s.phone_number_id == phone_number_id and key in (None, s.to)]
