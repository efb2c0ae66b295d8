"""Agent attachment downloads against ``responses``: which hosts get the token, redirects, the
size limit, errors."""

from __future__ import annotations

import json
import secrets

import pytest
import requests
import responses
from responses import matchers

from interlink.providers.errors import (
    ForbiddenFetch,
    PermanentError,
    TooLarge,
    TransientError,
)
from interlink.providers.genesys import (
    DownloadHosts,
    download_attachment,
    genesys_download_hosts,
)
from interlink.settings import Settings
from tests.providers.genesys.calls import sent_timeout

IE_HOSTS = genesys_download_hosts(Settings(), "mypurecloud.ie")
SIM = Settings(genesys_api_url="http://127.0.0.1:8999/genesys/{region}/api")


def test_download_hosts_default_and_simulator() -> None:
    assert IE_HOSTS == DownloadHosts(
        frozenset({"https://api-downloads.mypurecloud.ie", "https://api.mypurecloud.ie"})
    )
    # A path-mounted API URL (the simulator's) admits downloads under its parent only.
    assert genesys_download_hosts(SIM, "aps1.pure.cloud") == DownloadHosts(
        frozenset({"https://api-downloads.aps1.pure.cloud", "http://127.0.0.1:8999"}),
        "http://127.0.0.1:8999",
        "/genesys/aps1.pure.cloud",
    )


def test_download_attachment_sends_the_token_to_the_download_host(
    rsps: responses.RequestsMock,
) -> None:
    token = secrets.token_urlsafe(40)
    url = "https://api-downloads.mypurecloud.ie/api/v2/downloads/pce9abc"
    rsps.get(
        url,
        body=b"\x89PNG-bytes",
        content_type="image/png",
        match=[matchers.header_matcher({"Authorization": f"Bearer {token}"})],
    )
    data, mime = download_attachment(
        requests.Session(),
        url,
        allowed_hosts=IE_HOSTS,
        token=token,
        timeout=4.0,
    )
    assert (data, mime) == (b"\x89PNG-bytes", "image/png")
    assert sent_timeout(rsps.calls[0]) == 4.0


def test_download_follows_the_signed_redirect_without_the_token(
    rsps: responses.RequestsMock,
) -> None:
    token = secrets.token_urlsafe(40)
    url = "https://api-downloads.mypurecloud.ie/api/v2/downloads/pce9abc"
    signed = "https://storage.example.net/bucket/obj?X-Amz-Signature=abc"
    rsps.get(url, status=303, headers={"Location": signed})
    rsps.get(signed, body=b"data", content_type="application/pdf")
    data, mime = download_attachment(
        requests.Session(),
        url,
        allowed_hosts=IE_HOSTS,
        token=token,
    )
    assert (data, mime) == (b"data", "application/pdf")
    assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {token}"
    assert "Authorization" not in rsps.calls[1].request.headers


def test_download_refuses_a_redirect_to_plain_http(rsps: responses.RequestsMock) -> None:
    url = "https://api-downloads.mypurecloud.ie/api/v2/downloads/pce9abc"
    rsps.get(url, status=302, headers={"Location": "http://evil.example/x"})
    with pytest.raises(ForbiddenFetch):
        download_attachment(
            requests.Session(),
            url,
            allowed_hosts=IE_HOSTS,
            token="t",
        )


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/api/v2/downloads/x",
        "http://api-downloads.mypurecloud.ie/api/v2/downloads/x",  # downgrade to http
        "https://api-downloads.mypurecloud.de/api/v2/downloads/x",  # another region
        "https://api-downloads.mypurecloud.ie.evil.example/x",
        "file:///etc/passwd",
        "https://api-downloads.mypurecloud.ie@evil.example/x",
        "https://evil.example\\@api-downloads.mypurecloud.ie/api/v2/downloads/x",
        "https://evil.example:443\\@api-downloads.mypurecloud.ie/api/v2/downloads/x",
        "https://u:p@api-downloads.mypurecloud.ie/api/v2/downloads/x",
        "https://api-downloads.mypurecloud.ie:8443/api/v2/downloads/x",
        "https://api-downloads.mypurecloud.ie./api/v2/downloads/x",
        # Genesys's own hosts, but not a download: the token must not fetch the rest of the API.
        "https://api.mypurecloud.ie/api/v2/users/me",
        "https://api-downloads.mypurecloud.ie/api/v2/users/me",
        "https://api-downloads.mypurecloud.ie/api/v2/downloads/x/../../users/me",
        "https://api-downloads.mypurecloud.ie/api/v2/downloads/%2e%2e/%2e%2e/users/me",
        "https://api-downloads.mypurecloud.ie/api/v2/downloads/%2E%2E",
        "https://api.mypurecloud.ie/api/v2/users/me/api/v2/downloads/x",
        "https://api-downloads.mypurecloud.ie/api/v2/downloads/x\tX",
        "https://api-downloads.mypurecloud.ie/api/v2/downloads/x\r\nX-Evil: 1",
        "https://api-downloads.mypurecloud.ie/api/v2/downloads/x y",
        " https://api-downloads.mypurecloud.ie/api/v2/downloads/x",
        "https://api-downloads.mypurecloud.ie/api/v2/downloads/x\u00e9",
        "",
    ],
)
def test_download_refuses_other_hosts_without_a_request(
    rsps: responses.RequestsMock, url: str
) -> None:
    token = secrets.token_urlsafe(40)
    with pytest.raises(ForbiddenFetch) as caught:
        download_attachment(
            requests.Session(),
            url,
            allowed_hosts=IE_HOSTS,
            token=token,
        )
    assert len(rsps.calls) == 0
    assert token not in str(caught.value)


