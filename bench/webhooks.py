"""Signed Meta webhooks → durable 200, against a real shard process, its embedded store and the
simulators (so the accepted messages really flow on to the Genesys simulator meanwhile).

Each request is a distinct, correctly signed notification (a new wamid), so none is a duplicate:
every 200 is one Lua append in Redis.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from bench.wire import request
from interlink.security.signatures import meta_signature
from interlink.store.embedded import EmbeddedValkey, free_port
from interlink.tenancy import ownership

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = 30_000
USERS = 500
TENANTS = 50  # Genesys paces each tenant at 270 requests/min: one tenant alone would back up


@contextmanager
def world(*, front_end_only: bool = False, tenants: int = TENANTS) -> Iterator[dict[str, Any]]:
    """A simulator process and a shard process with ``TENANTS`` configured tenants.

    ``front_end_only``: the shard is shard 0 of 2 and every tenant is owned by shard 1, which is
    not running. The shard then does exactly what a front end does for another shard's tenants
    (verify, accept durably, answer) and no delivery work competes with it: the accept path alone.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="interlink-bench-"))
    sim_port, shard_port = free_port(), free_port()
    sim_url, shard_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{shard_port}"
    sim = subprocess.Popen(
        [sys.executable, "-m", "interlink", "simulate", "--port", str(sim_port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    procs = [sim]
    # A fleet must share its store and keys (it refuses to start otherwise): shard 0 of 2 gets
    # an embedded store of its own here, as an external Redis would be.
    store = EmbeddedValkey(data_dir / "store") if front_end_only else None
    fleet: dict[str, str] = {}
    if store is not None:
        store.start()
        fleet = {
            "INTERLINK_REDIS_URL": store.url,
            "INTERLINK_SECRET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        }
    try:
        wait_ready(sim_url + "/_sim/env")
        env = requests.get(sim_url + "/_sim/env", timeout=5).json()
        admin = secrets.token_urlsafe(32)
        shard = subprocess.Popen(
            [sys.executable, "-m", "interlink", "serve"],
            cwd=ROOT,
            env={
                **os.environ,
                **env,
                "INTERLINK_PORT": str(shard_port),
                "INTERLINK_DATA_DIR": str(data_dir),
                "INTERLINK_ADMIN_TOKEN": admin,
                "INTERLINK_PUBLIC_URL": shard_url,
                "INTERLINK_LOG_LEVEL": "WARNING",
                "INTERLINK_SHARD_COUNT": "2" if front_end_only else "1",
                "INTERLINK_SHARD_ID": "0",
                **fleet,
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(shard)
        wait_ready(shard_url + "/readyz")
        names = (f"bench-{n}" for n in itertools.count())
        if front_end_only:
            names = (name for name in names if ownership.owner(name, 2) == 1)
        tenants = [
            _tenant(sim_url, shard_url, admin, name, n)
            for n, name in zip(range(tenants), names, strict=False)
        ]
        yield {
            "sim": sim_url,
            "shard": shard_url,
            "port": shard_port,
            "tenants": tenants,
            "pid": shard.pid,
        }
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if store is not None:
            store.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def wait_ready(url: str, timeout: float = 30) -> None:
    """Until ``url`` answers 200 (a server started as a process), at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready")


def _tenant(sim: str, shard: str, admin: str, tenant_id: str, n: int) -> dict[str, Any]:
    org_id = f"org-{tenant_id}"
    pnid, integration = f"1065403522{n:05d}", f"integration-bench-{n}"
    app_secret, access_token = secrets.token_urlsafe(24), secrets.token_urlsafe(40)
    client_id, client_secret = f"client-bench-{n}", secrets.token_urlsafe(24)
    webhook_secret = secrets.token_urlsafe(24)
    region = "mypurecloud.ie"
    requests.post(
        sim + "/_sim/genesys/orgs",
        json={"orgId": org_id, "region": region, "clientId": client_id, "clientSecret": client_secret,
              "integrationIds": [integration], "webhookSecret": webhook_secret, "webhookUrl": shard + "/webhooks/genesys"},
        timeout=5,
    ).raise_for_status()  # fmt: skip
    requests.post(
        sim + "/_sim/meta/numbers",
        json={
            "phoneNumberId": pnid,
            "accessToken": access_token,
            "appSecret": app_secret,
            "webhookUrl": shard + "/webhooks/whatsapp",
        },
        timeout=5,
    ).raise_for_status()
    auth = {"Authorization": f"Bearer {admin}"}
    calls = [
        ("POST", "/api/tenants", {"tenantId": tenant_id, "name": "Bench", "genesysOrgId": org_id, "genesysOrgName": "Bench", "genesysRegion": region}),
        ("PUT", f"/api/tenants/{tenant_id}/genesys/credentials", {"clientId": client_id, "clientSecret": client_secret, "region": region, "integrationId": integration, "webhookSecret": webhook_secret}),
        ("POST", f"/api/tenants/{tenant_id}/whatsapp/config", {"meta_access_token": access_token, "whatsapp_phone_number_id": pnid, "whatsapp_business_account_id": "waba-bench", "meta_app_secret": app_secret, "webhook_verify_token": secrets.token_urlsafe(12)}),
    ]  # fmt: skip
    for method, path, body in calls:
        requests.request(
            method, shard + path, json=body, headers=auth, timeout=10
        ).raise_for_status()
    return {"phone_number_id": pnid, "app_secret": app_secret}


def signed_webhooks(tenants: list[dict[str, Any]], count: int = REQUESTS) -> list[bytes]:
    built = []
    for n in range(count):
        tenant = tenants[n % len(tenants)]
        body = webhook_body(tenant["phone_number_id"], n)
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": meta_signature(tenant["app_secret"], body),
        }
        built.append(request("POST", "/webhooks/whatsapp", body, headers))
    return built


def webhook_body(phone_number_id: str, n: int) -> bytes:
    """Meta's notification of the ``n``-th text message (a new wamid each time), from one of
    ``USERS`` users, to the business number ``phone_number_id``."""
    user = f"3460{n % USERS:07d}"
    return json.dumps(
        {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
            "contacts": [{"profile": {"name": f"User {n % USERS}"}, "wa_id": user}],
            "messages": [{"from": user, "id": f"wamid.bench.{secrets.token_hex(12)}", "timestamp": str(int(time.time())),
                          "type": "text", "text": {"body": f"message {n}"}}]}}]}]},
        separators=(",", ":"),
    ).encode()  # fmt: skip


def genesys_scaling(tenants: int, per_tenant: int = 40) -> dict[str, Any]:
    """Messages delivered to Genesys per second when ``tenants`` tenants each have a backlog of
    ``per_tenant``: each tenant is paced at 270 requests/min, so one tenant alone delivers about
    4.5/s after its burst; many tenants together should add up instead of sharing one cap."""
    from concurrent.futures import ThreadPoolExecutor

    with world(tenants=tenants) as w:
        raw = signed_webhooks(w["tenants"], count=tenants * per_tenant)
        session = requests.Session()

        def post(wire: bytes) -> int:
            head, _, body = wire.partition(b"\r\n\r\n")
            headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[2:])
            headers.pop("Content-Length", None)
            return session.post(
                w["shard"] + "/webhooks/whatsapp", data=body, headers=headers, timeout=30
            ).status_code

        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(post, raw))
        assert set(statuses) == {200}, set(statuses)
        total = len(raw)
        delivered = 0
        while time.monotonic() - started < 120:
            log = requests.get(
                w["sim"] + "/_sim/requests", params={"kind": "genesys.message"}, timeout=30
            ).json()
            delivered = sum(1 for r in log["items"] if r.get("status") == 200)
            if delivered >= total:
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - started
    return {"tenants": tenants, "messages": total, "delivered": delivered, "seconds": round(elapsed, 1),
            "per_second": round(delivered / elapsed, 1)}  # fmt: skip
