"""Pacing: stay under the providers' rate limits instead of bumping into them.

A token bucket per limit: ``burst`` requests may go at once, then one every
``1 / rate_per_second`` seconds. :meth:`Pacer.acquire` *reserves* its slot before sleeping (the
bucket may go into debt), so greenlets waiting on one pacer are served in arrival order and each
sleeps exactly until its own slot, with no thundering herd of re-checks.

The limits (https://developer.genesys.cloud/organization/organization/limits#platform-api; the
``throughput`` and ``about-the-platform`` pages under
https://developers.facebook.com/documentation/business-messaging/whatsapp/):
- Genesys: 300 requests per minute per client-credentials token → :func:`genesys_pacer`.
- Meta: 80 messages per second per business number, inbound and outbound counted together →
  :func:`meta_number_pacer`.
- Meta pair rate: about 1 message per 6 s to one recipient, short bursts tolerated, 131056 when
  exceeded, then retry after 4^X seconds → :class:`KeyedPacer` and :func:`pair_pacer`.

These pacers are per process: a tenant served by one shard is paced exactly; nothing here
coordinates shards (the limits keep a margin for that and the clients still honour 429s).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

GENESYS_REQUESTS_PER_MINUTE = 300
DEFAULT_GENESYS_REQUESTS_PER_MINUTE = 270
"""Pace Genesys at 90% of its limit: tokens are shared with other shards and other tools."""
DEFAULT_GENESYS_BURST = 10

META_MESSAGES_PER_SECOND = 80
"""Meta's default throughput per business number (a tenant's ``messagesPerSecond`` setting)."""
META_PACED_SHARE = 0.9
"""Sends use 90% of a number's throughput: inbound messages count against the same budget."""
DEFAULT_META_MESSAGES_PER_SECOND = META_MESSAGES_PER_SECOND * META_PACED_SHARE
DEFAULT_META_BURST = 8

DEFAULT_PAIR_INTERVAL = 6.0
"""Seconds between messages to one recipient once its burst is spent (Meta: 1 per 6 s)."""
DEFAULT_PAIR_BURST = 10
"""Messages one recipient may get at once (an agent's few quick bubbles). Meta tolerates 45 but
makes a burst borrow future quota by an unpublished rule, so we stay well below."""
DEFAULT_PENALTY_BASE = 4.0
"""Meta's rule after a 131056: wait 4^X seconds, X = 0, 1, 2, ..."""
DEFAULT_MAX_PENALTY = 900.0
"""Seconds: the longest a recipient is blocked by :meth:`KeyedPacer.penalize`."""
DEFAULT_MAX_KEYS = 100_000
"""Keys a :class:`KeyedPacer` keeps at most; beyond it the least recently used one is dropped."""


class _Bucket:
    """A token bucket's state; ``tokens`` may be negative (slots reserved by sleepers)."""

    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens = tokens
        self.updated = now

    def refill(self, now: float, rate: float, burst: float) -> None:
        if now > self.updated:
            self.tokens = min(burst, self.tokens + (now - self.updated) * rate)
            self.updated = now

    def wait(self, rate: float) -> float:
        """Seconds until one whole token is available."""
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / rate

    def full_at(self, rate: float, burst: float) -> float:
        return self.updated + max(0.0, burst - self.tokens) / rate


def _check(rate_per_second: float, burst: int) -> None:
    if not rate_per_second > 0:
        raise ValueError("rate_per_second must be positive")
    if burst < 1:
        raise ValueError("burst must be at least 1")


