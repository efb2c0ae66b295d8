"""The owner side of the durable inbox: the shard that owns a tenant reads its entries.

The owner reads its stream through a consumer group. An entry is acknowledged (``XACK`` +
``XDEL``, its tenant's backlog released) only when its effect is done — delivered to the other
side, or dead-lettered — so a ``kill -9`` loses nothing: on restart the shard first takes back its
pending entries, in order. The acknowledgements of many entries share one round trip, and so do
the writes their conversations still hold back (``commit``): stored first in the same script
call, so an entry is never acknowledged without them.

While the fleet changes its shard count (``interlink.fleet``) the reader takes a ``gate``: it
delivers only the tenants the shard owns under the agreed count, and a tenant that moved here only
once every stream has handed over its entries. Those arrive in the shard's handover stream and are
delivered first, in the order they were accepted (accept generation, then original entry id).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

import gevent
import gevent.event
import gevent.queue
import msgpack
import redis
from redis.commands import CoreCommands

from interlink.inbox import collector
from interlink.inbox.entry import Entry, decode
from interlink.inbox.pressure import HubPressure
from interlink.store import keys
from interlink.store.connection import FastScript, is_cluster

log = logging.getLogger(__name__)

GROUP = "interlink"
CONSUMER = "owner"  # one reader per shard stream: a restarted shard resumes its own pending list
DEFAULT_BATCH = 256
DEFAULT_BLOCK_MS = 500
DEFAULT_MAX_INFLIGHT = 20_000
DEFAULT_RESCAN_INTERVAL = 5.0  # seconds between looks for pending entries nobody holds
DEFAULT_REDELIVER_AFTER = 120.0  # an entry held this long without an ack is offered again
# Seconds between reads that found only a few entries: at a modest rate the entries of 20 ms go
# out together, and so do their round trips and acknowledgements (200 msg/s: ~-30 % CPU per
# message against 5 ms, for ~+10 ms end to end; bench/RESULTS.md).
DEFAULT_READ_PAUSE = 0.02
MAX_ACKS = 512  # acknowledgements per script call

_ACK = (resources.files("interlink.inbox") / "scripts" / "ack.lua").read_text("utf-8")


@dataclass(slots=True)
class _Ack:
    """One entry to acknowledge (``entry_id`` None: only writes to store), and the writes that go
    first, with whom to tell once they are stored."""

    entry_id: str | None
    tenant: str
    stream: str
    writes: _Writes | None = None
    stored: gevent.event.AsyncResult | None = None


class Gate(Protocol):
    """What the reader may deliver while the fleet's shard count changes."""

    def owns(self, tenant_id: str) -> bool:
        """The tenant is this shard's under the agreed count."""

    def moved(self, tenant_id: str) -> bool:
        """The tenant's entries may still lie with other shards."""

    def handed_over(self) -> bool:
        """Every stream has handed over what it held for others."""


