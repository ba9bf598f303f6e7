"""deploy/'s fleet rules and dashboard: promtool checks and unit tests pass, and every query asks only
for series the exporter emits (with the `host` label of neuron-fleet's discovery file) or the fleet
rules record, with labels they have."""

from __future__ import annotations

import json
import re

from test_deploy import PROMETHEUS_DIR, ROOT, Query, dashboard_panels, family_labels, promtool, rule_expressions, \
    run_promtool  # noqa: F401 (promtool is a fixture)

FLEET_RULES = PROMETHEUS_DIR / "neuron-fleet.yml"
FLEET_DASHBOARD = ROOT / "deploy" / "grafana" / "neuron-fleet-dashboard.json"
DISCOVERY_LABELS = {"host", "instance_type", "availability_zone", "group", "role"}  # neuron-fleet's file_sd labels
HOST = {"host", "instance_id", "instance_type"}
# What each recording rule keeps, read off its `by (...)` by hand.
RECORDED = {
    "instance_type:neuroncore_busy:count": {"instance_type"},
    "instance_type:neuroncore:count": {"instance_type"},
    "instance_type:neuroncore_utilization:avg": {"instance_type"},
    "host:neurond_execution_errors:rate5m": HOST | {"availability_zone"},
    "host:neurond_executions:rate5m": HOST | {"availability_zone"},
    "host:neuron_device_memory_used_bytes:sum": HOST,
    "host:neuron_device_memory_size_bytes:sum": HOST,
    "instance_type:neuron_device_memory_used:ratio": {"instance_type"},
    "fleet:hosts_unreachable:count": set(),
    "fleet:hosts:count": set(),
}


def fleet_labels() -> dict[str, set[str]]:
    labels = {name: names | DISCOVERY_LABELS for name, names in family_labels().items()}
    labels["up"] = {"job", "instance"} | DISCOVERY_LABELS
    labels["fleet:neuroncore_utilization:topk10"] = labels["neuroncore_utilization_ratio"]
    return labels | RECORDED


def fleet_problems(expression: str) -> list[str]:
    labels, query = fleet_labels(), Query(expression)
    found = [f"unknown metric {name}" for name in sorted(query.metrics - labels.keys())]
    for metric, used in query.matchers.items():
        found += [f"{metric} has no label {label}" for label in sorted(used - labels.get(metric, used))]
    available = set().union(*(labels.get(metric, set()) for metric in query.metrics)) if query.metrics else set()
    found += [f"no metric of the query has label {label}" for label in sorted(query.grouping - available)]
    return found


def record_expressions() -> dict[str, str]:
    text, records = FLEET_RULES.read_text(), {}
    for match in re.finditer(r"- record: (\S+)\n\s+expr: (\|\n(?:\s{10}.*\n)+|.*\n)", text):
        records[match.group(1)] = " ".join(line.strip() for line in match.group(2).lstrip("|").splitlines())
    return records


def fleet_dashboard_queries() -> list[str]:
    dashboard = json.loads(FLEET_DASHBOARD.read_text())
    queries = [t["expr"] for panel in dashboard_panels(dashboard["panels"]) for t in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            selector, label = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", variable["definition"]).groups()
            queries.append(f"sum by ({label}) ({selector})")
    return queries


def test_every_recording_rule_is_known_and_queries_only_what_exists():
    records = record_expressions()

    assert set(records) == set(RECORDED) | {"fleet:neuroncore_utilization:topk10"}
    assert {name: fleet_problems(expr) for name, expr in records.items() if fleet_problems(expr)} == {}


def test_fleet_alerts_query_only_what_exists():
    expressions = rule_expressions(FLEET_RULES)
    expressions.pop(None, None)  # recording rules' expressions, checked above

    assert set(expressions) == {"NeuronFleetHostErrorsOutlier", "NeuronFleetHostsUnreachable",
                                "NeuronFleetCapacityHeadroomLow"}
    assert {alert: fleet_problems(expr) for alert, expr in expressions.items() if fleet_problems(expr)} == {}


def test_the_fleet_dashboard_queries_only_what_exists():
    queries = fleet_dashboard_queries()

    assert len(queries) >= 15
    assert {query: fleet_problems(query) for query in queries if fleet_problems(query)} == {}


def test_the_fleet_dashboard_has_host_and_type_variables_a_heat_map_and_top_k_tables():
    dashboard = json.loads(FLEET_DASHBOARD.read_text())
    panels = dashboard_panels(dashboard["panels"])

    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "instance_type", "host"}
    assert any(p["type"] == "status-history" and "heat map" in p["title"] for p in panels)
    assert sum(p["type"] == "table" and p["targets"][0]["expr"].startswith("topk(") for p in panels) == 3
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["description"], panel["title"]


def test_promtool_checks_the_fleet_rules(promtool):
    result = run_promtool(promtool, "check", "rules", "neuron-fleet.yml")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 14 rules found" in result.stdout


def test_promtool_unit_tests_of_the_fleet_rules_pass(promtool):
    result = run_promtool(promtool, "test", "rules", "neuron-fleet.test.yml")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
