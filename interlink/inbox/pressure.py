"""Accept before delivery: the reader hands work to the actors only while the gevent hub keeps up.

The webhooks and the delivery share one process and one hub. Work handed to the actors becomes
runnable greenlets that the hub runs in turn, so when more arrives than the shard can deliver,
a webhook's few steps each wait behind every runnable delivery: acks took seconds, and the
providers, timing out, sent everything again. Accepted work is durable in the inbox stream, so it
may as well wait there: :class:`HubPressure` measures how late the hub wakes a greenlet that
sleeps a few milliseconds (its lag: the queue of runnable work) and lets the reader hand over a
burst per measurement while the lag is under ``limit``, one while above, the burst growing by
one while the hub keeps up and halving when it does not (as TCP finds its window). Delivery then
takes what CPU the front end leaves; a backlog drains once the arrivals fall back. A tenant whose
provider is slow costs no CPU and does not slow this down (only CPU queues the hub). The hub's
other stall of its own making, the cycle collector's full collections, is :mod:`collector`'s.
"""

from __future__ import annotations

import time

import gevent

DEFAULT_LIMIT = 0.002  # seconds of hub lag above which nothing more is handed over
DEFAULT_INTERVAL = 0.005  # seconds between measurements
DEFAULT_BURST = 32  # entries handed over per measurement at most (6,400/s)
DEFAULT_WINDOW = 0.05  # seconds over which a trickle of entries is told from a flow


class HubPressure:
    """The reader's gate (see the module docstring). It measures only while entries flow (more
    than ``burst`` in ``window``) or the hub is late: a trickle hands over at once."""

    def __init__(
        self,
        *,
        limit: float = DEFAULT_LIMIT,
        interval: float = DEFAULT_INTERVAL,
        burst: int = DEFAULT_BURST,
        window: float = DEFAULT_WINDOW,
    ) -> None:
        self.limit = limit
        self.interval = interval
        self.burst = burst
        self.window = window
        self.lag = 0.0
        self._allowed = burst  # entries per measurement now, from 1 to ``burst``
        self._budget = burst
        self._handed = 0  # entries handed over since the last measurement
        self._window_began = 0.0  # while not measuring: the entries of the current window
        self._window_count = 0
        self._started = False
        self._greenlet: gevent.Greenlet | None = None  # measuring, while there is work
        self.waited = 0.0  # seconds the reader spent waiting, in total (for stats and tests)

    def start(self) -> None:
        self._started = True

    def stop(self) -> None:
        self._started = False
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    @property
    def measuring(self) -> bool:
        return self._greenlet is not None

    def _measure(self) -> None:
        # Only while entries flow (more than ``burst`` a ``window``) or the hub is late: a
        # trickle cannot queue the hub, and a timer 200 times a second costs ~25 ms of CPU a
        # second, ~125 us per message at 200 a second.
        trickle = self.burst * self.interval / self.window  # entries per measurement
        calm = 0.0
        while calm < self.window:
            began = time.perf_counter()
            gevent.sleep(self.interval)
            handed, self._handed = self._handed, 0
            self.lag = max(0.0, time.perf_counter() - began - self.interval)
            if self.lag <= self.limit:
                held = self._budget <= 0
                self._allowed = min(self.burst, self._allowed + 1)
                self._budget = self._allowed
                calm = 0.0 if held or handed >= trickle else calm + self.interval
            else:
                calm = 0.0
                self._allowed = max(1, self._allowed // 2)
                # One entry per measurement still: a hub that is only ever late (a throttled
                # container, a noisy host) slows delivery down but never stops it.
                self._budget = 1
        self._greenlet = None
        self._window_began, self._window_count = time.perf_counter(), 0

    def wait(self) -> None:
        """Before handing one entry over: return at once while the hub keeps up, else wait
        until it does (the front end runs meanwhile)."""
        if not self._started:
            return
        if self._greenlet is None:
            now = time.perf_counter()
            if now - self._window_began > self.window:
                self._window_began, self._window_count = now, 0
            self._window_count += 1
            if self._window_count <= self.burst:
                return  # a trickle: nothing to measure
            self._greenlet = gevent.spawn(self._measure)
        if self._budget <= 0:
            began = time.perf_counter()
            while self._budget <= 0 and self._started:
                gevent.sleep(self.interval)
            self.waited += time.perf_counter() - began
        self._budget -= 1
        self._handed += 1
