"""The accepting side of the durable inbox: a webhook is acknowledged only once each of its
items is in Redis.

Any shard accepts any webhook and appends each entry to the stream of the shard that owns the
tenant (``interlink.tenancy.ownership``). One Lua step per entry makes "seen before" and "appended"
a single step: the dedupe marker exists exactly when the entry was written, so a provider's
redelivery is dropped and nothing is half accepted. Entries of concurrent requests share Redis
round trips (group commit: one script call per group; while one is in flight the next group fills
up).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import gevent
import gevent.event
import gevent.queue
import redis

from interlink.inbox.entry import Entry
from interlink.store import keys
from interlink.store.connection import FastScript, is_cluster
from interlink.tenancy import ownership

log = logging.getLogger(__name__)

DEFAULT_DEDUPE_TTL = 8 * 24 * 3600  # Meta redelivers for 7 days
DEFAULT_MAX_BACKLOG = 10_000  # unfinished entries per tenant before its webhooks get 429
DEFAULT_TIMEOUT = 5.0  # seconds a group commit may take before its requests get 503
# Seconds a dead group-commit loop may stay dead before the shard counts as unhealthy: the next
# accept starts it again, so a loop that died between two webhooks is not yet a broken shard.
DEFAULT_COMMIT_LOOP_GRACE = 5.0
MAX_GROUP = 512  # entries per group commit (more requests wait for the next one)

NEW, DUPLICATE, BACKLOGGED = 1, 0, -1
FENCED = -2  # inside this module only: the fleet moved to another shard count meanwhile
_RESULTS = {ord("1"): NEW, ord("0"): DUPLICATE, ord("-"): BACKLOGGED, ord("f"): FENCED}

_ACCEPT = (resources.files("interlink.inbox") / "scripts" / "accept.lua").read_text("utf-8")


class InboxUnavailable(Exception):
    """Redis did not take the entries: answer 503 and let the provider retry."""


@dataclass(slots=True)
class _Batch:
    """One request's entries, and where its answer goes."""

    entries: Sequence[Entry]
    done: gevent.event.AsyncResult = field(default_factory=gevent.event.AsyncResult)


