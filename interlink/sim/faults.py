"""Fault injection: make a route misbehave for its next N requests, then behave again.

A rule names a route (see :data:`ROUTES`, or ``"*"`` for every route) and optionally a tenant
(Genesys org id or Meta phone number id). When a request matches, one use of the rule is
consumed (``count=None`` never runs out) and the request:

- waits ``latency`` seconds first (then, with nothing else set, is served normally);
- with ``hang`` set, waits that long and then drops the connection without an answer
  (a client's read timeout fires first when it is shorter);
- with ``drop`` set, gets its connection closed without an answer;
- otherwise gets ``status`` (default 500 for Genesys routes) with the service's error body:
  a Graph error (``meta_error`` picks the code; else one fitting the status, e.g. 429 → 130429)
  or a Genesys ``ErrorBody`` (``genesys_code`` overrides the code); ``retry_after`` adds the
  ``Retry-After`` header; ``body`` replaces the body entirely.

Rules are checked in the order they were added; the first match wins.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

ROUTES = (
    "genesys.token",
    "genesys.message",
    "genesys.receipt",
    "genesys.event",
    "genesys.structured_response",
    "genesys.download",
    "meta.messages",
    "meta.media.get",
    "meta.media.download",
    "meta.media.upload",
)

ANY_ROUTE = "*"


class FaultSpecError(ValueError):
    """A fault description that cannot be applied; ``str()`` says why."""


@dataclass(slots=True)
class FaultRule:
    route: str
    count: int | None = 1
    tenant: str | None = None
    status: int | None = None
    retry_after: int | None = None
    latency: float = 0.0
    hang: float | None = None
    drop: bool = False
    meta_error: int | None = None
    genesys_code: str | None = None
    body: Any = None
    id: int = 0
    fired: int = field(default=0)

    def validate(self) -> None:
        if self.route != ANY_ROUTE and self.route not in ROUTES:
            raise FaultSpecError(f"unknown route {self.route!r}; one of {', '.join(ROUTES)} or '*'")
        if self.count is not None and self.count < 1:
            raise FaultSpecError("count must be at least 1 (or null for every request)")
        if self.status is not None and not 100 <= self.status <= 599:
            raise FaultSpecError("status must be an HTTP status")
        if self.latency < 0 or (self.hang is not None and self.hang < 0):
            raise FaultSpecError("latency and hang are seconds >= 0")
        if self.meta_error is not None and not self.route.startswith(("meta.", ANY_ROUTE)):
            raise FaultSpecError("meta_error applies to meta.* routes only")

    @property
    def responds(self) -> bool:
        """Whether the rule ends the request itself (else it only adds latency)."""
        return bool(
            self.drop
            or self.hang is not None
            or self.status is not None
            or self.meta_error is not None
            or self.genesys_code is not None
            or self.body is not None
        )

    def describe(self) -> str:
        if self.drop:
            return "drop"
        if self.hang is not None:
            return f"hang {self.hang}s"
        if self.meta_error is not None:
            return f"meta {self.meta_error}"
        if self.status is not None:
            return f"status {self.status}"
        return f"latency {self.latency}s"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


FIELDS = {
    "route",
    "count",
    "tenant",
    "status",
    "retry_after",
    "latency",
    "hang",
    "drop",
    "meta_error",
    "genesys_code",
    "body",
}

_CAMEL = {"retryAfter": "retry_after", "metaError": "meta_error", "genesysCode": "genesys_code"}


def rule_from_json(data: dict[str, Any]) -> FaultRule:
    """A rule from the body of ``POST /_sim/faults`` (snake_case or camelCase keys)."""
    normalized = {_CAMEL.get(key, key): value for key, value in data.items()}
    unknown = set(normalized) - FIELDS
    if unknown:
        raise FaultSpecError(f"unknown fields: {', '.join(sorted(unknown))}")
    if "route" not in normalized:
        raise FaultSpecError("route is required")
    try:
        rule = FaultRule(**normalized)
        rule.latency = float(rule.latency or 0)
        rule.hang = None if rule.hang is None else float(rule.hang)
    except (TypeError, ValueError) as exc:
        raise FaultSpecError(str(exc)) from None
    rule.validate()
    return rule


class FaultTable:
    """The armed rules. ``take`` is O(rules armed for the route), normally zero or one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    def add(self, rule: FaultRule) -> FaultRule:
        rule.validate()
        with self._lock:
            rule.id = next(self._ids)
            self._rules.append(rule)
        return rule

    def inject(self, route: str, **options: Any) -> FaultRule:
        """Python shorthand: ``faults.inject("meta.messages", count=2, meta_error=131056)``."""
        return self.add(FaultRule(route=route, **options))

    def take(self, route: str, tenant: str | None) -> FaultRule | None:
        """Consume one use of the first rule matching the request, if any."""
        if not self._rules:  # the common case, without the lock
            return None
        with self._lock:
            for rule in self._rules:
                if rule.route not in (route, ANY_ROUTE):
                    continue
                if rule.tenant is not None and rule.tenant != tenant:
                    continue
                rule.fired += 1
                if rule.count is not None:
                    rule.count -= 1
                    if rule.count == 0:
                        self._rules.remove(rule)
                return rule
        return None

    def active(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            for rule in self._rules:
                if rule.id == rule_id:
                    self._rules.remove(rule)
                    return True
        return False

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
