"""One shard's part in the fleet: it joins the recorded generation (or starts a new one with its
own count), holds the lease of each stream it reads, hands over what those streams hold for other
shards, and fences itself when the fleet moves to a count other than its own.

The rule, in short (docs: ``deploy/README.md``, "Changing the shard count"):

- Writers (every shard's webhooks) append under the recorded generation; each stream's fence
  refuses a writer of an older one (503, the provider redelivers to a current shard).
- Stream ``N`` is read only by shard ``N mod count`` of the current generation, under a lease;
  a new holder waits until the old holder released it (a fenced shard drains first) or it lapsed.
- The holder forwards every entry its streams hold for another shard to that shard's handover
  stream, then records the stream's handover as done for the generation.
- A tenant that moved is delivered by its new owner only once every stream's handover is done,
  its forwarded entries first, in the order they were accepted.
- A shard whose count differs from a newer recorded one stops reading: it drains its actors,
  releases its leases, and goes on accepting webhooks under the recorded count (a front end only)
  until it is restarted with the new count. Actors that do not stop in time keep the leases
  refreshed until the process ends (it exits with 75): a lease is released only once nothing of
  this shard delivers any more.
- A lease lost in the same generation (the store went back) is taken back; one another shard
  holds ends the process (exit 75, a fresh join). A record older than the newest this shard saw
  (the store lost its last writes, not the fences) is written back, not obeyed; a join left
  pending (its shard died between its steps) is finished by the first writer it refuses, or by
  any shard after a lease's life.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
import redis

from interlink.fleet import record
from interlink.fleet.forward import StaleGeneration, forward
from interlink.fleet.lease import DEFAULT_TTL, Lease
from interlink.fleet.record import FleetView
from interlink.store import keys

log = logging.getLogger(__name__)

DEFAULT_CHECK_INTERVAL = 1.0  # seconds between looks at the recorded generation
DEFAULT_PASS_INTERVAL = 5.0  # seconds between forwarding passes over the streams held
# Seconds a fenced shard waits while no shard beats at the recorded count (a rollout reverted
# part-way: the pods of the new count are gone) before it restarts to record its own count.
DEFAULT_ALONE_AFTER = 30.0


class Handover:
    """``on_view(view)``: the accepting side follows the recorded count and generation;
    ``on_ready()``: the shard's own stream is leased and handed over, its reader may start;
    ``on_fenced()``: stop reading and drain the actors; the leases are released after it returns
    unless it returns False (some actors still run: the process is ending, and the leases stay
    refreshed until then and lapse after it);
    ``on_rejoin()``: fenced, the fleet has come back to this shard's count (or a lease was lost
    to another shard): restart the process."""

    def __init__(
        self,
        client: redis.Redis,
        shard_id: int,
        shard_count: int,
        *,
        on_view: Callable[[FleetView], None] = lambda view: None,
        on_ready: Callable[[], None] = lambda: None,
        on_fenced: Callable[[], bool | None] = lambda: None,
        on_rejoin: Callable[[], None] = lambda: None,
        lease_ttl: float = DEFAULT_TTL,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
        pass_interval: float = DEFAULT_PASS_INTERVAL,
        alone_after: float = DEFAULT_ALONE_AFTER,
    ) -> None:
        self.redis = client
        self.shard_id = shard_id
        self.shard_count = shard_count
        self.on_view = on_view
        self.on_ready = on_ready
        self.on_fenced = on_fenced
        self.on_rejoin = on_rejoin
        self.lease_ttl = lease_ttl
        self.check_interval = check_interval
        self.pass_interval = pass_interval
        self.alone_after = alone_after
        self._alone_since: float | None = None  # fenced, and no shard beats at the count
        self.view: FleetView | None = None  # the generation this shard reads in
        self.latest: FleetView | None = None  # the recorded one (the accepting side's)
        self.fenced = False
        self.ready = False
        self.leases: list[Lease] = []
        self._handed_over = False
        self._taken: set[int] = set()  # streams leased and handed over
        self._greenlet: gevent.Greenlet | None = None
        self._keeper: gevent.Greenlet | None = None  # refreshes the leases while actors drain
        self._ready = gevent.event.Event()
        self._keep_until_exit = False  # fenced with actors still running: never release
        self._pending_since: float | None = None  # when a pending join was first seen

    # -- the reader's gate ----------------------------------------------------------------------
    def owns(self, tenant_id: str) -> bool:
        view = self.view
        return view is not None and not self.fenced and view.owner(tenant_id) == self.shard_id

    def moved(self, tenant_id: str) -> bool:
        return self.view is None or self.view.moved(tenant_id)

    def handed_over(self) -> bool:
        return self._handed_over

    # -- running --------------------------------------------------------------------------------
    def start(self) -> None:
        self._greenlet = gevent.spawn(self._loop)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the shard's own stream is leased and handed over (the reader started),
        at most ``timeout`` seconds; the usual start takes milliseconds, a handover up to a
        lease's life."""
        return bool(self._ready.wait(timeout))

    def stop(self) -> None:
        """Stop the loop (the shard stops). The leases are still refreshed while the actors
        finish: :meth:`release` them once the reader has written its last acknowledgements."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=5)
        self._keep_leases()

    def release(self) -> None:
        """Give the leases up now rather than let them lapse: the next holder starts at once."""
        if self._keep_until_exit:
            return  # refreshed until the process ends; they lapse one lease's life after it
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.kill()
        for lease in self.leases:
            try:
                lease.release()
            except redis.RedisError:
                pass  # it lapses by itself

    def keep_until_exit(self) -> None:
        """Actors of this shard may still deliver: never release the leases, refresh them until
        the process ends (the next holder starts a lease's life after that)."""
        self._keep_until_exit = True
        self._keep_leases()

    def refresh_view(self) -> None:
        """Read the recorded generation now (a write was refused by a newer fence); a join left
        pending behind that fence is finished first."""
        try:
            latest = record.finish(self.redis)
        except redis.RedisError:
            return
        if latest is not None:
            self._seen(latest)

    def _seen(self, latest: FleetView) -> None:
        if self.latest is None or latest.generation >= self.latest.generation:
            self.latest = latest
            self.on_view(latest)

    def _loop(self) -> None:
        backoff = self.check_interval
        next_refresh = next_pass = 0.0
        while True:
            try:
                if self.view is None:
                    self._join()
                else:
                    self._check()
                if not self.fenced:
                    now = time.monotonic()
                    if now >= next_refresh:
                        self._hold_leases()
                        next_refresh = now + self.lease_ttl / 4
                    if not self.fenced and now >= next_pass:
                        self._forward_all()
                        next_pass = now + self.pass_interval
                    if not self.fenced and not self._handed_over and self.view is not None:
                        self._handed_over = record.handed_over(self.redis, self.view)
                        if self._handed_over:
                            log.info(
                                "handover finished; moved tenants are delivered",
                                extra={"generation": self.view.generation},
                            )
                backoff = self.check_interval
            except StaleGeneration:
                pass  # the next look finds the newer generation
            except redis.RedisError as exc:
                log.warning(
                    "fleet check failed; retrying",
                    extra={"error": type(exc).__name__, "delay": backoff},
                )
                backoff = min(backoff * 2, 5.0)
            except Exception:
                # A bug must not end the loop: the shard would never read, and nothing would say.
                log.exception("fleet check failed")
                backoff = min(backoff * 2, 5.0)
            gevent.sleep(backoff if self.view is None else self.check_interval)

    def _join(self) -> None:
        view = record.join(self.redis, self.shard_count)
        self.view = view
        # A restart after the handover finished: nothing to wait for, nothing to regroup.
        self._handed_over = view.settled >= view.generation
        self._seen(view)
        self.leases = [
            Lease(self.redis, stream, self.shard_id, view.generation, ttl=self.lease_ttl)
            for stream in view.streams_of(self.shard_id)
        ]
        log.info(
            "fleet generation %s: %s shards",
            view.generation,
            view.count,
            extra={"generation": view.generation, "streams": [x.stream for x in self.leases]},
        )

    def _check(self) -> None:
        latest, joining = record.read_pending(self.redis)
        assert self.view is not None
        newest = self.latest or self.view
        if latest is None:
            # The store lost the record (restarted without its data): put ours back.
            record.restore(self.redis, newest)
            return
        if latest.generation < newest.generation:
            # The store lost the last writes but not every fence (an AOF's last second, a
            # failover): the generation this shard saw is the fleet's; obeying the older one
            # would fence the newest shard and leave writers refused.
            log.warning(
                "the fleet record went back to generation %s; writing %s again",
                latest.generation,
                newest.generation,
            )
            record.put_back(self.redis, latest, newest)
            return
        if joining is None:
            self._pending_since = None
        elif self._pending_since is None:
            self._pending_since = time.monotonic()
        elif time.monotonic() - self._pending_since > self.lease_ttl:
            log.warning("finishing a join of %s shards left pending", joining)
            latest = record.finish(self.redis) or latest
        self._seen(latest)
        if latest.generation == self.view.generation and latest.count == self.view.count:
            return
        if not self.fenced:
            self._fence(f"the fleet moved to {latest.count} shards (gen {latest.generation})")
        elif latest.count == self.shard_count:
            log.warning(
                "the fleet is back at this shard's count; restarting to read again",
                extra={"generation": latest.generation},
            )
            self.on_rejoin()
        elif self._nobody_at(latest.count):
            log.warning(
                "no shard runs the fleet's count of %s for %.0f s; restarting to record %s",
                latest.count,
                self.alone_after,
                self.shard_count,
                extra={"generation": latest.generation},
            )
            self.on_rejoin()

    def _nobody_at(self, count: int) -> bool:
        """Whether, for ``alone_after`` seconds, no shard's heartbeat says it runs with ``count``
        (``interlink.fleet.relay``): the shards of that count are gone, as after a rollout
        reverted part-way, and this fenced shard would never read again."""
        pipe = self.redis.pipeline(transaction=False)
        for shard_id in range(count):
            pipe.get(keys.shard_alive(shard_id))
        beats: list[Any] = pipe.execute()
        for beat in beats:
            try:
                if beat is not None and json.loads(beat).get("count") == count:
                    self._alone_since = None
                    return False
            except (ValueError, AttributeError):
                continue
        now = time.monotonic()
        if self._alone_since is None:
            self._alone_since = now
        return now - self._alone_since >= self.alone_after

    def _fence(self, reason: str) -> None:
        log.warning("fenced: this shard stops reading; %s", reason)
        self.fenced = True
        # The leases stay ours while the actors finish (the drain may outlast a lease's life):
        # the next holder must not deliver a tenant this shard is still delivering. Should the
        # shard stop meanwhile, its stop releases them once done.
        self._keep_leases()
        try:
            stopped = self.on_fenced()
        except Exception:
            log.exception("stopping the reader failed")
            stopped = None
        if stopped is False:
            # Actors still deliver (a conversation may retry for minutes): the next holder must
            # not start meanwhile. The process ends; the leases lapse after it.
            self.keep_until_exit()
            return
        self.release()

    def _keep_leases(self) -> None:
        """Refresh the leases held, in the background, until :meth:`release`."""
        if self._keeper is None:
            self._keeper = gevent.spawn(self._refresh_forever)

    def _refresh_forever(self) -> None:
        while True:
            gevent.sleep(self.lease_ttl / 4)
            for lease in self.leases:
                if lease.held:
                    try:
                        lease.refresh()
                    except redis.RedisError:
                        pass

    def _hold_leases(self) -> None:
        for lease in self.leases:
            was_held = lease.held
            if lease.acquire():
                if lease.stream not in self._taken:
                    self._take_over(lease)  # again after a failure half-way
                    self._taken.add(lease.stream)
            elif was_held:
                # Lost without a change of generation (the store went back to a value of this
                # shard's earlier run, or a refresh came after the lease lapsed): nobody else
                # reads this stream in this generation, so it is ours to take back.
                lease.held = False
                if lease.acquire():
                    log.warning("the lease of stream %s was lost and taken back", lease.stream)
                    continue
                self._fence(f"the lease of stream {lease.stream} was taken by another")
                self.on_rejoin()
                return

    def _take_over(self, lease: Lease) -> None:
        """A stream just leased: hand over what it holds for others, then read it."""
        assert self.view is not None
        sent = forward(self.redis, lease.stream, self.view, regroup=not self._handed_over)
        record.mark_done(self.redis, lease.stream, self.view.generation)
        log.info(
            "stream taken over",
            extra={"stream": lease.stream, "forwarded": sent, "generation": self.view.generation},
        )
        if lease.stream == self.shard_id and not self.ready:
            self.ready = True
            self.on_ready()
            self._ready.set()

    def _forward_all(self) -> None:
        """What reaches a stream for another shard after its handover: an outbox entry sent
        again after a crash to the destination it was taken out for, under an older count. Only
        handover streams and the streams of shards that no longer exist can get such entries
        (the fences keep every other write where the current count puts it), so the own inbox,
        which may be long, is not scanned again."""
        assert self.view is not None
        for lease in self.leases:
            if lease.held and lease.stream in self._taken:
                orphan = lease.stream >= self.view.count
                forward(self.redis, lease.stream, self.view, regroup=False, inbox=orphan)
                if not self._handed_over:
                    # Again at each pass (idempotent): a done mark the store lost would
                    # otherwise keep the generation from ever settling.
                    record.mark_done(self.redis, lease.stream, self.view.generation)
