"""Read a Meta webhook body: the business numbers it names and every update in it, in one walk.

Meta batches up to 1000 updates per POST, across ``entry[]``, ``changes[]`` and ``messages[]`` /
``statuses[]`` / ``errors[]``: :func:`read_meta_webhook` returns every one of them, never only the
first.

Two levels of "malformed": a body whose envelope cannot be read (not an object, wrong ``object``,
``entry`` not a list, a ``messages`` change without ``metadata.phone_number_id``) raises
:class:`MappingError`; a single element that cannot be read (a message without ``id``, a status
without ``status``) becomes an item of kind ``"invalid"`` with a ``problem`` — so one bad element
does not make the provider redeliver a whole batch of good ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeGuard

from interlink.mapping.wire import MappingError, as_list, as_mapping

META_OBJECT = "whatsapp_business_account"
MESSAGES_FIELD = "messages"

MetaItemKind = Literal["message", "status", "error", "ignored", "invalid"]


class MetaItem(NamedTuple):
    """One update of a Meta webhook. A named tuple: immutable like a frozen dataclass, and made
    in a fifth of the time, for every update of every webhook.

    - ``kind``: ``message`` (``messages[]``), ``status`` (``statuses[]``), ``error`` (``value.errors[]``,
      system-level errors), ``ignored`` (a change of another ``field``, e.g. template status;
      ``element`` is its whole ``value``), ``invalid`` (an element that could not be read; see
      ``problem``).
    - ``phone_number_id`` / ``display_phone_number``: the business number (``metadata``); empty
      strings when the change has no metadata (only possible for ``ignored`` items).
    - ``contact``: the ``contacts[]`` entry of the message's sender or the status's recipient,
      matched on ``wa_id`` / ``user_id``; the only contact when nothing matches but there is exactly
      one (``wa_id`` and ``from`` "may not always match"); else None.
    - ``dedupe_key``: wamid for a message, ``wamid:status`` for a status, None otherwise (system
      errors carry no id).
    - ``element``: the raw element, untouched.
    """

    kind: MetaItemKind
    waba_id: str
    field: str
    phone_number_id: str
    display_phone_number: str
    element: Mapping[str, Any]
    contact: Mapping[str, Any] | None = None
    dedupe_key: str | None = None
    problem: str | None = None

    @property
    def user_key(self) -> str | None:
        """A routing hint for the WhatsApp user of a message or status: the phone, else the BSUID.

        Not the Genesys participant id (that needs the alias store, see ``identity``); good enough
        to send one user's items to one place.
        """
        if self.kind == "message":
            keys = ("from", "from_user_id")
        elif self.kind == "status":
            keys = ("recipient_id", "recipient_user_id")
        else:
            return None
        for key in keys:
            value = self.element.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
        if self.contact is not None:
            for key in ("wa_id", "user_id"):
                value = self.contact.get(key)
                if isinstance(value, str) and value.strip():
                    return value.strip()
        return None

    def as_payload(self) -> dict[str, Any]:
        """A plain dict (JSON/msgpack-able) carrying every field, for the durable inbox."""
        return {
            "kind": self.kind,
            "waba_id": self.waba_id,
            "field": self.field,
            "phone_number_id": self.phone_number_id,
            "display_phone_number": self.display_phone_number,
            "element": _plain(self.element),
            "contact": None if self.contact is None else _plain(self.contact),
            "dedupe_key": self.dedupe_key,
            "problem": self.problem,
        }


@dataclass(frozen=True, slots=True)
class MetaWebhook:
    """A Meta webhook body read in one walk (:func:`read_meta_webhook`)."""

    phone_number_ids: frozenset[str]
    _updates: list[MetaItem]
    _problem: str | None

    def updates(self) -> list[MetaItem]:
        """Every update, in payload order; MappingError when a part of the body is malformed."""
        if self._problem is not None:
            raise MappingError(self._problem)
        return self._updates


def read_meta_webhook(body: object) -> MetaWebhook:
    """The business numbers a parsed Meta webhook body names, and every update in it, in one walk.

    Raises MappingError at once when the numbers cannot be read (the envelope, an entry, a change,
    its ``value`` or ``metadata`` malformed): without them neither the tenant nor the secret that
    signed the body is known. Whatever else is malformed is raised by :meth:`MetaWebhook.updates`,
    which the webhook calls after checking the signature, so an unsigned body learns nothing more.

    Per change the updates are ``messages[]``, then ``statuses[]``, then ``errors[]``. An empty
    ``phone_number_ids`` means no change names a number (e.g. only account-level fields).
    """
    numbers: set[str] = set()
    updates: list[MetaItem] = []
    problem: str | None = None
    # Field paths for error messages are built only on error: this walk runs for every webhook.
    for e, entry in enumerate(_envelope_entries(body)):
        if type(entry) is not dict:
            entry = as_mapping(entry, f"entry[{e}]")
        waba_id = entry.get("id")
        if not isinstance(waba_id, str):
            if waba_id is not None:
                problem = problem or f"entry[{e}].id must be a string"
            waba_id = ""
        elif not waba_id.strip():
            waba_id = ""
        changes = entry.get("changes")
        if changes is None:
            continue
        if not isinstance(changes, list):
            raise MappingError(f"entry[{e}].changes must be an array")
        for c, change in enumerate(changes):
            if type(change) is not dict:
                change = as_mapping(change, _change_path(e, c))
            value = change.get("value")
            if value is not None and type(value) is not dict:
                value = as_mapping(value, f"{_change_path(e, c)}.value")
            if value:
                number = _phone_number_id(value, e, c)
                if number:
                    numbers.add(number)
            if problem is not None:
                continue  # keep reading numbers: a malformed one is the earlier error
            field_name = change.get("field")
            if not isinstance(field_name, str):
                if field_name is not None:
                    problem = f"{_change_path(e, c)}.field must be a string"
                    continue
                field_name = ""
            elif not field_name.strip():
                field_name = ""
            if field_name != MESSAGES_FIELD:
                updates.append(_ignored(waba_id, field_name, value or {}))
                continue
            try:
                _split_messages_change(updates, waba_id, value or {}, e, c)
            except MappingError as exc:
                problem = str(exc)
    return MetaWebhook(frozenset(numbers), updates, problem)


def _is_object(value: object) -> TypeGuard[Mapping[str, Any]]:
    """A JSON object. ``type(...) is dict`` first: what JSON gives, without the slower ABC check."""
    return type(value) is dict or isinstance(value, Mapping)


def _plain(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return mapping if type(mapping) is dict else dict(mapping)


def _envelope_entries(body: object) -> list[Any]:
    envelope = as_mapping(body, "webhook body")
    if envelope.get("object") != META_OBJECT:
        raise MappingError(f"webhook body.object must be {META_OBJECT!r}")
    return as_list(envelope.get("entry"), "webhook body.entry")


def _change_path(e: int, c: int) -> str:
    return f"entry[{e}].changes[{c}]"


def _phone_number_id(value: Mapping[str, Any], e: int, c: int) -> str:
    """``value.metadata.phone_number_id``, stripped; "" when absent or blank."""
    metadata = value.get("metadata")
    if metadata is None:
        return ""
    if type(metadata) is not dict:
        metadata = as_mapping(metadata, f"{_change_path(e, c)}.value.metadata")
    number = metadata.get("phone_number_id")
    if number is None:
        return ""
    if not isinstance(number, str):
        raise MappingError(f"{_change_path(e, c)}.value.metadata.phone_number_id must be a string")
    return number.strip()


def _ignored(waba_id: str, field_name: str, value: Mapping[str, Any]) -> MetaItem:
    metadata = value.get("metadata")
    number = display = ""
    if isinstance(metadata, Mapping):
        number = _string_or_empty(metadata.get("phone_number_id"))
        display = _string_or_empty(metadata.get("display_phone_number"))
    return MetaItem("ignored", waba_id, field_name, number, display, value)


def _string_or_empty(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _split_messages_change(
    updates: list[MetaItem], waba_id: str, value: Mapping[str, Any], e: int, c: int
) -> None:
    """Append the updates of one ``messages`` change to ``updates``."""
    metadata = value.get("metadata")
    if type(metadata) is not dict:
        metadata = as_mapping(metadata, f"{_change_path(e, c)}.value.metadata")
    number = metadata.get("phone_number_id")
    if not isinstance(number, str) or not number.strip():
        raise MappingError(
            f"{_change_path(e, c)}.value.metadata.phone_number_id must be a non-empty string"
        )
    number = number.strip()
    display = metadata.get("display_phone_number")
    if not isinstance(display, str):
        if display is not None:
            raise MappingError(
                f"{_change_path(e, c)}.value.metadata.display_phone_number must be a string"
            )
        display = ""
    elif not display.strip():
        display = ""
    contacts = [one for one in _list(value, "contacts", e, c) if _is_object(one)]
    messages, statuses = _list(value, "messages", e, c), _list(value, "statuses", e, c)
    errors = _list(value, "errors", e, c)

    for index, element in enumerate(messages):
        problem = _message_problem(element)
        if problem:
            updates.append(
                MetaItem(
                    "invalid", waba_id, MESSAGES_FIELD, number, display, _as_element(element),
                    problem=f"messages[{index}]: {problem}",
                )
            )  # fmt: skip
            continue
        contact = _matching_contact(contacts, element.get("from"), element.get("from_user_id"))
        updates.append(
            MetaItem(
                "message", waba_id, MESSAGES_FIELD, number, display, element, contact, element["id"]
            )
        )
    for index, element in enumerate(statuses):
        problem = _status_problem(element)
        if problem:
            updates.append(
                MetaItem(
                    "invalid", waba_id, MESSAGES_FIELD, number, display, _as_element(element),
                    problem=f"statuses[{index}]: {problem}",
                )
            )  # fmt: skip
            continue
        contact = _matching_contact(
            contacts, element.get("recipient_id"), element.get("recipient_user_id")
        )
        dedupe_key = f"{element['id']}:{element['status']}"
        updates.append(
            MetaItem(
                "status", waba_id, MESSAGES_FIELD, number, display, element, contact, dedupe_key
            )
        )
    for index, element in enumerate(errors):
        if not _is_object(element):
            updates.append(
                MetaItem(
                    "invalid", waba_id, MESSAGES_FIELD, number, display, {},
                    problem=f"errors[{index}]: not an object",
                )
            )  # fmt: skip
            continue
        updates.append(MetaItem("error", waba_id, MESSAGES_FIELD, number, display, element))


def _list(value: Mapping[str, Any], key: str, e: int, c: int) -> list[Any]:
    found = value.get(key)
    if found is None:
        return []
    if not isinstance(found, list):
        raise MappingError(f"{_change_path(e, c)}.value.{key} must be an array")
    return found


def _as_element(element: object) -> Mapping[str, Any]:
    return element if _is_object(element) else {}


def _message_problem(element: object) -> str | None:
    if not _is_object(element):
        return "not an object"
    for key in ("id", "type"):
        value = element.get(key)
        if not isinstance(value, str) or not value.strip():
            return f"{key} must be a non-empty string"
    if "timestamp" not in element:
        return "timestamp is missing"
    return None


def _status_problem(element: object) -> str | None:
    if not _is_object(element):
        return "not an object"
    for key in ("id", "status"):
        value = element.get(key)
        if not isinstance(value, str) or not value.strip():
            return f"{key} must be a non-empty string"
    return None


def _matching_contact(
    contacts: list[Mapping[str, Any]], phone: object, bsuid: object
) -> Mapping[str, Any] | None:
    for contact in contacts:
        if isinstance(phone, str) and phone and contact.get("wa_id") == phone:
            return contact
        if isinstance(bsuid, str) and bsuid and contact.get("user_id") == bsuid:
            return contact
    # Old payloads: one contact per change, and its wa_id may differ from `from` (S-R-TEXT).
    return contacts[0] if len(contacts) == 1 else None
