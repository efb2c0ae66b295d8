"""Who a WhatsApp user is to Genesys, and where to send a Genesys reply on WhatsApp.

Since 2026 a WhatsApp user may arrive with a phone number (``wa_id`` / ``from``), a
business-scoped user id (BSUID: ``user_id`` / ``from_user_id``, e.g. ``US.13491208655302741918``),
or both; a user with a username may come with the BSUID only (Meta's ``business-scoped-user-ids``
page under https://developers.facebook.com/documentation/business-messaging/whatsapp/).
Genesys threads a conversation on ``channel.from.id``, so that id must not change when the same
person shows up once by phone and once by BSUID, and must never be empty.

The rule — *first identifier seen wins, and every identifier seen with it points to it*:

1. Look up the alias store under :func:`alias_keys` (phone first, then BSUID) and pass the first
   hit to :func:`participant_id` as ``known_alias``.
2. With no hit, the participant id is the phone (digits, as in ``wa_id``), else the BSUID. Phone
   first keeps the id every conversation had before BSUIDs existed.
3. Record :func:`aliases_to_record` with *set-if-absent* (``SET NX``): each identifier of the
   payload then points to the participant id. If a set loses a race, use the stored value.

So a user first seen by phone stays that phone even when later payloads carry only the BSUID (it
was recorded as an alias), and a username user first seen by BSUID keeps the BSUID even after
sharing a phone. Phone and BSUID never collide as ids: a BSUID always has a ``.``; a phone never.

This module is pure: the alias store (I/O) belongs to the caller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

from interlink.mapping.wire import MappingError, optional_str

# A phone as webhooks write it: digits only (``wa_id``, ``from``); we accept a leading ``+`` and
# common separators from other sources and drop them. E.164 allows at most 15 digits.
_PHONE_DIGITS = re.compile(r"^[0-9]{5,15}$")
_PHONE_SEPARATORS = re.compile(r"[\s().-]")
# ``CC.`` + up to 128 alphanumerics, parent ids ``US.ENT.…``. Case is preserved.
_BSUID = re.compile(r"^[A-Za-z]{2}(\.[A-Za-z0-9]+){1,2}$")
_BSUID_MAX = 160

PHONE_ALIAS = "phone:"
BSUID_ALIAS = "bsuid:"


class GenesysParticipant(TypedDict):
    """``channel.from`` of an Open Messaging inbound message: ``idType`` ``Opaque``, an ``id``
    stable for one WhatsApp user, the profile name as ``nickname`` when there is one."""

    id: str
    idType: str
    nickname: NotRequired[str]


@dataclass(frozen=True, slots=True)
class UserIdentifiers:
    """What one payload says about its WhatsApp user. ``phone`` is digits only."""

    phone: str | None
    bsuid: str | None
    name: str | None = None


def normalize_phone(value: str) -> str:
    """Digits only (``+1 (650) 555-1234`` → ``16505551234``); MappingError if not a phone."""
    digits = _PHONE_SEPARATORS.sub("", value.strip()).removeprefix("+")
    if not _PHONE_DIGITS.match(digits):
        raise MappingError("phone number must be 5 to 15 digits")
    return digits


def normalize_bsuid(value: str) -> str:
    """The BSUID as given (case kept, surrounding whitespace dropped); MappingError if malformed."""
    bsuid = value.strip()
    if len(bsuid) > _BSUID_MAX or not _BSUID.match(bsuid):
        raise MappingError("business-scoped user id is malformed")
    return bsuid


def is_bsuid(value: str) -> bool:
    return len(value) <= _BSUID_MAX and bool(_BSUID.match(value))


def identifiers_of_message(
    message: Mapping[str, Any], contact: Mapping[str, Any] | None
) -> UserIdentifiers:
    """The sender of a ``messages[]`` item: ``from``/``from_user_id``, completed by its contact.

    The message's own fields win (``wa_id`` and ``from`` "may not always match", and ``from`` is
    the address the message came from). MappingError when neither a phone nor a BSUID is present.
    """
    phone = optional_str(message, "from", "message")
    bsuid = optional_str(message, "from_user_id", "message")
    if contact is not None:
        phone = phone or optional_str(contact, "wa_id", "contact")
        bsuid = bsuid or optional_str(contact, "user_id", "contact")
    return _identifiers(phone, bsuid, _profile_name(contact))


def identifiers_of_status(
    status: Mapping[str, Any], contact: Mapping[str, Any] | None
) -> UserIdentifiers:
    """The recipient of a ``statuses[]`` item: ``recipient_id``/``recipient_user_id`` (+ contact)."""
    phone = optional_str(status, "recipient_id", "status")
    bsuid = optional_str(status, "recipient_user_id", "status")
    if phone is not None and is_bsuid(phone.strip()):
        # Sent to a BSUID, Meta may echo it as the recipient id.
        phone, bsuid = None, bsuid or phone
    if contact is not None:
        phone = phone or optional_str(contact, "wa_id", "contact")
        bsuid = bsuid or optional_str(contact, "user_id", "contact")
    return _identifiers(phone, bsuid, _profile_name(contact))


def _identifiers(phone: str | None, bsuid: str | None, name: str | None) -> UserIdentifiers:
    if phone is None and bsuid is None:
        raise MappingError("the user has neither a phone number nor a business-scoped id")
    return UserIdentifiers(
        phone=normalize_phone(phone) if phone is not None else None,
        bsuid=normalize_bsuid(bsuid) if bsuid is not None else None,
        name=name,
    )


def _profile_name(contact: Mapping[str, Any] | None) -> str | None:
    """``profile.name``, else ``profile.username`` (2026), else None."""
    if contact is None:
        return None
    profile = contact.get("profile")
    if not isinstance(profile, Mapping):
        return None
    for key in ("name", "username"):
        value = profile.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


@dataclass(frozen=True, slots=True)
class IdentityChange:
    """A ``system`` message: the user's old identifiers and the new ones that replace them."""

    old: UserIdentifiers
    new_phone: str | None
    new_bsuid: str | None


