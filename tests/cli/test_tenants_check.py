"""``interlink tenants check`` end to end: the CLI against a real shard on a socket, the shard
against the simulators on another, Valkey behind it. The check names what is wrong."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gevent.pywsgi
import pytest
import redis

from interlink import settings as settings_module
from interlink.cli import run
from interlink.http.app import create_app
from interlink.services import Services
from interlink.sim import SimServer
from interlink.tenancy.validation import GENESYS, WHATSAPP

REGION = "mypurecloud.ie"


@dataclass
class Stack:
    sim: SimServer
    services: Services
    url: str

    def conn(self) -> list[str]:
        return ["--url", self.url, f"--token={self.services.admin_token}"]


@pytest.fixture
def stack(tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> Iterator[Stack]:
    sim = SimServer().start()
    settings = settings_module.load(
        {"INTERLINK_DATA_DIR": str(tmp_path), "INTERLINK_REDIS_URL": redis_url, **sim.env()}
    )
    services = Services(
        settings=settings,
        redis=redis_client,
        admin_token=secrets.token_urlsafe(32),
        secret_keys=(secrets.token_bytes(32),),
    )
    server = gevent.pywsgi.WSGIServer(("127.0.0.1", 0), create_app(services), log=None)
    server.start()
    try:
        yield Stack(sim, services, f"http://127.0.0.1:{server.server_port}")
    finally:
        server.stop(timeout=1)
        sim.stop()
        services.close()


@dataclass
class Secrets:
    client_secret: str
    integration_id: str
    meta_token: str


def onboard(stack: Stack, tenant_id: str) -> Secrets:
    """The tenant as both providers know it, and as the operator configured it (right)."""
    state = stack.sim.state
    creds = Secrets(
        secrets.token_urlsafe(24), secrets.token_hex(8), "EAA" + secrets.token_urlsafe(40)
    )
    state.genesys.add_org(
        f"org-{tenant_id}",
        region=REGION,
        client_id=f"client-{tenant_id}",
        client_secret=creds.client_secret,
        integration_ids=[creds.integration_id],
    )
    number = state.meta.add_number(
        str(10**14 + secrets.randbelow(10**14)),
        access_token=creds.meta_token,
        app_secret=secrets.token_hex(16),
        verified_name="Acme Support",
        waba_id=str(10**14 + secrets.randbelow(10**14)),
        webhook_url=f"{stack.url}/webhooks/whatsapp",
    )
    tenants = stack.services.tenants
    tenants.create(tenant_id, name=tenant_id)
    tenants.set_section(
        tenant_id,
        GENESYS,
        {
            "clientId": f"client-{tenant_id}",
            "clientSecret": creds.client_secret,
            "region": REGION,
            "integrationId": creds.integration_id,
            "webhookSecret": secrets.token_urlsafe(24),
        },
    )
    tenants.set_section(
        tenant_id,
        WHATSAPP,
        {
            "meta_access_token": creds.meta_token,
            "whatsapp_phone_number_id": number.phone_number_id,
            "whatsapp_business_account_id": number.waba_id,
            "meta_app_secret": number.app_secret,
            "webhook_verify_token": secrets.token_urlsafe(16),
        },
    )
    return creds


def reconfigure(stack: Stack, tenant_id: str, section: str, **changes: str) -> None:
    field = GENESYS if section == "genesys" else WHATSAPP
    current = stack.services.tenants.load_config(tenant_id)
    assert current is not None
    if field is GENESYS:
        g = current.genesys
        assert g is not None
        body = {
            "clientId": g.client_id,
            "clientSecret": g.client_secret,
            "region": g.region,
            "integrationId": g.integration_id,
            "webhookSecret": g.webhook_secret,
        }
    else:
        w = current.whatsapp
        assert w is not None
        body = {
            "meta_access_token": w.access_token,
            "whatsapp_phone_number_id": w.phone_number_id,
            "whatsapp_business_account_id": w.business_account_id,
            "meta_app_secret": w.app_secret,
            "webhook_verify_token": w.verify_token,
        }
    stack.services.tenants.set_section(tenant_id, field, {**body, **changes})


def check(
    stack: Stack, tenant_id: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, str], str]:
    code = run(["tenants", "check", tenant_id, *stack.conn()])
    out = capsys.readouterr()
    lines = {}
    for line in out.out.splitlines():
        mark, name, *_ = line.split()
        lines[name] = mark
    return code, lines, out.out + out.err


def test_a_good_tenant_passes(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    creds = onboard(stack, "acme")

    code, lines, output = check(stack, "acme", capsys)

    assert code == 0, output
    assert lines == {
        "genesys-token": "ok",
        "genesys-integration": "ok",
        "meta-number": "ok",
        "meta-webhook": "ok",
    }
    assert "Acme Support" in output
    for secret in (creds.client_secret, creds.meta_token):
        assert secret not in output


def test_a_wrong_meta_token_fails_the_number_check(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    onboard(stack, "acme")
    wrong = "EAA" + secrets.token_urlsafe(40)
    reconfigure(stack, "acme", "whatsapp", meta_access_token=wrong)

    code, lines, output = check(stack, "acme", capsys)

    assert code == 1
    assert lines["meta-number"] == "FAIL"
    assert lines["genesys-token"] == lines["genesys-integration"] == "ok"
    assert wrong not in output


def test_a_wrong_genesys_secret_fails_the_token_check(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    onboard(stack, "acme")
    wrong = secrets.token_urlsafe(24)
    reconfigure(stack, "acme", "genesys", clientSecret=wrong)

    code, lines, output = check(stack, "acme", capsys)

    assert code == 1
    assert lines["genesys-token"] == "FAIL"
    assert lines["meta-number"] == "ok"
    assert wrong not in output


def test_an_unknown_integration_fails_the_integration_check(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    onboard(stack, "acme")
    reconfigure(stack, "acme", "genesys", integrationId=secrets.token_hex(8))

    code, lines, output = check(stack, "acme", capsys)

    assert code == 1, output
    assert lines["genesys-token"] == "ok"
    assert lines["genesys-integration"] == "FAIL"


def test_usage_and_unknown_tenant(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        run(["tenants", "check", *stack.conn()])
    assert usage.value.code == 2
    assert run(["tenants", "check", "nobody", *stack.conn()]) == 1
    assert "404" in capsys.readouterr().err
