"""The conversation store's round trips on a conversation's steady path, counted on the wire:
the alias lookup answered from the conversation actor's memory, a step checked in the round trip
of the read before it, and nothing of the step semantics lost on the way."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from interlink.store import keys, multiplex
from interlink.store.conversations import AliasCache, ConversationStore
from interlink.telemetry.metrics import REPEATED_AFTER_CRASH
from tests.support.round_trips import RoundTrips, counting_client

PHONE = "16505551234"
ALIASES = ("phone:16505551234", "bsuid:US.1234567890")


@pytest.fixture
def counted(redis_url: str, redis_client: redis.Redis) -> Iterator[tuple[redis.Redis, RoundTrips]]:
    client, trips = counting_client(redis_url)
    yield client, trips
    client.close()


def tenant() -> str:
    return f"t-{secrets.token_hex(4)}"


def repeats() -> float:
    return REPEATED_AFTER_CRASH._value.get()


def test_the_alias_lookup_is_a_round_trip_once_per_actor(
    counted: tuple[redis.Redis, RoundTrips],
) -> None:
    client, trips = counted
    tid, cache = tenant(), AliasCache()
    first = ConversationStore(client, tid, aliases=cache)
    assert first.known_alias(ALIASES) is None
    first.user_wrote(PHONE, time.time(), PHONE, dict.fromkeys(ALIASES, PHONE))
    assert trips.count == 2

    # The next message of the same actor: its own store, the actor's memory.
    assert ConversationStore(client, tid, aliases=cache).known_alias(ALIASES) == PHONE
    assert trips.count == 2
    # Another actor (or none: a fresh memory) asks the store, which says the same.
    assert ConversationStore(client, tid).known_alias(ALIASES) == PHONE
    assert trips.count == 3


def test_an_alias_read_from_the_store_is_remembered_only_for_the_first_key(
    counted: tuple[redis.Redis, RoundTrips],
) -> None:
    client, trips = counted
    tid, cache = tenant(), AliasCache()
    client.set(keys.alias(tid, ALIASES[1]), "US.1234567890")  # known by its BSUID only
    before = trips.count
    store = ConversationStore(client, tid, aliases=cache)
    assert store.known_alias(ALIASES) == "US.1234567890"
    # The phone is not in the store yet: a lookup by phone first must still ask.
    assert store.known_alias(ALIASES) == "US.1234567890"
    assert trips.since(before) == 2
    assert store.known_alias(ALIASES[1:]) == "US.1234567890"  # the BSUID was remembered
    assert trips.since(before) == 2


def test_a_readdress_by_any_actor_of_the_tenant_drops_the_remembered_aliases(
    counted: tuple[redis.Redis, RoundTrips],
) -> None:
    client, trips = counted
    tid = tenant()
    new_number, old_owner, user = "phone:16505559999", "16505559999", "16505551234"
    # The actor of the number's previous owner remembers it.
    theirs = AliasCache()
    store = ConversationStore(client, tid, aliases=theirs)
    store.user_wrote(old_owner, time.time(), old_owner, {new_number: old_owner})
    assert ConversationStore(client, tid, aliases=theirs).known_alias([new_number]) == old_owner
    # Another actor readdresses the number to the user who now has it.
    ConversationStore(client, tid, aliases=AliasCache()).readdress(
        user, phone=old_owner, bsuid=None, aliases={new_number: user}
    )
    before = trips.count
    assert ConversationStore(client, tid, aliases=theirs).known_alias([new_number]) == user
    assert trips.since(before) == 1
    # Another tenant's memory is not touched.
    other = tenant()
    cache = AliasCache()
    ConversationStore(client, other, aliases=cache).user_wrote(
        old_owner, time.time(), old_owner, {new_number: old_owner}
    )
    ConversationStore(client, tid).readdress(user, phone=None, bsuid=None, aliases={})
    before = trips.count
    assert ConversationStore(client, other, aliases=cache).known_alias([new_number]) == old_owner
    assert trips.since(before) == 0


def test_a_remembered_alias_is_used_for_max_age_at_most(
    counted: tuple[redis.Redis, RoundTrips],
) -> None:
    client, trips = counted
    tid, cache = tenant(), AliasCache(max_age=0.05)
    ConversationStore(client, tid, aliases=cache).user_wrote(
        PHONE, time.time(), PHONE, dict.fromkeys(ALIASES, PHONE)
    )
    client.set(keys.alias(tid, ALIASES[0]), "someone-else")  # what no actor here can see
    assert ConversationStore(client, tid, aliases=cache).known_alias(ALIASES) == PHONE
    time.sleep(0.06)
    before = trips.count
    assert ConversationStore(client, tid, aliases=cache).known_alias(ALIASES) == "someone-else"
    assert trips.since(before) == 1


def test_user_wrote_checks_the_next_step_and_reads_the_menu_tapped_in_one_round_trip(
    counted: tuple[redis.Redis, RoundTrips],
) -> None:
    client, trips = counted
    tid = tenant()
    setup = ConversationStore(client, tid)
    setup.map_message("wamid.MENU", "gc-menu", PHONE, menu="Button")
    setup.remember_menu(PHONE, "gc-numbered", [("One", "1")])
    store = ConversationStore(client, tid, write_behind=True)
    before = trips.count
    numbered = store.user_wrote(
        PHONE, time.time(), PHONE, {}, "wamid.IN", then_start="in:wamid.IN:0",
        read_part="wamid.MENU",
    )  # fmt: skip
    assert numbered is not None and numbered["id"] == "gc-numbered"
    assert store.part("wamid.MENU").genesys == "gc-menu"
    assert store.start("in:wamid.IN:0")
    assert trips.since(before) == 1
    store.mark_done("in:wamid.IN:0", "gc-1")
    store.flush()
    # A redelivery (a new store) finds it done, in the same one round trip.
    again = ConversationStore(client, tid, write_behind=True)
    before = trips.count
    again.user_wrote(PHONE, time.time(), PHONE, {}, "wamid.IN", then_start="in:wamid.IN:0")
    assert not again.start("in:wamid.IN:0")
    assert trips.since(before) == 1


def test_address_checks_the_first_send_in_the_same_round_trip(
    counted: tuple[redis.Redis, RoundTrips],
) -> None:
    client, trips = counted
    tid = tenant()
    ConversationStore(client, tid).user_wrote(PHONE, 1000.0, PHONE, {}, bsuid="US.1")
    store = ConversationStore(client, tid, write_behind=True)
    before = trips.count
    assert store.address(PHONE, then_start="out:g1:0") == (1000.0, PHONE, "US.1")
    assert store.start("out:g1:0")
    assert trips.since(before) == 1
    # A step not checked ahead still costs its own round trip.
    assert store.start("out:g1:1")
    assert trips.since(before) == 2


def test_a_step_checked_ahead_counts_a_repeat_only_after_a_crash(
    counted: tuple[redis.Redis, RoundTrips],
) -> None:
    client, _ = counted
    tid = tenant()
    # This store's own retries (the flow runs again, checking ahead again): no repeat.
    store = ConversationStore(client, tid, write_behind=True)
    before = repeats()
    for _ in range(3):
        store.address(PHONE, then_start="out:g1:0")
        assert store.start("out:g1:0")
    # Checked ahead, not taken, then taken by a retry: no repeat either.
    store.address(PHONE, then_start="out:g2:0")
    store.address(PHONE, then_start="out:g2:0")
    assert store.start("out:g2:0")
    assert repeats() == before
    # A crash after the call: the next process counts the repeat, once.
    redelivered = ConversationStore(client, tid, write_behind=True)
    redelivered.address(PHONE, then_start="out:g1:0")
    redelivered.address(PHONE, then_start="out:g1:0")
    assert redelivered.start("out:g1:0")
    redelivered.address(PHONE, then_start="out:g1:0")
    assert redelivered.start("out:g1:0")
    assert repeats() == before + 1


def test_an_abandoned_step_leaves_no_trace_unless_it_found_one(
    counted: tuple[redis.Redis, RoundTrips],
) -> None:
    client, _ = counted
    tid = tenant()
    store = ConversationStore(client, tid, write_behind=True)
    store.address(PHONE, then_start="out:g1:0")
    store.abandon("out:g1:0")
    store.flush()
    assert not client.exists(keys.dedupe(tid, "begun", "out:g1:0"))
    before = repeats()
    assert ConversationStore(client, tid).start("out:g1:0")  # e.g. once the window reopened
    assert repeats() == before

    # A marker an earlier process left (it crashed after the call) is kept.
    client.set(keys.dedupe(tid, "begun", "out:g2:0"), "1")
    store = ConversationStore(client, tid, write_behind=True)
    store.address(PHONE, then_start="out:g2:0")
    store.abandon("out:g2:0")
    store.flush()
    assert client.exists(keys.dedupe(tid, "begun", "out:g2:0"))

    # A step made here (the call is out) keeps its marker too.
    store = ConversationStore(client, tid, write_behind=True)
    store.address(PHONE, then_start="out:g3:0")
    assert store.start("out:g3:0")
    store.abandon("out:g3:0")
    store.flush()
    assert client.exists(keys.dedupe(tid, "begun", "out:g3:0"))


def test_the_waiting_writes_go_first_in_a_checked_ahead_round_trip(
    counted: tuple[redis.Redis, RoundTrips],
) -> None:
    client, trips = counted
    tid = tenant()
    store = ConversationStore(client, tid, write_behind=True)
    assert store.start("in:w1:0")
    store.mark_done("in:w1:0", "m1")
    before = trips.count
    store.user_wrote(PHONE, time.time(), PHONE, {}, "w2", then_start="in:w2:0")
    assert trips.since(before) == 1
    assert client.get(keys.dedupe(tid, "done", "in:w1:0")) == b"m1"


def test_a_dead_letter_leaves_no_trace_of_a_step_checked_ahead(
    counted: tuple[redis.Redis, RoundTrips],
) -> None:
    client, _ = counted
    tid = tenant()
    store = ConversationStore(client, tid, write_behind=True)
    store.user_wrote(PHONE, time.time(), PHONE, {}, "w1", then_start="in:w1:0")
    store.dead_letter("wa.message", {"n": 1}, PHONE, "a bug of ours met this payload")
    assert not client.exists(keys.dedupe(tid, "begun", "in:w1:0"))
    before = repeats()
    assert ConversationStore(client, tid).start("in:w1:0")  # the dead letter replayed
    assert repeats() == before


def test_a_user_who_keeps_writing_keeps_their_aliases_alive(
    counted: tuple[redis.Redis, RoundTrips],
) -> None:
    from interlink.store.conversations import ALIAS_TTL

    client, trips = counted
    tid = tenant()
    for alias_key in ALIASES:  # first contact long ago: little of the alias's life is left
        client.set(keys.alias(tid, alias_key), PHONE, ex=60)
    store = ConversationStore(client, tid, aliases=AliasCache())
    before = trips.count
    store.user_wrote(PHONE, time.time(), PHONE, dict.fromkeys(ALIASES, PHONE))
    assert trips.since(before) == 1  # still one round trip
    for alias_key in ALIASES:
        assert client.ttl(keys.alias(tid, alias_key)) > ALIAS_TTL - 60
        assert client.get(keys.alias(tid, alias_key)) == PHONE.encode()


def test_the_steady_path_sends_only_the_commands_that_can_change_something(
    counted: tuple[redis.Redis, RoundTrips],
) -> None:
    client, trips = counted
    tid, cache = tenant(), AliasCache()

    def message(n: int, *, text: bool = True) -> tuple[int, int]:
        trips.count = trips.commands = 0
        store = ConversationStore(client, tid, write_behind=True, aliases=cache)
        participant = store.known_alias(ALIASES) or PHONE
        store.user_wrote(
            participant, time.time(), PHONE, dict.fromkeys(ALIASES, participant), f"w{n}",
            bsuid="US.1234567890", then_start=f"in:w{n}:0", read_menu=text,
        )  # fmt: skip
        assert store.start(f"in:w{n}:0")
        counts = trips.count, trips.commands
        store.mark_done(f"in:w{n}:0", "gc")
        store.flush()  # with the acknowledgement, in the inbox's round trip
        return counts

    # A cold actor: the lookup (2 GETs), then SET NX + EXPIRE per alias, HGET, HSET and EXPIRE
    # of the conversation, EXISTS + SET of the step.
    assert message(1) == (2, 2 + 2 * 2 + 3 + 2)
    # Then, while its memory lasts: HGET, HSET, and the step's EXISTS + SET.
    assert message(2) == (1, 4)
    assert message(3, text=False) == (1, 3)  # no text: no numbered menu to read
    # Everything was written as before.
    for alias_key in ALIASES:
        assert client.get(keys.alias(tid, alias_key)) == PHONE.encode()
    conversation = keys.conversation(tid, PHONE)
    assert client.hget(conversation, "last_wamid") == b"w3"
    assert client.ttl(conversation) > 0


def test_a_warm_actor_refreshes_the_expiries_once_per_max_age(
    counted: tuple[redis.Redis, RoundTrips],
) -> None:
    from interlink.store.conversations import ALIAS_TTL, CONVERSATION_TTL

    client, trips = counted
    tid, cache = tenant(), AliasCache(max_age=0.2)
    conversation = keys.conversation(tid, PHONE)

    def write() -> None:
        ConversationStore(client, tid, aliases=cache).user_wrote(
            PHONE, time.time(), PHONE, dict.fromkeys(ALIASES, PHONE)
        )

    write()  # a cold actor writes them
    for key in (conversation, *(keys.alias(tid, a) for a in ALIASES)):
        assert client.ttl(key) > 60
        client.expire(key, 60)  # long ago: little of their lives is left
    write()  # within the memory's max age: nothing to change
    assert all(
        0 < client.ttl(key) <= 60 for key in (conversation, *(keys.alias(tid, a) for a in ALIASES))
    )
    time.sleep(0.25)
    trips.commands = 0
    write()  # once it is older: refreshed, one round trip still
    assert trips.count >= 1 and trips.commands == 2 * 2 + 3
    assert client.ttl(conversation) > CONVERSATION_TTL - 60
    for alias_key in ALIASES:
        assert client.ttl(keys.alias(tid, alias_key)) > ALIAS_TTL - 60


def test_after_a_readdress_the_aliases_are_written_again(
    counted: tuple[redis.Redis, RoundTrips],
) -> None:
    client, trips = counted
    tid, cache = tenant(), AliasCache()
    store = ConversationStore(client, tid, aliases=cache)
    store.user_wrote(PHONE, time.time(), PHONE, dict.fromkeys(ALIASES, PHONE))
    ConversationStore(client, tid).readdress(
        "someone", phone=None, bsuid=None, aliases={ALIASES[0]: "someone"}
    )
    client.delete(keys.alias(tid, ALIASES[1]))  # what the memory cannot see
    trips.commands = 0
    ConversationStore(client, tid, aliases=cache).user_wrote(
        PHONE, time.time(), PHONE, dict.fromkeys(ALIASES, PHONE)
    )
    assert trips.commands == 2 * 2 + 3  # SET NX + EXPIRE of each alias again
    assert client.get(keys.alias(tid, ALIASES[0])) == b"someone"  # readdressed: kept
    assert client.get(keys.alias(tid, ALIASES[1])) == PHONE.encode()


def test_an_alias_answered_before_a_readdress_is_not_remembered_as_fresh(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """Actor B's lookup is answered with the number's previous owner; while B waits for that
    answer, another actor's readdress of the number is sent and done. B must not remember the
    answer as newer than the readdress (it would send the user's messages to the previous
    owner's Genesys thread for ALIAS_CACHE_FOR)."""
    tid = tenant()
    number, old_owner, new_owner = "phone:16505559999", "16505550001", "16505550002"
    redis_client.set(keys.alias(tid, number), old_owner)
    hooks: list[Any] = []

    pool = redis.ConnectionPool.from_url(redis_url)
    base: Any = pool.connection_class

    class _Connection(base):  # type: ignore[misc, valid-type]
        def read_response(self, *args: Any, **kwargs: Any) -> Any:
            response = super().read_response(*args, **kwargs)
            while hooks:  # what other greenlets did while this one waited for its answer
                hooks.pop()()
            return response

    pool.connection_class = _Connection
    client = redis.Redis(connection_pool=pool)
    warm = multiplex.pipeline(client)  # connected before the hook is set
    warm.ping()
    warm.execute()
    try:
        cache = AliasCache()
        hooks.append(
            lambda: ConversationStore(redis_client, tid).readdress(
                new_owner, phone=None, bsuid=None, aliases={number: new_owner}
            )
        )
        assert ConversationStore(client, tid, aliases=cache).known_alias([number]) == old_owner
        # The next message asks the store again, which has the readdress.
        assert ConversationStore(client, tid, aliases=cache).known_alias([number]) == new_owner
    finally:
        client.close()
