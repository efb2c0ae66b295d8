"""The provider HTTP client alone: CPU per JSON POST through the shard's pooled session (urllib3
driven directly) against a tuned ``requests.Session`` (no environment lookups, one session
kept), both over kept-alive connections to the provider stand-in, in one process.

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

from interlink.providers.session import PooledSession, new_session  # noqa: E402
from interlink.store.embedded import free_port  # noqa: E402

CALLS = 3000
BODY = {
    "channel": {"platform": "Open", "type": "Private", "messageId": "wamid.x" * 4,
                "from": {"id": "16505551234", "idType": "Opaque", "nickname": "User"},
                "time": "2026-12-01T20:00:00.000Z"},
    "type": "Text", "text": "hello " * 20, "direction": "Inbound",
}  # fmt: skip
HEADERS = {"Authorization": "Bearer " + "t" * 40, "Accept": "application/json"}


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
        results = {}
        for _ in range(2):  # alternated, to see the spread
            results.setdefault("pooled session (urllib3 direct)", []).append(
                round(per_call(PooledSession(), url), 1)
            )
            results.setdefault("tuned requests.Session", []).append(
                round(per_call(new_session(), url), 1)
            )
        print(json.dumps(results, indent=2))
    finally:
        stand_in.terminate()
        stand_in.wait(10)


if __name__ == "__main__":
    main()