def identity_change(message: Mapping[str, Any]) -> IdentityChange | None:
    """The change a ``system`` message reports, or None for any other message (or a system
    message of another kind).

    ``user_changed_number`` comes from the old number (``from``) with ``system.wa_id`` the new
    one; since August 2026 it also names the new and previous BSUIDs (``system.user_id`` /
    ``previous_user_id``), as a number change gives the user a new one. ``user_changed_user_id``
    names only the BSUIDs. System messages carry no ``contacts`` block. MappingError when the
    message names no old identifier or a malformed one.
    """
    if message.get("type") != "system":
        return None
    system = message.get("system")
    if not isinstance(system, Mapping):
        return None
    kind = system.get("type")
    if kind not in ("user_changed_number", "user_changed_user_id"):
        return None
    old_phone = optional_str(message, "from", "message")
    old_bsuid = optional_str(system, "previous_user_id", "message.system") or optional_str(
        message, "from_user_id", "message"
    )
    old = _identifiers(old_phone, old_bsuid, None)
    new_phone = (
        optional_str(system, "wa_id", "message.system") if kind == "user_changed_number" else None
    )
    new_bsuid = optional_str(system, "user_id", "message.system")
    return IdentityChange(
        old=old,
        new_phone=normalize_phone(new_phone) if new_phone else None,
        new_bsuid=normalize_bsuid(new_bsuid) if new_bsuid else None,
    )


def alias_keys(phone: str | None, bsuid: str | None) -> tuple[str, ...]:
    """The alias-store keys to look up, in order; pass the first hit to :func:`participant_id`.

    Keys are namespaced (``phone:<digits>``, ``bsuid:<id>``). Phone first: when the store knows
    both and they disagree (the user was seen once by phone, once by BSUID alone, never together
    before), the phone's participant is the one outbound replies and older conversations use.
    """
    keys = []
    if phone:
        keys.append(PHONE_ALIAS + normalize_phone(phone))
    if bsuid:
        keys.append(BSUID_ALIAS + normalize_bsuid(bsuid))
    return tuple(keys)


def participant_id(phone: str | None, bsuid: str | None, known_alias: str | None) -> str:
    """The Genesys ``channel.from.id`` of a WhatsApp user; stable and never empty.

    ``known_alias`` is the participant id the alias store holds for this user (first hit of
    :func:`alias_keys`) or None. Without it: the phone (digits), else the BSUID. MappingError when
    there is nothing to go by.
    """
    if known_alias is not None and known_alias.strip():
        return known_alias.strip()
    if phone:
        return normalize_phone(phone)
    if bsuid:
        return normalize_bsuid(bsuid)
    raise MappingError("the user has neither a phone number nor a business-scoped id")


def aliases_to_record(participant: str, phone: str | None, bsuid: str | None) -> dict[str, str]:
    """Alias-store entries to write with set-if-absent: every identifier → ``participant``.

    Includes the identifier that *is* the participant id, so that a lookup never depends on which
    rule chose it. Never overwrite: an existing entry is the older truth.
    """
    if not participant.strip():
        raise MappingError("participant id must not be empty")
    return {key: participant for key in alias_keys(phone, bsuid)}


def genesys_participant(participant: str, nickname: str | None = None) -> GenesysParticipant:
    """``channel.from`` for Genesys: ``{"id", "idType": "Opaque", "nickname"?}``.

    ``Opaque`` because the id may be a BSUID; Genesys does not document the format it expects for
    ``Phone``.
    """
    if not participant.strip():
        raise MappingError("participant id must not be empty")
    result: GenesysParticipant = {"id": participant, "idType": "Opaque"}
    if nickname and nickname.strip():
        # Genesys shows the nickname to the agent; keep it to one reasonable line.
        result["nickname"] = " ".join(nickname.split())[:100]
    return result


def whatsapp_recipient(
    participant: str, latest_phone: str | None = None, latest_bsuid: str | None = None
) -> str:
    """Where to send a reply for the Genesys user ``channel.to.id`` == ``participant``.

    A phone, when known, wins over a BSUID (sending to a BSUID is new and fails across business
    portfolios): ``latest_phone`` is the phone the caller last saw for this
    participant (e.g. kept in the conversation's state), ``latest_bsuid`` its latest BSUID (after
    a ``user_changed_user_id`` the participant id may be the old one). Returns ``+<digits>`` for a
    phone (without ``+`` Meta would prepend the business number's country code) or the BSUID as
    is.
    """
    if latest_phone:
        return "+" + normalize_phone(latest_phone)
    if latest_bsuid and is_bsuid(latest_bsuid.strip()):
        return latest_bsuid.strip()
    candidate = participant.strip()
    if is_bsuid(candidate):
        return candidate
    try:
        return "+" + normalize_phone(candidate)
    except MappingError:
        raise MappingError("Genesys recipient id is neither a phone number nor a BSUID") from None


def recipient_fields(recipient: str) -> dict[str, str]:
    """The addressing fields of a Graph API send: ``{"to": "+<digits>"}`` for a phone,
    ``{"recipient": "<BSUID>"}`` for a business-scoped id (Graph sends since 2026)."""
    value = recipient.strip()
    if is_bsuid(value):
        return {"recipient": value}
    return {"to": "+" + normalize_phone(value)}
