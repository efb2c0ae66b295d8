"""The provider HTTP client alone: CPU per JSON POST through the shard's pooled session (its own
HTTP/1.1 exchange, :mod:`interlink.providers.http11`), through the same session driving urllib3's
pool directly (what it did until 2026-12-02, kept here to compare) and through a tuned
``requests.Session`` (no environment lookups, one session kept), all over kept-alive
connections to the provider stand-in, in one process.

``python -m bench.http_client``: prints microseconds of this process's CPU per call (the
stand-in runs in its own process and is not counted).
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import requests  # noqa: E402
import urllib3  # noqa: E402

from interlink.providers.session import FastResponse, PooledSession, new_session  # noqa: E402
from interlink.store.embedded import free_port  # noqa: E402

CALLS = 3000
BODY = {
    "channel": {"platform": "Open", "type": "Private", "messageId": "wamid.x" * 4,
                "from": {"id": "16505551234", "idType": "Opaque", "nickname": "User"},
                "time": "2026-12-01T20:00:00.000Z"},
    "type": "Text", "text": "hello " * 20, "direction": "Inbound",
}  # fmt: skip
HEADERS = {"Authorization": "Bearer " + "t" * 40, "Accept": "application/json"}


class Urllib3Direct(PooledSession):
    """The pooled session as it was: ``post_bytes`` on the host's urllib3 pool (failures are
    not mapped here: the bench has none)."""

    def post_bytes(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str] | None = None,
        timeout: Any = None,
        content_type: str = "application/json",
    ) -> FastResponse:
        end = url.find("/", url.find("//") + 2)
        pool = self._adapter.poolmanager.connection_from_url(url[:end])
        sent = self.request_headers(headers, content_type, len(body))
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        answer = pool.urlopen(
            "POST",
            url[end:] or "/",
            body=body,
            headers=sent,
            retries=False,
            redirect=False,
            timeout=urllib3.Timeout(connect=connect, read=read),
            assert_same_host=False,
            preload_content=True,
        )
        return FastResponse(answer.status, answer.headers, answer.data, url)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def per_call(session: requests.Session, url: str) -> float:
    for _ in range(200):  # warm: connections open, code paths hot
        session.post(url, json=BODY, headers=HEADERS, timeout=(5.0, 20.0))
    began = cpu()
    for _ in range(CALLS):
        answer: Any = session.post(url, json=BODY, headers=HEADERS, timeout=(5.0, 20.0))
        answer.json()
    return (cpu() - began) / CALLS * 1e6


def main() -> None:
    port = free_port()
    root = Path(__file__).resolve().parent.parent
    stand_in = subprocess.Popen(
        [sys.executable, "-m", "bench.fake_providers", str(port), "100"], cwd=root
    )
    try:
        url = f"http://127.0.0.1:{port}/genesys/r/api/api/v2/conversations/messages/i/inbound/open/message"
        deadline = time.monotonic() + 10
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/_stats", timeout=1)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        contenders: dict[str, Any] = {
            "pooled session (http11)": PooledSession,
            "pooled session (urllib3 direct, before)": Urllib3Direct,
            "tuned requests.Session": new_session,
        }
        results: dict[str, list[float]] = {}
        for _ in range(3):  # alternated, to see the spread
            for name, make in contenders.items():
                results.setdefault(name, []).append(round(per_call(make(), url), 1))
        print(json.dumps(results, indent=2))
    finally:
        stand_in.terminate()
        stand_in.wait(10)


if __name__ == "__main__":
    main()
