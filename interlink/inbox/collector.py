"""Accept before delivery, the collector's part: full garbage collections when the hub can
afford them.

CPython's cycle collector now and then goes through every object the process tracks (its
oldest generation). In a shard holding a few hundred tenants' trees that took 65-110 ms, every
5-6 s under overload (measured at 1,300 webhooks/s offered): the hub stops for all of it, so
every webhook arriving meanwhile waits, which alone set the webhooks' ack p99 above 100 ms.

While a :class:`Collector` runs, the process's own collections leave the oldest generation
alone (its threshold is set out of reach; the young generations are collected as before, in a
millisecond or two) and the collector runs the full collection itself: once the hub has been
quiet for a while (its lag, measured as :mod:`interlink.inbox.pressure` does, stayed under
``quiet_lag`` for ``quiet_for`` seconds), at most every ``quiet_every`` seconds; and however
busy the hub is, once the process's resident memory grew by ``grow`` (a fraction) since the
last one, or ``every`` seconds after it. A cycle of old objects that becomes garbage is freed
that much later; memory freed by reference counting, nearly all of it, is freed at once as
before (the collections of a shard under overload found 0-50 such objects a time). CPython's
own rule is alike (a full collection once the objects that reached the oldest generation since
the last one number a quarter of those it kept), but it counts every object that grew old,
those since freed too: under steady load, with a heap that did not grow, it came every 5 s.

One collector per process (``SHARED``), used by every inbox reader: started by the first,
stopped by the last, which gives the process its own thresholds back.
"""

from __future__ import annotations

import gc
import logging
import os
import time

import gevent

log = logging.getLogger(__name__)

DEFAULT_QUIET_EVERY = 60.0  # seconds between full collections at the least, when quiet
DEFAULT_EVERY = 600.0  # seconds between full collections at the most, however busy
DEFAULT_QUIET_LAG = 0.001  # seconds of hub lag under which the hub counts as quiet
DEFAULT_QUIET_FOR = 1.0  # seconds the hub must have stayed quiet
DEFAULT_CHECK = 0.1  # seconds between lag measurements
DEFAULT_GROW = 0.25  # growth of the resident memory that calls for a full collection
MIN_GROWTH = 32 << 20  # bytes: a small process's growth by a quarter is no reason yet


UNREACHABLE = 1 << 30  # a threshold of the oldest generation that its count never reaches


class Collector:
    def __init__(
        self,
        *,
        quiet_every: float = DEFAULT_QUIET_EVERY,
        every: float = DEFAULT_EVERY,
        quiet_lag: float = DEFAULT_QUIET_LAG,
        quiet_for: float = DEFAULT_QUIET_FOR,
        check: float = DEFAULT_CHECK,
        grow: float = DEFAULT_GROW,
        min_growth: int = MIN_GROWTH,
    ) -> None:
        self.quiet_every = quiet_every
        self.every = every
        self.quiet_lag = quiet_lag
        self.quiet_for = quiet_for
        self.check = check
        self.grow = grow
        self.min_growth = min_growth
        self.users = 0
        self.collections = 0  # full collections run, in total (for stats and tests)
        self.last_pause = 0.0  # seconds the last one took
        self._greenlet: gevent.Greenlet | None = None
        self._thresholds: tuple[int, int, int] | None = None

    def start(self) -> None:
        self.users += 1
        if self._greenlet is None:
            young0, young1, oldest = gc.get_threshold()
            self._thresholds = (young0, young1, oldest)
            gc.set_threshold(young0, young1, UNREACHABLE)
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        self.users = max(0, self.users - 1)
        if self.users == 0 and self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
            if self._thresholds is not None:
                gc.set_threshold(*self._thresholds)
                self._thresholds = None

    def collect(self, reason: str = "asked") -> None:
        """One full collection now."""
        began = time.perf_counter()
        found = gc.collect()
        self.collections += 1
        self.last_pause = time.perf_counter() - began
        log.debug(
            "full garbage collection",
            extra={"reason": reason, "seconds": round(self.last_pause, 4), "found": found},
        )

    def _run(self) -> None:
        last = time.monotonic()
        quiet_since = last
        limit = self._limit()
        while True:
            began = time.perf_counter()
            gevent.sleep(self.check)
            lag = time.perf_counter() - began - self.check
            now = time.monotonic()
            if lag > self.quiet_lag:
                quiet_since = now
            since = now - last
            if since >= self.quiet_every and now - quiet_since >= self.quiet_for:
                reason = "quiet"
            elif resident() > limit:
                reason = "grown"
            elif since >= self.every:
                reason = "due"
            else:
                continue
            self.collect(reason)
            last = quiet_since = time.monotonic()
            limit = self._limit()

    def _limit(self) -> float:
        """The resident memory past which the next full collection is due, however busy."""
        now = resident()
        return now + max(now * self.grow, self.min_growth) if now else float("inf")


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident() -> int:
    """The process's resident memory in bytes; 0 where /proc does not tell."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


SHARED = Collector()
