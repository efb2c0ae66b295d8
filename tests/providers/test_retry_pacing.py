"""Backoff, Retry-After, the retry loop and the pacers, on a fake clock (no real sleeping)."""

from __future__ import annotations

import email.utils

import pytest

from interlink.providers.errors import PermanentError, SendUncertain, TransientError
from interlink.providers.pacing import (
    DEFAULT_GENESYS_REQUESTS_PER_MINUTE,
    GENESYS_REQUESTS_PER_MINUTE,
    KeyedPacer,
    Pacer,
    genesys_pacer,
    pair_pacer,
)
from interlink.providers.retry import RetryPolicy, backoff, parse_retry_after


class FakeClock:
    """A monotonic clock that only moves when someone sleeps on it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# --- backoff -------------------------------------------------------------------------------


def test_backoff_ceiling_doubles_then_caps() -> None:
    top = [backoff(n, base=0.5, cap=10.0, rng=lambda: 1.0) for n in range(7)]
    assert top == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_backoff_is_full_jitter() -> None:
    assert backoff(3, base=1.0, cap=100.0, rng=lambda: 0.0) == 0.0
    assert backoff(3, base=1.0, cap=100.0, rng=lambda: 0.25) == 2.0


def test_backoff_survives_huge_attempt_numbers() -> None:
    assert backoff(10_000, base=0.5, cap=30.0, rng=lambda: 1.0) == 30.0


# --- Retry-After ---------------------------------------------------------------------------


def test_retry_after_seconds() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-3") == 0.0


def test_retry_after_http_date() -> None:
    now = 1_800_000_000.0
    header = email.utils.formatdate(now + 42, usegmt=True)
    assert parse_retry_after(header, now=lambda: now) == pytest.approx(42.0)
    past = email.utils.formatdate(now - 42, usegmt=True)
    assert parse_retry_after(past, now=lambda: now) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "Mon, 99 Foo 20x6"])
def test_retry_after_unreadable_is_none(value: str | None) -> None:
    assert parse_retry_after(value) is None


# --- RetryPolicy ---------------------------------------------------------------------------


def test_policy_retries_transient_errors_then_returns() -> None:
    clock = FakeClock()
    outcomes: list[Exception | str] = [TransientError("a"), TransientError("b"), "ok"]

    def call() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    policy = RetryPolicy(max_attempts=5, base=1.0, cap=10.0, rng=lambda: 1.0)
    assert policy.run(call, sleep=clock.sleep) == "ok"
    assert clock.sleeps == [1.0, 2.0]


def test_policy_gives_up_with_the_last_error_after_max_attempts() -> None:
    clock = FakeClock()
    calls = 0

    def call() -> None:
        nonlocal calls
        calls += 1
        raise TransientError(f"failure {calls}", status=503)

    policy = RetryPolicy(max_attempts=3, base=1.0, cap=10.0, rng=lambda: 0.5)
    with pytest.raises(TransientError, match="failure 3"):
        policy.run(call, sleep=clock.sleep)
    assert calls == 3
    assert clock.sleeps == [0.5, 1.0]


def test_policy_honours_retry_after_exactly() -> None:
    clock = FakeClock()
    outcomes: list[Exception | str] = [TransientError("429", retry_after=17.0), "ok"]

    def call() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert RetryPolicy(rng=lambda: 1.0).run(call, sleep=clock.sleep) == "ok"
    assert clock.sleeps == [17.0]


def test_policy_hands_back_a_retry_after_too_long_to_sleep() -> None:
    clock = FakeClock()

    def call() -> None:
        raise TransientError("429", retry_after=3600.0)

    with pytest.raises(TransientError) as caught:
        RetryPolicy(max_retry_after=120.0).run(call, sleep=clock.sleep)
    assert caught.value.retry_after == 3600.0
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "error", [PermanentError(400, "bad.request", "no"), SendUncertain("maybe"), ValueError("x")]
)
def test_policy_does_not_retry_other_errors(error: Exception) -> None:
    clock = FakeClock()
    calls = 0

    def call() -> None:
        nonlocal calls
        calls += 1
        raise error

    with pytest.raises(type(error)):
        RetryPolicy().run(call, sleep=clock.sleep)
    assert calls == 1
    assert clock.sleeps == []


def test_policy_custom_predicate() -> None:
    clock = FakeClock()
    outcomes: list[Exception | str] = [KeyError("k"), "ok"]

    def call() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    policy = RetryPolicy(retry_on=lambda exc: isinstance(exc, KeyError), rng=lambda: 0.0)
    assert policy.run(call, sleep=clock.sleep) == "ok"


# --- Pacer ---------------------------------------------------------------------------------


def test_pacer_allows_a_burst_then_the_sustained_rate() -> None:
    clock = FakeClock()
    pacer = Pacer(2.0, burst=3, clock=clock, sleep=clock.sleep)
    assert [pacer.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert pacer.try_acquire() == pytest.approx(0.5)
    assert pacer.try_acquire() == pytest.approx(0.5)  # try_acquire never reserves
    clock.now += 0.5
    assert pacer.try_acquire() == 0.0
    assert pacer.try_acquire() == pytest.approx(0.5)


def test_pacer_acquire_reserves_slots_in_order() -> None:
    clock = FakeClock()
    slept: list[float] = []
    # A sleep that does not advance the clock: as if several greenlets asked at the same instant.
    pacer = Pacer(4.0, burst=1, clock=clock, sleep=slept.append)
    waits = [pacer.acquire() for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.25, 0.5, 0.75])
    assert slept == pytest.approx([0.25, 0.5, 0.75])


def test_pacer_never_exceeds_the_rate_over_a_long_run() -> None:
    clock = FakeClock()
    pacer = Pacer(5.0, burst=5, clock=clock, sleep=clock.sleep)
    start = clock.now
    for _ in range(105):
        pacer.acquire()
    # 5 free, then 100 at 5/s: 20 s.
    assert clock.now - start == pytest.approx(20.0)


def test_pacer_refill_is_capped_at_burst() -> None:
    clock = FakeClock()
    pacer = Pacer(1.0, burst=2, clock=clock, sleep=clock.sleep)
    clock.now += 3600
    assert [pacer.try_acquire() for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]


def test_pacer_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Pacer(0.0)
    with pytest.raises(ValueError):
        Pacer(1.0, burst=0)


def test_genesys_pacer_stays_under_300_per_minute() -> None:
    assert DEFAULT_GENESYS_REQUESTS_PER_MINUTE < GENESYS_REQUESTS_PER_MINUTE
    clock = FakeClock()
    pacer = genesys_pacer(clock=clock, sleep=clock.sleep)
    start = clock.now
    count = 0
    while clock.now - start < 60.0:
        pacer.acquire()
        count += 1
    # Requests that started within the first 60 s.
    assert count - 1 < GENESYS_REQUESTS_PER_MINUTE
    assert count - 1 >= DEFAULT_GENESYS_REQUESTS_PER_MINUTE


def test_pacer_shared_by_greenlets_serves_them_in_order() -> None:
    """The lock is never held while sleeping: greenlets that yield inside ``sleep`` do not
    deadlock, and each gets its own reserved slot."""
    import gevent

    clock = FakeClock()
    slept: list[float] = []

    def yielding_sleep(seconds: float) -> None:
        slept.append(seconds)
        gevent.sleep(0)  # let the other greenlets in, as a real sleep would

    pacer = Pacer(50.0, burst=1, clock=clock, sleep=yielding_sleep)
    waits: list[float] = []
    greenlets = [gevent.spawn(lambda: waits.append(pacer.acquire())) for _ in range(4)]
    gevent.joinall(greenlets, timeout=5)
    assert sorted(waits) == pytest.approx([0.0, 0.02, 0.04, 0.06])
    assert sorted(slept) == pytest.approx([0.02, 0.04, 0.06])


# --- KeyedPacer ----------------------------------------------------------------------------


def test_keyed_pacer_keys_are_independent() -> None:
    clock = FakeClock()
    pacer = KeyedPacer(1 / 6, burst=2, clock=clock, sleep=clock.sleep)
    assert pacer.try_acquire("a") == 0.0
    assert pacer.try_acquire("a") == 0.0
    assert pacer.try_acquire("a") == pytest.approx(6.0)
    assert pacer.try_acquire("b") == 0.0
    clock.now += 6.0
    assert pacer.try_acquire("a") == 0.0


def test_keyed_pacer_acquire_blocks_only_that_key() -> None:
    clock = FakeClock()
    pacer = KeyedPacer(1 / 6, burst=1, clock=clock, sleep=clock.sleep)
    assert pacer.acquire("a") == 0.0
    assert pacer.acquire("a") == pytest.approx(6.0)
    assert pacer.acquire("b") == 0.0


def test_penalize_blocks_the_key_for_4_to_the_x_seconds() -> None:
    clock = FakeClock()
    pacer = pair_pacer(clock=clock, sleep=clock.sleep)
    assert pacer.penalize("u1", 0) == 1.0
    assert pacer.try_acquire("u1") == pytest.approx(1.0)
    assert pacer.penalize("u1", 2) == 16.0
    assert pacer.try_acquire("u1") == pytest.approx(16.0)
    assert pacer.try_acquire("u2") == 0.0  # others unaffected
    clock.now += 16.0
    assert pacer.try_acquire("u1") == 0.0
    # After a penalty the key resumes at the sustained rate, without a fresh burst.
    assert pacer.try_acquire("u1") == pytest.approx(6.0)


def test_penalize_keeps_a_longer_block_and_caps() -> None:
    clock = FakeClock()
    pacer = KeyedPacer(1 / 6, burst=10, clock=clock, sleep=clock.sleep, max_penalty=900.0)
    pacer.penalize("u", 3)  # 64 s
    pacer.penalize("u", 0)  # 1 s: shorter, ignored
    assert pacer.try_acquire("u") == pytest.approx(64.0)
    assert pacer.penalize("u", 20) == 900.0


def test_keyed_pacer_forgets_idle_keys() -> None:
    clock = FakeClock()
    pacer = KeyedPacer(1.0, burst=2, clock=clock, sleep=clock.sleep)
    for n in range(50):
        pacer.try_acquire(f"user-{n}")
    assert len(pacer) == 50
    clock.now += 10.0  # every bucket refilled: nothing worth remembering
    pacer.try_acquire("fresh")
    assert len(pacer) == 1


def test_keyed_pacer_keeps_penalized_keys_while_blocked() -> None:
    clock = FakeClock()
    pacer = KeyedPacer(1.0, burst=2, clock=clock, sleep=clock.sleep)
    pacer.penalize("blocked", 3)  # 64 s
    clock.now += 10.0
    pacer.try_acquire("other")
    assert pacer.try_acquire("blocked") == pytest.approx(54.0)


def test_keyed_pacer_is_bounded_by_max_keys() -> None:
    clock = FakeClock()
    pacer = KeyedPacer(1 / 6, burst=1, clock=clock, sleep=clock.sleep, max_keys=100)
    for n in range(1000):
        pacer.try_acquire(n)
    assert len(pacer) == 100
