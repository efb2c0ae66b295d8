"""The owner side of the durable inbox: the shard that owns a tenant reads its entries.

The owner reads its stream through a consumer group. An entry is acknowledged (``XACK`` +
``XDEL``, its tenant's backlog released) only when its effect is done — delivered to the other
side, or dead-lettered — so a ``kill -9`` loses nothing: on restart the shard first takes back its
pending entries, in order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import gevent
import gevent.event
import gevent.queue
import msgpack
import redis

from interlink.inbox.entry import Entry, decode
from interlink.store import keys
from interlink.store.connection import FastScript

log = logging.getLogger(__name__)

GROUP = "interlink"
CONSUMER = "owner"  # one reader per shard stream: a restarted shard resumes its own pending list
DEFAULT_BATCH = 256
DEFAULT_BLOCK_MS = 500
DEFAULT_MAX_INFLIGHT = 20_000
DEFAULT_RESCAN_INTERVAL = 5.0  # seconds between looks for pending entries nobody holds
DEFAULT_REDELIVER_AFTER = 120.0  # an entry held this long without an ack is offered again
MAX_ACKS = 512  # acknowledgements per script call

_ACK = (resources.files("interlink.inbox") / "scripts" / "ack.lua").read_text("utf-8")


class InboxReader:
    """The owner shard's side: reads its stream and hands each entry to the actors.

    ``deliver(entry) -> bool`` must not block; False means "not now" (a failed or stopped tenant,
    a full queue): the entry stays pending and is offered again by the periodic rescan. At most
    ``max_inflight`` entries are handed over and not yet acknowledged; one handed over more than
    ``redeliver_after`` seconds ago is offered again (an actor that crashed on it never acks it).
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
    ) -> None:
        self.redis = client
        self.shard_id = shard_id
        self.stream = keys.inbox(shard_id)
        self.deliver = deliver
        self.batch = batch
        self.block_ms = block_ms
        self.max_inflight = max_inflight
        self.rescan_interval = rescan_interval
        self.redeliver_after = redeliver_after
        # entry id -> when it was handed over.
        self.inflight: dict[str, float] = {}
        self._room = gevent.event.Event()
        self._room.set()
        self._acks: gevent.queue.Queue[tuple[str, str]] = gevent.queue.Queue()
        self._ack_script = FastScript(client, _ACK)
        self._greenlets: list[gevent.Greenlet] = []
        self._dead_since: float | None = None
        self._rescan_soon = False
        self.healthy = False

    def start(self) -> None:
        self._greenlets = [gevent.spawn(self._read_loop), gevent.spawn(self._ack_loop)]
        for greenlet in self._greenlets:
            greenlet.link(self._loop_ended)

    def dead_since(self) -> float | None:
        """When (``time.monotonic()``) a loop of the reader ended; None while both run or before
        ``start``. Neither loop starts again by itself: Redis errors are retried inside the loop,
        so a loop ends only on a bug or on ``stop``."""
        return self._dead_since

    def _loop_ended(self, greenlet: gevent.Greenlet) -> None:
        if self._dead_since is None:
            self._dead_since = time.monotonic()

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

    def release(self, entry: Entry) -> None:
        """An entry handed over was refused after all (a held tenant): offer it again at the next
        rescan, not only after ``redeliver_after``."""
        if entry.entry_id is not None and self.inflight.pop(entry.entry_id, None) is not None:
            if len(self.inflight) < self.max_inflight:
                self._room.set()

    def rescan_soon(self) -> None:
        """Offer the pending entries again after the current read, not at the next interval."""
        self._rescan_soon = True

    def ack(self, entry: Entry) -> None:
        """The entry's effect is done (or it is dead-lettered): forget it, durably. An entry
        acknowledged twice is counted once."""
        if entry.entry_id is not None:
            self._acks.put((entry.entry_id, entry.tenant_id))

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
                if self._rescan_soon or time.monotonic() >= next_rescan:
                    # Our own pending entries (a restart, a refused delivery, a crashed actor).
                    self._rescan_soon = False
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
                    entry = decode(entry_id, fields)
                except (KeyError, ValueError, msgpack.ExtraData) as exc:
                    log.error(
                        "undecodable inbox entry dropped",
                        extra={"entry": entry_id, "error": type(exc).__name__},
                    )
                    self._drop(entry_id, fields)
                    continue
                if self.deliver(entry):
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
            while not self._acks.empty() and len(acks) < MAX_ACKS:
                acks.append(self._acks.get_nowait())
            while True:
                try:
                    script_keys = [
                        k
                        for _, tenant in acks
                        for k in (self.stream, keys.backlog(self.shard_id, tenant))
                    ]
                    self._ack_script(script_keys, [GROUP, *(entry for entry, _ in acks)])
                    break
                except redis.RedisError:
                    gevent.sleep(0.2)  # the effect is done; only its record waits for Redis
            for entry_id, _ in acks:
                self.inflight.pop(entry_id, None)
            if len(self.inflight) < self.max_inflight:
                self._room.set()
