"""The durable inbox: a webhook is acknowledged only once each of its items is in Redis.

Any shard accepts any webhook and appends each item to the stream of the shard that owns the
tenant (``interlink.tenancy.ownership``). One Lua step per item makes "seen before" and "appended" a
single step: the dedupe marker exists exactly when the entry was written, so a provider's
redelivery is dropped and nothing is half accepted. Items of concurrent requests share Redis round
trips (group commit: one script call per group; while one is in flight the next group fills up).

The owner shard reads its stream through a consumer group. An entry is acknowledged (``XACK`` +
``XDEL``) only when its effect is done — delivered to the other side, or dead-lettered — so a
``kill -9`` loses nothing: on restart the shard first takes back its pending entries, in order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import gevent
import gevent.event
import gevent.queue
import msgpack
import redis

from interlink.actors.messages import Work
from interlink.store import keys
from interlink.store.connection import FastScript
from interlink.tenancy import ownership

log = logging.getLogger(__name__)

GROUP = "interlink"
CONSUMER = "owner"  # one reader per shard stream: a restarted shard resumes its own pending list
DEFAULT_DEDUPE_TTL = 8 * 24 * 3600  # Meta redelivers for 7 days (reference/whatsapp.md §2.3)
DEFAULT_MAX_BACKLOG = 10_000  # unfinished items per tenant before its webhooks get 429
DEFAULT_BATCH = 256
DEFAULT_BLOCK_MS = 500
DEFAULT_MAX_INFLIGHT = 20_000
DEFAULT_RESCAN_INTERVAL = 5.0  # seconds between looks for pending entries nobody holds
DEFAULT_REDELIVER_AFTER = 120.0  # an entry held this long without an ack is offered again
MAX_PIPELINE = 512

NEW, DUPLICATE, BACKLOGGED = 1, 0, -1
_RESULTS = {ord("1"): NEW, ord("0"): DUPLICATE, ord("-"): BACKLOGGED}

# One call appends a whole group commit. Per item i (from 0): KEYS[3i+1..3i+3] = dedupe marker,
# stream, tenant backlog counter; ARGV[4+5i..8+5i] = "1" to dedupe / "0" not, tenant, kind,
# conversation, payload. ARGV[1..3] = dedupe ttl, max backlog, accept time (ms). Returns one
# character per item: "1" appended, "0" seen before, "-" refused (the tenant's backlog is full);
# one string, because a reply of thousands of integers costs more to read than the script to run.
# Three commands per new item: the marker is set if absent and the counter raised first, and both
# are undone in the rare refusal, rather than asked about beforehand (two more commands each).
_ACCEPT = """
local results = {}
local max_backlog = tonumber(ARGV[2])
for i = 0, #KEYS / 3 - 1 do
  local dedupe, stream, backlog = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  local a = 3 + 5 * i
  local deduped = ARGV[a + 1] == '1'
  local result = '1'
  if deduped and not redis.call('SET', dedupe, '1', 'NX', 'EX', ARGV[1]) then
    result = '0'
  elseif redis.call('INCR', backlog) > max_backlog then
    if redis.call('DECR', backlog) <= 0 then redis.call('DEL', backlog) end
    if deduped then redis.call('DEL', dedupe) end
    result = '-'
  else
    redis.call('XADD', stream, '*', 't', ARGV[a + 2], 'k', ARGV[a + 3], 'c', ARGV[a + 4], 'a', ARGV[3], 'p', ARGV[a + 5])
  end
  results[i + 1] = result
end
return table.concat(results)
"""

# Acknowledge a batch, each entry exactly once: per entry i, KEYS[2i+1..2i+2] = stream, tenant
# backlog counter and ARGV[i+2] = entry id; ARGV[1] = the group.
_ACK = """
local done = 0
for i = 0, #KEYS / 2 - 1 do
  local stream, backlog, id = KEYS[2 * i + 1], KEYS[2 * i + 2], ARGV[i + 2]
  if redis.call('XACK', stream, ARGV[1], id) == 1 then
    redis.call('XDEL', stream, id)
    if redis.call('DECR', backlog) <= 0 then redis.call('DEL', backlog) end
    done = done + 1
  end
