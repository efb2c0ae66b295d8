"""Retries: exponential backoff with full jitter, a cap, and the provider's ``Retry-After``.

``backoff`` is the AWS "full jitter" schedule: attempt ``n`` waits a uniform random time in
``[0, min(cap, base * 2**n))``, so clients that failed together do not retry together.
:class:`RetryPolicy` bundles the numbers with the decision of which failures retry, and
:meth:`RetryPolicy.run` is the loop. Sleeping is injected: under gevent ``time.sleep`` yields the
greenlet, in tests a fake records the delays.
"""

from __future__ import annotations

import datetime
import email.utils
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from interlink.providers.errors import TransientError

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_BASE_DELAY = 0.5
"""Seconds: the ceiling of the first retry's random delay; doubles each attempt."""
DEFAULT_MAX_DELAY = 30.0
"""Seconds: the ceiling never grows beyond this."""
DEFAULT_MAX_ATTEMPTS = 5
"""Calls in total, the first one included."""
DEFAULT_MAX_RETRY_AFTER = 120.0
"""Seconds: a ``Retry-After`` longer than this is not slept through; the error goes to the caller,
which keeps the work and comes back later instead of parking a greenlet for minutes."""

_MAX_EXPONENT = 60  # 2**60 * any sane base overflows no float and exceeds any sane cap


def backoff(
    attempt: int,
    *,
    base: float = DEFAULT_BASE_DELAY,
    cap: float = DEFAULT_MAX_DELAY,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry).

    Full jitter: ``rng() * min(cap, base * 2**attempt)``. ``base`` defaults to
    ``DEFAULT_BASE_DELAY``, ``cap`` to ``DEFAULT_MAX_DELAY``; ``rng`` returns a float in
    ``[0, 1)`` (default ``random.random``; tests pass a constant).
    """
    ceiling = min(cap, base * 2 ** min(max(attempt, 0), _MAX_EXPONENT))
    return rng() * ceiling


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """A ``Retry-After`` header as seconds from ``now``, or ``None`` when absent or unreadable.

    Both forms of RFC 9110 are read: delay-seconds (``"120"``; a fraction is tolerated) and an
    HTTP date (``"Wed, 21 Oct 2026 07:28:00 GMT"``, measured against ``now``, default
    ``time.time``). A date in the past or a negative number gives ``0.0``.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive one is read as such
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - now())


def is_transient(exc: Exception) -> bool:
    """The default retry predicate: :class:`~interlink.providers.errors.TransientError` only."""
    return isinstance(exc, TransientError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry, and which failures deserve it.

    - ``max_attempts``: calls in total, the first included (default ``DEFAULT_MAX_ATTEMPTS``).
    - ``base`` / ``cap``: the :func:`backoff` schedule (``DEFAULT_BASE_DELAY``,
      ``DEFAULT_MAX_DELAY``).
    - ``max_retry_after``: the longest ``Retry-After`` slept through (``DEFAULT_MAX_RETRY_AFTER``);
      a longer one ends the loop and the error (which carries it) goes to the caller.
    - ``retry_on``: which exceptions retry (default :func:`is_transient`). Anything else is
      raised at once.
    - ``rng``: the jitter source (default ``random.random``).

    A failure's own delay request is read from its ``retry_after`` attribute when it has one.
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    base: float = DEFAULT_BASE_DELAY
    cap: float = DEFAULT_MAX_DELAY
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    retry_on: Callable[[Exception], bool] = is_transient
    rng: Callable[[], float] = field(default=random.random, repr=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Seconds to sleep before retry ``attempt`` (0-based), or ``None``: stop retrying.

        ``None`` once ``max_attempts`` calls have been made or when ``retry_after`` exceeds
        ``max_retry_after``. A ``retry_after`` within bounds is honoured exactly (it replaces
        the jittered backoff: the provider knows when its window reopens).
        """
        if attempt + 1 >= self.max_attempts:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        return backoff(attempt, base=self.base, cap=self.cap, rng=self.rng)

    def run(self, call: Callable[[], T], *, sleep: Callable[[float], None] = time.sleep) -> T:
        """Call ``call()`` until it returns, retrying failures that ``retry_on`` accepts.

        Between attempts ``sleep`` (default ``time.sleep``, which yields under gevent) waits
        :meth:`delay`. When retries run out the last failure is raised unchanged, so the caller
        sees the real reason (and its ``retry_after``). Exceptions ``retry_on`` rejects, and every
        ``BaseException``, propagate at once.
        """
        attempt = 0
        while True:
            try:
                return call()
            except Exception as exc:
                if not self.retry_on(exc):
                    raise
                wait = self.delay(attempt, getattr(exc, "retry_after", None))
                if wait is None:
                    raise
                log.info(
                    "retrying after %s in %.2fs",
                    type(exc).__name__,
                    wait,
                    extra={"attempt": attempt + 1, "error": str(exc)},
                )
            sleep(wait)
            attempt += 1


DEFAULT_POLICY = RetryPolicy()
