"""Small, strict readers for untrusted JSON, shared by the mapping modules.

Every payload the mappers see comes from outside. These helpers turn "missing", "wrong type" and
"out of range" into one exception, :class:`MappingError`, whose message names the field but never
quotes the payload (it may hold personal data) — so a caller catches one type, never
``KeyError``/``TypeError``/``AttributeError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# Unix seconds accepted as a message time: after 2001-09-09 and before 2286 (10 digits). Meta's
# timestamps are strings of Unix seconds; anything else is a malformed payload, not a date to guess.
_MIN_UNIX = 1_000_000_000
_MAX_UNIX = 9_999_999_999
# The most digits a number read from a payload may have: every count, size, error code and time
# on either wire fits in 18 (and in msgpack's 64 bits, so the inbox stores it as a number).
MAX_DIGITS = 18


class MappingError(ValueError):
    """A payload (or one item of it) cannot be mapped: a field is missing, of the wrong type or out
    of range. The message names the field, never its content."""


def as_mapping(value: object, where: str) -> Mapping[str, Any]:
    if type(value) is dict:  # what JSON gives: skips the slower ABC check
        return value
    if not isinstance(value, Mapping):
        raise MappingError(f"{where} must be an object")
    return value


def as_list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise MappingError(f"{where} must be an array")
    return value


def optional_list(parent: Mapping[str, Any], key: str, where: str) -> list[Any]:
    """``parent[key]`` as a list; absent or null is an empty list."""
    value = parent.get(key)
    if value is None:
        return []
    return as_list(value, f"{where}.{key}")


def required_str(parent: Mapping[str, Any], key: str, where: str) -> str:
    """A non-empty string (surrounding whitespace kept: ids are opaque)."""
    value = parent.get(key)
    if not isinstance(value, str) or not value.strip():
        raise MappingError(f"{where}.{key} must be a non-empty string")
    return value


def optional_str(parent: Mapping[str, Any], key: str, where: str) -> str | None:
    """A string, or None when absent, null or blank; any other type is an error."""
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MappingError(f"{where}.{key} must be a string")
    return value if value.strip() else None


def optional_object(parent: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any] | None:
    value = parent.get(key)
    if value is None:
        return None
    return as_mapping(value, f"{where}.{key}")


def whole_number(value: object, where: str, *, max_digits: int = MAX_DIGITS) -> int:
    """A whole number sent as a JSON integer or as a string of ASCII digits (surrounding
    whitespace ignored), of at most ``max_digits`` digits.

    The digit count is checked before ``int()`` runs: ``int()`` of a long digit string costs
    quadratic time and raises a bare ValueError past 4,300 digits, and this runs on bodies read
    before their signature is checked. An integer JSON already parsed is bounded the same way, so
    that no caller formats or stores a number of thousands of digits.
    """
    if isinstance(value, bool):  # bool is an int subclass; True is not a number here
        raise MappingError(f"{where} must be a whole number")
    if isinstance(value, int):
        if abs(value) < 10**max_digits:
            return value
        raise MappingError(f"{where} is out of range")
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            if len(text) > max_digits:
                raise MappingError(f"{where} is out of range")
            return int(text)
    raise MappingError(f"{where} must be a whole number")


def unix_seconds(value: object, where: str) -> int:
    """Meta's ``timestamp``: Unix seconds as a decimal string (as documented) or an int."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MappingError(f"{where} must be Unix seconds")
    seconds = whole_number(value, where)
    if not _MIN_UNIX <= seconds <= _MAX_UNIX:
        raise MappingError(f"{where} is out of range")
    return seconds


def iso_utc(seconds: float) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, the form Genesys shows: ``2026-01-02T10:00:00.000Z``."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def utf16_length(text: str) -> int:
    """Length as JavaScript and most UIs count it (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int) -> list[str]:
    """Cut ``text`` into parts of at most ``limit`` UTF-16 units, nothing dropped.

    Cuts after the last newline, else after the last whitespace, in the second half of a part; a
    text without either is cut hard (between code points, never inside one). Counting UTF-16
    units is the conservative reading of both 4000 (Genesys) and 4096 (WhatsApp).
    """
    if limit < 2:
        raise ValueError("limit must be at least 2")
    parts: list[str] = []
    rest = text
    while utf16_length(rest) > limit:
        cut = _fit(rest, limit)
        window = rest[:cut]
        floor = cut // 2
        best = window.rfind("\n", floor)
        if best < 0:
            best = max(window.rfind(" ", floor), window.rfind("\t", floor))
        if best > 0:
            cut = best + 1
        parts.append(rest[:cut])
        rest = rest[cut:]
    if rest or not parts:
        parts.append(rest)
    return parts


def _fit(text: str, limit: int) -> int:
    """How many code points of ``text`` fit in ``limit`` UTF-16 units (at least one)."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return max(index, 1)
    return len(text)


def base_mime(mime: str) -> str:
    """``"audio/ogg; codecs=opus"`` → ``"audio/ogg"``: lower case, parameters dropped."""
    return mime.split(";", 1)[0].strip().lower()
