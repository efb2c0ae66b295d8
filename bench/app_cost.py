"""The accept path's own cost, without the HTTP server: the shard's WSGI app called in-process
by 32 greenlets with signed Meta webhooks, against a real embedded Valkey (AOF on).

Prints CPU µs per request; on a noisy machine take the minimum of several runs. Instruction
counts repeat only while group-commit sizes do (they depend on timing, and valgrind slows this
process fiftyfold, not Valkey); where they do, the difference of two sizes leaves out start-up:

    for n in 200 1200; do MEASURE=$n valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python -m bench.app_cost 2>&1 | grep Collected; done
    # (second - first) / 1000 = instructions per request
"""

from gevent import monkey

monkey.patch_all()

import base64  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402

from bench.webhooks import webhook_body  # noqa: E402
from interlink import settings as settings_module  # noqa: E402
from interlink.http.app import create_app  # noqa: E402
from interlink.security.signatures import meta_signature  # noqa: E402
from interlink.services import Services  # noqa: E402
from interlink.store.connection import connect  # noqa: E402
from interlink.store.embedded import EmbeddedValkey  # noqa: E402
from interlink.tenancy.directory import TenantDirectory  # noqa: E402

TENANTS, WARMUP, CONCURRENCY = 50, 2000, 32


def main() -> None:
    measure = int(os.environ.get("MEASURE", "6000"))
    data_dir = tempfile.mkdtemp(prefix="interlink-app-cost-")
    server = EmbeddedValkey(data_dir, appendonly=True)
    server.start()
    admin_token, secret_key = secrets.token_urlsafe(32), secrets.token_bytes(32)
    try:
        services = Services(
            settings=settings_module.load(
                {
                    "INTERLINK_DATA_DIR": data_dir,
                    "INTERLINK_REDIS_URL": server.url,
                    "INTERLINK_SHARD_COUNT": "2",  # the accept path alone: no delivery here
                    "INTERLINK_SHARD_ID": "0",
                    "INTERLINK_SECRET_KEY": base64.urlsafe_b64encode(secret_key).decode(),
                    "INTERLINK_ADMIN_TOKEN": admin_token,
                }
            ),
            redis=connect(server.url),
            admin_token=admin_token,
            secret_keys=(secret_key,),
        )
        # A directory that never expires during the run: valgrind slows it fiftyfold, and
        # reloads every minute would count as per-request cost.
        services.directory = TenantDirectory(services.tenants, ttl=3600)
        app = create_app(services)
        tenants = [_tenant(services, n) for n in range(TENANTS)]
        requests = [_environ(tenants, n) for n in range(WARMUP + measure)]
        _run(app, requests[:WARMUP])
        started = time.process_time()
        statuses = _run(app, requests[WARMUP:])
        cpu = time.process_time() - started
        print(
            json.dumps({"statuses": statuses, "cpu_us_per_request": round(cpu / measure * 1e6, 1)})
        )
    finally:
        server.stop()


def _tenant(services: Services, n: int) -> tuple[str, str]:
    tenant_id, phone, app_secret = f"bench-{n}", f"1065403522{n:05d}", secrets.token_hex(16)
    services.tenants.create(tenant_id, name=tenant_id)
    services.tenants.set_whatsapp(
        tenant_id,
        access_token="EAA" + secrets.token_urlsafe(40),
        phone_number_id=phone,
        business_account_id="1",
        app_secret=app_secret,
        verify_token=secrets.token_urlsafe(16),
    )
    return phone, app_secret


def _environ(tenants: list[tuple[str, str]], n: int) -> dict[str, Any]:
    phone, app_secret = tenants[n % len(tenants)]
    body = webhook_body(phone, n)
    return {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/webhooks/whatsapp", "QUERY_STRING": "",
        "SERVER_NAME": "bench", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json",
        "HTTP_HOST": "bench", "HTTP_X_HUB_SIGNATURE_256": meta_signature(app_secret, body),
    }  # fmt: skip


def _run(app: Any, environs: list[dict[str, Any]]) -> dict[str, int]:
    statuses: dict[str, int] = {}

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        statuses[status] = statuses.get(status, 0) + 1

    def worker(share: list[dict[str, Any]]) -> None:
        for environ in share:
            b"".join(app(environ, start_response))

    gevent.joinall([gevent.spawn(worker, environs[i::CONCURRENCY]) for i in range(CONCURRENCY)])
    return statuses


if __name__ == "__main__":
    main()
