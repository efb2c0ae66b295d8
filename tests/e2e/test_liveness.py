"""``/healthz`` sees a dead part of a real shard: the shard runs in this process on a real socket
and its real Redis, a test kills one part the way a bug would, and the probe turns 503 within
the grace and a second; the orchestrator's answer (a fresh start of the process) is healthy."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from interlink import settings as settings_module
from interlink.cli.serve import http_shard
from interlink.inbox import Entry
from interlink.runtime import Shard
from interlink.settings import Settings

# Short, so the tests stay fast; the shipped default is DEFAULT_COMMIT_LOOP_GRACE.
GRACE = 1.0


class Bug(Exception):
    """What kills a part in production: an exception nothing handles."""


@pytest.fixture
def shard_settings(tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> Settings:
    return settings_module.load(
        {
            "INTERLINK_DATA_DIR": str(tmp_path),
            "INTERLINK_REDIS_URL": redis_url,
            "INTERLINK_PORT": "0",
        }
    )


@contextmanager
def running(settings: Settings) -> Iterator[tuple[Shard, str]]:
    shard = http_shard(settings)
    try:
        shard.start()
        assert shard.services is not None and shard.server is not None
        shard.services.inbox.commit_loop_grace = GRACE
        host, port = shard.server.address[:2]
        yield shard, f"http://{host}:{port}"
    finally:
        shard.stop()


def get(url: str) -> tuple[int, Any]:
    """Status and JSON body; the connection closed, so that it does not hold up the stop."""
    with requests.get(url, timeout=5) as resp:
        return resp.status_code, resp.json()


def kill_supervisor(shard: Shard) -> None:
    assert shard.supervisor is not None
    shard.supervisor.stop()


def kill_inbox_reader(shard: Shard) -> None:
    assert shard.services is not None and shard.services.reader is not None
    reader = shard.services.reader
    # The reader starts once the shard's stream is leased, which may come just after /healthz.
    deadline = time.monotonic() + 5
    while not reader._greenlets and time.monotonic() < deadline:
        time.sleep(0.01)
    read_loop = reader._greenlets[0]
    read_loop.kill(Bug("read loop"))
    assert read_loop.dead


def kill_commit_loop(shard: Shard) -> None:
    assert shard.services is not None
    inbox = shard.services.inbox
    # The loop starts with the first accept: accept one entry, then kill the loop.
    inbox.accept([Entry("liveness", "wa.message", {"text": "hi"}, conversation="u1")])
    committer = inbox._committer
    assert committer is not None
    committer.kill(Bug("commit loop"))
    assert committer.dead


@pytest.mark.parametrize(
    ("kill", "named", "grace"),
    [
        (kill_supervisor, "supervisor dead", 0.0),
        (kill_inbox_reader, "inbox reader dead since", 0.0),
        (kill_commit_loop, "group-commit loop dead since", GRACE),
    ],
    ids=["supervisor", "inbox-reader", "commit-loop"],
)
def test_healthz_turns_503_for_a_dead_part_and_a_restart_is_healthy(
    shard_settings: Settings, kill: Callable[[Shard], None], named: str, grace: float
) -> None:
    with running(shard_settings) as (shard, url):
        assert get(url + "/healthz") == (200, {"status": "ok"})
        kill(shard)
        killed = time.monotonic()
        if grace:
            # Within the grace the part may still come back (the next accept starts it).
            assert get(url + "/healthz")[0] == 200
        while (answer := get(url + "/healthz"))[0] == 200:
            assert time.monotonic() - killed < GRACE + 1.0, "/healthz still 200"
            time.sleep(0.05)
        assert time.monotonic() - killed >= grace
        status, body = answer
        assert status == 503
        assert body["title"] == "Unhealthy"
        assert body["description"].startswith(named)

    # The orchestrator restarts the process: every part runs again.
    with running(shard_settings) as (_, url):
        assert get(url + "/healthz") == (200, {"status": "ok"})
        assert get(url + "/readyz") == (200, {"status": "ready"})
