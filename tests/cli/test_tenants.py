"""The tenants CLI end to end: a real HTTP server on a free port, the real API and Valkey behind it."""

from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gevent.pywsgi
import pytest

from interlink.cli import run
from interlink.http.app import create_app
from interlink.services import Services

LEGACY = (
    "GENESYS_CLIENT_ID GENESYS_CLIENT_SECRET GENESYS_REGION GENESYS_INTEGRATION_ID "
    "GENESYS_WEBHOOK_SECRET META_ACCESS_TOKEN WHATSAPP_PHONE_NUMBER_ID WHATSAPP_BUSINESS_ACCOUNT_ID "
    "META_APP_SECRET META_VERIFY_TOKEN WEBHOOK_VERIFY_TOKEN INTERLINK_URL INTERLINK_ADMIN_TOKEN"
).split()


@pytest.fixture
def url(services: Services) -> Iterator[str]:
    server = gevent.pywsgi.WSGIServer(("127.0.0.1", 0), create_app(services), log=None)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.stop(timeout=1)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in LEGACY:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INTERLINK_DATA_DIR", str(tmp_path / "no-such-dir"))
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))


def legacy_settings() -> dict[str, str]:
    return {
        "GENESYS_CLIENT_ID": "client-" + secrets.token_hex(4),
        "GENESYS_CLIENT_SECRET": secrets.token_urlsafe(32),
        "GENESYS_REGION": "aps1.mypurecloud.com",
        "GENESYS_INTEGRATION_ID": secrets.token_hex(8),
        "GENESYS_WEBHOOK_SECRET": secrets.token_urlsafe(24),
        "META_ACCESS_TOKEN": "EAA" + secrets.token_urlsafe(60),
        "WHATSAPP_PHONE_NUMBER_ID": str(10**14 + secrets.randbelow(10**14)),
        "WHATSAPP_BUSINESS_ACCOUNT_ID": str(secrets.randbelow(10**15)),
        "META_APP_SECRET": secrets.token_hex(16),
        "WEBHOOK_VERIFY_TOKEN": secrets.token_urlsafe(16),
    }


SECRET_NAMES = (
    "GENESYS_CLIENT_SECRET",
    "GENESYS_WEBHOOK_SECRET",
    "META_ACCESS_TOKEN",
    "META_APP_SECRET",
    "WEBHOOK_VERIFY_TOKEN",
)