class InboxReader:
    """The owner shard's side: reads its stream and hands each entry to the actors.

    ``deliver(entry) -> bool`` must not block; False means "not now" (a failed or stopped tenant,
    a full queue): the entry stays pending and is offered again by the periodic rescan. At most
    ``max_inflight`` entries are handed over and not yet acknowledged; one handed over more than
    ``redeliver_after`` seconds ago is offered again (an actor that crashed on it never acks it).
    After a read that found only a few entries the next one waits ``read_pause`` seconds, so that
    at a modest rate a read, which costs about a round trip of CPU, brings several entries.
    """

    def __init__(
        self,
        client: redis.Redis,
        shard_id: int,
        deliver: Callable[[Entry], bool],
        *,
        batch: int = DEFAULT_BATCH,
        block_ms: int = DEFAULT_BLOCK_MS,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        rescan_interval: float = DEFAULT_RESCAN_INTERVAL,
        redeliver_after: float = DEFAULT_REDELIVER_AFTER,
        read_pause: float = DEFAULT_READ_PAUSE,
        gate: Gate | None = None,
    ) -> None:
        self.redis = client
        self.shard_id = shard_id
        self.stream = keys.inbox(shard_id)
        self.handover_stream = keys.handover(shard_id)
        self.gate = gate
        # Whether moved tenants are delivered: once their forwarded entries were handed over.
        self.released = gate is None
        self.deliver = deliver
        self.batch = batch
        self.block_ms = block_ms
        self.max_inflight = max_inflight
        self.rescan_interval = rescan_interval
        self.redeliver_after = redeliver_after
        self.read_pause = read_pause
        # entry id -> when it was handed over.
        self.inflight: dict[str, float] = {}
        self._room = gevent.event.Event()
        self._room.set()
        self._acks: gevent.queue.Queue[_Ack] = gevent.queue.Queue()
        self._committing: list[_Ack] = []  # the batch of the round trip under way
        self._ack_script = FastScript(client, _ACK)
        self.cluster = is_cluster(client)
        # The conversations' writes become arguments as the client's commands would send them.
        self._encoder = client.get_encoder()
        self._greenlets: list[gevent.Greenlet] = []
        self._stopping = False
        self._dead_since: float | None = None
        self._rescan_soon = False
        self.healthy = False
        # Accept before delivery: hand over only while the hub keeps up (pressure.py).
        self.pressure = HubPressure()
        # Full garbage collections only when the hub can afford them (collector.py).
        self.collector = collector.SHARED
        self._collecting = False

    def start(self) -> None:
        self.pressure.start()
        if not self._collecting:
            self._collecting = True
            self.collector.start()
        self._greenlets = [gevent.spawn(self._read_loop), gevent.spawn(self._ack_loop)]
        for greenlet in self._greenlets:
            greenlet.link(self._loop_ended)

    def dead_since(self) -> float | None:
        """When (``time.monotonic()``) a loop of the reader ended; None while both run or before
        ``start``. Neither loop starts again by itself: Redis errors are retried inside the loop,
        so a loop ends only on a bug or on ``stop``."""
        return self._dead_since

    def _loop_ended(self, greenlet: gevent.Greenlet) -> None:
        # A reader stopped on purpose (the shard stops, or the fleet moved on) is not dead.
        if self._dead_since is None and not self._stopping:
            self._dead_since = time.monotonic()

    def stop_reading(self, timeout: float = 5.0) -> None:
        """Take no new entries; what is in flight may still be acknowledged."""
        self._stopping = True
        self.pressure.stop()
        if self._collecting:
            self._collecting = False
            self.collector.stop()
        if self._greenlets:
            self._greenlets[0].kill(block=True, timeout=timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading, write the acknowledgements already queued (until ``timeout``), stop."""
        self.stop_reading(timeout)
        deadline = time.monotonic() + timeout
        while (not self._acks.empty() or self._committing) and time.monotonic() < deadline:
            gevent.sleep(0.01)
        for greenlet in self._greenlets[1:]:
            greenlet.kill(block=True, timeout=timeout)
        self._ack_script.close()

    def release(self, entry: Entry) -> None:
        """An entry handed over was refused after all (a held tenant): offer it again at the next
        rescan, not only after ``redeliver_after``."""
        if entry.entry_id is None:
            return
        key = entry.entry_id if entry.stream is None else f"h:{entry.entry_id}"
        if self.inflight.pop(key, None) is not None:
            if len(self.inflight) < self.max_inflight:
                self._room.set()

    def rescan_soon(self) -> None:
        """Offer the pending entries again after the current read, not at the next interval."""
        self._rescan_soon = True

    def ack(self, entry: Entry) -> None:
        """The entry's effect is done (or it is dead-lettered): forget it, durably. An entry
        acknowledged twice is counted once."""
        if entry.entry_id is not None:
            self._acks.put(_Ack(entry.entry_id, entry.tenant_id, entry.stream or self.stream))

    def commit(self, entry: Entry, write: Callable[[Any], None] | None) -> None:
        """Store the writes ``write`` adds to a pipeline, then acknowledge the entry as ``ack``
        does: in one round trip shared with the other entries' (group commit; on a Redis
        Cluster the writes go first, then the acknowledgement). Returns once both are stored,
        so that the conversation's next message finds its writes; at once when ``write`` is None.

        ``write`` runs here, in the caller's greenlet: an argument Redis cannot take (None, a
        bool) raises ``redis.DataError`` here. A round trip Redis could not serve is retried;
        a write or acknowledgement Redis refuses for good (a round trip failing twice, then the
        entry failing alone) raises its ``redis.RedisError`` here, and only here: the entry
        stays pending (a key of another type is passed over, as it never mends). Raises
        ``redis.ConnectionError`` when the reader stops first (the entry stays pending)."""
        if write is None:
            self.ack(entry)
            return
        loop = self._greenlets[1] if len(self._greenlets) > 1 else None
        if loop is None or loop.dead:
            raise redis.ConnectionError("the inbox reader is not running")
        writes = _Writes(self._encoder)  # type: ignore[abstract]  # redis-py 8 declares an attribute it does not use here
        write(writes)
        stored = gevent.event.AsyncResult()
        stream = entry.stream or self.stream
        self._acks.put(_Ack(entry.entry_id, entry.tenant_id, stream, writes, stored))
        stored.get()

    def _deliverable(self, tenant_id: str) -> bool:
        gate = self.gate
        return gate is None or (
            gate.owns(tenant_id) and (self.released or not gate.moved(tenant_id))
        )

    # -- loops ----------------------------------------------------------------------------------
    def _ensure_group(self) -> None:
        for stream in (self.stream, self.handover_stream):
            try:
                self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def _read_loop(self) -> None:
        backoff = 0.1
        next_rescan = 0.0
        while True:
            try:
                if not self.released and self.gate is not None and self.gate.handed_over():
                    # Moved tenants: their forwarded entries first, then their inbox entries.
                    self.released = True
                    self._rescan_soon = True
                if self._rescan_soon or time.monotonic() >= next_rescan:
                    # The group once per rescan (a store restarted without its data loses it).
                    self._ensure_group()
                    self.healthy = True
                    # Entries forwarded from other streams go before this stream's own.
                    self._read_handover()
                    # Our own pending entries (a restart, a refused delivery, a crashed actor).
                    self._rescan_soon = False
                    self._read("0", block=None)
                    next_rescan = time.monotonic() + self.rescan_interval
                self._room.wait()
                read = self._read(">", block=self.block_ms)
                if 0 < read < self.batch and self.read_pause:
                    # A few entries at a time: let more gather before the next read, which
                    # costs about as much as a round trip however many it brings.
                    gevent.sleep(self.read_pause)
                backoff = 0.1
            except redis.RedisError as exc:
                self.healthy = False
                log.warning(
                    "inbox read failed; retrying",
                    extra={"error": type(exc).__name__, "delay": backoff},
                )
                gevent.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                next_rescan = 0.0

    def _read(self, start: str, *, block: int | None) -> int:
        """Deliver what the stream holds from ``start``; how many entries the last read got."""
        last = start
        while True:
            reply: Any = self.redis.xreadgroup(
                GROUP, CONSUMER, {self.stream: last}, count=self.batch, block=block
            )
            entries = reply[0][1] if reply else []
            for raw_id, fields in entries:
                entry_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
                handed = self.inflight.get(entry_id)
                if not fields or (
                    handed is not None and time.monotonic() - handed < self.redeliver_after
                ):
                    continue  # deleted meanwhile, or still being worked on here
                try:
                    entry = decode(entry_id, fields)
                except (KeyError, ValueError, msgpack.ExtraData) as exc:
                    log.error(
                        "undecodable inbox entry dropped",
                        extra={"entry": entry_id, "error": type(exc).__name__},
                    )
                    self._drop(entry_id, fields)
                    continue
                if not self._deliverable(entry.tenant_id):
                    continue  # forwarded to its owner, or waiting for the handover: pending
                self.pressure.wait()
                if self.deliver(entry):
                    self.inflight[entry_id] = time.monotonic()
                    if len(self.inflight) >= self.max_inflight:
                        self._room.clear()
            if start == ">" or len(entries) < self.batch:
                return len(entries)
            last = entries[-1][0].decode() if isinstance(entries[-1][0], bytes) else entries[-1][0]

    def _read_handover(self) -> None:
        """Deliver the entries forwarded here of the tenants that may be delivered, each tenant's
        in the order they were accepted; they are read through the consumer group as well, so a
        restart finds them pending."""
        stream = self.handover_stream
        while self.redis.xreadgroup(GROUP, CONSUMER, {stream: ">"}, count=self.batch):
            pass  # claimed into the pending list, read in full below
        found: list[tuple[str, tuple[int, int, int], str, dict[bytes, bytes]]] = []
        last = "0"
        while True:
            reply: Any = self.redis.xreadgroup(GROUP, CONSUMER, {stream: last}, count=self.batch)
            entries = reply[0][1] if reply else []
            for raw_id, fields in entries:
                entry_id = _text(raw_id)
                if not fields:
                    continue
                try:
                    tenant = fields[b"t"].decode()
                    order = (int(fields.get(b"g", b"0")), *_id_parts(_text(fields[b"o"])))
                except (KeyError, ValueError):
                    order = (0, 0, 0)
                    tenant = ""
                found.append((tenant, order, entry_id, fields))
            if len(entries) < self.batch:
                break
            last = _text(entries[-1][0])
        found.sort(key=lambda item: (item[0], item[1]))
        for tenant, _, entry_id, fields in found:
            key = "h:" + entry_id
            handed = self.inflight.get(key)
            if handed is not None and time.monotonic() - handed < self.redeliver_after:
                continue
            if tenant and not self._deliverable(tenant):
                continue
            try:
                entry = decode(entry_id, fields, stream)
            except (KeyError, ValueError, msgpack.ExtraData) as exc:
                log.error(
                    "undecodable handover entry dropped",
                    extra={"entry": entry_id, "error": type(exc).__name__},
                )
                self._drop(entry_id, fields, stream)
                continue
            if self.deliver(entry):
                self.inflight[key] = time.monotonic()

    def _drop(self, entry_id: str, fields: dict[bytes, bytes], stream: str | None = None) -> None:
        """Forget an entry (of ``stream``, the inbox by default) that cannot be decoded. With its
        tenant readable it goes through the acknowledgement (deleted, the tenant's backlog
        released); else it is deleted alone."""
        stream = stream or self.stream
        try:
            tenant = fields[b"t"].decode()
        except (KeyError, ValueError, AttributeError):
            self.redis.xack(stream, GROUP, entry_id)
            self.redis.xdel(stream, entry_id)
            return
        self._acks.put(_Ack(entry_id, tenant, stream))

    def _ack_loop(self) -> None:
        try:
            while True:
                batch = self._committing = [self._acks.get()]
                while not self._acks.empty() and len(batch) < MAX_ACKS:
                    batch.append(self._acks.get_nowait())
                failed = self._store(batch, tries=2)
                self._committing = []
                for ack in batch:
                    failure = failed.get(id(ack))
                    if failure is not None:
                        # Not acknowledged: pending, offered again after ``redeliver_after``.
                        if ack.stored is not None:
                            ack.stored.set_exception(failure)
                        continue
                    if ack.entry_id is not None:
                        key = ack.entry_id if ack.stream == self.stream else "h:" + ack.entry_id
                        self.inflight.pop(key, None)
                    if ack.stored is not None:
                        ack.stored.set(None)
                if len(self.inflight) < self.max_inflight:
                    self._room.set()
        except BaseException:
            # Stopped (``_store`` lets no Exception out): whoever waits for writes not stored
            # goes on without them; their entries stay pending and come back.
            waiting, self._committing = self._committing, []
            while not self._acks.empty():
                waiting.append(self._acks.get_nowait())
            for ack in waiting:
                if ack.stored is not None and not ack.stored.ready():
                    ack.stored.set_exception(redis.ConnectionError("the inbox reader stopped"))
            raise

    def _store(self, batch: list[_Ack], *, tries: int) -> dict[int, redis.RedisError]:
        """Commit ``batch``; the failed entries' errors by ``id`` of their ``_Ack``.

        While Redis cannot serve (no connection, a failover) the round trip is retried as long
        as it takes: every entry waits alike. Any other error — a write Redis refuses for good
        (out of memory on a cluster node, a command it rejects), or a bug — after ``tries``
        attempts: then each entry alone, so that only the one Redis refuses fails and its
        conversation sees it, while the others of the shard are acknowledged."""
        for attempt in itertools.count():
            try:
                self._commit(batch)
                return {}
            except Exception as exc:
                # The effects are done; only their record waits for Redis (and the
                # conversations whose writes it holds).
                if attempt == 0:
                    log.warning(
                        "inbox acknowledgement failed; retrying",
                        extra={"error": type(exc).__name__, "entries": len(batch)},
                    )
                if attempt + 1 >= tries and not _unavailable(exc):
                    if len(batch) > 1:
                        break
                    ack = batch[0]
                    log.error(
                        "inbox acknowledgement refused; the entry stays pending",
                        extra={"tenant": ack.tenant, "error": type(exc).__name__},
                    )
                    if isinstance(exc, redis.RedisError):
                        return {id(ack): exc}
                    return {id(ack): redis.RedisError(f"acknowledgement failed: {type(exc).__name__}")}
                gevent.sleep(0.2)
        failed: dict[int, redis.RedisError] = {}
        for ack in batch:
            failed.update(self._store([ack], tries=1))
        return failed

    def _commit(self, batch: list[_Ack]) -> None:
        acks = [ack for ack in batch if ack.entry_id is not None]
        ack_keys = [
            k for ack in acks for k in (ack.stream, keys.backlog(self.shard_id, ack.tenant))
        ]
        ids = [ack.entry_id for ack in acks if ack.entry_id is not None]
        commands = [command for ack in batch if ack.writes for command in ack.writes.commands]
        if commands and self.cluster:
            # The writes are of the tenants' slots, the acknowledgement of the shard's: no one
            # script holds both. Writes first (one pipeline, each node's part at once), then the
            # acknowledgement: a write lost leaves its entry pending, never acknowledged. A key
            # of another type is passed over, as ack.lua does (no retry mends it).
            pipe = self.redis.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            replies = pipe.execute(raise_on_error=False)
            refused = [reply for reply in replies if isinstance(reply, Exception)]
            for error in refused:
                if not str(error).startswith("WRONGTYPE"):
                    raise error
            if refused:
                log.error(
                    "conversation writes refused: keys of another type",
                    extra={"count": len(refused)},
                )
            commands = []
        if not (acks or commands):
            return
        # One script call, one round trip: the writes, then the acknowledgements.
        names = [command[1] for command in commands]
        args: list[Any] = [GROUP, len(commands)]
        for name, _, *rest in commands:
            args += (len(rest), name, *rest)
        args += ids
        _, passed = self._ack_script([*names, *ack_keys], args)
        if passed:
            log.error("conversation writes refused: keys of another type", extra={"count": passed})


class _Writes(CoreCommands):
    """Takes down the commands a conversation's writes would send to a pipeline
    (``pipe.set(...)``), for ack.lua (or the cluster's pipeline) to run: redis-py's own command
    methods build them, and ``encoder`` (the client's) turns their arguments into bytes as the
    client would, raising ``redis.DataError`` for one it would refuse (None, a bool)."""

    def __init__(self, encoder: Any) -> None:
        self._encode = encoder.encode
        # Each command: its name, its first key, its further arguments.
        self.commands: list[tuple[Any, ...]] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        name, key, *rest = args  # a write names a key first
        self.commands.append((name, *map(self._encode, (key, *rest))))
        return self


def _unavailable(exc: BaseException) -> bool:
    """Redis cannot serve for now (no connection, a failover under way): an error of every
    entry alike, which a retry mends."""
    return isinstance(
        exc,
        redis.ConnectionError
        | redis.TimeoutError
        | redis.exceptions.ClusterDownError
        | redis.exceptions.TryAgainError
        | redis.exceptions.ReadOnlyError,
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id_parts(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
