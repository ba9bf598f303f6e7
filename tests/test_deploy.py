"""deploy/: the alert rules and scrape config pass promtool, and every query (ours, the alert rules',
AWS's published dashboard's) asks only for series the exporter emits, with labels they have."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from real_components import missing, real_program

from neurontools.monitor.prometheus import NEURON_FAMILIES, SELF_FAMILIES

ROOT = Path(__file__).parent.parent
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "neuron-dashboard.json"
INSTANCE_LABELS = {"instance_name", "instance_id", "instance_type", "availability_zone", "region", "subnet_id"}
TARGET_LABELS = {"job", "instance"}  # added by Prometheus to every scraped series

# The PromQL of AWS's own Grafana dashboard for neuron-monitor (aws-neuron-sdk,
# src/examples/neuron-monitor/neuron-monitor-grafana.json; neuron-tools.md §4, inferentia2.md §4.4).
AWS_DASHBOARD_QUERIES = [
    "instance_info",
    "count(instance_info)\n",
    "sum (system_vcpu_count)",
    "avg(sum by (instance_id) (system_vcpu_usage_ratio))",
    "avg(system_memory_used_bytes / system_memory_total_bytes)",
    "count(neuroncore_utilization_ratio > 0)",
    "avg(neuroncore_utilization_ratio)",
    'sum(rate(execution_status_total{status_type="completed"}[1m]))',
    'sum(rate(execution_status_total{status_type!="completed"}[1m]))',
    "avg by (percentile) (execution_latency_seconds)",
    "avg by (neuroncore) (neuroncore_utilization_ratio)",
    "avg by (usage_type) (neuron_runtime_vcpu_usage_ratio)",
    "avg by (memory_location) (sum by (instance_id, memory_location) (neuron_runtime_memory_used_bytes))",
    "avg by (usage_type) (system_vcpu_usage_ratio)",
    "avg(system_memory_used_bytes)",
]


def family_labels() -> dict[str, set[str]]:
    """Exposed sample name -> the labels its series carry once scraped."""
    labels: dict[str, set[str]] = {}
    for family in NEURON_FAMILIES + SELF_FAMILIES:
        names = set(family.labels) | TARGET_LABELS | (INSTANCE_LABELS if family.instance_labels else set())
        if family.name == "instance_info":
            names |= INSTANCE_LABELS
        labels[family.name] = names
        if family.kind == "counter":
            labels[family.name.removesuffix("_total") + "_created"] = names
    return labels


# --- a small PromQL reader ---------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<variable>\$\{\w+\}|\$\w+)
  | (?P<number>\d+(?:\.\d+)?(?:e[+-]?\d+)?(?:ms|[smhdwy])?)
  | (?P<name>[A-Za-z_:][\w:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[{}()\[\],=<>+\-*/^%])
  | (?P<space>\s+)
""", re.VERBOSE)
_CLAUSES = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = _CLAUSES | {"bool", "and", "or", "unless", "offset", "inf", "nan", "atan2"}


class Query:
    """The metric names, matcher labels (per metric) and grouping labels a PromQL expression uses."""

    def __init__(self, expression: str) -> None:
        self.metrics: set[str] = set()
        self.name_patterns: set[str] = set()
        self.matchers: dict[str, set[str]] = {}
        self.grouping: set[str] = set()
        self._tokens = [(kind, text) for kind, text in _tokenize(expression) if kind != "space"]
        self._read()

    def _read(self) -> None:
        tokens, index = self._tokens, 0
        while index < len(tokens):
            kind, text = tokens[index]
            after = tokens[index + 1][1] if index + 1 < len(tokens) else ""
            if kind == "op" and text == "[":
                index = _closing(tokens, index, "[", "]")  # ranges, durations, subqueries
            elif kind == "name" and text in _CLAUSES and after == "(":
                end = _closing(tokens, index + 1, "(", ")")
                self.grouping |= {word for word_kind, word in tokens[index + 2:end] if word_kind == "name"}
                index = end
            elif kind == "name" and (after in ("(", "by", "without") or text in _KEYWORDS):
                pass  # a function, an aggregation (`sum by (...) (...)` too), an operator word
            elif kind == "name":
                self.metrics.add(text)
                self.matchers.setdefault(text, set())
                if after == "{":
                    index = self._read_matchers(index + 1, text)
            elif kind == "op" and text == "{":
                index = self._read_matchers(index, None)
            index += 1

    def _read_matchers(self, start: int, metric: str | None) -> int:
        end = _closing(self._tokens, start, "{", "}")
        inside = self._tokens[start + 1:end]
        for position, (kind, text) in enumerate(inside):
            if kind == "name" and position + 2 < len(inside) and inside[position + 1][0] == "op":
                if text == "__name__":
                    self.name_patterns.add(inside[position + 2][1][1:-1])
                elif metric is not None:
                    self.matchers[metric].add(text)
        return end


