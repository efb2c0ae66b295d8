"""Every series a shard exposes on ``/metrics``, declared once here on prometheus-client.

Each series is declared at import with its labels, and labelled children are created up front so
every series shows from the first scrape (a counter at 0). No label names a tenant: the series
stay few whatever the number of tenants. Children used on the accept path are module variables,
so recording costs no label lookup.

Gauges that describe the shard's state (inbox, dead letters, tenants) are read at scrape time by
:class:`ShardState`, which ``interlink.http.health`` renders with this module's :data:`REGISTRY`.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest

if TYPE_CHECKING:
    from interlink.services import Services

log = logging.getLogger(__name__)

# The *_created series double every counter's lines and tell an operator nothing here.
disable_created_metrics()
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

PROVIDERS = ("whatsapp", "genesys")
WEBHOOK_STATUSES = ("200", "400", "401", "403", "404", "413", "429", "503")
DIRECTIONS = ("to_genesys", "to_whatsapp")
OUTCOMES = ("2xx", "4xx", "5xx", "error")
TENANT_STATES = ("active", "restarting", "failed", "stopped", "idle")
# An ack is a few ms; a delivery waits on a provider and possibly on retries (up to minutes).
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0)
REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SCRAPE_TIMEOUT = 0.5  # seconds a scrape waits for the supervisor's view of its tenants
MAX_DEAD_LETTER_TENANTS = 1000  # tenants whose dead letters one scrape counts


def _labelled(metric: Any, *values: Iterable[str]) -> Any:
    """``metric`` with a child for every combination of ``values`` (one iterable per label)."""
    for combo in _combinations(values):
        metric.labels(*combo)
    return metric


class FastCounter:
    """A counter of the accept path, kept as plain numbers and exposed at scrape time.

    prometheus-client takes a lock for every increment, and under gevent's monkey-patching that
    is a gevent lock: 2-4 µs an observation, several per webhook. Greenlets of one process never
    interleave inside a plain ``+=``, so these need none."""

    def __init__(
        self, name: str, help_text: str, labelnames: tuple[str, ...] = (), *values: Iterable[str]
    ) -> None:
        self.name, self.help, self.labelnames = name, help_text, labelnames
        self.values: dict[tuple[str, ...], float] = dict.fromkeys(_combinations(values), 0.0)
        REGISTRY.register(self)

    def inc(self, amount: float = 1.0, labels: tuple[str, ...] = ()) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.help, labels=list(self.labelnames))
        for labels, total in self.values.items():
            family.add_metric(list(labels), total)
        yield family


class FastHistogram:
    """A histogram of the accept path, without a lock (see :class:`FastCounter`)."""

    def __init__(
        self,
        name: str,
        help_text: str,
        labelnames: tuple[str, ...],
        buckets: tuple[float, ...],
        *values: Iterable[str],
    ) -> None:
        self.name, self.help, self.labelnames, self.bounds = name, help_text, labelnames, buckets
        # Per label values: a count per bucket (the last one past every bound), and the sum.
        self.counts: dict[tuple[str, ...], list[int]] = {}
        self.sums: dict[tuple[str, ...], float] = {}
        for labels in _combinations(values):
            self._add(labels)
        REGISTRY.register(self)

    def _add(self, labels: tuple[str, ...]) -> list[int]:
        counts = self.counts[labels] = [0] * (len(self.bounds) + 1)
        self.sums[labels] = 0.0
        return counts

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        counts = self.counts.get(labels) or self._add(labels)
        counts[bisect_left(self.bounds, value)] += 1  # the first bucket whose bound is >= value
        self.sums[labels] += value

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.help, labels=list(self.labelnames))
        for labels, counts in self.counts.items():
            cumulative, buckets = 0, []
            for bound, count in zip((*map(str, self.bounds), "+Inf"), counts, strict=True):
                cumulative += count
                buckets.append((bound, float(cumulative)))
            family.add_metric(list(labels), buckets, self.sums[labels])
        yield family


def _combinations(values: tuple[Iterable[str], ...]) -> list[tuple[str, ...]]:
    combos: list[tuple[str, ...]] = [()]
    for options in values:
        combos = [(*combo, option) for combo in combos for option in options]
    return combos


WEBHOOKS = FastCounter(
    "interlink_webhooks",
    "Webhook requests answered, by provider and HTTP status.",
    ("provider", "status"),
    PROVIDERS,
    WEBHOOK_STATUSES,
)
WEBHOOK_ACK = FastHistogram(
    "interlink_webhook_ack_seconds",
    "Time from a webhook's arrival to its answer.",
    ("provider",),
    ACK_BUCKETS,
    PROVIDERS,
)
DELIVERY = _labelled(
    Histogram(
        "interlink_delivery_seconds",
        "Time from a message's acceptance to the other provider's 2xx.",
        ["direction"],
        buckets=DELIVERY_BUCKETS,
        registry=REGISTRY,
    ),
    DIRECTIONS,
)
PROVIDER_REQUEST = _labelled(
    Histogram(
        "interlink_provider_request_seconds",
        "Requests to a provider's API, by outcome (status class, or error: no answer).",
        ["provider", "outcome"],
        buckets=REQUEST_BUCKETS,
        registry=REGISTRY,
    ),
    PROVIDERS,
    OUTCOMES,
)
ITEMS_ACCEPTED = FastCounter("interlink_items_accepted", "Webhook items stored durably.")
ITEMS_DUPLICATE = FastCounter(
    "interlink_items_duplicate", "Webhook items recognised as redeliveries."
)
CLIENT_ERRORS = _labelled(
    Counter(
        "interlink_client_errors",
        "Webhook requests refused as malformed (400), by route and reason.",
        ["route", "reason"],
        registry=REGISTRY,
    ),
    ("whatsapp", "genesys"),
    ("malformed_json", "invalid_shape", "unexpected"),
)
AUTH_FAILURES = _labelled(
    Counter(
        "interlink_auth_failures",
        "Requests to /api/ and /control/ refused for their credentials, by reason.",
        ["reason"],
        registry=REGISTRY,
    ),
    ("missing", "invalid", "throttled"),
)
SIGNATURE_FAILURES = _labelled(
    Counter(
        "interlink_webhook_signature_failures",
        "Webhooks refused for a bad signature, by provider (meta or genesys).",
        ["provider"],
        registry=REGISTRY,
    ),
    ("meta", "genesys"),
)
WEBHOOK_UNAVAILABLE = Counter(
    "interlink_webhook_unavailable", "Webhooks refused: store down.", registry=REGISTRY
)
POISON = _labelled(
    Counter(
        "interlink_poison_entries",
        "Inbox entries dead-lettered because handling them raised an unexpected exception.",
        ["kind"],
        registry=REGISTRY,
    ),
    ("wa.message", "wa.status", "gc.message"),
)
GENESYS_TOKEN_FAILURES = Counter(
    "interlink_genesys_token_failures",
    "Token requests Genesys refused for a tenant's OAuth client (its credentials are wrong).",
    registry=REGISTRY,
)
REPEATED_AFTER_CRASH = Counter(
    "interlink_provider_calls_repeated_after_crash",
    "Provider calls made again because a crash hid whether the first one succeeded.",
    registry=REGISTRY,
)

_DELIVERY = {
    "wa.message": DELIVERY.labels("to_genesys"),
    "gc.message": DELIVERY.labels("to_whatsapp"),
}
_REQUEST = {(p, o): PROVIDER_REQUEST.labels(p, o) for p in PROVIDERS for o in OUTCOMES}


def webhook_answered(provider: str, status: int, seconds: float) -> None:
    """One webhook request answered with ``status`` after ``seconds``."""
    WEBHOOKS.inc(1.0, (provider, str(status)))  # a status nobody expected gets its own series
    WEBHOOK_ACK.observe((provider,), seconds)


def delivered(kind: str, entry_id: str | None, now: float | None = None) -> None:
    """An inbox entry's message reached the other provider: its time since acceptance, read from
    the stream entry id (``<ms>-<seq>``, given by Redis when the entry was added)."""
    child = _DELIVERY.get(kind)
    if child is None or not entry_id:
        return
    accepted_ms = entry_id.partition("-")[0]
    if accepted_ms.isdigit():
        current = time.time() if now is None else now
        child.observe(max(0.0, current - int(accepted_ms) / 1000))


def provider_request(provider: str, started: float, status: int | None) -> None:
    """A request to a provider started at ``started`` (``time.monotonic()``) got ``status``
    (None: no answer)."""
    outcome = "error" if status is None else f"{min(max(status // 100, 2), 5)}xx"
    child = _REQUEST.get((provider, outcome)) or _REQUEST[(provider, "error")]
    child.observe(time.monotonic() - started)


class ShardState:
    """The gauges read at scrape time from one shard's inbox, dead letters and supervisor."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        pending, oldest = self._inbox()
        yield _gauge(
            "interlink_inbox_pending",
            "Inbox entries not yet acknowledged, with those forwarded here or on their way out"
            " during a change of the shard count.",
            pending + self._handover(),
        )
        yield _gauge(
            "interlink_inbox_oldest_age_seconds",
            "Age of the oldest unacknowledged inbox entry (0 when none).",
            oldest,
        )
        states = self._tenant_states()
        yield _gauge(
            "interlink_dead_letters",
            "Dead letters held for this shard's known tenants.",
            self._dead_letters(list(states)),
        )
        tenants = GaugeMetricFamily(
            "interlink_tenants", "Tenants of this shard by state.", labels=["state"]
        )
        for state in TENANT_STATES:
            tenants.add_metric([state], sum(1 for s in states.values() if s == state))
        yield tenants
        fleet = self.services.fleet
        if fleet is not None:
            yield _gauge(
                "interlink_fleet_fenced",
                "1 while this shard does not read because the fleet's count is not its own.",
                1.0 if fleet.fenced else 0.0,
            )
            view = fleet.latest or fleet.view
            yield _gauge(
                "interlink_fleet_generation",
                "The fleet's recorded generation as this shard last saw it (0: not joined).",
                float(view.generation if view is not None else 0),
            )

    def _handover(self) -> float:
        """Entries in this shard's handover stream and outbox: every one there is unfinished
        (an acknowledged or sent entry is deleted)."""
        from interlink.store import keys

        shard_id = self.services.settings.shard_id
        try:
            pipe = self.services.redis.pipeline(transaction=False)
            pipe.xlen(keys.handover(shard_id))
            pipe.xlen(keys.outbox(shard_id))
            return float(sum(int(n) for n in pipe.execute()))
        except Exception as exc:
            log.debug("handover gauge unavailable", extra={"error": type(exc).__name__})
            return 0.0

    def _inbox(self) -> tuple[float, float]:
        """``XPENDING`` in its summary form: a count and the oldest id, without a scan."""
        from interlink.inbox.reader import GROUP
        from interlink.store import keys

        try:
            summary = self.services.redis.xpending(
                keys.inbox(self.services.settings.shard_id), GROUP
            )
        except Exception as exc:  # no group yet, or the store away: the scrape still answers
            log.debug("inbox gauges unavailable", extra={"error": type(exc).__name__})
            return 0.0, 0.0
        pending = float(summary.get("pending") or 0)
        oldest = summary.get("min")
        if not pending or not oldest:
            return pending, 0.0
        text = oldest.decode() if isinstance(oldest, bytes) else str(oldest)
        accepted_ms = text.partition("-")[0]
        age = time.time() - int(accepted_ms) / 1000 if accepted_ms.isdigit() else 0.0
        return pending, max(0.0, age)

    def _tenant_states(self) -> dict[str, str]:
        from interlink.actors.messages import Snapshot

        supervisor = self.services.supervisor
        if supervisor is None or not supervisor.is_alive():
            return {}
        try:
            snapshot = cast(dict[str, Any], supervisor.ask(Snapshot(), timeout=SCRAPE_TIMEOUT))
        except Exception as exc:  # busy or stopping: this scrape shows no tenants
            log.debug("tenant gauges unavailable", extra={"error": type(exc).__name__})
            return {}
        return {t["tenantId"]: str(t["state"]) for t in snapshot.get("tenants", [])}

    def _dead_letters(self, tenant_ids: list[str]) -> float:
        """XLEN of each known tenant's dead letters, in one round trip, for at most
        ``MAX_DEAD_LETTER_TENANTS`` tenants."""
        from interlink.store import keys

        if not tenant_ids:
            return 0.0
        try:
            pipe = self.services.redis.pipeline(transaction=False)
            for tenant_id in tenant_ids[:MAX_DEAD_LETTER_TENANTS]:
                pipe.xlen(keys.dead_letters(tenant_id))
            return float(sum(int(n) for n in pipe.execute()))
        except Exception as exc:
            log.debug("dead-letter gauge unavailable", extra={"error": type(exc).__name__})
            return 0.0


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


class _Exposition:
    """What one ``/metrics`` answer lists: the declared series, then the shard's state."""

    def __init__(self, *collectors: Callable[[], Iterable[Metric]]) -> None:
        self.collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collect in self.collectors:
            yield from collect()


def render(services: Services | None = None) -> bytes:
    """The text format of every series (with the shard's gauges when ``services`` is given)."""
    if services is None:
        return generate_latest(REGISTRY)
    sources = [services.metrics.collect, ShardState(services).collect]
    return generate_latest(_Exposition(*sources))


def value(name: str, **labels: str) -> float:
    """A sample's current value in :data:`REGISTRY` (0 when absent): for tests and tools."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


# What generate_latest writes (CONTENT_TYPE_LATEST names a newer format in recent releases).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
