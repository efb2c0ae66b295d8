"""The v1 -> v2 key layout move (interlink.store.layout) against a real Valkey."""

from __future__ import annotations

import os
import secrets
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from interlink.store import keys, layout
from interlink.tenancy import ownership

V1 = keys.NS


def test_every_renamed_key_type_gets_its_tagged_name() -> None:
    owner = ownership.owner("acme", 3)
    assert layout.v2_name(V1 + "tenant:acme", 3) == keys.tenant("acme")
    assert layout.v2_name(V1 + "tenants", 3) == keys.tenant_ids()
    assert layout.v2_name(V1 + "idx:verify", 3) == keys.index_verify_token()
    assert layout.v2_name(V1 + "apikey:00ff", 3) == keys.api_key("00ff")
    assert layout.v2_name(V1 + "tenant-keys:acme", 3) == keys.tenant_api_keys("acme")
    assert layout.v2_name(V1 + "backlog:acme", 3) == keys.backlog(owner, "acme")
    assert layout.v2_name(V1 + "seen:acme:in:wa:wamid.1", 3) == keys.accepted(
        owner, "acme", "wa:wamid.1"
    )
    assert layout.v2_name(V1 + "msg:acme:wamid.2", 3) == keys.message_map("acme", "wamid.2")
    assert layout.v2_name(V1 + "seen:acme:receipt:g-1", 3) == keys.receipt("acme", "g-1")
    # Keys used one at a time keep their names.
    for kept in (
        keys.inbox(0),
        keys.dedupe("acme", "done", "step:in:x"),
        keys.conversation("acme", "p-1"),
        keys.dead_letters("acme"),
        keys.alias("acme", "phone:34600"),
        keys.token("acme"),
    ):
        assert layout.v2_name(kept, 3) is None


def test_the_move_keeps_values_and_ttls_never_overwrites_and_runs_once(
    redis_client: redis.Redis,
) -> None:
    redis_client.hset(V1 + "tenant:acme", mapping={"tenantId": "acme", "version": "3"})
    redis_client.set(V1 + "seen:acme:in:wamid.1", "1", ex=1000)
    redis_client.set(V1 + "backlog:acme", "2")
    redis_client.set(V1 + "backlog:globex", "7")
    redis_client.set(keys.backlog(0, "globex"), "1")  # a v2 key already there wins
    assert layout.ensure(redis_client, 1) == 3
    assert redis_client.hget(keys.tenant("acme"), "version") == b"3"
    assert 990 < redis_client.ttl(keys.accepted(0, "acme", "wamid.1")) <= 1000
    assert redis_client.get(keys.backlog(0, "acme")) == b"2"
    assert redis_client.get(keys.backlog(0, "globex")) == b"1"
    assert redis_client.get(V1 + "backlog:globex") == b"7"
    # Recorded as done: a v1 key appearing later (an old shard still running) is not looked for.
    redis_client.set(V1 + "backlog:late", "1")
    assert layout.ensure(redis_client, 1) == 0
    assert redis_client.exists(V1 + "backlog:late")


def test_a_refused_rename_is_an_error_not_a_key_moved_meanwhile(
    redis_client: redis.Redis, redis_url: str
) -> None:
    """Only "no such key" means another shard moved the key first; any other refusal (an ACL
    without RENAMENX) must stop the move, or the v1 keys would silently stay unread."""
    if os.environ.get("INTERLINK_TEST_REDIS_URL"):
        pytest.skip("creates an ACL user: only on the suite's own Valkey")
    user, password = f"no-rename-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    redis_client.execute_command(
        "ACL", "SETUSER", user, "on", f">{password}", "~*", "+@all", "-renamenx"
    )
    redis_client.set(V1 + "backlog:acme", "2")
    url = urlsplit(redis_url)
    netloc = f"{user}:{password}@{url.hostname}:{url.port}"
    limited = redis.Redis.from_url(urlunsplit(url._replace(netloc=netloc)))
    try:
        with pytest.raises(redis.ResponseError, match=r"(?i)noperm|no permissions"):
            layout.ensure(limited, 1)
        assert redis_client.get(V1 + "backlog:acme") == b"2"
        assert not redis_client.exists(keys.layout())  # not recorded as done
    finally:
        limited.close()
        redis_client.execute_command("ACL", "DELUSER", user)