def test_download_from_the_simulator_api_host(rsps: responses.RequestsMock) -> None:
    token = secrets.token_urlsafe(40)
    url = "http://127.0.0.1:8999/genesys/mypurecloud.ie/api-downloads/api/v2/downloads/d1"
    signed = "http://127.0.0.1:8999/genesys/mypurecloud.ie/api-downloads/signed/d1?signature=s"
    rsps.get(url, status=302, headers={"Location": signed})
    rsps.get(signed, body=b"sim", content_type="image/jpeg")
    data, mime = download_attachment(
        requests.Session(),
        url,
        allowed_hosts=genesys_download_hosts(SIM, "mypurecloud.ie"),
        token=token,
    )
    assert (data, mime) == (b"sim", "image/jpeg")
    assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {token}"
    assert "Authorization" not in rsps.calls[1].request.headers  # not a download path


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8999/genesys/mypurecloud.ie/api/api/v2/users/me",
        "http://127.0.0.1:8999/genesys/mypurecloud.de/api-downloads/api/v2/downloads/d1",
        "http://127.0.0.1:8999/api/v2/downloads/d1",
        "http://127.0.0.1:8998/genesys/mypurecloud.ie/api-downloads/api/v2/downloads/d1",
        "http://localhost:8999/genesys/mypurecloud.ie/api-downloads/api/v2/downloads/d1",
    ],
)
def test_the_simulator_origin_admits_only_its_download_paths(
    rsps: responses.RequestsMock, url: str
) -> None:
    with pytest.raises(ForbiddenFetch):
        download_attachment(
            requests.Session(),
            url,
            allowed_hosts=genesys_download_hosts(SIM, "mypurecloud.ie"),
            token="t",
        )
    assert len(rsps.calls) == 0


def test_a_redirect_to_another_api_path_gets_no_token(rsps: responses.RequestsMock) -> None:
    # Only a hop that is itself a download URL on an allowed host is given the token.
    token = secrets.token_urlsafe(40)
    url = "https://api-downloads.mypurecloud.ie/api/v2/downloads/pce9abc"
    me = "https://api.mypurecloud.ie/api/v2/users/me"
    rsps.get(url, status=302, headers={"Location": me})
    rsps.get(me, json={"name": "someone"})
    download_attachment(requests.Session(), url, allowed_hosts=IE_HOSTS, token=token)
    assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {token}"
    assert "Authorization" not in rsps.calls[1].request.headers


def test_a_redirect_to_another_download_host_keeps_the_token(
    rsps: responses.RequestsMock,
) -> None:
    token = secrets.token_urlsafe(40)
    url = "https://api.mypurecloud.ie/api/v2/downloads/pce9abc"
    moved = "https://api-downloads.mypurecloud.ie/api/v2/downloads/pce9abc"
    rsps.get(url, status=301, headers={"Location": moved})
    rsps.get(moved, body=b"ok", content_type="text/plain")
    assert download_attachment(requests.Session(), url, allowed_hosts=IE_HOSTS, token=token) == (
        b"ok",
        "text/plain",
    )
    assert [c.request.headers["Authorization"] for c in rsps.calls] == [f"Bearer {token}"] * 2


def test_a_redirect_loop_ends(rsps: responses.RequestsMock) -> None:
    url = "https://api-downloads.mypurecloud.ie/api/v2/downloads/loop"
    rsps.get(url, status=302, headers={"Location": url})
    with pytest.raises(PermanentError) as caught:
        download_attachment(requests.Session(), url, allowed_hosts=IE_HOSTS, token="t")
    assert caught.value.code == "too.many.redirects"
    assert len(rsps.calls) == 4


def test_download_too_large_is_abandoned(rsps: responses.RequestsMock) -> None:
    url = "https://api-downloads.mypurecloud.ie/api/v2/downloads/big"
    rsps.get(url, body=b"x" * 2048, content_type="video/mp4")
    with pytest.raises(TooLarge):
        download_attachment(
            requests.Session(),
            url,
            allowed_hosts=IE_HOSTS,
            token="t",
            max_bytes=1024,
        )


@pytest.mark.parametrize(("status", "error"), [(404, PermanentError), (503, TransientError)])
def test_download_errors(rsps: responses.RequestsMock, status: int, error: type[Exception]) -> None:
    url = "https://api-downloads.mypurecloud.ie/api/v2/downloads/gone"
    rsps.get(url, status=status, body=json.dumps({"code": "not.found"}))
    with pytest.raises(error):
        download_attachment(
            requests.Session(),
            url,
            allowed_hosts=IE_HOSTS,
            token="t",
        )
