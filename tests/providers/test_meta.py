"""The Graph API client against ``responses``: URLs, headers, bodies, error classes, media rules."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator

import pytest
import requests
import responses
import urllib3.exceptions
from responses import matchers

from interlink.providers.errors import (
    ForbiddenFetch,
    MetaError,
    PermanentError,
    SendUncertain,
    TooLarge,
    TransientError,
)
from interlink.providers.meta import (
    MEDIA_URL_LIFETIME,
    GraphClient,
    MediaInfo,
    is_retryable_send,
    send_with_retry,
)
from interlink.providers.retry import RetryPolicy
from interlink.settings import DEFAULT_META_GRAPH_URL

GRAPH = DEFAULT_META_GRAPH_URL
PNID = "106540352242922"
MESSAGES = f"{GRAPH}/{PNID}/messages"
WAMID = "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA"
TEXT = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": "+16505551234",
    "type": "text",
    "text": {"body": "Hello from the agent"},
    "biz_opaque_callback_data": "genesys:8085cbb3",
}


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def token() -> str:
    return "test-" + secrets.token_urlsafe(48)


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(token: str, clock: Clock) -> GraphClient:
    return GraphClient(requests.Session(), GRAPH, PNID, token, timeout=(2.0, 9.0), clock=clock)


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """Messages and every extra field of every record: where a leaked secret would show."""
    return "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)


def graph_error(code: int, message: str = "error", details: str = "", **extra: object) -> dict:
    error: dict[str, object] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details},
        "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam",
    }
    error.update(extra)
    return {"error": error}


def refused_connection(url: str) -> requests.ConnectionError:
    reason = urllib3.exceptions.NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, url, reason))  # type: ignore[arg-type]


# --- send ----------------------------------------------------------------------------------


def test_send_posts_the_body_and_returns_the_wamid(
    rsps: responses.RequestsMock, client: GraphClient, token: str
) -> None:
    rsps.post(
        MESSAGES,
        json={
            "messaging_product": "whatsapp",
            "contacts": [{"input": "+16505551234", "wa_id": "16505551234"}],
            "messages": [{"id": WAMID}],
        },
        match=[
            matchers.header_matcher(
                {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            ),
            matchers.json_params_matcher(TEXT),
        ],
    )
    assert client.send(TEXT) == WAMID
    assert rsps.calls[0].request.req_kwargs["timeout"] == (2.0, 9.0)  # type: ignore[attr-defined]


def test_send_to_a_simulator_base(rsps: responses.RequestsMock, token: str) -> None:
    rsps.post(
        f"http://127.0.0.1:8998/graph/v25.0/{PNID}/messages", json={"messages": [{"id": "w"}]}
    )
    client = GraphClient(requests.Session(), "http://127.0.0.1:8998/graph/v25.0/", PNID, token)
    assert client.send(TEXT) == "w"


def test_send_error_is_parsed(
    rsps: responses.RequestsMock,
    client: GraphClient,
    token: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    rsps.post(
        MESSAGES,
        status=400,
        json=graph_error(
            131047,
            "Re-engagement message",
            "More than 24 hours have passed since the customer last replied to this number.",
        ),
    )
    with pytest.raises(MetaError) as caught:
        client.send(TEXT)
    error = caught.value
    assert (error.code, error.subcode, error.http_status) == (131047, None, 400)
    assert error.title == "Re-engagement message"
    assert error.details is not None and error.details.startswith("More than 24 hours")
    assert error.fbtrace_id == "Az8or2yhqkZfEZ-_4Qn_Bam"
    assert error.kind == "fatal"
    logged = everything_logged(caplog)
    assert "Az8or2yhqkZfEZ-_4Qn_Bam" in logged and "131047" in logged
    assert token not in logged and token not in str(error) and token not in repr(error)


def test_token_echoed_by_meta_is_scrubbed(
    rsps: responses.RequestsMock, client: GraphClient, token: str
) -> None:
    rsps.post(
        MESSAGES,
        status=401,
        json=graph_error(190, f"Malformed access token {token}", f"token {token}"),
    )
    with pytest.raises(MetaError) as caught:
        client.send(TEXT)
    assert caught.value.is_auth_error and caught.value.kind == "fatal"
    assert token not in str(caught.value) and token not in repr(caught.value)
    assert token not in caught.value.title and token not in (caught.value.details or "")


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (429, 4, "retry"),
        (429, 80007, "retry"),
        (429, 130429, "retry"),
        (500, 131000, "retry"),
        (503, 2, "retry"),
        (503, 133004, "retry"),
        (429, 131056, "pair_rate"),
        (400, 131047, "fatal"),
        (400, 131026, "fatal"),
        (401, 190, "fatal"),
        (400, 100, "fatal"),
        (500, 3, "fatal"),  # capability: a 500 that no retry fixes
        (502, 999999, "retry"),  # an unknown code with a 5xx: an outage
    ],
)
def test_error_kinds(
    rsps: responses.RequestsMock, client: GraphClient, status: int, code: int, kind: str
) -> None:
    rsps.post(MESSAGES, status=status, json=graph_error(code))
    with pytest.raises(MetaError) as caught:
        client.send(TEXT)
    assert caught.value.kind == kind
    assert caught.value.code == code


def test_non_json_5xx_is_retry(rsps: responses.RequestsMock, client: GraphClient) -> None:
    rsps.post(MESSAGES, status=502, body="<html>Bad Gateway</html>", headers={"Retry-After": "4"})
    with pytest.raises(MetaError) as caught:
        client.send(TEXT)
    assert caught.value.code is None
    assert caught.value.kind == "retry"
    assert caught.value.retry_after == 4.0


def test_read_timeout_is_uncertain(rsps: responses.RequestsMock, client: GraphClient) -> None:
    rsps.post(MESSAGES, body=requests.ReadTimeout("read timed out"))
    with pytest.raises(SendUncertain):
        client.send(TEXT)


def test_dropped_connection_is_uncertain(rsps: responses.RequestsMock, client: GraphClient) -> None:
    aborted = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError())
    rsps.post(MESSAGES, body=requests.ConnectionError(aborted))
    with pytest.raises(SendUncertain):
        client.send(TEXT)


def test_refused_connection_is_transient(rsps: responses.RequestsMock, client: GraphClient) -> None:
    rsps.post(MESSAGES, body=refused_connection(MESSAGES))
    with pytest.raises(TransientError):
        client.send(TEXT)


def test_200_without_an_id_is_uncertain(rsps: responses.RequestsMock, client: GraphClient) -> None:
    rsps.post(MESSAGES, json={"messaging_product": "whatsapp", "messages": []})
    with pytest.raises(SendUncertain):
        client.send(TEXT)


def test_repr_masks_the_token(client: GraphClient, token: str) -> None:
    assert token not in repr(client)
    assert f"****{token[-4:]}" in repr(client)


# --- send_with_retry -----------------------------------------------------------------------

POLICY = RetryPolicy(
    max_attempts=3,
    base=1.0,
    cap=10.0,
    rng=lambda: 1.0,
    retry_on=is_retryable_send,
)


def test_send_with_retry_retries_retryable_errors(
    rsps: responses.RequestsMock, client: GraphClient
) -> None:
    sleeps: list[float] = []
    rsps.post(MESSAGES, status=429, json=graph_error(130429, "Rate limit hit"))
    rsps.post(MESSAGES, body=refused_connection(MESSAGES))
    rsps.post(MESSAGES, json={"messages": [{"id": WAMID}]})
    assert send_with_retry(client, TEXT, POLICY, sleeps.append) == WAMID
    assert sleeps == [1.0, 2.0]


def test_send_with_retry_gives_up_with_the_last_meta_error(
    rsps: responses.RequestsMock, client: GraphClient
) -> None:
    sleeps: list[float] = []
    rsps.post(MESSAGES, status=503, json=graph_error(133004, "Server temporarily unavailable"))
    with pytest.raises(MetaError) as caught:
        send_with_retry(client, TEXT, POLICY, sleeps.append)
    assert caught.value.code == 133004
    assert len(rsps.calls) == 3


@pytest.mark.parametrize(
    ("response", "error"),
    [
        ({"body": requests.ReadTimeout("read timed out")}, SendUncertain),
        ({"status": 429, "json": graph_error(131056, "Pair rate limit hit")}, MetaError),
        ({"status": 400, "json": graph_error(131026, "Message undeliverable")}, MetaError),
    ],
)
def test_send_with_retry_never_repeats_uncertain_pair_rate_or_fatal(
    rsps: responses.RequestsMock,
    client: GraphClient,
    response: dict,
    error: type[Exception],
) -> None:
    sleeps: list[float] = []
    rsps.post(MESSAGES, **response)
    with pytest.raises(error):
        send_with_retry(client, TEXT, POLICY, sleeps.append)
    assert len(rsps.calls) == 1
    assert sleeps == []


def test_throughput_upgrade_waits_a_minute(
    rsps: responses.RequestsMock, client: GraphClient
) -> None:
    sleeps: list[float] = []
    rsps.post(MESSAGES, status=400, json=graph_error(131057, "Account in maintenance mode"))
    rsps.post(MESSAGES, json={"messages": [{"id": WAMID}]})
    assert send_with_retry(client, TEXT, POLICY, sleeps.append) == WAMID
    assert sleeps == [60.0]


# --- mark_read -----------------------------------------------------------------------------


@pytest.mark.parametrize("typing", [False, True])
def test_mark_read(
    rsps: responses.RequestsMock, client: GraphClient, token: str, typing: bool
) -> None:
    body: dict[str, object] = {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": WAMID,
    }
    if typing:
        body["typing_indicator"] = {"type": "text"}
    rsps.post(
        MESSAGES,
        json={"success": True},
        match=[
            matchers.json_params_matcher(body),
            matchers.header_matcher({"Authorization": f"Bearer {token}"}),
        ],
    )
    client.mark_read(WAMID, typing=typing)


def test_mark_read_timeout_is_transient(rsps: responses.RequestsMock, client: GraphClient) -> None:
    rsps.post(MESSAGES, body=requests.ReadTimeout("read timed out"))
    with pytest.raises(TransientError):
        client.mark_read(WAMID)


# --- media ---------------------------------------------------------------------------------

MEDIA_ID = "1003383421387256"
LOOKASIDE = f"https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid={MEDIA_ID}&ext=1"


def register_media(rsps: responses.RequestsMock, token: str, url: str = LOOKASIDE) -> None:
    rsps.get(
        f"{GRAPH}/{MEDIA_ID}",
        json={
            "messaging_product": "whatsapp",
            "url": url,
            "mime_type": "image/jpeg",
            "sha256": "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=",
            "file_size": "303833",
            "id": MEDIA_ID,
        },
        match=[
            matchers.query_param_matcher({"phone_number_id": PNID}),
            matchers.header_matcher({"Authorization": f"Bearer {token}"}),
        ],
    )


def test_media_url(rsps: responses.RequestsMock, client: GraphClient, token: str) -> None:
    register_media(rsps, token)
    assert client.media_url(MEDIA_ID) == MediaInfo(
        url=LOOKASIDE,
        mime_type="image/jpeg",
        sha256="SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=",
        file_size=303833,
    )


def test_media_url_error(rsps: responses.RequestsMock, client: GraphClient) -> None:
    rsps.get(f"{GRAPH}/{MEDIA_ID}", status=400, json=graph_error(100, "Invalid parameter"))
    with pytest.raises(MetaError) as caught:
        client.media_url(MEDIA_ID)
    assert caught.value.code == 100 and caught.value.kind == "fatal"


def test_media_url_must_be_https(
    rsps: responses.RequestsMock, client: GraphClient, token: str
) -> None:
    register_media(rsps, token, url="http://lookaside.fbsbx.com/x")
    with pytest.raises(PermanentError):
        client.media_url(MEDIA_ID)


def test_download_a_url_from_graph(
    rsps: responses.RequestsMock, client: GraphClient, token: str
) -> None:
    register_media(rsps, token)
    payload = secrets.token_bytes(200_000)
    rsps.get(
        LOOKASIDE,
        body=payload,
        content_type="image/jpeg",
        match=[matchers.header_matcher({"Authorization": f"Bearer {token}"})],
    )
    info = client.media_url(MEDIA_ID)
    chunks = list(client.download(info.url))
    assert len(chunks) > 1  # streamed, not read whole
    assert b"".join(chunks) == payload


def test_download_refuses_urls_not_from_graph(
    rsps: responses.RequestsMock, client: GraphClient
) -> None:
    # A webhook's own "url" field is the payload's say-so: resolve the media id instead.
    with pytest.raises(ForbiddenFetch):
        client.download(LOOKASIDE)
    with pytest.raises(ForbiddenFetch):
        client.download("https://evil.example/steal")
    assert len(rsps.calls) == 0


def test_download_refuses_a_graph_url_it_did_not_hand_out(
    rsps: responses.RequestsMock, client: GraphClient
) -> None:
    # On the Graph origin but never named by GET /{media-id}: the token fetches nothing else.
    with pytest.raises(ForbiddenFetch):
        client.download(f"{GRAPH}/{PNID}/phone_numbers")
    assert len(rsps.calls) == 0


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example\\@lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1",
        "https://u:p@lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1",
        "https://lookaside.fbsbx.com:8443/whatsapp_business/attachments/?mid=1",
        "https://127.0.0.1/whatsapp_business/attachments/?mid=1",
        "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1\r\nX: y",
    ],
)
def test_media_url_refuses_an_ambiguous_url(
    rsps: responses.RequestsMock, client: GraphClient, token: str, url: str
) -> None:
    register_media(rsps, token, url=url)
    with pytest.raises(PermanentError) as caught:
        client.media_url(MEDIA_ID)
    assert caught.value.code == "media.url.invalid"


def test_a_media_redirect_on_the_same_origin_keeps_the_token_and_another_host_gets_none(
    rsps: responses.RequestsMock, client: GraphClient, token: str
) -> None:
    register_media(rsps, token)
    moved = "https://lookaside.fbsbx.com/moved?mid=1"
    cdn = "https://cdn.fbsbx.example/blob?sig=abc"
    rsps.get(LOOKASIDE, status=302, headers={"Location": "/moved?mid=1"})
    rsps.get(moved, status=307, headers={"Location": cdn})
    rsps.get(cdn, body=b"jpeg", content_type="image/jpeg")
    assert client.download_bytes(client.media_url(MEDIA_ID).url) == b"jpeg"
    auth = [call.request.headers.get("Authorization") for call in rsps.calls]
    assert auth == [f"Bearer {token}"] * 3 + [None]


@pytest.mark.parametrize(
    "location",
    [
        "http://cdn.fbsbx.example/blob",
        "https://169.254.169.254/latest/meta-data/",
        "https://cdn.fbsbx.example:8080/blob",
        "https://cdn.fbsbx.example\\@graph.facebook.com/blob",
    ],
)
def test_a_media_redirect_off_https_or_to_an_address_is_refused(
    rsps: responses.RequestsMock, client: GraphClient, token: str, location: str
) -> None:
    register_media(rsps, token)
    rsps.get(LOOKASIDE, status=302, headers={"Location": location})
    url = client.media_url(MEDIA_ID).url
    with pytest.raises(ForbiddenFetch) as caught:
        client.download(url)
    assert token not in str(caught.value)
    assert len(rsps.calls) == 2  # the lookup and the redirect, nothing after


def test_download_refuses_an_expired_url(
    rsps: responses.RequestsMock, client: GraphClient, token: str, clock: Clock
) -> None:
    register_media(rsps, token)
    client.media_url(MEDIA_ID)
    clock.now += MEDIA_URL_LIFETIME + 1
    with pytest.raises(ForbiddenFetch):
        client.download(LOOKASIDE)


@pytest.mark.parametrize(("status", "error"), [(404, PermanentError), (500, TransientError)])
def test_download_errors(
    rsps: responses.RequestsMock,
    client: GraphClient,
    token: str,
    status: int,
    error: type[Exception],
) -> None:
    register_media(rsps, token)
    rsps.get(LOOKASIDE, status=status, body="nope")
    client.media_url(MEDIA_ID)
    with pytest.raises(error):
        client.download(LOOKASIDE)


def test_download_stops_past_max_bytes(
    rsps: responses.RequestsMock, client: GraphClient, token: str
) -> None:
    register_media(rsps, token)
    rsps.get(LOOKASIDE, body=b"x" * 5000, content_type="image/jpeg")
    client.media_url(MEDIA_ID)
    with pytest.raises(TooLarge):
        client.download_bytes(LOOKASIDE, max_bytes=4096)


def test_download_stops_past_max_bytes_while_streaming(
    rsps: responses.RequestsMock, client: GraphClient, token: str
) -> None:
    register_media(rsps, token)
    # No Content-Length: the limit is enforced on the bytes as they arrive.
    rsps.get(LOOKASIDE, body=b"x" * 200_000, auto_calculate_content_length=False)
    client.media_url(MEDIA_ID)
    with pytest.raises(TooLarge):
        client.download_bytes(LOOKASIDE, max_bytes=100_000)


def test_upload(rsps: responses.RequestsMock, client: GraphClient, token: str) -> None:
    data = secrets.token_bytes(1000)
    rsps.post(
        f"{GRAPH}/{PNID}/media",
        json={"id": "987654321"},
        match=[
            matchers.header_matcher({"Authorization": f"Bearer {token}"}),
            matchers.multipart_matcher(
                files={"file": ("agent.png", data, "image/png")},
                data={"messaging_product": "whatsapp", "type": "image/png"},
            ),
        ],
    )
    assert client.upload(data, "image/png", "agent.png") == "987654321"


def test_upload_timeout_is_transient(rsps: responses.RequestsMock, client: GraphClient) -> None:
    rsps.post(f"{GRAPH}/{PNID}/media", body=requests.ReadTimeout("read timed out"))
    with pytest.raises(TransientError):
        client.upload(b"x", "image/png", "a.png")
