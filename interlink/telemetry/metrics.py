"""A tiny Prometheus registry: counters and gauges with labels, rendered as text format 0.0.4.

Greenlets of one process share it; an increment is a dict update under the GIL, so no lock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

Labels = tuple[tuple[str, str], ...]


class Metric:
    def __init__(self, name: str, help_text: str, kind: str) -> None:
        self.name, self.help, self.kind = name, help_text, kind
        self.values: dict[Labels, float] = defaultdict(float)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        self.values[tuple(sorted(labels.items())) if labels else ()] += amount

    def set(self, value: float, **labels: str) -> None:
        self.values[tuple(sorted(labels.items()))] = value


class Registry:
    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}
        self._collectors: list[Callable[[], None]] = []

    def counter(self, name: str, help_text: str) -> Metric:
        return self._metrics.get(name) or self._add(Metric(name, help_text, "counter"))

    def gauge(self, name: str, help_text: str) -> Metric:
        return self._metrics.get(name) or self._add(Metric(name, help_text, "gauge"))

    def _add(self, metric: Metric) -> Metric:
        return self._metrics.setdefault(metric.name, metric)

    def on_collect(self, collector: Callable[[], None]) -> None:
        """``collector`` refreshes gauges just before each scrape."""
        self._collectors.append(collector)

    def render(self) -> str:
        for collect in self._collectors:
            collect()
        lines: list[str] = []
        for metric in self._metrics.values():
            lines.append(f"# HELP {metric.name} {metric.help}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            for labels, value in sorted(metric.values.items()):
                text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                number = _number(value)
                lines.append(
                    f"{metric.name}{{{text}}} {number}" if text else f"{metric.name} {number}"
                )
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    """Exact: counts as integers, other values as the shortest repr (``:g`` rounds 1234567)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


REGISTRY = Registry()
