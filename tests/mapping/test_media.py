"""WhatsApp media references: what a media message carries, and the file names shown for it."""

import json
from pathlib import Path
from typing import Any

from interlink.mapping import read_meta_webhook
from interlink.mapping.media import media_ref

PAYLOADS = Path(__file__).parents[1] / "support" / "payloads"
PNID = "106540352242922"


def message_of(name: str) -> dict[str, Any]:
    [item] = read_meta_webhook(json.loads((PAYLOADS / name).read_text())).updates()
    assert item.kind == "message"
    return dict(item.element)


def test_document_reference() -> None:
    ref = media_ref(message_of("meta_document.json"), phone_number_id=PNID)
    assert (ref.kind, ref.media_id, ref.phone_number_id) == ("document", "5003383421387260", PNID)
    assert ref.mime_type == "application/pdf"


def test_hostile_document_filename_is_sanitized() -> None:
    message = message_of("meta_document.json")
    message["document"]["filename"] = "../../etc/pass\x00wd\r\n.pdf"
    ref = media_ref(message, phone_number_id=PNID)
    assert ref.filename == "passwd.pdf"
    message["document"]["filename"] = "..\\"
    assert media_ref(message, phone_number_id=PNID).filename == "document-5003383421387260.pdf"
    message["document"]["filename"] = "a" * 500 + ".pdf"
    name = media_ref(message, phone_number_id=PNID).filename
    assert len(name) == 200 and name.endswith(".pdf")
