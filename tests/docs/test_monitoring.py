"""The shipped alert rules and dashboard: they parse, every runbook link lands on a heading of
docs/operations.md, and every metric they query is one the shard declares (a renamed series
would otherwise leave a panel empty and an alert silent, with nothing failing)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "monitoring" / "alerts.yaml"
DASHBOARD = ROOT / "deploy" / "monitoring" / "dashboard.json"
OPERATIONS = ROOT / "docs" / "operations.md"

# INTERFACE.md "Observability": the series /metrics must list from the first scrape (tests of
# interlink/telemetry prove the shard does); named here as well so that the dashboard can be
# checked against the contract while a series' declaration moves between modules.
CONTRACT = {
    "interlink_webhooks_total",
    "interlink_webhook_ack_seconds",
    "interlink_delivery_seconds",
    "interlink_provider_request_seconds",
    "interlink_inbox_pending",
    "interlink_inbox_oldest_age_seconds",
    "interlink_dead_letters",
    "interlink_tenants",
}
# prometheus-client's process collector (Linux).
PROCESS = {
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
}
# Series Prometheus itself or the blackbox exporter produce.
SCRAPE = {"up", "probe_success"}
SERIES_SUFFIXES = ("_bucket", "_count", "_sum", "_created")
NAME = re.compile(r"\b(?:interlink|process)_[a-z0-9_]+\b|\bup\b(?=\s*\{)|\bprobe_success\b")


def _base(name: str) -> str:
    """A histogram's or counter's family name: prometheus-client may declare ``x`` for ``x_total``."""
    for suffix in SERIES_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name.removesuffix("_total")


def declared_metrics() -> set[str]:
    """Every ``interlink_*`` string literal in the package: how the code names a series."""
    found: set[str] = set()
    for path in (ROOT / "interlink").rglob("*.py"):
        found.update(re.findall(r"""["'](interlink_[a-z0-9_]+)["']""", path.read_text()))
    return found


def known_bases() -> set[str]:
    return {_base(name) for name in declared_metrics() | CONTRACT | PROCESS | SCRAPE}


def used_metrics(expr: str) -> set[str]:
    # Label values and legend text are quoted; metric names never are.
    bare = re.sub(r'"[^"]*"', '""', expr)
    return set(NAME.findall(bare))


def anchors(markdown: str) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for line in markdown.splitlines():
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if heading:
            text = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            found.add(text.replace(" ", "-"))
    found.update(re.findall(r'<a id="([^"]+)"', markdown))
    return found


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in doc["templating"]["list"] if "definition" in v]
    return exprs


def test_alert_rules_are_well_formed() -> None:
    rules = alert_rules()
    assert len(rules) >= 8
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
        assert rule["expr"].strip() and rule["labels"]["severity"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_runbook_url_lands_on_a_heading_of_operations_md() -> None:
    headings = anchors(OPERATIONS.read_text())
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page.endswith("docs/operations.md"), url
        assert anchor == rule["alert"].lower(), url
        assert anchor in headings, f"{rule['alert']}: no heading #{anchor} in docs/operations.md"


def test_alerts_query_only_declared_metrics() -> None:
    known = known_bases()
    for rule in alert_rules():
        used = used_metrics(rule["expr"])
        assert used, rule["alert"]
        unknown = {name for name in used if _base(name) not in known}
        assert not unknown, f"{rule['alert']} queries undeclared {sorted(unknown)}"


def test_dashboard_parses_and_queries_only_declared_metrics() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["__inputs"][0]["name"] == "DS_PROMETHEUS"
    for panel in doc["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
    known = known_bases()
    used: set[str] = set()
    for expr in dashboard_exprs():
        names = used_metrics(expr)
        assert names, expr
        used |= names
    unknown = {name for name in used if _base(name) not in known}
    assert not unknown, f"the dashboard queries undeclared {sorted(unknown)}"
    # Every contract series has a panel.
    assert {_base(n) for n in CONTRACT} <= {_base(n) for n in used}


def test_the_metric_check_can_fail() -> None:
    """A misspelt series is caught (the checks above would pass vacuously otherwise)."""
    known = known_bases()
    names = used_metrics('rate(interlink_webhook_total{status=~"5.."}[5m]) > 0')
    assert names == {"interlink_webhook_total"}
    assert _base("interlink_webhook_total") not in known
    assert used_metrics("histogram_quantile(0.9, rate(interlink_delivery_seconds_bucket[5m]))") == {
        "interlink_delivery_seconds_bucket"
    }
