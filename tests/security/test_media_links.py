"""``GET /media/{token}``: signed, expiring links through which Genesys fetches a WhatsApp user's
attachment, streamed from the Meta simulator on a real socket. Every refusal is a 403 or 404 (a
503/502 when a dependency is down), never a 500, and no credential is ever in a link or a log."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import falcon.testing
import msgpack
import pytest
import redis
import requests
from gevent.pywsgi import WSGIServer

from interlink import settings as settings_module
from interlink.http.app import create_app
from interlink.security import media_links
from interlink.services import Services
from interlink.sim.server import SimServer
from interlink.store.connection import connect

Client = falcon.testing.TestClient
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@dataclass(frozen=True)
class MediaTenant:
    tenant_id: str
    phone: str
    access_token: str
    app_secret: str
    verify_token: str


@pytest.fixture
def sim() -> Iterator[SimServer]:
    server = SimServer().start()
    try:
        yield server
    finally:
        server.stop()


def build_services(
    tmp_path: Path, redis_url: str, client: redis.Redis, sim: SimServer, keys: tuple[bytes, ...]
) -> Services:
    settings = settings_module.load(
        {
            "INTERLINK_DATA_DIR": str(tmp_path),
            "INTERLINK_REDIS_URL": redis_url,
            "INTERLINK_PUBLIC_URL": "https://bridge.example.com",
            **sim.env(),
        }
    )
    return Services(
        settings=settings,
        redis=client,
        admin_token=secrets.token_urlsafe(32),
        secret_keys=keys,
    )


@pytest.fixture
def old_key() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def services(
    tmp_path: Path,
    redis_url: str,
    redis_client: redis.Redis,
    sim: SimServer,
    old_key: bytes,
    hidden: list[str],
) -> Services:
    """The shard's services, pointed at the simulators (overrides conftest's ``services``)."""
    built = build_services(tmp_path, redis_url, redis_client, sim, (old_key,))
    hidden += [built.admin_token, base64.urlsafe_b64encode(old_key).decode(), old_key.hex()]
    return built


def add_tenant(
    services: Services, sim: SimServer, hidden: list[str], tenant_id: str
) -> MediaTenant:
    tenant = MediaTenant(
        tenant_id=tenant_id,
        phone=str(10**14 + secrets.randbelow(9 * 10**14)),
        access_token="EAA" + secrets.token_urlsafe(48),
        app_secret=secrets.token_hex(16),
        verify_token=secrets.token_urlsafe(16),
    )
    sim.state.meta.add_number(
        tenant.phone, access_token=tenant.access_token, app_secret=tenant.app_secret
    )
    services.tenants.create(tenant_id, name=tenant_id.title())
    services.tenants.set_whatsapp(
        tenant_id,
        access_token=tenant.access_token,
        phone_number_id=tenant.phone,
        business_account_id=str(secrets.randbelow(10**15)),
        app_secret=tenant.app_secret,
        verify_token=tenant.verify_token,
    )
    hidden += [tenant.access_token, tenant.app_secret, tenant.verify_token]
    return tenant


@pytest.fixture
def acme(services: Services, sim: SimServer, hidden: list[str]) -> MediaTenant:
    return add_tenant(services, sim, hidden, "acme")


@pytest.fixture
def globex(services: Services, sim: SimServer, hidden: list[str]) -> MediaTenant:
    return add_tenant(services, sim, hidden, "globex")


def fetch(client: Client, token: str) -> falcon.testing.Result:
    result = client.simulate_get(f"/media/{token}")
    assert result.status_code != 500, result.text
    return result


def link_for(
    services: Services,
    tenant: MediaTenant,
    media_id: str,
    *,
    mime: str = "",
    filename: str = "",
    lifetime: int = media_links.DEFAULT_LIFETIME,
    now: float | None = None,
) -> str:
    return media_links.make(
        tenant.tenant_id,
        media_id,
        services.secret_keys,
        mime=mime,
        filename=filename,
        lifetime=lifetime,
        now=now,
    )


# -- the valid link ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mime", "filename", "size"),
    [
        ("image/jpeg", "photo.jpg", 12_345),
        ("audio/ogg; codecs=opus", "", 1),
        ("application/pdf", "Quarterly report 2026 final.pdf", 3 * 1024 * 1024 + 7),
    ],
)
def test_a_valid_link_streams_the_exact_bytes_with_their_type(
    client: Client,
    services: Services,
    sim: SimServer,
    acme: MediaTenant,
    mime: str,
    filename: str,
    size: int,
) -> None:
    data = secrets.token_bytes(size)
    blob = sim.state.meta.add_media(acme.phone, data, mime, filename or None)
    token = link_for(services, acme, blob.id, mime=mime, filename=filename)
    result = fetch(client, token)
    assert result.status_code == 200
    assert result.content == data
    assert result.headers["content-type"] == mime
    assert int(result.headers["content-length"]) == size
    if filename:
        assert "attachment" in result.headers["content-disposition"]
        assert filename in result.headers["content-disposition"]
    for value in result.headers.values():
        assert acme.access_token not in value


def test_a_link_needs_no_other_credential_and_carries_none(
    client: Client, services: Services, sim: SimServer, acme: MediaTenant
) -> None:
    blob = sim.state.meta.add_media(acme.phone, b"\x89PNG...", "image/png", "a.png")
    token = link_for(services, acme, blob.id, mime="image/png", filename="a.png")
    url = f"{services.settings.base_url}/media/{token}"  # as the conversation actor builds it
    assert url.startswith("https://bridge.example.com/media/")
    for credential in (
        acme.access_token,
        acme.app_secret,
        acme.verify_token,
        services.admin_token,
        services.secret_keys[0].hex(),
        base64.urlsafe_b64encode(services.secret_keys[0]).decode().rstrip("="),
    ):
        assert credential not in url
    payload, _, mac = token.partition(".")
    fields = msgpack.unpackb(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert fields[:4] == ["acme", blob.id, "image/png", "a.png"]
    assert isinstance(fields[4], int) and len(fields) == 5
    assert len(base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))) == 32
    # No Authorization, no cookie, no query: the path alone opens it.
    assert fetch(client, token).content == b"\x89PNG..."


@pytest.fixture
def live(services: Services) -> Iterator[str]:
    """The app on a real socket (gevent.pywsgi, as a shard serves it): header values are
    checked there, not by the test client."""
    server = WSGIServer(("127.0.0.1", 0), create_app(services), log=None)
    server.start()
    try:
        yield f"http://{server.address[0]}:{server.address[1]}"
    finally:
        server.stop(timeout=1)


@pytest.mark.parametrize(
    ("filename", "shown"),
    [
        ('report "final".pdf', "report _final_.pdf"),
        ("a\r\nSet-Cookie: stolen=1.pdf", "a__Set-Cookie: stolen=1.pdf"),
        ("back\\slash.pdf", "back_slash.pdf"),
        ("nul\x00.pdf", "nul_.pdf"),
        ("résumé.pdf", "r%C3%A9sum%C3%A9.pdf"),
        ("x" * 1000 + ".pdf", "x" * 255),
    ],
)
def test_a_users_file_name_cannot_break_the_headers(
    live: str,
    services: Services,
    sim: SimServer,
    acme: MediaTenant,
    filename: str,
    shown: str,
) -> None:
    blob = sim.state.meta.add_media(acme.phone, b"%PDF-1.7", "application/pdf")
    token = link_for(services, acme, blob.id, mime="application/pdf", filename=filename)
    response = requests.get(f"{live}/media/{token}", timeout=5)
    assert response.status_code == 200
    assert response.content == b"%PDF-1.7"
    assert "stolen" not in response.cookies
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert shown in disposition
    assert disposition.count('"') in (0, 2)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("mime", "served"),
    [
        ("text/html", "text/html"),
        ("text/html; x=\x01", "application/octet-stream"),
        ("text/plain; charset=é", "application/octet-stream"),
        ("", "application/octet-stream"),
        ("nonsense", "application/octet-stream"),
    ],
)
def test_the_served_type_is_a_well_formed_one(
    live: str, services: Services, sim: SimServer, acme: MediaTenant, mime: str, served: str
) -> None:
    blob = sim.state.meta.add_media(acme.phone, b"<script>alert(1)</script>", mime)
    token = link_for(services, acme, blob.id, mime=mime)
    response = requests.get(f"{live}/media/{token}", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"] == served
    assert "stolen" not in response.cookies
    # Even HTML is never a live page on our origin.
    assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert response.headers["x-content-type-options"] == "nosniff"


# -- refusals: 403 -------------------------------------------------------------------------------
def test_an_expired_link_is_403(
    client: Client, services: Services, sim: SimServer, acme: MediaTenant
) -> None:
    blob = sim.state.meta.add_media(acme.phone, b"old", "image/jpeg")
    past = time.time() - media_links.DEFAULT_LIFETIME - 1
    assert fetch(client, link_for(services, acme, blob.id, now=past)).status_code == 403
    assert fetch(client, link_for(services, acme, blob.id, lifetime=-1)).status_code == 403
    result = fetch(client, link_for(services, acme, blob.id, lifetime=60))
    assert (result.status_code, result.content) == (200, b"old")


def test_every_one_character_change_is_403(
    client: Client, services: Services, sim: SimServer, acme: MediaTenant
) -> None:
    blob = sim.state.meta.add_media(acme.phone, b"bytes", "image/jpeg", "x.jpg")
    token = link_for(services, acme, blob.id, mime="image/jpeg", filename="x.jpg")
    assert fetch(client, token).status_code == 200
    for index, char in enumerate(token):
        if char == ".":
            continue
        for replacement in {B64[(B64.index(char) + step) % 64] for step in (1, 2, 4, 32)}:
            forged = token[:index] + replacement + token[index + 1 :]
            result = fetch(client, forged)
            assert result.status_code == 403, (index, char, replacement)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1],
        lambda t: t + "A",
        lambda t: t + "=",
        lambda t: t.replace(".", ".."),
        lambda t: t.replace(".", ""),
        lambda t: t.split(".")[0],
        lambda t: "." + t.split(".")[1],
        lambda t: t.split(".")[1] + "." + t.split(".")[0],
        lambda t: t + "." + t.split(".")[1],
        lambda t: t.replace("A", "é", 1) if "A" in t else "é" + t,
        lambda t: t[:5] + "!" + t[5:],
        lambda t: t[:5] + "%20" + t[5:],
        lambda t: t + "A" * 3000,
        lambda t: ".",
        lambda t: "x",
    ],
)
def test_malformed_tokens_are_403(
    client: Client, services: Services, sim: SimServer, acme: MediaTenant, mangle: object
) -> None:
    blob = sim.state.meta.add_media(acme.phone, b"bytes", "image/jpeg")
    token = link_for(services, acme, blob.id)
    forged = mangle(token)  # type: ignore[operator]
    assert fetch(client, forged).status_code == 403


def _resigned_payload(token: str, **changes: object) -> str:
    """The token with its payload rewritten and its signature kept."""
    encoded, _, mac = token.partition(".")
    tenant, media_id, mime, filename, expires = msgpack.unpackb(
        base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    )
    fields = {"tenant": tenant, "media_id": media_id, "mime": mime, "filename": filename,
              "expires": expires, **changes}  # fmt: skip
    packed = msgpack.packb(list(fields.values()), use_bin_type=True)
    return base64.urlsafe_b64encode(packed).rstrip(b"=").decode() + "." + mac


def test_a_link_of_one_tenant_replayed_with_anothers_media_id_is_403(
    client: Client, services: Services, sim: SimServer, acme: MediaTenant, globex: MediaTenant
) -> None:
    mine = sim.state.meta.add_media(acme.phone, b"acme's", "image/jpeg")
    theirs = sim.state.meta.add_media(globex.phone, b"globex's secret picture", "image/jpeg")
    token = link_for(services, acme, mine.id)
    assert fetch(client, token).content == b"acme's"
    for changes in (
        {"media_id": theirs.id},
        {"tenant": "globex", "media_id": theirs.id},
        {"tenant": "globex"},
        {"expires": 2**40},
        {"mime": "text/html"},
    ):
        result = fetch(client, _resigned_payload(token, **changes))
        assert result.status_code == 403, changes
        assert b"globex's" not in result.content


def test_a_genuine_link_naming_anothers_media_gets_404_not_their_bytes(
    client: Client, services: Services, sim: SimServer, acme: MediaTenant, globex: MediaTenant
) -> None:
    """Even a link we signed ourselves by mistake cannot reach across: the media id is resolved
    with the link's tenant's own token, restricted to its number."""
    theirs = sim.state.meta.add_media(globex.phone, b"globex's secret picture", "image/jpeg")
    result = fetch(client, link_for(services, acme, theirs.id))
    assert result.status_code == 404
    assert b"globex" not in result.content


def test_links_signed_before_a_key_rotation_still_verify(
    tmp_path: Path,
    redis_url: str,
    redis_client: redis.Redis,
    sim: SimServer,
    services: Services,
    old_key: bytes,
    acme: MediaTenant,
    hidden: list[str],
) -> None:
    blob = sim.state.meta.add_media(acme.phone, b"before rotation", "image/jpeg")
    issued_before = link_for(services, acme, blob.id)
    new_key = secrets.token_bytes(32)
    hidden.append(new_key.hex())
    rotated = build_services(tmp_path, redis_url, redis_client, sim, (new_key, old_key))
    rotated_client = falcon.testing.TestClient(create_app(rotated))
    result = fetch(rotated_client, issued_before)
    assert (result.status_code, result.content) == (200, b"before rotation")
    # New links are signed with the new key, and verify with it alone ...
    issued_after = link_for(rotated, acme, blob.id)
    assert media_links.verify(issued_after, (new_key,)).media_id == blob.id
    with pytest.raises(media_links.InvalidLink):
        media_links.verify(issued_after, (old_key,))
    # ... and once the old key is dropped, links it signed stop working.
    with pytest.raises(media_links.InvalidLink):
        media_links.verify(issued_before, (new_key,))
    assert fetch(rotated_client, issued_after).content == b"before rotation"


# -- refusals: 404 -------------------------------------------------------------------------------
def test_a_deleted_tenant_is_404(
    client: Client, services: Services, sim: SimServer, acme: MediaTenant
) -> None:
    blob = sim.state.meta.add_media(acme.phone, b"bytes", "image/jpeg")
    token = link_for(services, acme, blob.id)
    result = client.simulate_delete(
        "/api/tenants/acme", headers={"Authorization": f"Bearer {services.admin_token}"}
    )
    assert result.status_code == 204
    assert fetch(client, token).status_code == 404


def test_a_tenant_deleted_after_a_fetch_is_404_once_its_change_is_heard(
    client: Client, services: Services, sim: SimServer, acme: MediaTenant
) -> None:
    blob = sim.state.meta.add_media(acme.phone, b"bytes", "image/jpeg")
    token = link_for(services, acme, blob.id)
    assert fetch(client, token).status_code == 200
    services.tenants.delete("acme")
    services.directory.invalidate("acme")  # what the shard's reload listener does on the event
    assert fetch(client, token).status_code == 404


def test_a_tenant_without_whatsapp_or_unknown_is_404(
    client: Client, services: Services, sim: SimServer
) -> None:
    services.tenants.create("bare", name="Bare")
    for tenant in ("bare", "nobody", "NOT-VALID"):
        token = media_links.make(tenant, "123", services.secret_keys)
        assert fetch(client, token).status_code == 404


def test_media_meta_no_longer_has_is_404(
    client: Client, services: Services, sim: SimServer, acme: MediaTenant
) -> None:
    blob = sim.state.meta.add_media(acme.phone, b"bytes", "image/jpeg")
    token = link_for(services, acme, blob.id)
    sim.state.meta.media.pop(blob.id)
    assert fetch(client, token).status_code == 404
    assert fetch(client, link_for(services, acme, "not-a-media-id/../x")).status_code == 404


# -- dependencies down ---------------------------------------------------------------------------
def test_meta_unreachable_is_503_with_retry_after(
    client: Client, services: Services, sim: SimServer, acme: MediaTenant
) -> None:
    blob = sim.state.meta.add_media(acme.phone, b"bytes", "image/jpeg")
    token = link_for(services, acme, blob.id)
    sim.stop()
    result = fetch(client, token)
    assert result.status_code == 503, result.text
    assert result.headers["Retry-After"] == "30"


def test_redis_down_is_503_with_retry_after(
    tmp_path: Path, redis_url: str, sim: SimServer, services: Services, acme: MediaTenant
) -> None:
    blob = sim.state.meta.add_media(acme.phone, b"bytes", "image/jpeg")
    token = link_for(services, acme, blob.id)
    dead = connect("redis://127.0.0.1:1/0", pool_timeout=0.5, socket_timeout=0.5)
    try:
        down = build_services(tmp_path, redis_url, dead, sim, services.secret_keys)
        result = fetch(falcon.testing.TestClient(create_app(down)), token)
        assert result.status_code == 503, result.text
        assert int(result.headers["retry-after"]) > 0
    finally:
        dead.close()


# -- the link format on its own ------------------------------------------------------------------
def test_verify_round_trip_and_reasons() -> None:
    keys = (secrets.token_bytes(32),)
    token = media_links.make("acme", "m1", keys, mime="image/png", filename="ü.png", now=1000.0)
    link = media_links.verify(token, keys, now=1000.0)
    assert link == media_links.MediaLink(
        "acme", "m1", "image/png", "ü.png", 1000 + media_links.DEFAULT_LIFETIME
    )
    with pytest.raises(media_links.InvalidLink, match="expired"):
        media_links.verify(token, keys, now=1001.0 + media_links.DEFAULT_LIFETIME)
    with pytest.raises(media_links.InvalidLink, match="bad signature"):
        media_links.verify(token, (secrets.token_bytes(32),), now=1000.0)
    with pytest.raises(media_links.InvalidLink, match="malformed"):
        media_links.verify(token + token, keys, now=1000.0)
    with pytest.raises(media_links.InvalidLink):
        media_links.verify(token, (), now=1000.0)