def _tokenize(expression: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        assert match, f"cannot read PromQL at {expression[position:]!r}"
        tokens.append((match.lastgroup, match.group()))
        position = match.end()
    return tokens


def _closing(tokens: list[tuple[str, str]], start: int, opening: str, closing: str) -> int:
    depth = 0
    for index in range(start, len(tokens)):
        if tokens[index][1] == opening:
            depth += 1
        elif tokens[index][1] == closing:
            depth -= 1
            if depth == 0:
                return index
    raise AssertionError(f"unbalanced {opening}{closing}")


def problems(expression: str) -> list[str]:
    """What in a query the exporter cannot answer: unknown metric names, labels its series lack."""
    labels = family_labels()
    query = Query(expression)
    found = [f"unknown metric {name}" for name in sorted(query.metrics - labels.keys())]
    for pattern in query.name_patterns:
        if not any(re.fullmatch(pattern, name) for name in labels):
            found.append(f"no metric matches __name__ {pattern!r}")
    for metric, used in query.matchers.items():
        found += [f"{metric} has no label {label}" for label in sorted(used - labels.get(metric, used))]
    available = set().union(*(labels.get(metric, set()) for metric in query.metrics)) if query.metrics else set()
    found += [f"no metric of the query has label {label}" for label in sorted(query.grouping - available)]
    return found


def test_the_promql_reader_finds_names_matchers_and_grouping_labels():
    query = Query('sum by (runtime_tag) (rate(execution_status_total{status_type!="completed",instance_id=~"$i"}'
                  '[$__rate_interval])) / on (instance_id) group_left (neuron_device_index) neuroncore_device_info '
                  'or vector(0) > bool 5e3 offset 5m')

    assert query.metrics == {"execution_status_total", "neuroncore_device_info"}
    assert query.matchers["execution_status_total"] == {"status_type", "instance_id"}
    assert query.grouping == {"runtime_tag", "instance_id", "neuron_device_index"}


def test_a_query_the_exporter_cannot_answer_is_reported():
    assert problems('sum by (neuroncore) (neuroncore_utilisation_ratio{runtime="x"})') == [
        "unknown metric neuroncore_utilisation_ratio",
        "no metric of the query has label neuroncore",
    ]
    assert problems('avg by (percentile) (execution_latency_seconds{status_type="completed"})') == [
        "execution_latency_seconds has no label status_type"]
    assert problems("neuron_device_memory_size_bytes") == []


# --- Grafana --------------------------------------------------------------------------------


def dashboard_panels(panels: list[dict]) -> list[dict]:
    out = []
    for panel in panels:
        out.append(panel)
        out += dashboard_panels(panel.get("panels", []))
    return out


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard_panels(dashboard["panels"]) for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            selector, label = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", variable["definition"]).groups()
            queries.append(f"sum by ({label}) ({selector})")
    return queries


def test_our_dashboard_queries_only_what_the_exporter_emits():
    queries = dashboard_queries()

    assert len(queries) > 25
    assert {query: problems(query) for query in queries if problems(query)} == {}


def test_our_dashboard_covers_what_the_issue_asks_for():
    used = set().union(*(Query(query).metrics for query in dashboard_queries()))

    assert {
        "neuroncore_utilization_ratio", "neuroncore_device_info",  # per core and per device
        "neuroncore_memory_usage_tensors", "neuron_device_memory_size_bytes",  # HBM by category
        "execution_status_total", "execution_errors_total", "execution_latency_seconds",
        "system_vcpu_usage_ratio", "neuron_runtime_vcpu_usage_ratio", "system_memory_used_bytes",
        "hardware_ecc_events_total", "neuron_monitor_up",
    } <= used


def test_our_dashboard_is_well_formed():
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard_panels(dashboard["panels"])

    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["description"], panel["title"]
            ref_ids = [target["refId"] for target in panel["targets"]]
            assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_aws_dashboard_queries_only_what_the_exporter_emits():
    assert {query: problems(query) for query in AWS_DASHBOARD_QUERIES if problems(query)} == {}


# --- Prometheus -----------------------------------------------------------------------------


def rule_expressions(path: Path) -> dict[str, str]:
    """alert name -> expr, from the rule file's two shapes: `expr: ...` and `expr: |` blocks."""
    expressions, alert, lines = {}, None, path.read_text().splitlines()
    for number, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("- alert:"):
            alert = stripped.split(":", 1)[1].strip()
        elif stripped.startswith("expr:"):
            value = stripped.split(":", 1)[1].strip()
            if value == "|":
                indent = len(line) - len(line.lstrip())
                block = []
                for following in lines[number + 1:]:
                    if following.strip() and len(following) - len(following.lstrip()) <= indent:
                        break
                    block.append(following.strip())
                value = " ".join(block)
            expressions[alert] = value
    return expressions


def test_alert_rules_query_only_what_the_exporter_emits():
    expressions = rule_expressions(PROMETHEUS_DIR / "neuron-alerts.yml")

    assert set(expressions) == {
        "NeuronMonitorExporterDown", "NeuronMonitorExporterAbsent", "NeuronMonitorReportsStale",
        "NeuronCoreIdleWithModelLoaded", "NeuronExecutionErrors", "NeuronUncorrectedEccEvents",
        "NeuronDeviceMemoryHigh", "NeuronExecutionTimeouts", "NeuronExecutionLatencyRegression", "NeuronDeviceReset",
        "NeuronDeviceMemoryLeak",
    }
    # `up` is Prometheus's own series for every target.
    found = {alert: [problem for problem in problems(expression) if problem != "unknown metric up"]
             for alert, expression in expressions.items()}
    assert {alert: issues for alert, issues in found.items() if issues} == {}


@pytest.fixture(scope="module")
def promtool() -> str:
    return real_program("promtool", "prometheus")


def run_promtool(promtool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=120)


def test_promtool_checks_the_alert_rules(promtool):
    result = run_promtool(promtool, "check", "rules", "neuron-alerts.yml")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 11 rules found" in result.stdout


def test_promtool_unit_tests_of_the_alert_rules_pass(promtool):
    result = run_promtool(promtool, "test", "rules", "neuron-alerts.test.yml")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_checks_the_scrape_config(promtool):
    result = run_promtool(promtool, "check", "config", "prometheus.yml")

    assert result.returncode == 0, result.stdout + result.stderr


def test_install_script_leaves_prometheus_installed():
    result = subprocess.run(["bash", str(ROOT / "scripts" / "install-system-deps.sh")],
                            capture_output=True, text=True, timeout=600)

    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    if "not root, skipping" in output:  # it could not install: nothing here is proven
        missing(f"scripts/install-system-deps.sh could not install as non-root: {output.strip()}")
    for command in ("prometheus", "promtool", "prometheus-node-exporter", "tmux", "openssl"):
        assert shutil.which(command), f"{command} is missing after scripts/install-system-deps.sh: {output}"