class Inbox:
    """The accepting side, used by the webhook resources of every shard.

    ``dedupe_ttl`` (seconds) is how long an accepted entry's redelivery is recognised;
    ``max_backlog`` how many unfinished entries a tenant may have before more are refused;
    ``timeout`` (seconds) bounds each group commit as a whole; ``commit_loop_grace`` (seconds) is
    how long the group-commit loop may stay dead before ``/healthz`` reports it.

    ``shard_count`` and ``generation`` are the fleet's agreed count and its generation
    (``interlink.fleet``), which the shard keeps up to date; a stream fenced by a newer
    generation refuses the write, and then ``refresh`` (which updates both) is called and the
    refused entries are written once more before the request is answered 503.
    """

    def __init__(
        self,
        client: redis.Redis,
        shard_count: int,
        *,
        dedupe_ttl: int = DEFAULT_DEDUPE_TTL,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        timeout: float = DEFAULT_TIMEOUT,
        commit_loop_grace: float = DEFAULT_COMMIT_LOOP_GRACE,
        generation: int = 0,
        refresh: Callable[[], None] | None = None,
    ) -> None:
        self.redis = client
        self.shard_count = shard_count
        self.generation = generation
        self.refresh = refresh
        self.dedupe_ttl = dedupe_ttl
        self.max_backlog = max_backlog
        self.timeout = timeout
        self.commit_loop_grace = commit_loop_grace
        self.cluster = is_cluster(client)
        self._accept = FastScript(client, _ACCEPT, timeout=timeout)
        self._queue: gevent.queue.Queue[_Batch] = gevent.queue.Queue()
        self._committer: gevent.Greenlet | None = None
        self._committer_died: float | None = None

    def accept(self, entries: Sequence[Entry]) -> list[int]:
        """Append each entry durably (NEW), or recognise it (DUPLICATE), or refuse it because its
        tenant has too much unfinished work (BACKLOGGED); one result per entry, in order. Raises
        InboxUnavailable when Redis does not answer; then none, some or all entries may be in,
        and a retry sorts it out (dedupe)."""
        if not entries:
            return []
        if self._committer is None or self._committer.dead:
            self._start_committer()
        batch = _Batch(entries)
        self._queue.put(batch)
        # No timer per request: the script bounds each group commit by ``timeout``, and the
        # commit loop answers every waiting batch, even when it is killed.
        result: list[int] = batch.done.get()
        return result

    def commit_loop_dead_since(self) -> float | None:
        """When (``time.monotonic()``) the group-commit loop ended; None while it runs, and
        before the first accept starts it. The next ``accept`` starts it again."""
        return self._committer_died

    def _start_committer(self) -> None:
        committer = self._committer = gevent.spawn(self._commit_loop)
        self._committer_died = None
        committer.link(self._committer_ended)

    def _committer_ended(self, committer: gevent.Greenlet) -> None:
        # A loop replaced meanwhile has nothing to say about the one that runs now.
        if committer is self._committer:
            self._committer_died = time.monotonic()

    def close(self) -> None:
        """Stop the group-commit loop (a request still waiting is answered with
        :class:`InboxUnavailable`) and drop the script's connection, which the pool's
        ``disconnect`` does not reach. Called once the listener is closed and drained."""
        committer, self._committer = self._committer, None  # a stop, not a death: no 503
        if committer is not None:
            committer.kill(timeout=1)
        self._accept.close()

    def _commit_loop(self) -> None:
        batches: list[_Batch] = []
        try:
            while True:
                batches = [self._queue.get()]
                size = len(batches[0].entries)
                while size < MAX_GROUP and not self._queue.empty():
                    batch = self._queue.get_nowait()
                    batches.append(batch)
                    size += len(batch.entries)
                self._commit_group(batches)
                batches = []
        except BaseException:
            while not self._queue.empty():
                batches.append(self._queue.get_nowait())
            _fail(batches, InboxUnavailable("the inbox is stopping"))
            raise

    def _commit_group(self, batches: list[_Batch]) -> None:
        try:
            results = self._commit([entry for b in batches for entry in b.entries])
            if FENCED in results:
                results = self._after_fence(batches, results)
        except redis.TimeoutError:
            _fail(batches, InboxUnavailable("the store did not answer in time"))
            return
        except redis.RedisError as exc:
            _fail(batches, InboxUnavailable(f"store error: {type(exc).__name__}"))
            return
        except Exception:
            # An entry that cannot even be encoded: commit each request alone, so that only
            # the request carrying it fails and this loop lives on.
            for batch in batches:
                self._commit_alone(batch)
            return
        offset = 0
        for batch in batches:
            if not batch.done.ready():  # a batch the fleet's fence refused was answered already
                batch.done.set(results[offset : offset + len(batch.entries)])
            offset += len(batch.entries)

    def _after_fence(self, batches: list[_Batch], results: list[int]) -> list[int]:
        """The fleet changed its shard count: learn the new one and write the refused entries
        again (to their new owners); a batch still refused is answered 503."""
        if self.refresh is not None:
            self.refresh()
        entries = [entry for b in batches for entry in b.entries]
        again = [i for i, result in enumerate(results) if result == FENCED]
        for i, result in zip(again, self._commit([entries[i] for i in again]), strict=True):
            results[i] = result
        offset = 0
        for batch in batches:
            if FENCED in results[offset : offset + len(batch.entries)]:
                _fail([batch], InboxUnavailable("the fleet is changing its shard count"))
            offset += len(batch.entries)
        return results

    def _commit_alone(self, batch: _Batch) -> None:
        try:
            results = self._commit(list(batch.entries))
            if FENCED in results:
                _fail([batch], InboxUnavailable("the fleet is changing its shard count"))
            else:
                batch.done.set(results)
        except redis.RedisError as exc:
            _fail([batch], InboxUnavailable(f"store error: {type(exc).__name__}"))
        except Exception as exc:
            log.error("inbox item could not be stored", extra={"error": type(exc).__name__})
            batch.done.set_exception(exc)

    def _commit(self, entries: list[Entry]) -> list[int]:
        """One script call for the whole group: one round trip, one command to encode. On Redis
        Cluster one call per owner shard instead (each shard's keys share its slot), made
        concurrently."""
        # The count and the generation together: the fleet may move on (``refresh``) while the
        # calls of a Redis Cluster are under way, and an owner of one count must not be written
        # under the generation of another.
        count, generation = self.shard_count, self.generation
        owners = [ownership.owner(entry.tenant_id, count) for entry in entries]
        if not self.cluster or len(set(owners)) == 1:
            return self._commit_shard(entries, owners, generation)
        by_shard: dict[int, list[int]] = {}
        for index, owner in enumerate(owners):
            by_shard.setdefault(owner, []).append(index)
        calls = {
            shard: gevent.spawn(
                self._commit_shard,
                [entries[i] for i in indexes],
                [shard] * len(indexes),
                generation,
            )
            for shard, indexes in by_shard.items()
        }
        gevent.joinall(list(calls.values()))
        results = [0] * len(entries)
        for shard, indexes in by_shard.items():
            for index, result in zip(indexes, calls[shard].get(), strict=True):
                results[index] = result
        return results

    def _commit_shard(self, entries: list[Entry], owners: list[int], generation: int) -> list[int]:
        script_keys: list[str] = []
        args: list[Any] = [self.dedupe_ttl, self.max_backlog, int(time.time() * 1000)]
        args.append(generation)
        for entry, owner in zip(entries, owners, strict=True):
            tenant_id = entry.tenant_id
            script_keys += (
                keys.accepted(owner, tenant_id, entry.dedupe)
                if entry.dedupe
                else keys.inbox(owner),
                keys.inbox(owner),
                keys.backlog(owner, tenant_id),
                keys.fence(owner),
            )
            args += (
                "1" if entry.dedupe else "0",
                tenant_id,
                entry.kind,
                entry.conversation or "",
                entry.payload_bytes(),
            )
        return [_RESULTS[r] for r in self._accept(script_keys, args)]


def _fail(batches: Sequence[_Batch], error: InboxUnavailable) -> None:
    """Answer every batch not answered yet with ``error`` (the provider retries)."""
    for batch in batches:
        if not batch.done.ready():
            batch.done.set_exception(error)
