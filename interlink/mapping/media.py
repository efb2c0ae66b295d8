"""WhatsApp media: what a media message carries, enough to fetch it, and a safe file name for it.

``image``, ``sticker`` become Genesys ``Image``; ``video`` ``Video``; ``audio`` (voice notes too)
``Audio``; ``document`` ``File``. Documents keep their (cleaned) file name; other media get one made
from the kind, the media id and the MIME type.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from interlink.mapping.wire import MappingError, as_mapping, base_mime, optional_str, required_str

MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
GENESYS_MEDIA_TYPE = {
    "image": "Image",
    "sticker": "Image",
    "video": "Video",
    "audio": "Audio",
    "document": "File",
}
# Extensions for names we make up; mimetypes would answer ".jpe" or nothing for some of these.
_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/gif": "gif",
    "video/mp4": "mp4",
    "video/3gpp": "3gp",
    "audio/ogg": "ogg",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/aac": "aac",
    "audio/amr": "amr",
    "application/pdf": "pdf",
    "text/plain": "txt",
}
_FILENAME_MAX = 200
_UNSAFE_FILENAME = re.compile(r'[\\/:*?"<>|]+')


@dataclass(frozen=True, slots=True)
class MediaRef:
    """A WhatsApp media item, enough to fetch it (``GET /{media_id}``) and to describe it.

    ``kind`` is the WhatsApp type (``image video audio document sticker``); ``mime_type`` is as
    Meta sent it (parameters kept, e.g. ``audio/ogg; codecs=opus``); ``filename`` is the document's
    name or one made up; ``url`` is Meta's lookaside URL when the payload had one (it still needs
    the access token); ``voice`` marks a recorded voice note.
    """

    kind: str
    media_id: str
    mime_type: str
    filename: str
    phone_number_id: str
    sha256: str | None = None
    url: str | None = None
    voice: bool = False


def media_ref(message: Mapping[str, Any], *, phone_number_id: str) -> MediaRef:
    """The :class:`MediaRef` of a media message (image, video, audio, document, sticker)."""
    kind = required_str(message, "type", "message")
    if kind not in MEDIA_KINDS:
        raise MappingError("message is not a media message")
    media = as_mapping(message.get(kind), f"message.{kind}")
    where = f"message.{kind}"
    media_id = required_str(media, "id", where)
    mime_type = required_str(media, "mime_type", where)
    if "/" not in base_mime(mime_type):
        raise MappingError(f"{where}.mime_type is not a MIME type")
    given_name = optional_str(media, "filename", where) if kind == "document" else None
    filename = safe_filename(given_name) if given_name else None
    voice = media.get("voice") is True
    return MediaRef(
        kind=kind,
        media_id=media_id,
        mime_type=mime_type,
        filename=filename or synthesized_filename(kind, media_id, mime_type, voice=voice),
        phone_number_id=phone_number_id,
        sha256=optional_str(media, "sha256", where),
        url=optional_str(media, "url", where),
        voice=voice,
    )


def safe_filename(name: str) -> str | None:
    """A file name fit to show and to put in a header: no directories, no control characters,
    at most 200 characters (extension kept). None when nothing usable is left."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE_FILENAME.sub("_", name).strip().strip(".")
    if not name:
        return None
    if len(name) > _FILENAME_MAX:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: _FILENAME_MAX - len(ext) - 1] + "." + ext
        else:
            name = name[:_FILENAME_MAX]
    return name


def synthesized_filename(kind: str, media_id: str, mime_type: str, *, voice: bool = False) -> str:
    """``image-1003383421387256.jpg``, ``voice-….ogg``: a name from the kind, id and MIME type."""
    mime = base_mime(mime_type)
    ext = _EXTENSIONS.get(mime)
    if ext is None:
        guessed = mimetypes.guess_extension(mime)
        ext = guessed.lstrip(".") if guessed else "bin"
    prefix = "voice" if voice else kind
    safe_id = re.sub(r"[^A-Za-z0-9_-]", "", media_id)[:64] or "media"
    return f"{prefix}-{safe_id}.{ext}"
