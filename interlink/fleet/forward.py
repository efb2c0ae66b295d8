"""Forwarding: the holder of a stream sends the entries it holds for other shards to them.

An entry of a tenant owned elsewhere under the current count goes to the owner's handover
stream, in two steps that survive a crash between them, each one script in one hash slot:

1. in the source stream's slot, the entry moves into the stream's outbox with its destination
   (``take_out.lua``: it leaves the inbox and the outbox gets it in one step);
2. in the destination's slot, it is appended to the handover stream unless its arrival marker
   (named after the outbox entry) exists (``bring_in.lua``); then it leaves the outbox.

A crash between 2 and the outbox delete sends the outbox entry again on the next pass, and the
marker drops it. The tenant's backlog counter (kept next to each stream) moves with the entry:
step 1 releases it here, step 2 counts it there, so the tenant's unfinished work is counted once
wherever it lies (for the short time in an outbox, nowhere). Step 1 refuses to act on a stale
generation (the stream's fence).
"""

from __future__ import annotations

from collections import defaultdict
from importlib import resources
from typing import Any

import redis

from interlink.fleet.record import FleetView
from interlink.inbox.reader import GROUP
from interlink.store import keys

BATCH = 256
MARKER_TTL = 8 * 24 * 3600

_TAKE_OUT = (resources.files("interlink.fleet") / "scripts" / "take_out.lua").read_text("utf-8")
_BRING_IN = (resources.files("interlink.fleet") / "scripts" / "bring_in.lua").read_text("utf-8")


class StaleGeneration(Exception):
    """The stream's fence is newer than the forwarder's view: the fleet changed again."""


def ensure_groups(client: redis.Redis, stream: int) -> None:
    """The consumer group on the stream's inbox and handover stream (created empty if need be)."""
    for key in (keys.inbox(stream), keys.handover(stream)):
        try:
            client.xgroup_create(key, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


def forward(
    client: redis.Redis, stream: int, view: FleetView, *, regroup: bool, inbox: bool = True
) -> int:
    """Send every entry of ``stream`` (its handover stream, then its inbox unless ``inbox`` is
    False) that another shard owns under ``view`` to that shard's handover stream; returns how
    many were sent.

    ``regroup`` (the pass that finishes the stream's handover) also moves the inbox entries of
    tenants that moved, accepted under an earlier generation, into the handover stream of the
    owner even when that is this stream's shard: there they are ordered with the entries of the
    same tenant that come from elsewhere. Raises :class:`StaleGeneration`."""
    ensure_groups(client, stream)
    sent = send_outbox(client, stream)
    sources = (keys.handover(stream), keys.inbox(stream)) if inbox else (keys.handover(stream),)
    for source in sources:
        regroup_here = regroup and source == keys.inbox(stream)
        last = "-"
        while True:
            entries: Any = client.xrange(
                source, min=last if last == "-" else "(" + last, max="+", count=BATCH
            )
            if not entries:
                break
            moves: list[Any] = []
            backlogs: list[str] = []
            for raw_id, fields in entries:
                entry_id = _text(raw_id)
                if b"t" not in fields and stream >= view.count:
                    # Not an entry, in a stream nobody reads any more: nothing to deliver.
                    client.xdel(source, entry_id)
                    continue
                destination = _destination(stream, fields, view, regroup_here)
                if destination is not None:
                    moves += (entry_id, destination)
                    backlogs.append(keys.backlog(stream, fields[b"t"].decode()))
            if moves:
                taken = client.eval(
                    _TAKE_OUT,
                    3 + len(backlogs),
                    source,
                    keys.outbox(stream),
                    keys.fence(stream),
                    *backlogs,
                    view.generation,
                    GROUP,
                    *moves,
                )
                if int(taken) < 0:
                    raise StaleGeneration(stream)
                sent += send_outbox(client, stream)
            last = _text(entries[-1][0])
            if len(entries) < BATCH:
                break
    return sent


def _destination(
    stream: int, fields: dict[bytes, bytes], view: FleetView, regroup: bool
) -> int | None:
    try:
        tenant = fields[b"t"].decode()
    except (KeyError, ValueError):
        return None  # not an entry: the reader drops it
    owner = view.owner(tenant)
    if owner != stream:
        return owner
    if regroup and int(fields.get(b"g", b"0")) < view.generation and view.moved(tenant):
        return owner
    return None


def send_outbox(client: redis.Redis, stream: int) -> int:
    """Deliver what the stream's outbox holds to its destinations, in order; returns how many
    arrived (a resent entry that had arrived before is not counted)."""
    arrived = 0
    outbox = keys.outbox(stream)
    while True:
        entries: Any = client.xrange(outbox, count=BATCH)
        if not entries:
            return arrived
        by_destination: dict[int, list[tuple[str, dict[bytes, bytes]]]] = defaultdict(list)
        for raw_id, fields in entries:
            by_destination[int(fields[b"to"])].append((_text(raw_id), fields))
        for destination, batch in by_destination.items():
            script_keys = [keys.handover(destination)]
            args: list[Any] = [MARKER_TTL]
            for entry_id, f in batch:
                script_keys += (
                    keys.forwarded(destination, stream, entry_id),
                    keys.backlog(destination, f[b"t"].decode()),
                )
                args += (f[b"t"], f[b"k"], f.get(b"c", b""), f.get(b"a", b"0"))
                args += (f.get(b"g", b"0"), f[b"o"], f[b"p"])
            arrived += int(client.eval(_BRING_IN, len(script_keys), *script_keys, *args))
        client.xdel(outbox, *[_text(raw_id) for raw_id, _ in entries])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
