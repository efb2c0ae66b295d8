"""Every Lua script and multi-key command of the store, run against a real three-master Valkey
Cluster through the cluster client: keys of more than one slot in one script are refused by the
client before anything is sent (``RedisClusterException``), and by the server (``CROSSSLOT``) if
they were not, so each operation below passing is the proof that its keys share a slot.

A script added anywhere in interlink must be added here too: the last test counts them."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
import redis

from interlink.fleet import forward as forwarding
from interlink.fleet import record
from interlink.fleet.lease import Lease
from interlink.inbox import Entry, Inbox, InboxReader
from interlink.inbox.accept import DUPLICATE, NEW
from interlink.store import keys, layout
from interlink.store.api_keys import ApiKeys
from interlink.store.connection import connect, is_cluster
from interlink.store.conversations import ConversationStore, tenant_of_genesys_conversation
from interlink.store.dead_letters import DeadLetters
from interlink.store.tenants import TenantStore
from interlink.store.tokens import TokenStore
from interlink.tenancy import ownership
from tests.support.valkey_cluster import ValkeyCluster, valkey_cluster  # noqa: F401 - fixture

SHARDS = 3


@pytest.fixture
def cluster(valkey_cluster: ValkeyCluster) -> Iterator[redis.Redis]:  # noqa: F811
    valkey_cluster.flush()
    client = connect(valkey_cluster.url, cluster=True)
    assert is_cluster(client)
    try:
        yield client
    finally:
        client.close()


def wait_for(predicate: object, timeout: float = 5.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        gevent.sleep(0.01)


def test_tenant_admin_scripts_and_api_keys(cluster: redis.Redis) -> None:
    store = TenantStore(cluster, (secrets.token_bytes(32),))
    store.create("acme", name="Acme")
    store.update("acme", {"name": "Acme Inc"})
    store.set_whatsapp(
        "acme",
        access_token="EAA" + secrets.token_urlsafe(60),
        phone_number_id="1055500000001",
        business_account_id="2055500000001",
        app_secret=secrets.token_hex(16),
        verify_token=secrets.token_urlsafe(16),
    )
    assert store.tenant_for_phone("1055500000001") == "acme"
    assert [t["tenantId"] for t in store.list_page()[0]] == ["acme"]
    api_keys = ApiKeys(cluster)
    issued = api_keys.issue_key("acme")
    assert api_keys.check_key(issued.key) == "acme"
    assert api_keys.revoke_key("acme", issued.key_id)
    second = api_keys.issue_key("acme")
    store.delete("acme")  # the record, the indexes and every API key, in one script
    assert api_keys.check_key(second.key) is None
    assert store.tenant_for_phone("1055500000001") is None


def test_group_commit_and_acks_over_three_shards(cluster: redis.Redis) -> None:
    tenants = [f"tenant-{n}" for n in range(12)]
    assert {ownership.owner(t, SHARDS) for t in tenants} == set(range(SHARDS))
    inbox = Inbox(cluster, SHARDS)
    entries = [
        Entry(t, "wa.message", {"n": n}, conversation="u1", dedupe=f"wamid.{n}")
        for n, t in enumerate(tenants)
    ] + [Entry(tenants[0], "wa.status", {"n": 99})]  # not deduplicated
    try:
        assert inbox.accept(entries) == [NEW] * len(entries)
        assert inbox.accept(entries[:3]) == [DUPLICATE] * 3
    finally:
        inbox.close()
    got: list[Entry] = []
    readers = [InboxReader(cluster, s, lambda e: got.append(e) or True) for s in range(SHARDS)]
    for reader in readers:
        reader.start()
    try:
        wait_for(lambda: len(got) == len(entries))
        for reader in readers:
            for entry in got:
                if ownership.owner(entry.tenant_id, SHARDS) == reader.shard_id:
                    reader.ack(entry)
        wait_for(lambda: all(cluster.xlen(keys.inbox(s)) == 0 for s in range(SHARDS)))
        assert sorted((e.tenant_id, e.payload["n"]) for e in got) == sorted(
            (e.tenant_id, e.payload["n"]) for e in entries
        )
        for tenant in tenants:
            assert not cluster.exists(keys.backlog(ownership.owner(tenant, SHARDS), tenant))
    finally:
        for reader in readers:
            reader.stop()


def test_a_commit_writes_over_the_tenants_slots_then_acknowledges(cluster: redis.Redis) -> None:
    """A conversation's writes (its tenant's slot, and any) go with the acknowledgement (the
    shard's slot): not one script, so writes first, then the acknowledgement."""
    tenants = [f"tenant-{n}" for n in range(6)]
    inbox = Inbox(cluster, SHARDS)
    try:
        inbox.accept(
            [Entry(t, "wa.message", {"n": n}, conversation="u1") for n, t in enumerate(tenants)]
        )
    finally:
        inbox.close()
    got: list[Entry] = []
    readers = [InboxReader(cluster, s, lambda e: got.append(e) or True) for s in range(SHARDS)]
    for reader in readers:
        reader.start()

    def commit(entry: Entry) -> None:
        tenant = entry.tenant_id
        store = ConversationStore(cluster, tenant, write_behind=True)
        store.map_message(f"wamid.{tenant}", f"gc-{tenant}", "p1")
        store.mark_done(f"step-{tenant}", genesys_conversation=f"conv-{tenant}")
        reader = readers[ownership.owner(tenant, SHARDS)]
        store.flush(lambda write: reader.commit(entry, write))

    try:
        wait_for(lambda: len(got) == len(tenants))
        gevent.joinall([gevent.spawn(commit, entry) for entry in got], raise_error=True)
        for tenant in tenants:
            assert ConversationStore(cluster, tenant).mapped(f"wamid.{tenant}")[0] == f"gc-{tenant}"
            assert tenant_of_genesys_conversation(cluster, f"conv-{tenant}") == tenant
            assert not cluster.exists(keys.backlog(ownership.owner(tenant, SHARDS), tenant))
        assert all(cluster.xlen(keys.inbox(s)) == 0 for s in range(SHARDS))
    finally:
        for reader in readers:
            reader.stop()


def test_a_write_refused_on_a_cluster_fails_only_its_own_conversation(
    cluster: redis.Redis,
) -> None:
    """On a cluster the writes go as a pipeline: a key of another type is passed over there as
    ack.lua does, and any other write Redis refuses fails only its own entry's commit, never the
    other tenants' of the shard."""
    names = [f"tw-{n}" for n in range(60)]
    shard = ownership.owner(names[0], SHARDS)
    wrongtype, refused, good = [t for t in names if ownership.owner(t, SHARDS) == shard][:3]
    inbox = Inbox(cluster, SHARDS)
    try:
        inbox.accept(
            [
                Entry(t, "wa.message", {"n": 1}, conversation="u1")
                for t in (wrongtype, refused, good)
            ]
        )
    finally:
        inbox.close()
    got: list[Entry] = []
    reader = InboxReader(cluster, shard, lambda e: got.append(e) or True)
    reader.start()
    cluster.set(keys.message_map(wrongtype, "wamid.x"), "x")  # an operator's edit, say

    def run(entry: Entry) -> None:
        tenant = entry.tenant_id
        if tenant == refused:

            def write(pipe: Any) -> None:
                pipe.set(keys.dedupe(tenant, "done", "step"), "1")
                pipe.execute_command("SET", keys.dedupe(tenant, "done", "x"))  # too few arguments

            reader.commit(entry, write)
            return
        store = ConversationStore(cluster, tenant, write_behind=True)
        store.mark_done("step")
        store.map_message("wamid.x", "g1", "p1")
        store.flush(lambda write: reader.commit(entry, write))

    try:
        wait_for(lambda: len(got) == 3)
        runs = {entry.tenant_id: gevent.spawn(run, entry) for entry in got}
        gevent.joinall(list(runs.values()), timeout=10)
        assert runs[wrongtype].successful() and runs[good].successful()
        assert isinstance(runs[refused].exception, redis.ResponseError)
        for tenant in (wrongtype, refused, good):
            assert cluster.get(keys.dedupe(tenant, "done", "step")) == b"1"
        assert ConversationStore(cluster, good).mapped("wamid.x")[0] == "g1"
        assert cluster.get(keys.message_map(wrongtype, "wamid.x")) == b"x"
        [(_, fields)] = cluster.xrange(keys.inbox(shard))  # the refused one's, pending
        assert fields[b"t"] == refused.encode()
    finally:
        reader.stop()


def test_dead_letter_replay(cluster: redis.Redis) -> None:
    dead = DeadLetters(cluster, "acme", SHARDS)
    dead.add("wa.message", {"n": 1}, "u1", "refused")
    dead.add("wa.message", {"n": 2}, "u1", "refused")
    assert dead.replay() == 2
    assert dead.count() == 0
    shard = ownership.owner("acme", SHARDS)
    assert cluster.xlen(keys.inbox(shard)) == 2
    assert cluster.get(keys.backlog(shard, "acme")) == b"2"


def test_conversation_state_receipts_and_tokens(cluster: redis.Redis) -> None:
    conversations = ConversationStore(cluster, "acme")
    aliases = {"phone:34600000001": "p-1", "bsuid:US.1": "p-1"}
    conversations.user_wrote("p-1", time.time(), "34600000001", aliases, "wamid.in")
    assert conversations.known_alias(list(aliases)) == "p-1"
    conversations.map_message("wamid.a", "g-1", "p-1", parts=2)
    conversations.map_message("wamid.b", "g-1", "p-1", parts=2)
    assert conversations.advance("wamid.a", None, "sent")
    assert (
        conversations.part_status(
            "wamid.a", "g-1", expected="sent", new="delivered", outcome="d", parts=2
        )
        is None
    )
    final = conversations.part_status(
        "wamid.b", "g-1", expected=None, new="delivered", outcome="d", parts=2
    )
    assert final == "Delivered"
    conversations.receipt_sent("receipt:g-1", "g-1")
    assert conversations.start("receipt:g-1") is False
    conversations.map_message("wamid.c", "g-2", "p-1")
    moves = [("sent", ""), ("sent", ""), ("delivered", ""), ("read", ""), ("failed", "")]
    assert conversations.status_of("wamid.c", "g-2", moves) == (None, "p-1")
    moves = [("delivered", "d"), ("delivered", "d"), *moves[2:]]
    assert conversations.status_of("wamid.c", "g-2", moves) == ("Delivered", "p-1")

    tokens = TokenStore(cluster)
    owner = tokens.lock("acme")
    assert owner is not None and tokens.locked("acme")
    tokens.put("acme", "token-made-for-this-test", 3600)
    cached = tokens.get("acme")
    assert cached is not None and cached.token == "token-made-for-this-test"
    tokens.unlock("acme", owner)
    tokens.drop("acme", "token-made-for-this-test")
    assert tokens.lock("acme") is not None
    tokens.put("acme", "another-token", 3600, unlock=True)  # three keys, three slots
    assert not tokens.locked("acme") and tokens.get("acme") is not None
    tokens.drop("acme")
    assert tokens.get("acme") is None
    # A first ask: read, then lock (no script over three slots on a cluster).
    cached, owner = tokens.get_or_lock("acme", 120.0)
    assert cached is None and owner is not None and tokens.locked("acme")
    tokens.put("acme", "third-token", 3600, unlock=True)
    cached, owner = tokens.get_or_lock("acme", 120.0)  # a good token: no lock taken
    assert cached is not None and cached.token == "third-token" and owner is None
    assert not tokens.locked("acme")


def test_the_shard_count_handover(cluster: redis.Redis) -> None:
    """The fleet record, fences, leases and forwarding (interlink.fleet) from 1 shard to 2."""
    first = record.join(cluster, 1)
    tenants = [f"t{n}" for n in range(12)]
    inbox = Inbox(cluster, 1, generation=first.generation)
    try:
        assert inbox.accept([Entry(t, "wa.message", {"n": 0}, dedupe=f"w.{t}") for t in tenants])
    finally:
        inbox.close()
    assert record.join(cluster, 1) == first
    view = record.join(cluster, 2)
    assert [cluster.get(keys.fence(n)) for n in range(2)] == [b"2", b"2"]
    lease = Lease(cluster, 0, 0, view.generation)
    assert lease.acquire() and lease.refresh()
    theirs = [t for t in tenants if view.owner(t) == 1]
    assert theirs
    forwarding.ensure_groups(cluster, 0)
    assert forwarding.forward(cluster, 0, view, regroup=True) == len(theirs)
    arrived = cluster.xrange(keys.handover(1))
    assert sorted(f[b"t"].decode() for _, f in arrived) == sorted(theirs)
    for tenant in theirs:
        assert cluster.get(keys.backlog(1, tenant)) == b"1"
    for stream in range(view.streams):
        record.mark_done(cluster, stream, view.generation)
    assert record.handed_over(cluster, view)
    lease.release()
    assert not cluster.exists(keys.lease(0))


def test_a_cluster_has_no_v1_layout_to_move(cluster: redis.Redis) -> None:
    assert layout.ensure(cluster, SHARDS) == 0


def test_the_cluster_client_refuses_a_script_across_slots(cluster: redis.Redis) -> None:
    """What the tests above rely on: keys of two slots in one script never reach a node."""
    from interlink.store.connection import FastScript

    script = FastScript(cluster, "return redis.call('INCR', KEYS[1]) + redis.call('INCR', KEYS[2])")
    assert script([keys.backlog(0, "a"), keys.backlog(0, "b")], []) == 2
    with pytest.raises(redis.exceptions.RedisClusterException, match="same key slot"):
        script([keys.backlog(0, "a"), keys.backlog(1, "a")], [])


def test_every_script_in_the_code_is_exercised_here() -> None:
    """The places that run a script in interlink (``register_script``, ``FastScript``, ``eval``),
    by module. A new one fails this test until it runs against the cluster above."""
    root = Path(__file__).resolve().parents[2] / "interlink"
    sites: dict[str, int] = {}
    for path in root.rglob("*.py"):
        if path.name == "connection.py":  # where FastScript is defined
            continue
        text = path.read_text("utf-8")
        count = len(re.findall(r"register_script\(|FastScript\(|\.eval\(|\.evalsha\(", text))
        if count:
            sites[str(path.relative_to(root))] = count
    assert sites == {
        "fleet/forward.py": 2,
        "fleet/lease.py": 3,
        "fleet/record.py": 3,
        "inbox/accept.py": 1,
        "inbox/reader.py": 1,
        "store/api_keys.py": 2,
        "store/conversations.py": 3,
        "store/dead_letters.py": 1,
        "store/tenants.py": 2,
        # The compare-and-delete runs above; the read-or-lock script and the batched
        # compare-and-delete are never sent to a cluster (TokenStore checks is_cluster first).
        "store/tokens.py": 3,
    }