class Pacer:
    """One token bucket: ``burst`` calls at once, then ``rate_per_second`` on average.

    - ``rate_per_second``: the sustained rate (> 0).
    - ``burst``: calls allowed back to back after a quiet period (>= 1, default 1: strict interval).
    - ``clock``: monotonic seconds (default ``time.monotonic``).
    - ``sleep``: how :meth:`acquire` waits (default ``time.sleep``, which yields under gevent).

    Safe to share between greenlets (and threads): state changes happen under a lock that is
    never held while sleeping. The bucket starts full.
    """

    def __init__(
        self,
        rate_per_second: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        _check(rate_per_second, burst)
        self.rate = float(rate_per_second)
        self.burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._bucket = _Bucket(self.burst, clock())

    def try_acquire(self) -> float:
        """Take a slot if one is free now and return ``0.0``; else take nothing and return the
        seconds until one will be (a caller that would rather reschedule than block)."""
        with self._lock:
            self._bucket.refill(self._clock(), self.rate, self.burst)
            wait = self._bucket.wait(self.rate)
            if wait == 0.0:
                self._bucket.tokens -= 1.0
            return wait

    def acquire(self) -> float:
        """Take the next slot, blocking the calling greenlet until it comes; returns the seconds
        waited. The slot is reserved before sleeping: callers are served in arrival order."""
        with self._lock:
            self._bucket.refill(self._clock(), self.rate, self.burst)
            wait = self._bucket.wait(self.rate)
            self._bucket.tokens -= 1.0
        if wait > 0.0:
            self._sleep(wait)
        return wait

    def __repr__(self) -> str:
        return f"Pacer(rate_per_second={self.rate!r}, burst={int(self.burst)})"


class KeyedPacer:
    """One token bucket per key (a WhatsApp recipient), created on first use, forgotten when idle.

    - ``rate_per_second``: the sustained rate per key (default ``1 / DEFAULT_PAIR_INTERVAL``).
    - ``burst``: per key (default ``DEFAULT_PAIR_BURST``).
    - ``clock`` / ``sleep``: as for :class:`Pacer`.
    - ``penalty_base`` / ``max_penalty``: :meth:`penalize` blocks a key for
      ``min(max_penalty, penalty_base ** attempt)`` seconds (``DEFAULT_PENALTY_BASE``,
      ``DEFAULT_MAX_PENALTY``).
    - ``max_keys``: the most keys kept (``DEFAULT_MAX_KEYS``).

    Memory stays bounded: a key whose bucket has refilled is indistinguishable from a new key, so
    it is dropped (checked from the least recently used end on every call, amortised O(1)); and
    beyond ``max_keys`` the least recently used key is dropped even if not yet refilled (that
    recipient then gets a fresh burst — a possible 131056, never a lost message).
    """

    def __init__(
        self,
        rate_per_second: float = 1.0 / DEFAULT_PAIR_INTERVAL,
        burst: int = DEFAULT_PAIR_BURST,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        penalty_base: float = DEFAULT_PENALTY_BASE,
        max_penalty: float = DEFAULT_MAX_PENALTY,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        _check(rate_per_second, burst)
        self.rate = float(rate_per_second)
        self.burst = float(burst)
        self.penalty_base = penalty_base
        self.max_penalty = max_penalty
        self.max_keys = max_keys
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()

    def _bucket(self, key: Hashable, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        else:
            self._buckets.move_to_end(key)
            bucket.refill(now, self.rate, self.burst)
        self._forget_idle(now)
        return bucket

    def _forget_idle(self, now: float) -> None:
        while len(self._buckets) > 1:
            key, oldest = next(iter(self._buckets.items()))
            if len(self._buckets) <= self.max_keys and oldest.full_at(self.rate, self.burst) > now:
                break
            del self._buckets[key]

    def try_acquire(self, key: Hashable) -> float:
        """Take a slot for ``key`` if one is free now (returns ``0.0``); else take nothing and
        return the seconds until one will be."""
        with self._lock:
            bucket = self._bucket(key, self._clock())
            wait = bucket.wait(self.rate)
            if wait == 0.0:
                bucket.tokens -= 1.0
            return wait

    def acquire(self, key: Hashable) -> float:
        """Take the next slot for ``key``, blocking the calling greenlet until it comes (other
        keys are not held up); returns the seconds waited."""
        with self._lock:
            bucket = self._bucket(key, self._clock())
            wait = bucket.wait(self.rate)
            bucket.tokens -= 1.0
        if wait > 0.0:
            self._sleep(wait)
        return wait

    def penalize(self, key: Hashable, attempt: int) -> float:
        """Block ``key`` for ``penalty_base ** attempt`` seconds (capped at ``max_penalty``) from
        now — after Meta's 131056, with ``attempt`` = 0 for the first one — and return that
        delay. Afterwards the key resumes at the sustained rate, without a fresh burst. A longer
        block already in place is kept."""
        penalty = min(self.max_penalty, self.penalty_base ** max(attempt, 0))
        with self._lock:
            bucket = self._bucket(key, self._clock())
            # Debt such that the next whole token appears exactly ``penalty`` seconds from now.
            bucket.tokens = min(bucket.tokens, 1.0 - penalty * self.rate)
        return penalty

    def __len__(self) -> int:
        return len(self._buckets)

    def __repr__(self) -> str:
        return (
            f"KeyedPacer(rate_per_second={self.rate!r}, burst={int(self.burst)}, "
            f"keys={len(self._buckets)})"
        )


def genesys_pacer(
    requests_per_minute: float = DEFAULT_GENESYS_REQUESTS_PER_MINUTE,
    burst: int = DEFAULT_GENESYS_BURST,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Pacer:
    """A pacer for one Genesys token: ``requests_per_minute`` (default
    ``DEFAULT_GENESYS_REQUESTS_PER_MINUTE``, under Genesys's 300) with ``burst`` (default
    ``DEFAULT_GENESYS_BURST``); at most 280 calls land in any 60 s window by default."""
    return Pacer(requests_per_minute / 60.0, burst, clock=clock, sleep=sleep)


def meta_number_pacer(
    messages_per_second: float = DEFAULT_META_MESSAGES_PER_SECOND,
    burst: int = DEFAULT_META_BURST,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Pacer:
    """A pacer for one WhatsApp business number: ``messages_per_second`` (default
    ``DEFAULT_META_MESSAGES_PER_SECOND``) with ``burst`` (default ``DEFAULT_META_BURST``)."""
    return Pacer(messages_per_second, burst, clock=clock, sleep=sleep)


def pair_pacer(
    interval: float = DEFAULT_PAIR_INTERVAL,
    burst: int = DEFAULT_PAIR_BURST,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    max_keys: int = DEFAULT_MAX_KEYS,
) -> KeyedPacer:
    """Per-recipient pacing for one business number: one message per ``interval`` seconds
    (default ``DEFAULT_PAIR_INTERVAL``) after a ``burst`` (default ``DEFAULT_PAIR_BURST``)."""
    return KeyedPacer(1.0 / interval, burst, clock=clock, sleep=sleep, max_keys=max_keys)
