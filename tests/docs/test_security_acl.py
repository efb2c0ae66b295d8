"""The minimal ACL of docs/security.md is enough, and the code needs no command outside it.

The ``ACL SETUSER`` blocks are read out of the document and created on a Valkey of this test's own
(never the session's store: its ACL log must hold nothing but this run). Then real work runs as
that user: two shard processes whose ``INTERLINK_REDIS_URL`` carries its name and password (and a
database number, so that ``SELECT`` is needed), between the simulators; the v1 -> v2 key move at
start; the round trip WhatsApp -> Genesys -> WhatsApp with its receipt; the admin API (tenant
create, update, delete, an API key issued, used and revoked); a hot reload of rotated credentials
from the shard that does not own the tenant; control messages, relayed ones and ``?all=1``; a
dead letter listed, replayed and dropped; an operator hold (stop, webhook, start); a scrape of
``/metrics``; and a change of the shard count from 2 to 3. Afterwards Valkey's ``ACL LOG`` must be
empty (a refused command is named in the failure, even one the code swallows) and no shard may
have logged a refusal. The document's token-reader user is checked against the cached token.

The first block for a user is its whole ACL on a standalone server; a later block for the same
user lists the additions for Redis Cluster, checked with the same work on a three-master Valkey
Cluster. Every rule must also have been used (a command listed that nothing sends is refused
too): the list is what the code needs, no more.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import gevent
import pytest
import redis

from interlink.fleet import record
from interlink.fleet.relay import ControlRelay, RelayTimeout
from interlink.store import keys
from interlink.store.connection import connect as connect_store
from interlink.store.embedded import EmbeddedValkey
from interlink.tenancy.ownership import owner
from tests.e2e.chaos import add_shard, restart
from tests.e2e.test_poison import poison_message, post_meta
from tests.e2e.world import Tenant, World, start_world, wait_for
from tests.support.owners import owned_by
from tests.support.valkey_cluster import ValkeyCluster, valkey_cluster  # noqa: F401 - fixture

SECURITY = Path(__file__).resolve().parents[2] / "docs" / "security.md"
DATABASE = 3  # not 0: the client then sends SELECT, as an operator's URL may make it do
# What Redis and Valkey let every user run (``no-auth`` commands): listed rules for them are
# allowed, but need no use here.
ALWAYS_ALLOWED = frozenset({"auth", "hello"})
# What redis-py's cluster client sends in the releases the lower bound admits, not in this one
# (5.x asks INFO whether cluster mode is on; deploy/ci/lower_bounds.py runs this file with 5.0).
ONLY_OLDER_CLIENTS = frozenset() if redis.__version__.startswith("5.") else frozenset({"info"})
REFUSED = re.compile(r"NOPERM|no permissions", re.IGNORECASE)


def acl_blocks(text: str) -> list[tuple[str, list[str]]]:
    """Every fenced ``ACL SETUSER name rules...`` block of the document, in order, as
    (user, rules); a block may span lines."""
    found = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        words = block.split()
        if words[:2] == ["ACL", "SETUSER"] and len(words) > 2:
            found.append((words[2], words[3:]))
    return found


def documented_users() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(each user's ACL on a standalone server, each user's additions on a cluster)."""
    standalone: dict[str, list[str]] = {}
    cluster: dict[str, list[str]] = {}
    for user, rules in acl_blocks(SECURITY.read_text(encoding="utf-8")):
        (cluster if user in standalone else standalone).setdefault(user, []).extend(rules)
    return standalone, cluster


def create_user(admin: redis.Redis, user: str, rules: list[str], password: str) -> None:
    """The document's rules, each ``>placeholder`` password replaced by ``password``."""
    concrete = [f">{password}" if rule.startswith(">") else rule for rule in rules]
    admin.execute_command("ACL", "SETUSER", user, *concrete)


def refusals(admin: redis.Redis) -> list[str]:
    """Valkey's ACL log, one line per refusal: what was refused, and in which context."""
    lines = []
    for entry in admin.acl_log(count=128):
        fields = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in entry.items()
        }
        lines.append(
            f"{fields.get('reason')} {fields.get('object')!r} by {fields.get('username')} "
            f"(context {fields.get('context')}, {fields.get('count')}x)"
        )
    return lines