def test_every_tenants_command(
    url: str,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    conn = ["--url", url, f"--token={services.admin_token}"]
    legacy = legacy_settings()

    assert (
        run(["tenants", "create", "acme", "--name", "Acme", "--region", "mypurecloud.ie", *conn])
        == 0
    )
    created = json.loads(capsys.readouterr().out)
    assert created["tenantId"] == "acme" and created["genesysRegion"] == "mypurecloud.ie"

    # Genesys secrets from the environment.
    monkeypatch.setenv("GENESYS_CLIENT_SECRET", legacy["GENESYS_CLIENT_SECRET"])
    monkeypatch.setenv("GENESYS_WEBHOOK_SECRET", legacy["GENESYS_WEBHOOK_SECRET"])
    code = run(
        ["tenants", "set-genesys", "acme", "--client-id", "cid", "--integration-id", "int-1", *conn]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert json.loads(out.out)["clientSecret"] == "****" + legacy["GENESYS_CLIENT_SECRET"][-4:]
    assert json.loads(out.out)["region"] == "mypurecloud.ie"  # the tenant's region

    # WhatsApp secrets from stdin.
    lines = "".join(
        f"{name}={legacy[name]}\n"
        for name in ("META_ACCESS_TOKEN", "META_APP_SECRET", "WEBHOOK_VERIFY_TOKEN")
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO("# from the vault\n" + lines))
    code = run(
        [
            "tenants", "set-whatsapp", "acme", "--phone-number-id", "15550001",
            "--business-account-id", "9001", "--secrets-stdin", *conn,
        ]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert json.loads(out.out)["whatsapp_phone_number_id"] == "15550001"

    assert run(["tenants", "show", "acme", *conn]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == 3 and shown["whatsapp"]["meta_app_secret"].startswith("****")

    run(["tenants", "create", "beta", *conn])
    capsys.readouterr()
    assert run(["tenants", "list", "--page-size", "1", *conn]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("TENANT") and [line.split()[0] for line in table[1:]] == [
        "acme",
        "beta",
    ]
    assert run(["tenants", "list", "--json", *conn]) == 0
    assert [t["tenantId"] for t in json.loads(capsys.readouterr().out)] == ["acme", "beta"]

    assert run(["tenants", "issue-key", "acme", *conn]) == 0
    out = capsys.readouterr()
    issued = json.loads(out.out)
    assert "shown this once" in out.err
    # The tenant key works with the CLI for its own tenant and nothing else.
    assert run(["tenants", "show", "acme", "--url", url, f"--token={issued['key']}"]) == 0
    capsys.readouterr()
    assert run(["tenants", "show", "beta", "--url", url, f"--token={issued['key']}"]) == 1
    assert "403" in capsys.readouterr().err
    assert run(["tenants", "revoke-key", "acme", issued["keyId"], *conn]) == 0
    capsys.readouterr()
    assert run(["tenants", "show", "acme", "--url", url, f"--token={issued['key']}"]) == 1
    assert "401" in capsys.readouterr().err

    assert run(["tenants", "delete", "beta", *conn]) == 2
    assert "--yes" in capsys.readouterr().err
    assert run(["tenants", "delete", "beta", "--yes", *conn]) == 0
    assert services.tenants.version_of("beta") is None
    everything = capsys.readouterr()
    for name in SECRET_NAMES:
        assert legacy[name] not in everything.out + everything.err


def test_token_and_url_from_the_environment(
    url: str,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("INTERLINK_URL", url)
    monkeypatch.setenv("INTERLINK_ADMIN_TOKEN", services.admin_token)
    assert run(["tenants", "create", "envy"]) == 0
    assert json.loads(capsys.readouterr().out)["tenantId"] == "envy"


def test_refusals_are_one_clear_line(
    url: str, services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = ["--url", url, f"--token={services.admin_token}"]
    assert run(["tenants", "show", "acme", "--url", url, "--token", "wrong"]) == 1
    assert "401" in capsys.readouterr().err
    assert run(["tenants", "show", "nobody", *conn]) == 1
    assert "404" in capsys.readouterr().err
    assert run(["tenants", "create", "Bad Id", *conn]) == 1
    assert "400" in capsys.readouterr().err
    assert run(["tenants", "show", "acme", "--url", "http://127.0.0.1:1", "--token", "x"]) == 1
    assert "cannot reach" in capsys.readouterr().err
    assert run(["tenants", "show", "acme", "--url", url]) == 2  # no token anywhere
    assert "INTERLINK_ADMIN_TOKEN" in capsys.readouterr().err
    # No secret in the environment, none on stdin, no terminal to prompt on: say what is missing.
    run(["tenants", "create", "acme", *conn])
    capsys.readouterr()
    code = run(
        ["tenants", "set-genesys", "acme", "--client-id", "c", "--integration-id", "i", *conn]
    )
    err = capsys.readouterr().err
    assert code == 2 and "GENESYS_CLIENT_SECRET" in err and "GENESYS_WEBHOOK_SECRET" in err


def test_secrets_cannot_be_passed_in_argv(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["tenants", "set-genesys", "acme", "--client-secret", "s3cr3t-value"],
        ["tenants", "set-whatsapp", "acme", "--meta-access-token", "s3cr3t-value"],
    ):
        with pytest.raises(SystemExit) as caught:
            run(argv)
        assert caught.value.code == 2
    capsys.readouterr()


def test_migration_is_idempotent_and_tells_what_is_missing(
    url: str,
    services: Services,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    conn = ["--url", url, f"--token={services.admin_token}"]
    legacy = legacy_settings()
    partial = {
        k: v for k, v in legacy.items() if k not in ("GENESYS_WEBHOOK_SECRET", "META_APP_SECRET")
    }
    env_file = tmp_path / "old.env"
    env_file.write_text("".join(f"export {k}='{v}'\n" for k, v in partial.items()))

    code = run(
        ["migrate-single-tenant", "legacy", "--env-file", str(env_file), "--name", "Old", *conn]
    )
    out = capsys.readouterr().out
    assert code == 3
    assert "created tenant legacy" in out
    assert "GENESYS_WEBHOOK_SECRET" in out and "META_APP_SECRET" in out
    tenant = services.tenants.get("legacy")
    assert tenant is not None and tenant["genesysRegion"] == "aps1.pure.cloud"
    assert tenant["name"] == "Old" and tenant["genesys"] is None and tenant["whatsapp"] is None

    # The rest arrives through the environment, which wins over the file.
    monkeypatch.setenv("GENESYS_WEBHOOK_SECRET", legacy["GENESYS_WEBHOOK_SECRET"])
    monkeypatch.setenv("META_APP_SECRET", legacy["META_APP_SECRET"])
    code = run(["migrate-single-tenant", "legacy", "--env-file", str(env_file), *conn])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Genesys credentials" in out and "WhatsApp configuration" in out
    version = services.tenants.version_of("legacy")
    config = services.tenants.load_config("legacy")
    assert config is not None and config.genesys is not None and config.whatsapp is not None
    assert config.genesys.client_secret == legacy["GENESYS_CLIENT_SECRET"]
    assert config.genesys.region == "aps1.pure.cloud"
    assert config.whatsapp.verify_token == legacy["WEBHOOK_VERIFY_TOKEN"]
    assert services.tenants.tenant_for_phone(legacy["WHATSAPP_PHONE_NUMBER_ID"]) == "legacy"

    # Once more: nothing to do, nothing written.
    code = run(["migrate-single-tenant", "legacy", "--env-file", str(env_file), *conn])
    out = capsys.readouterr().out
    assert code == 0 and "already set" in out and "set: " not in out
    assert services.tenants.version_of("legacy") == version
    for name in SECRET_NAMES:
        assert legacy[name] not in out


def test_subprocess_entry_point(url: str, services: Services) -> None:
    """One run through ``python -m interlink`` (the console script's path), cheap enough."""
    services.tenants.create("viaproc", name="Via Process")
    env = {**os.environ, "INTERLINK_URL": url, "INTERLINK_ADMIN_TOKEN": services.admin_token}
    python = Path(sys.executable)
    done = subprocess.run(
        [str(python), "-m", "interlink", "tenants", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "viaproc" in done.stdout
