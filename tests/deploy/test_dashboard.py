"""The Grafana dashboard and the alert rules ask for metrics a worker really exports.

A renamed metric otherwise leaves an empty panel or an alert that can never fire, and no validator
notices: promtool and Grafana accept any name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from agents.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "logad.json"
RULES = DEPLOY / "prometheus" / "rules" / "logad.yml"
# Counters are served with _total, histograms with _bucket/_sum/_count, every metric with its name.
_SUFFIXES = ("", "_total", "_bucket", "_sum", "_count", "_created")
_METRIC = re.compile(r"\b((?:logad|faust)_[a-z0-9_]+)")


def served_names(registry: CollectorRegistry) -> set[str]:
    return {family.name + suffix for family in registry.collect() for suffix in _SUFFIXES}


def worker_metric_names() -> set[str]:
    """What /metrics serves: the worker's metrics and Faust's sensor, both on one registry."""
    from faust.sensors.prometheus import FaustMetrics

    metrics = Metrics()
    FaustMetrics.create(metrics.registry, "faust")
    return served_names(metrics.registry)


def unknown_metrics(expressions: Iterable[str], known: set[str]) -> set[str]:
    return {name for expr in expressions for name in _METRIC.findall(expr)} - known


def dashboard_expressions(dashboard: dict) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def test_dashboard_covers_the_operations_panels_with_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = dashboard_expressions(dashboard)
    assert unknown_metrics(exprs, worker_metric_names()) == set()
    used = " ".join(exprs)
    for metric in (
        "logad_lines_total",
        "logad_events_total",
        "logad_alerts_total",
        "logad_dead_letters_total",
        "logad_consumer_lag",
        "logad_records_behind",
        "logad_inference_latency_seconds_bucket",
        "logad_inference_batch_size",
        "logad_degraded",
        "logad_sessions_open",
    ):
        assert metric in used, f"no panel shows {metric}"
    assert all(p["datasource"]["uid"] == "prometheus" for p in dashboard["panels"])  # provisioned uid
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_a_renamed_metric_in_the_dashboard_is_caught() -> None:
    dashboard = json.loads(DASHBOARD.read_text().replace("logad_lines_total", "logad_lines_parsed_total"))
    assert unknown_metrics(dashboard_expressions(dashboard), worker_metric_names()) == {
        "logad_lines_parsed_total"
    }


def test_alert_rules_use_exported_metrics() -> None:
    exprs = rule_expressions()
    assert unknown_metrics(exprs, worker_metric_names()) == set()
    alerts = {
        rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    }
    assert alerts == {"LogadWorkerDown", "LogadConsumerLagGrowing", "LogadDegraded", "LogadDeadLetterRate"}
