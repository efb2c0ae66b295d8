"""10,000 tenant trees in one shard: activation latency, memory per idle tree, time to stop.

Runs in its own process so that its resident memory is its own. The tenant configuration comes
from memory, not Redis: this measures the actor runtime, not a round trip.
"""

from gevent import monkey

monkey.patch_all()

import gc  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import redis  # noqa: E402

from interlink.actors import Control, GetTenant, Supervisor, TreeSpec  # noqa: E402
from interlink.services import Services  # noqa: E402
from interlink.settings import load  # noqa: E402
from interlink.tenancy.config import GenesysCredentials, TenantConfig, WhatsAppConfig  # noqa: E402


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


def config_of(tenant_id: str) -> TenantConfig:
    """A fully configured tenant, so that every client object a real tree holds is built."""
    creds = GenesysCredentials(
        "client", "secret-" + tenant_id, "mypurecloud.ie", "integration-" + tenant_id, "w" * 20
    )
    whatsapp = WhatsAppConfig(
        "pn-" + tenant_id, "waba", "token-" + tenant_id, "app-secret", "verify"
    )
    return TenantConfig(tenant_id=tenant_id, version=1, genesys=creds, whatsapp=whatsapp)


def main(count: int) -> dict[str, float]:
    # A real Services object; its Redis client connects lazily and idle trees never touch it.
    services = Services(
        settings=load({}), redis=redis.Redis(), admin_token="-", secret_keys=(b"k" * 32,)
    )
    spec = TreeSpec(load_config=config_of, services=services)
    supervisor = Supervisor.start(spec)
    gc.collect()
    before = rss_kib()
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        tenant = supervisor.ask(GetTenant(f"tenant-{i}"), timeout=10)
        tenant.ask(Control("ping"), timeout=10)  # answered once on_start (children too) is done
        latencies.append(time.perf_counter() - started)
    gc.collect()
    per_tree = (rss_kib() - before) / count
    actors = sum(
        len(tenant.ask(Control("stats"), timeout=10)["actors"])
        for tenant in (supervisor.ask(GetTenant("tenant-0"), timeout=10),)
    )
    started = time.perf_counter()
    gc.freeze()  # as the shard does before it stops its trees (interlink.runtime.Shard.stop)
    supervisor.stop(timeout=60)
    stop_s = time.perf_counter() - started
    latencies.sort()
    return {
        "tenants": count,
        "actors_per_tree": actors,
        "activation_p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "activation_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
        "kib_per_idle_tree": round(per_tree, 1),
        "stop_s": round(stop_s, 2),
    }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)))
