"""The Prometheus alert rules and the Grafana dashboard in docker/ name only metrics /metrics has.

With ``promtool`` installed the rules are also loaded and their unit tests run
(docker/prometheus/alerts.test.yml); without it they are parsed here and every expression is
checked against the metric definitions in ``etl.console.metrics``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from etl.console.metrics import METRICS, sample_names

PROMETHEUS = Path(__file__).resolve().parents[1] / "docker" / "prometheus"
DASHBOARD = Path(__file__).resolve().parents[1] / "docker" / "grafana" / "dashboards"
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan"}  # fmt: skip
WANTED_ALERTS = {
    "VtexSyneriseNoSuccessfulIncrementalSync",  # no successful incremental sync in N minutes
    "VtexSyneriseCursorLagHigh",
    "VtexSyneriseRejectRateHigh",
    "VtexSyneriseRunNoProgress",
    "VtexSyneriseNoWorkerConsuming",
    "VtexSyneriseQueueBacklogGrowing",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels and keywords left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][\w:]*", text):
        if text[match.end():].lstrip().startswith("(") or match[0] in KEYWORDS:
            continue  # a function call or an operator
        names.add(match[0])
    return names


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_the_extractor_finds_metrics_and_skips_the_rest():
    expr = ('sum by (scope) (increase(vtex_synerise_records_total{outcome="rejected"}[1h])) '
            '/ time() > 0.1 and on(queue) flower_x{a="b(c)"} > bool 1e3')  # fmt: skip
    assert metric_names(expr) == {"vtex_synerise_records_total", "flower_x"}


def test_the_metric_definitions_are_well_formed():
    for name, definition in METRICS.items():
        assert name.startswith("vtex_synerise_")
        assert definition.kind in ("counter", "gauge")
        assert name.endswith("_total") == (definition.kind == "counter"), name
        assert definition.help.endswith(".")


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_each_rule_names_known_metrics_and_says_what_to_do(rule):
    names = metric_names(rule["expr"])
    assert names, "an alert over no metric"
    assert names <= sample_names(), f"unknown metrics: {names - sample_names()}"
    assert rule["labels"]["severity"] in ("critical", "warning")
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    assert re.fullmatch(r"\d+[smh]", rule["for"])


def test_the_issue_s_alerts_exist():
    assert {rule["alert"] for rule in rules()} >= WANTED_ALERTS


def test_the_dashboard_shows_every_metric_and_only_known_ones():
    [path] = DASHBOARD.glob("*.json")
    dashboard = json.loads(path.read_text())
    shown: set[str] = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "prometheus"
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names and names <= sample_names(), (panel["title"], names)
            shown |= names
    assert shown == sample_names(), f"not on the dashboard: {sample_names() - shown}"
    query = dashboard["templating"]["list"][0]["definition"]
    assert metric_names(query.replace("label_values(", "").split(",")[0]) <= sample_names()


promtool = shutil.which("promtool")


@pytest.mark.skipif(promtool is None, reason="promtool not installed (the rules are parsed above)")
def test_promtool_loads_the_rules_and_passes_their_unit_tests(tmp_path):
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        result = subprocess.run([promtool, *args], cwd=PROMETHEUS, capture_output=True,
                                text=True, timeout=120)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
    config = (PROMETHEUS / "prometheus.yml").read_text()
    local = tmp_path / "prometheus.yml"
    local.write_text(config.replace("/etc/prometheus/alerts.yml", str(PROMETHEUS / "alerts.yml")))
    result = subprocess.run([promtool, "check", "config", str(local)], capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
