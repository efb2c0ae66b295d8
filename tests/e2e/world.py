"""An end-to-end world: the Meta and Genesys simulators (in the test process, on a real socket),
shard processes of interlink pointed at them, and tenants set up through the admin API."""

from __future__ import annotations

import base64
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import requests

from interlink.sim.driver import WhatsAppUser
from interlink.sim.server import SimServer
from tests.support.shard import ShardProcess

_numbers = itertools.count(1)


@dataclass
class Tenant:
    tenant_id: str
    region: str
    phone_number_id: str
    integration_id: str
    client_id: str
    client_secret: str = field(repr=False)
    webhook_secret: str = field(repr=False)
    access_token: str = field(repr=False)
    app_secret: str = field(repr=False)
    verify_token: str = field(repr=False)


@dataclass
class World:
    sim: SimServer
    shards: list[ShardProcess]
    admin_token: str

    @property
    def shard(self) -> ShardProcess:
        return self.shards[0]

    @property
    def state(self) -> Any:
        return self.sim.state

    def admin(self, method: str, path: str, shard: int = 0, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.admin_token}", **kwargs.pop("headers", {})}
        return requests.request(
            method, self.shards[shard].url + path, headers=headers, timeout=10, **kwargs
        )

    def add_tenant(
        self,
        tenant_id: str,
        *,
        region: str = "mypurecloud.ie",
        token_lifetime: int = 86400,
        **meta_options: Any,
    ) -> Tenant:
        n = next(_numbers)
        t = Tenant(
            tenant_id=tenant_id,
            region=region,
            phone_number_id=f"10{n:013d}",
            integration_id=f"integration-{tenant_id}-{secrets.token_hex(4)}",
            client_id=f"client-{tenant_id}-{secrets.token_hex(4)}",
            client_secret=secrets.token_urlsafe(24),
            webhook_secret=secrets.token_urlsafe(24),
            access_token=secrets.token_urlsafe(40),
            app_secret=secrets.token_urlsafe(24),
            verify_token=secrets.token_urlsafe(12),
        )
        self.state.genesys.add_org(
            f"org-{tenant_id}",
            region=region,
            client_id=t.client_id,
            client_secret=t.client_secret,
            integration_ids=[t.integration_id],
            webhook_secret=t.webhook_secret,
            token_lifetime=token_lifetime,
            webhook_url=self.shard.url + "/webhooks/genesys",
        )
        self.state.meta.add_number(
            t.phone_number_id,
            access_token=t.access_token,
            app_secret=t.app_secret,
            display_phone_number=f"1555{n:07d}",
            webhook_url=self.shard.url + "/webhooks/whatsapp",
            **meta_options,
        )
        created = self.admin(
            "POST",
            "/api/tenants",
            json={
                "tenantId": tenant_id,
                "name": tenant_id.title(),
                "genesysOrgId": f"org-{tenant_id}",
                "genesysOrgName": tenant_id,
                "genesysRegion": region,
            },
        )
        assert created.status_code == 201, created.text
        genesys = self.admin(
            "PUT",
            f"/api/tenants/{tenant_id}/genesys/credentials",
            json={
                "clientId": t.client_id,
                "clientSecret": t.client_secret,
                "region": region,
                "integrationId": t.integration_id,
                "webhookSecret": t.webhook_secret,
            },
        )
        assert genesys.status_code == 200, genesys.text
        whatsapp = self.admin(
            "POST",
            f"/api/tenants/{tenant_id}/whatsapp/config",
            json={
                "meta_access_token": t.access_token,
                "whatsapp_phone_number_id": t.phone_number_id,
                "whatsapp_business_account_id": f"waba-{tenant_id}",
                "meta_app_secret": t.app_secret,
                "webhook_verify_token": t.verify_token,
            },
        )
        assert whatsapp.status_code in (200, 201), whatsapp.text
        return t

    def close(self) -> None:
        """Stop every shard (SIGTERM, then SIGKILL if it lingers) and the simulators."""
        for shard in self.shards:
            try:
                if shard.process is not None and shard.process.poll() is None:
                    shard.stop(timeout=15)
            except Exception as exc:  # teardown must reach the kill below
                print(f"shard did not stop cleanly: {exc!r}")
            finally:
                shard.kill()
        self.sim.stop()

    def user(
        self, phone: str | None = None, *, bsuid: str | None = None, name: str = "Ana"
    ) -> WhatsAppUser:
        return WhatsAppUser(wa_id=phone or f"346{next(_numbers):08d}", user_id=bsuid, name=name)


def wait_for(
    predicate: Callable[[], Any], timeout: float = 15.0, message: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not met within {timeout}s")
        gevent.sleep(0.05)


def start_world(
    tmp: Path, redis_url: str, *, shards: int = 1, extra_env: dict[str, str] | None = None
) -> World:
    sim = SimServer().start()
    admin_token = secrets.token_urlsafe(32)
    secret_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    processes = []
    for index in range(shards):
        env = {
            **sim.env(),
            "INTERLINK_REDIS_URL": redis_url,
            "INTERLINK_ADMIN_TOKEN": admin_token,
            "INTERLINK_SECRET_KEY": secret_key,
            "INTERLINK_SHARD_ID": str(index),
            "INTERLINK_SHARD_COUNT": str(shards),
            **(extra_env or {}),
        }
        shard = ShardProcess(tmp / f"shard-{index}", env)
        shard.env["INTERLINK_PUBLIC_URL"] = shard.url
        processes.append(shard.start())
    return World(sim, processes, admin_token)
