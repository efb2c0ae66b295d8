"""``interlink ctl`` end to end: a real HTTP server on a free port, a running supervisor and the
real Valkey behind it."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import gevent.pywsgi
import pykka
import pytest

from interlink.actors import Supervisor, TreeSpec
from interlink.cli import run
from interlink.http.app import create_app
from interlink.services import Services
from interlink.store import keys
from interlink.store.dead_letters import DeadLetters

ENV = ("INTERLINK_URL", "INTERLINK_ADMIN_TOKEN")


@pytest.fixture
def url(services: Services) -> Iterator[str]:
    supervisor: pykka.ActorRef[Supervisor] = Supervisor.start(
        TreeSpec(load_config=services.tenants.load_config, services=services, stop_timeout=2.0)
    )
    services.supervisor = supervisor
    server = gevent.pywsgi.WSGIServer(("127.0.0.1", 0), create_app(services), log=None)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.stop(timeout=1)
        supervisor.stop(timeout=10)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INTERLINK_DATA_DIR", str(tmp_path / "no-such-dir"))


def ctl(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, object, str]:
    """Run ``interlink ctl ARGV``: exit code, the JSON printed (or None), stderr."""
    code = run(["ctl", *argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def test_every_ctl_command(
    url: str, services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = ["--url", url, f"--token={services.admin_token}"]
    services.tenants.create("acme", name="Acme")

    code, body, err = ctl(capsys, "actors", *conn)
    assert (code, err) == (0, "")
    assert body == {"shard": body["shard"], "tenants": []}  # type: ignore[index]
    code, every, _ = ctl(capsys, "actors", "--all", *conn)  # one shard, seen from itself
    assert code == 0 and every == {"shards": [body]}

    assert ctl(capsys, "ping", "acme", *conn)[:2] == (
        0,
        {"ok": True, "type": "ping", "pong": True, "shard": 0},
    )

    code, stats, _ = ctl(capsys, "stats", "acme", *conn)
    assert code == 0
    assert stats["tenantId"] == "acme" and stats["version"] == 1  # type: ignore[index]

    services.tenants.update("acme", {"name": "Acme Ltd"})
    code, reloaded, _ = ctl(capsys, "reload", "acme", *conn)
    assert code == 0 and reloaded["version"] == 2  # type: ignore[index]

    code, body, _ = ctl(capsys, "actors", *conn)
    [acme] = body["tenants"]  # type: ignore[index]
    assert (acme["tenantId"], acme["state"], acme["version"]) == ("acme", "active", 2)

    services.redis.set(keys.token("acme"), secrets.token_urlsafe(32), ex=600)
    code, invalidated, _ = ctl(capsys, "invalidate-token", "acme", *conn)
    assert code == 0 and invalidated["invalidated"] is True  # type: ignore[index]
    deadline = time.monotonic() + 5
    while services.redis.exists(keys.token("acme")):  # the token manager drops it right after
        assert time.monotonic() < deadline
        gevent.sleep(0.01)

    assert ctl(capsys, "stop", "acme", *conn)[:2] == (
        0,
        {"ok": True, "type": "stop", "state": "stopped", "shard": 0},
    )
    code, body, _ = ctl(capsys, "actors", *conn)
    assert [t["state"] for t in body["tenants"]] == ["stopped"]  # type: ignore[index]
    # A stopped tenant is not woken by a question: exit 1, the shard's reason on stderr.
    code, out, err = ctl(capsys, "ping", "acme", *conn)
    assert (code, out) == (1, None)
    assert "409" in err and "Tenant stopped" in err and "send 'start' first" in err
    assert ctl(capsys, "start", "acme", *conn)[:2] == (
        0,
        {"ok": True, "type": "start", "state": "active", "shard": 0},
    )

    code, replay, _ = ctl(capsys, "replay-dead-letters", "acme", *conn)
    assert code == 0 and replay["replayed"] == 0  # type: ignore[index]

    assert ctl(capsys, "shard", "ping", *conn)[:2] == (
        0,
        {"ok": True, "type": "ping", "pong": True},
    )
    code, shard, _ = ctl(capsys, "shard", "stats", *conn)
    assert code == 0 and shard["tenantsActive"] == 1 and shard["count"] == 1  # type: ignore[index]
    code, reload_all, _ = ctl(capsys, "shard", "reload-all", *conn)
    assert code == 0 and reload_all["reloading"] == 1  # type: ignore[index]
    code, drained, _ = ctl(capsys, "shard", "drain", *conn)
    assert code == 0 and drained == {"ok": True, "type": "drain", "drained": 1, "late": []}


def test_url_and_token_from_the_environment(
    url: str,
    services: Services,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INTERLINK_URL", url)
    monkeypatch.setenv("INTERLINK_ADMIN_TOKEN", services.admin_token)
    assert ctl(capsys, "shard", "ping")[0] == 0
    # A flag wins over its variable.
    code, _, err = ctl(capsys, "shard", "ping", "--token=" + secrets.token_urlsafe(32))
    assert code == 1 and "401" in err and "Unauthorized" in err


def test_the_token_file_of_a_local_shard(
    url: str,
    services: Services,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    (tmp_path / "admin-token").write_text(services.admin_token + "\n")
    monkeypatch.setenv("INTERLINK_DATA_DIR", str(tmp_path))
    assert ctl(capsys, "actors", "--url", url)[0] == 0


def test_errors_exit_1_with_the_shards_reason(
    url: str, services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = ["--url", url, f"--token={services.admin_token}"]
    code, out, err = ctl(capsys, "ping", "ghost", *conn)
    assert (code, out) == (1, None)
    assert "404" in err and "Unknown tenant" in err and "ghost" in err

    services.tenants.create("acme", name="Acme")
    key = services.api_keys.issue_key("acme").key
    code, _, err = ctl(capsys, "ping", "acme", "--url", url, f"--token={key}")
    assert code == 1 and "403" in err and "operator token" in err
    assert key not in err

    code, _, err = ctl(capsys, "actors", "--url", url, "--token=" + secrets.token_urlsafe(32))
    assert code == 1 and "401" in err


@pytest.mark.parametrize("tenant_id", ["../api/tenants", "ACME", "a/b", "acme?x=1", ""])
def test_a_malformed_tenant_id_never_leaves_the_terminal(
    services: Services, capsys: pytest.CaptureFixture[str], tenant_id: str
) -> None:
    # No server at all: the refusal comes before any request.
    code, out, err = ctl(
        capsys, "ping", tenant_id, "--url", "http://127.0.0.1:9", f"--token={services.admin_token}"
    )
    assert (code, out) == (2, None)
    assert "not a tenant id" in err


def test_an_unreachable_shard_is_exit_1(
    services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = ctl(
        capsys, "shard", "ping", "--url", "http://127.0.0.1:9", f"--token={services.admin_token}"
    )
    assert (code, out) == (1, None)
    assert "cannot reach" in err and services.admin_token not in err


def test_no_token_anywhere_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = ctl(capsys, "actors", "--url", "http://127.0.0.1:9")
    assert (code, out) == (2, None)
    assert "INTERLINK_ADMIN_TOKEN" in err


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["ctl"]) == 2
    with pytest.raises(SystemExit) as exit_info:
        run(["ctl", "shard", "reboot"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        run(["ctl", "ping"])  # no tenant id
    capsys.readouterr()


def test_the_installed_entry_point_speaks_ctl(url: str, services: Services, tmp_path: Path) -> None:
    """The real process, as an operator runs it (token from the environment, not argv)."""
    services.tenants.create("acme", name="Acme")
    env = {"INTERLINK_URL": url, "INTERLINK_ADMIN_TOKEN": services.admin_token, "PATH": ""}
    # The shard answers from this process's hub: the child must not block it, so wait by polling.
    proc = subprocess.Popen(
        [sys.executable, "-m", "interlink", "ctl", "ping", "acme"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    while proc.poll() is None:
        gevent.sleep(0.02)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert json.loads(out) == {"ok": True, "type": "ping", "pong": True, "shard": 0}
    assert services.admin_token.encode() not in out + err


def test_a_token_that_begins_with_a_dash(
    url: str,
    services: Services,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # token_urlsafe may begin with "-": "--token=VALUE" and the environment both carry it.
    services.admin_token = "-" + secrets.token_urlsafe(32)
    assert ctl(capsys, "shard", "ping", "--url", url, f"--token={services.admin_token}")[0] == 0
    monkeypatch.setenv("INTERLINK_ADMIN_TOKEN", services.admin_token)
    assert ctl(capsys, "shard", "ping", "--url", url)[0] == 0


def test_dead_letter_commands(
    url: str, services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = ["--url", url, f"--token={services.admin_token}"]
    services.tenants.create("acme", name="Acme")
    letters = DeadLetters(services.redis, "acme")
    for n in range(4):
        letters.add("wa.message", {"n": n}, "u1", f"failed {n}")

    code, listed, _ = ctl(capsys, "dead-letters", "acme", "--limit", "2", *conn)
    assert code == 0 and listed["deadLetters"] == 4  # type: ignore[index]
    ids = [e["id"] for e in listed["entries"]]  # type: ignore[index]
    assert len(ids) == 2

    code, replayed, _ = ctl(capsys, "replay-dead-letters", "acme", "--id", ids[1], *conn)
    assert code == 0 and (replayed["replayed"], replayed["deadLetters"]) == (1, 3)  # type: ignore[index]

    # Dropping needs a confirmation; without it nothing is sent.
    code, out, err = ctl(capsys, "drop-dead-letters", "acme", *conn)
    assert (code, out) == (2, None) and "--yes" in err
    assert letters.count() == 3
    code, dropped, _ = ctl(capsys, "drop-dead-letters", "acme", "--id", ids[0], "--yes", *conn)
    assert code == 0 and dropped["dropped"] == 1  # type: ignore[index]
    assert letters.count() == 2

    # The shard's refusal of a bad argument reaches the terminal.
    code, out, err = ctl(capsys, "replay-dead-letters", "acme", "--id", "nope", *conn)
    assert (code, out) == (1, None) and "400" in err and '"ids"' in err
    code, _, err = ctl(capsys, "dead-letters", "acme", "--limit", "0", *conn)
    assert code == 1 and '"limit"' in err
