"""What the Genesys client tests share: regions to try, and where a leaked secret would show."""

from __future__ import annotations

import pytest
import responses

REGIONS = ["mypurecloud.com", "mypurecloud.ie", "aps1.pure.cloud", "usw2.pure.cloud"]


def sent_timeout(call: responses.Call) -> object:
    """The ``timeout=`` the client passed to requests for this call."""
    return call.request.req_kwargs["timeout"]  # type: ignore[attr-defined]


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """Messages and every extra field of every record: where a leaked secret would show."""
    return "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)


def assert_no_secret(secret: str, *texts: str) -> None:
    for text in texts:
        assert secret not in text