def test_the_documented_acl_blocks_parse() -> None:
    standalone, _ = documented_users()
    assert set(standalone) >= {"interlink", "token-reader"}
    rules = standalone["interlink"]
    assert "-@all" in rules and "resetkeys" in rules and "resetchannels" in rules
    for prefix in ("~il:v1:*", "~il:v2:*", "~genesys:oauth:token:*"):
        assert prefix in rules
    assert any(rule.startswith("&") for rule in rules)


@pytest.fixture
def acl_store(tmp_path: Path) -> Iterator[tuple[EmbeddedValkey, redis.Redis]]:
    server = EmbeddedValkey(tmp_path / "valkey", appendonly=False)
    server.start()
    admin = redis.Redis.from_url(server.url, socket_timeout=10)
    try:
        yield server, admin
    finally:
        admin.close()
        server.stop()


def user_url(server: EmbeddedValkey, user: str, password: str) -> str:
    return f"redis://{user}:{quote(password, safe='')}@127.0.0.1:{server.port}/{DATABASE}"


def texts(world: World, tenant: Tenant) -> list[str]:
    return [m.body.get("text") for m in world.state.genesys.messages_from(tenant.integration_id)]


def control(world: World, shard: int, tenant_id: str, **message: Any) -> dict[str, Any]:
    answer = world.admin(
        "POST", f"/control/tenants/{tenant_id}/messages", shard=shard, json=message
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def fleet_work(world: World, store: redis.Redis, *, cluster: bool = False) -> None:
    """Everything a fleet does with Redis, done once (the ACL users' tests' body)."""
    if not cluster:  # a cluster never held a v1 layout: nothing moves there
        assert store.exists(keys.accepted(owner("legacy", 2), "legacy", "wamid.old"))
    # One tenant per shard; their admin writes go through shard 0.
    mine, theirs = owned_by(0, 2, "mine"), owned_by(1, 2, "theirs")
    a, b = world.add_tenant(mine), world.add_tenant(theirs)
    ana, bob = world.user(name="Ana"), world.user(name="Bob")

    # The round trip, both tenants: WhatsApp -> Genesys, the agent's answer -> WhatsApp,
    # WhatsApp's receipts -> Genesys.
    for tenant, user in ((a, ana), (b, bob)):
        said = world.state.user.say(tenant.phone_number_id, user, "text", body="hola")
        assert said.status == 200
        wait_for(lambda t=tenant: texts(world, t) == ["hola"], message="inbound")
        delivery = world.state.agent.send(tenant.integration_id, user.wa_id, text="hi")
        assert delivery.status == 200
        sent = wait_for(
            lambda t=tenant: world.state.meta.sent_to(t.phone_number_id), message="outbound"
        )
        world.state.user.status(sent[0].wamid, "delivered")
        world.state.user.status(sent[0].wamid, "read")
        receipts = wait_for(
            lambda d=delivery: world.state.genesys.receipts_for(d.message_id),
            message="receipt",
        )
        assert [r["status"] for r in receipts] == ["Delivered"]

    # Admin API: update, an API key issued, used and revoked, a tenant created and deleted.
    patched = world.admin("PATCH", f"/api/tenants/{b.tenant_id}", json={"name": "Theirs"})
    assert patched.status_code == 200, patched.text
    issued = world.admin("POST", f"/api/tenants/{b.tenant_id}/keys")
    assert issued.status_code == 201, issued.text
    key = issued.json()
    as_tenant = world.admin(
        "GET",
        f"/api/tenants/{b.tenant_id}",
        shard=1,
        headers={"Authorization": f"Bearer {key['key']}"},
    )
    assert as_tenant.status_code == 200, as_tenant.text
    revoked = world.admin("DELETE", f"/api/tenants/{b.tenant_id}/keys/{key['keyId']}")
    assert revoked.status_code == 204, revoked.text
    passing = world.add_tenant(owned_by(1, 2, "passing"))
    world.admin("POST", f"/api/tenants/{passing.tenant_id}/keys")
    deleted = world.admin("DELETE", f"/api/tenants/{passing.tenant_id}")
    assert deleted.status_code in (200, 204), deleted.text
    assert world.admin("GET", f"/api/tenants/{passing.tenant_id}").status_code == 404
    listed = world.admin("GET", "/api/tenants?limit=1", shard=1)
    assert listed.status_code == 200, listed.text

    # Hot reload: shard 0 stores a new Meta token for shard 1's tenant, which uses it.
    rotated = secrets.token_urlsafe(40)
    world.state.meta.grant_token(b.phone_number_id, rotated)
    changed = world.admin(
        "PUT",
        f"/api/tenants/{b.tenant_id}/whatsapp/config",
        json={
            "meta_access_token": rotated,
            "whatsapp_phone_number_id": b.phone_number_id,
            "whatsapp_business_account_id": f"waba-{b.tenant_id}",
            "meta_app_secret": b.app_secret,
            "webhook_verify_token": b.verify_token,
        },
    )
    assert changed.status_code in (200, 201), changed.text
    wait_for(lambda: control(world, 1, b.tenant_id, type="stats")["version"] >= 5)
    assert world.state.agent.send(b.integration_id, bob.wa_id, text="again").status == 200
    wait_for(lambda: len(world.state.meta.sent_to(b.phone_number_id)) == 2, message="sent")
    last = world.state.requests(kind="meta.messages")[-1]
    assert last.headers["authorization"] == f"Bearer {rotated}"

    # Control: relayed both ways, every shard's view, a dead letter through its life.
    assert control(world, 0, b.tenant_id, type="ping")["shard"] == 1
    assert control(world, 1, a.tenant_id, type="ping")["shard"] == 0
    gathered = world.admin("GET", "/control/actors?all=1", shard=1)
    assert [v["shard"]["id"] for v in gathered.json()["shards"]] == [0, 1]
    # A shard that beats but does not answer: the asker takes its request back (LREM).
    asker = ControlRelay(store, 0, 2, lambda request: {}, timeout=0.2)
    store.set(keys.shard_alive(9), '{"id": 9, "count": 2}', px=2000)
    with pytest.raises(RelayTimeout):
        asker.ask(9, {"kind": "shard", "type": "ping"})
    store.delete(keys.shard_alive(9))
    poisoned = post_meta(world, b, poison_message(world, b, world.user()))
    assert poisoned.status_code == 200, poisoned.text
    wait_for(lambda: control(world, 0, b.tenant_id, type="dead-letters")["deadLetters"] == 1)
    assert control(world, 0, b.tenant_id, type="replay-dead-letters", limit=5)["replayed"] == 1
    # The replayed entry fails again: a dead letter once more.
    wait_for(lambda: control(world, 0, b.tenant_id, type="dead-letters")["deadLetters"] == 1)
    control(world, 0, b.tenant_id, type="drop-dead-letters", limit=5)
    wait_for(lambda: control(world, 0, b.tenant_id, type="dead-letters")["deadLetters"] == 0)
    for shard in (0, 1):
        shard_stats = world.admin(
            "POST", "/control/shard/messages", shard=shard, json={"type": "reload-all"}
        )
        assert shard_stats.status_code == 200, shard_stats.text
        metrics = world.admin("GET", "/metrics", shard=shard)
        assert "interlink_inbox_pending" in metrics.text

    # A hold: stopped through the relay, a webhook waits, start delivers it.
    assert control(world, 0, b.tenant_id, type="stop")["state"] == "stopped"
    world.state.user.say(b.phone_number_id, bob, "text", body="held")
    gevent.sleep(0.5)
    assert "held" not in texts(world, b)
    assert control(world, 0, b.tenant_id, type="start")["state"] == "active"
    wait_for(lambda: texts(world, b)[-1:] == ["held"], message="held message")

    # The shard count goes from 2 to 3: a third shard starts, the others follow.
    third = add_shard(world, 2, 3)
    third.start()
    wait_for(lambda: (v := record.read(store)) is not None and v.count == 3, 10, "count 3")
    restart(world.shards[1], 3)
    restart(world.shards[0], 3)
    wait_for(
        lambda: (v := record.read(store)) is not None and v.settled == v.generation,
        20,
        "handover settled",
    )
    for tenant, user in ((a, ana), (b, bob)):
        world.state.user.say(tenant.phone_number_id, user, "text", body="after")
        wait_for(lambda t=tenant: texts(world, t)[-1:] == ["after"], message="after")


def test_a_fleet_runs_as_the_documented_acl_user_and_is_refused_nothing(
    tmp_path: Path, acl_store: tuple[EmbeddedValkey, redis.Redis]
) -> None:
    server, admin = acl_store
    standalone, _ = documented_users()
    password = secrets.token_urlsafe(24)
    create_user(admin, "interlink", standalone["interlink"], password)
    admin.acl_log_reset()
    store = redis.Redis.from_url(user_url(server, "interlink", password), socket_timeout=10)
    # A key a version before the v2 layout wrote: the first start moves it (SCAN, RENAMENX).
    store.set(keys.NS + "seen:legacy:in:wamid.old", "1")
    admin.config_resetstat()  # from here on, the commands counted are the fleet's

    world = start_world(tmp_path, user_url(server, "interlink", password), shards=2)
    failure: BaseException | None = None
    try:
        fleet_work(world, store)
    except BaseException as exc:  # the refusals below explain it better, when there are any
        failure = exc
    finally:
        world.close()
        store.close()

    denied = refusals(admin)
    assert not denied, "commands, keys or channels the documented ACL refused:\n" + "\n".join(
        denied
    )
    for shard in world.shards:
        logged = [line for line in shard.log_text().splitlines() if REFUSED.search(line)]
        assert not logged, f"shard {shard.env['INTERLINK_SHARD_ID']} logged: {logged[:3]}"
    if failure is not None:
        raise failure
    # Each command of the list is there because the work above used it.
    granted = {rule[1:].lower() for rule in standalone["interlink"] if rule[:1] == "+"}
    used = {name.removeprefix("cmdstat_") for name in admin.info("commandstats")}
    unused = sorted(granted - used - ALWAYS_ALLOWED)
    assert not unused, (
        f"listed but never used by the fleet (exercise it here, or drop it): {unused}"
    )


def test_the_token_reader_reads_the_cached_token_and_nothing_else(
    acl_store: tuple[EmbeddedValkey, redis.Redis],
) -> None:
    server, admin = acl_store
    standalone, _ = documented_users()
    password = secrets.token_urlsafe(24)
    create_user(admin, "token-reader", standalone["token-reader"], password)
    admin.set(keys.token("acme"), "the-token", px=60_000)
    admin.set(keys.conversation("acme", "ana"), "private")
    url = f"redis://token-reader:{quote(password, safe='')}@127.0.0.1:{server.port}/0"
    reader = redis.Redis.from_url(url, socket_timeout=10)
    try:
        assert reader.ping()
        assert reader.get(keys.token("acme")) == b"the-token"
        assert 0 < reader.pttl(keys.token("acme")) <= 60_000
        with pytest.raises(redis.exceptions.NoPermissionError):
            reader.get(keys.conversation("acme", "ana"))
        with pytest.raises(redis.exceptions.NoPermissionError):
            reader.set(keys.token("acme"), "forged")
    finally:
        reader.close()


def test_a_fleet_on_a_cluster_runs_as_the_documented_acl_user_with_the_cluster_additions(
    tmp_path: Path,
    valkey_cluster: ValkeyCluster,  # noqa: F811
) -> None:
    standalone, additions = documented_users()
    assert additions.get("interlink"), "no cluster additions block for interlink"
    password = secrets.token_urlsafe(24)
    nodes = [valkey_cluster.node(i) for i in range(len(valkey_cluster.ports))]
    for node in nodes:  # ACL users are per node: every node gets the same one
        create_user(node, "interlink", standalone["interlink"] + additions["interlink"], password)
        node.acl_log_reset()
        node.config_resetstat()
    port = valkey_cluster.ports[0]
    url = f"redis://interlink:{quote(password, safe='')}@127.0.0.1:{port}"
    store = connect_store(url, cluster=True)
    world = start_world(tmp_path, url, shards=2, extra_env={"INTERLINK_REDIS_CLUSTER": "true"})
    failure: BaseException | None = None
    try:
        fleet_work(world, store, cluster=True)
    except BaseException as exc:  # the refusals below explain it better, when there are any
        failure = exc
    finally:
        world.close()
        store.close()

    try:
        denied = [line for node in nodes for line in refusals(node)]
        used = {
            name.removeprefix("cmdstat_") for node in nodes for name in node.info("commandstats")
        }
    finally:
        for node in nodes:
            node.close()
    assert not denied, "commands, keys or channels the documented ACL refused:\n" + "\n".join(
        denied
    )
    for shard in world.shards:
        logged = [line for line in shard.log_text().splitlines() if REFUSED.search(line)]
        assert not logged, f"shard {shard.env['INTERLINK_SHARD_ID']} logged: {logged[:3]}"
    if failure is not None:
        raise failure
    added = {rule[1:].lower() for rule in additions["interlink"] if rule[:1] == "+"}
    unused = sorted(added - used - ONLY_OLDER_CLIENTS)
    assert not unused, f"cluster additions never used (exercise them here, or drop them): {unused}"
