"""One entry type from accept to actor: what the accepting side writes is what the reader reads."""

from __future__ import annotations

import msgpack
import pytest
import redis

from interlink.inbox import Entry, Inbox
from interlink.inbox.entry import decode
from interlink.store import keys


def test_an_accepted_entry_reads_back_as_the_same_entry(redis_client: redis.Redis) -> None:
    sent = Entry("acme", "wa.message", {"text": "hé", "n": 2**63}, "u1", "message:wamid.1")
    Inbox(redis_client, 1).accept([sent, Entry("acme", "wa.status", {"s": 1})])
    (first_id, first), (_, second) = redis_client.xrange(keys.inbox(0))
    got = decode(first_id.decode(), first)
    # The dedupe id and the packed payload stay on the accepting side; the entry id is new.
    assert got == sent._replace(dedupe=None, entry_id=first_id.decode())
    assert isinstance(got, Entry)
    assert decode("1-0", second).conversation is None  # stored as "", read as none


def test_a_payload_packed_by_the_caller_is_stored_as_it_is(redis_client: redis.Redis) -> None:
    packed = msgpack.packb({"as": "packed"}, use_bin_type=True)
    Inbox(redis_client, 1).accept([Entry("acme", "gc.message", {"not": "this"}, packed=packed)])
    ((entry_id, fields),) = redis_client.xrange(keys.inbox(0))
    assert fields[b"p"] == packed
    assert decode(entry_id.decode(), fields).payload == {"as": "packed"}


@pytest.mark.parametrize(
    "fields",
    [
        {b"k": b"wa.message", b"p": msgpack.packb({})},  # no tenant
        {b"t": b"acme", b"k": b"wa.message"},  # no payload
        {b"t": b"\xff", b"k": b"wa.message", b"p": msgpack.packb({})},  # not UTF-8
        {b"t": b"acme", b"k": b"wa.message", b"p": msgpack.packb({}) + b"\x01"},  # trailing
    ],
)
def test_what_is_not_an_entry_is_refused_as_the_reader_expects(fields: dict[bytes, bytes]) -> None:
    with pytest.raises((KeyError, ValueError, msgpack.ExtraData)):
        decode("1-0", fields)
