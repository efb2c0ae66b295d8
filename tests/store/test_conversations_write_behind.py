"""The conversation store's write-behind: a message's writes wait for its next round trip or
its flush, and nothing of them is lost or reordered on the way."""

from __future__ import annotations

import secrets

import redis

from interlink.store import keys
from interlink.store.conversations import ConversationStore


def tenant() -> str:
    return f"t-{secrets.token_hex(4)}"


def test_writes_wait_for_the_flush(redis_client: redis.Redis) -> None:
    tid = tenant()
    store = ConversationStore(redis_client, tid, write_behind=True)
    assert store.start("out:g1:0")
    store.mark_done("out:g1:0", "wamid.1")
    store.map_message("wamid.1", "g1", "16505551234")
    assert redis_client.get(keys.dedupe(tid, "done", "out:g1:0")) is None
    assert not redis_client.exists(keys.message_map(tid, "wamid.1"))
    store.flush()
    assert redis_client.get(keys.dedupe(tid, "done", "out:g1:0")) == b"wamid.1"
    assert redis_client.hget(keys.message_map(tid, "wamid.1"), "genesys") == b"g1"
    # Another store (a redelivery) finds the step done.
    assert not ConversationStore(redis_client, tid).start("out:g1:0")


def test_the_next_step_check_carries_the_waiting_writes(redis_client: redis.Redis) -> None:
    tid = tenant()
    store = ConversationStore(redis_client, tid, write_behind=True)
    assert store.start("in:w1:0")
    store.mark_done("in:w1:0", "m1", genesys_conversation=f"conv-{tid}")
    assert store.start("in:w1:1")  # one round trip: the waiting writes, then the check
    assert redis_client.get(keys.dedupe(tid, "done", "in:w1:0")) == b"m1"
    assert redis_client.get(keys.genesys_conversation(f"conv-{tid}")) == tid.encode()
    assert not store.start("in:w1:0")  # known done here without asking


def test_without_write_behind_every_write_goes_at_once(redis_client: redis.Redis) -> None:
    tid = tenant()
    store = ConversationStore(redis_client, tid)
    assert store.start("out:g2:0")
    store.mark_done("out:g2:0", "wamid.2")
    store.map_message("wamid.2", "g2", "16505551234")
    assert redis_client.get(keys.dedupe(tid, "done", "out:g2:0")) == b"wamid.2"
    assert redis_client.hget(keys.message_map(tid, "wamid.2"), "genesys") == b"g2"


def test_a_dead_letter_stores_the_waiting_writes_first(redis_client: redis.Redis) -> None:
    tid = tenant()
    store = ConversationStore(redis_client, tid, write_behind=True)
    assert store.start("out:g3:0")
    store.mark_done("out:g3:0", "wamid.3")
    store.dead_letter("gc.message", {"id": "g3"}, "16505551234", "a later part failed")
    assert redis_client.get(keys.dedupe(tid, "done", "out:g3:0")) == b"wamid.3"