end
return done
"""


class InboxUnavailable(Exception):
    """Redis did not take the items: answer 503 and let the provider retry."""


class Item(NamedTuple):
    """One thing to do for a tenant: a WhatsApp message or status, a Genesys message ... (A named
    tuple rather than a frozen dataclass: as immutable, and cheaper to make on the accept path.)"""

    tenant_id: str
    kind: str
    payload: dict[str, Any]
    conversation: str | None = None
    dedupe: str | None = None  # e.g. "wamid:<id>"; None: never deduplicated
    packed: bytes | None = None  # the payload in msgpack, when the caller has it already

    def payload_bytes(self) -> bytes:
        return (
            self.packed
            if self.packed is not None
            else msgpack.packb(self.payload, use_bin_type=True)
        )


@dataclass(slots=True)
class _Batch:
    items: Sequence[Item]
    done: gevent.event.AsyncResult = field(default_factory=gevent.event.AsyncResult)


class Inbox:
    """The accepting side, used by the webhook resources of every shard."""

    def __init__(
        self,
        client: redis.Redis,
        shard_count: int,
        *,
        dedupe_ttl: int = DEFAULT_DEDUPE_TTL,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        timeout: float = 5.0,
    ) -> None:
        self.redis = client
        self.shard_count = shard_count
        self.dedupe_ttl = dedupe_ttl
        self.max_backlog = max_backlog
        self.timeout = timeout
        self._accept = FastScript(client, _ACCEPT, timeout=timeout)
        self._queue: gevent.queue.Queue[_Batch] = gevent.queue.Queue()
        self._committer: gevent.Greenlet | None = None

    def accept(self, items: Sequence[Item]) -> list[int]:
        """Append each item durably (NEW), or recognise it (DUPLICATE), or refuse it because its
        tenant has too much unfinished work (BACKLOGGED). Raises InboxUnavailable when Redis does
        not answer; then none, some or all items may be in, and a retry sorts it out (dedupe)."""
        if not items:
            return []
        if self._committer is None or self._committer.dead:
            self._committer = gevent.spawn(self._commit_loop)
        batch = _Batch(items)
        self._queue.put(batch)
        # No timer per request: the script bounds each group commit by ``timeout``, and the
        # commit loop answers every waiting batch, even when it is killed.
        result: list[int] = batch.done.get()
        return result

    def close(self) -> None:
        """Drop the script's connection (the pool's ``disconnect`` does not reach it)."""
        self._accept.close()

    def _commit_loop(self) -> None:
        batches: list[_Batch] = []
        try:
            while True:
                batches = [self._queue.get()]
                size = len(batches[0].items)
                while size < MAX_PIPELINE and not self._queue.empty():
                    batch = self._queue.get_nowait()
                    batches.append(batch)
                    size += len(batch.items)
                self._commit_group(batches)
                batches = []
        except BaseException:
            while not self._queue.empty():
                batches.append(self._queue.get_nowait())
            _fail(batches, InboxUnavailable("the inbox is stopping"))
            raise

    def _commit_group(self, batches: list[_Batch]) -> None:
        try:
            results = self._commit([item for b in batches for item in b.items])
        except redis.TimeoutError:
            _fail(batches, InboxUnavailable("the store did not answer in time"))
            return
        except redis.RedisError as exc:
            _fail(batches, InboxUnavailable(f"store error: {type(exc).__name__}"))
            return
        except Exception:
            # An item that cannot even be encoded: commit each request alone, so that only
            # the request carrying it fails and this loop lives on.
            for batch in batches:
                self._commit_alone(batch)
            return
        offset = 0
        for batch in batches:
            batch.done.set(results[offset : offset + len(batch.items)])
            offset += len(batch.items)

    def _commit_alone(self, batch: _Batch) -> None:
        try:
            batch.done.set(self._commit(list(batch.items)))
        except redis.RedisError as exc:
            _fail([batch], InboxUnavailable(f"store error: {type(exc).__name__}"))
        except Exception as exc:
            log.error("inbox item could not be stored", extra={"error": type(exc).__name__})
            batch.done.set_exception(exc)

    def _commit(self, items: list[Item]) -> list[int]:
        """One script call for the whole group: one round trip, one command to encode."""
        script_keys: list[str] = []
        args: list[Any] = [self.dedupe_ttl, self.max_backlog, int(time.time() * 1000)]
        for item in items:
            tenant_id = item.tenant_id
            script_keys += (
                keys.dedupe(tenant_id, "in", item.dedupe) if item.dedupe else "-",
                keys.inbox(ownership.owner(tenant_id, self.shard_count)),
                keys.backlog(tenant_id),
            )
            args += (
                "1" if item.dedupe else "0",
                tenant_id,
                item.kind,
                item.conversation or "",
                item.payload_bytes(),
            )
        return [_RESULTS[r] for r in self._accept(script_keys, args)]


def _fail(batches: Sequence[_Batch], error: InboxUnavailable) -> None:
    """Answer every batch not answered yet with ``error`` (the provider retries)."""
    for batch in batches:
        if not batch.done.ready():
            batch.done.set_exception(error)


def decode_entry(entry_id: str, fields: dict[bytes, bytes]) -> Work:
    conversation = fields.get(b"c", b"").decode()
    return Work(
        tenant_id=fields[b"t"].decode(),
        kind=fields[b"k"].decode(),
        payload=msgpack.unpackb(fields[b"p"], raw=False),
        conversation=conversation or None,
        entry_id=entry_id,
    )


class InboxReader:
    """The owner shard's side: reads its stream and hands each entry to the actors.

    ``deliver(work) -> bool`` must not block; False means "not now" (a failed or stopped tenant,
    a full queue): the entry stays pending and is offered again by the periodic rescan.
    """

    def __init__(
        self,
        client: redis.Redis,
        shard_id: int,
        deliver: Callable[[Work], bool],
        *,
        batch: int = DEFAULT_BATCH,
        block_ms: int = DEFAULT_BLOCK_MS,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        rescan_interval: float = DEFAULT_RESCAN_INTERVAL,
        redeliver_after: float = DEFAULT_REDELIVER_AFTER,
    ) -> None:
        self.redis = client
        self.stream = keys.inbox(shard_id)
        self.deliver = deliver
        self.batch = batch
        self.block_ms = block_ms
        self.max_inflight = max_inflight
        self.rescan_interval = rescan_interval
        self.redeliver_after = redeliver_after
        # entry id -> when it was handed over. An actor that crashed on an entry never acks it:
        # after ``redeliver_after`` the rescan offers it again.
        self.inflight: dict[str, float] = {}
        self._room = gevent.event.Event()
        self._room.set()
        self._acks: gevent.queue.Queue[tuple[str, str]] = gevent.queue.Queue()
        self._ack_script = FastScript(client, _ACK)
        self._greenlets: list[gevent.Greenlet] = []
        self.healthy = False

    def start(self) -> None:
        self._greenlets = [gevent.spawn(self._read_loop), gevent.spawn(self._ack_loop)]

    def stop_reading(self, timeout: float = 5.0) -> None:
        """Take no new entries; what is in flight may still be acknowledged."""
        if self._greenlets:
            self._greenlets[0].kill(block=True, timeout=timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading, write the acknowledgements already queued (until ``timeout``), stop."""
        self.stop_reading(timeout)
        deadline = time.monotonic() + timeout
        while not self._acks.empty() and time.monotonic() < deadline:
            gevent.sleep(0.01)
        for greenlet in self._greenlets[1:]:
            greenlet.kill(block=True, timeout=timeout)
        self._ack_script.close()

    def ack(self, work: Work) -> None:
        """The entry's effect is done (or it is dead-lettered): forget it, durably."""
        if work.entry_id is not None:
            self._acks.put((work.entry_id, work.tenant_id))

    # -- loops ----------------------------------------------------------------------------------
    def _ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _read_loop(self) -> None:
        backoff = 0.1
        next_rescan = 0.0
        while True:
            try:
                self._ensure_group()
                self.healthy = True
                if time.monotonic() >= next_rescan:
                    # Our own pending entries (a restart, a refused delivery, a crashed actor).
                    self._read("0", block=None)
                    next_rescan = time.monotonic() + self.rescan_interval
                self._room.wait()
                self._read(">", block=self.block_ms)
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

    def _read(self, start: str, *, block: int | None) -> None:
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
                    work = decode_entry(entry_id, fields)
                except (KeyError, ValueError, msgpack.ExtraData) as exc:
                    log.error(
                        "undecodable inbox entry dropped",
                        extra={"entry": entry_id, "error": type(exc).__name__},
                    )
                    self._drop(entry_id, fields)
                    continue
                if self.deliver(work):
                    self.inflight[entry_id] = time.monotonic()
                    if len(self.inflight) >= self.max_inflight:
                        self._room.clear()
            if start == ">" or len(entries) < self.batch:
                return
            last = entries[-1][0].decode() if isinstance(entries[-1][0], bytes) else entries[-1][0]

    def _drop(self, entry_id: str, fields: dict[bytes, bytes]) -> None:
        """Forget an entry that cannot be decoded. With its tenant readable it goes through the
        acknowledgement (deleted, the tenant's backlog released); else it is deleted alone."""
        try:
            tenant = fields[b"t"].decode()
        except (KeyError, ValueError, AttributeError):
            self.redis.xack(self.stream, GROUP, entry_id)
            self.redis.xdel(self.stream, entry_id)
            return
        self._acks.put((entry_id, tenant))

    def _ack_loop(self) -> None:
        while True:
            acks = [self._acks.get()]
            while not self._acks.empty() and len(acks) < MAX_PIPELINE:
                acks.append(self._acks.get_nowait())
            while True:
                try:
                    script_keys = [
                        k for _, tenant in acks for k in (self.stream, keys.backlog(tenant))
                    ]
                    self._ack_script(script_keys, [GROUP, *(entry for entry, _ in acks)])
                    break
                except redis.RedisError:
                    gevent.sleep(0.2)  # the effect is done; only its record waits for Redis
            for entry_id, _ in acks:
                self.inflight.pop(entry_id, None)
            if len(self.inflight) < self.max_inflight:
                self._room.set()
