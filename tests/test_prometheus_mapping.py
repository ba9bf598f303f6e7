"""PrometheusMapping: what a scrape shows after a given sequence of reports."""

from __future__ import annotations

import copy
import json
import logging
import math
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from neurontools.monitor.prometheus import EXPOSED_METRIC_NAMES, PrometheusMapping, metrics_registry
from neurontools.monitor.report import Report

CAPTURE = json.loads((Path(__file__).parent / "data" / "captures" / "inf1-xlarge-one-app-2023.json").read_text())
INSTANCE = {
    "availability_zone": "us-east-2a", "instance_id": "i-0823d657f57057590", "instance_name": "",
    "instance_type": "inf1.xlarge", "region": "us-east-2", "subnet_id": "subnet-dd4589b6",
}


def report_data(*tags: str) -> dict:
    """The inf1 capture with one copy of its application per tag."""
    data = copy.deepcopy(CAPTURE)
    app = data["neuron_runtime_data"][0]
    data["neuron_runtime_data"] = [dict(copy.deepcopy(app), neuron_runtime_tag=tag) for tag in tags]
    return data


def app(data: dict, index: int = 0) -> dict:
    return data["neuron_runtime_data"][index]["report"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Scraper:
    """A mapping in a lean registry, and a way to read one sample of its latest scrape."""

    def __init__(self, **options) -> None:
        self.clock = Clock()
        self.mapping = PrometheusMapping(clock=self.clock, **options)
        self.registry = metrics_registry(self.mapping, client_metrics=False)

    def feed(self, *reports: dict) -> Scraper:
        for data in reports:
            self.mapping.update(Report.model_validate(data))
        return self

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def runtime_value(self, name: str, tag: str, **labels: str) -> float | None:
        return self.value(name, **INSTANCE, runtime_tag=tag, **labels)

    def names(self) -> set[str]:
        return {family.name for family in text_string_to_metric_families(generate_latest(self.registry).decode())}

    def runtime_tags(self) -> set[str]:
        text = generate_latest(self.registry).decode()
        return {sample.labels["runtime_tag"] for family in text_string_to_metric_families(text)
                for sample in family.samples if sample.labels.get("runtime_tag")}


def with_counts(data: dict, index: int = 0, **counts: int) -> dict:
    summary = app(data, index)["execution_stats"]["execution_summary"]
    summary.update(counts)
    return data


def test_counters_add_up_every_reports_period_counts():
    scraper = Scraper().feed(
        with_counts(report_data("a"), completed=14, timed_out=1),
        with_counts(report_data("a"), completed=20, timed_out=0),
        with_counts(report_data("a"), completed=6, timed_out=2),
    )

    assert scraper.runtime_value("execution_status_total", "a", status_type="completed") == 40
    assert scraper.runtime_value("execution_status_total", "a", status_type="timed_out") == 3
    assert scraper.runtime_value("execution_errors_total", "a", error_type="generic") == 0


def test_a_report_counts_once_however_often_it_is_scraped():
    scraper = Scraper().feed(with_counts(report_data("a"), completed=14))

    for _ in range(3):
        generate_latest(scraper.registry)

    assert scraper.runtime_value("execution_status_total", "a", status_type="completed") == 14


def test_counter_created_time_is_when_the_series_first_appeared():
    scraper = Scraper()
    scraper.mapping._wall_clock = lambda: 1700000000.0
    scraper.feed(report_data("a"))
    scraper.mapping._wall_clock = lambda: 1700000099.0
    scraper.feed(report_data("a"))

    assert scraper.runtime_value("execution_status_created", "a", status_type="completed") == 1700000000.0


def test_series_of_a_runtime_that_is_gone_disappear_at_once():
    scraper = Scraper().feed(report_data("a", "b"))
    assert scraper.runtime_tags() == {"a", "b"}

    scraper.feed(report_data("b"))

    assert scraper.runtime_tags() == {"b"}
    assert scraper.runtime_value("execution_status_total", "a", status_type="completed") is None
    assert scraper.runtime_value("neuroncore_utilization_ratio", "a", neuroncore="0") is None


def test_a_runtime_that_comes_back_starts_its_counters_again():
    scraper = Scraper().feed(with_counts(report_data("a"), completed=10), report_data(),
                             with_counts(report_data("a"), completed=3))

    assert scraper.runtime_value("execution_status_total", "a", status_type="completed") == 3


def test_no_runtime_leaves_only_system_and_identity_series():
    scraper = Scraper().feed(report_data("a"), report_data())

    assert not {name for name in scraper.names()
                if name.startswith(("execution_", "neuron_runtime_", "neuroncore_utilization", "neuroncore_memory"))}
    assert scraper.value("system_vcpu_count", **INSTANCE) == 4
    assert scraper.value("instance_info", **INSTANCE) == 1


def test_gauges_are_the_latest_reports_ratios():
    data = report_data("a")
    app(data)["neuroncore_counters"]["neuroncores_in_use"]["0"]["neuroncore_utilization"] = 50.0
    app(data)["neuron_runtime_vcpu_usage"]["vcpu_usage"] = {"user": 12.5, "system": 2.5}
    scraper = Scraper().feed(report_data("a"), data)

    assert scraper.runtime_value("neuroncore_utilization_ratio", "a", neuroncore="0") == 0.5
    assert scraper.runtime_value("neuron_runtime_vcpu_usage_ratio", "a", usage_type="user") == 0.125
    assert scraper.runtime_value("neuron_runtime_memory_used_bytes", "a", memory_location="host") == 1119887360
    assert scraper.runtime_value("neuroncore_memory_usage_constants", "a", memory_location="None",
                                 neuroncore="0") == 61766864


def test_system_vcpu_usage_folds_states_and_caps_at_one():
    data = report_data()
    data["system_data"]["vcpu_usage"]["average_usage"] = {
        "user": 60.0, "nice": 50.0, "system": 10.0, "idle": 0.0, "io_wait": 5.0, "irq": 1.0, "soft_irq": 4.0}
    scraper = Scraper().feed(data)

    assert scraper.value("system_vcpu_usage_ratio", **INSTANCE, usage_type="user") == 1.0
    assert scraper.value("system_vcpu_usage_ratio", **INSTANCE, usage_type="system") == pytest.approx(0.2)


def test_latency_of_a_period_without_executions_leaves_no_series():
    data = report_data("a")
    app(data)["execution_stats"]["latency_stats"] = {"total_latency": None, "device_latency": None}
    scraper = Scraper().feed(report_data("a"), data)

    assert "execution_latency_seconds" not in scraper.names()


def test_a_group_with_an_error_drops_its_gauges_keeps_its_counters_and_is_logged_once(caplog):
    failing = with_counts(report_data("a"), completed=5)
    app(failing)["execution_stats"]["error"] = "runtime busy"
    app(failing)["neuroncore_counters"]["error"] = "open /proc/784315/stat: no such file or directory"
    scraper = Scraper().feed(with_counts(report_data("a"), completed=14))

    with caplog.at_level(logging.WARNING):
        scraper.feed(failing, failing)

    assert scraper.runtime_value("execution_status_total", "a", status_type="completed") == 14
    assert scraper.runtime_value("neuroncore_utilization_ratio", "a", neuroncore="0") is None
    assert scraper.runtime_value("neuron_runtime_memory_used_bytes", "a", memory_location="host") is not None
    assert scraper.value("neuron_monitor_group_success", group="neuroncore_counters", runtime_tag="a") == 0
    assert scraper.value("neuron_monitor_group_success", group="memory_used", runtime_tag="a") == 1
    assert [record.getMessage() for record in caplog.records] == [
        "Error getting execution_stats for runtime tag a: runtime busy",
        "Error getting neuroncore_counters for runtime tag a: open /proc/784315/stat: no such file or directory",
    ]


def test_a_runtime_with_an_error_keeps_only_its_counters(caplog):
    failing = report_data("a")
    failing["neuron_runtime_data"][0]["error"] = "connection refused"
    scraper = Scraper().feed(with_counts(report_data("a"), completed=14))

    with caplog.at_level(logging.WARNING):
        scraper.feed(failing)

    assert scraper.runtime_value("execution_status_total", "a", status_type="completed") == 14
    assert scraper.runtime_value("neuron_runtime_memory_used_bytes", "a", memory_location="host") is None
    assert scraper.value("neuron_monitor_group_success", group="neuron_runtime", runtime_tag="a") == 0
    assert caplog.messages == ["Runtime a error: connection refused"]


def test_runtimes_sharing_a_tag_add_their_counts_and_the_last_gauge_wins():
    data = with_counts(with_counts(report_data("same", "same"), 0, completed=3), 1, completed=4)
    app(data, 1)["neuroncore_counters"]["neuroncores_in_use"]["0"]["neuroncore_utilization"] = 25.0
    scraper = Scraper().feed(data)

    assert scraper.runtime_value("execution_status_total", "same", status_type="completed") == 7
    assert scraper.runtime_value("neuroncore_utilization_ratio", "same", neuroncore="0") == 0.25


def test_ecc_events_accumulate_per_device_and_event():
    data = report_data()
    data["system_data"]["neuron_hw_counters"]["neuron_devices"] = [
        {"neuron_device_index": 0, "mem_ecc_corrected": 2, "mem_ecc_uncorrected": 0,
         "sram_ecc_uncorrected": 1, "sram_ecc_corrected": 0},
        {"neuron_device_index": 1, "mem_ecc_corrected": 0, "mem_ecc_uncorrected": 1,
         "sram_ecc_uncorrected": 0, "sram_ecc_corrected": 0},
    ]
    scraper = Scraper().feed(data, data)

    def events(device: str, event: str) -> float | None:
        return scraper.value("hardware_ecc_events_total", **INSTANCE, neuron_device_index=device, event_type=event)

    assert events("0", "mem_ecc_corrected") == 4
    assert events("0", "sram_ecc_uncorrected") == 2
    assert events("1", "mem_ecc_uncorrected") == 2
    assert events("1", "sram_ecc_corrected") == 0


def test_unknown_kinds_of_errors_and_groups_from_newer_tools():
    data = report_data("a")
    app(data)["execution_stats"]["error_summary"]["thermal"] = 2  # a kind this schema does not know
    app(data)["future_group"] = {"period": 1.0, "error": ""}
    data["system_data"]["future_system_group"] = {"period": 1.0, "error": ""}
    scraper = Scraper().feed(data)

    assert scraper.runtime_value("execution_errors_total", "a", error_type="thermal") == 2
    assert not {name for name in scraper.names() if "future" in name}


def test_inf2_hardware_gives_the_core_to_device_join_and_device_memory():
    data = report_data()
    data["neuron_hardware_info"] = {
        "neuron_device_type": "inferentia2", "neuron_device_version": "v3", "neuroncore_version": "v2",
        "neuron_device_count": 12, "neuron_device_memory_size": 34359738368, "neuroncore_per_device_count": 2,
        "logical_neuroncore_config": 1, "error": ""}
    scraper = Scraper().feed(data)

    assert scraper.value("neuroncore_device_info", **INSTANCE, neuroncore="23", neuron_device_index="11") == 1
    assert scraper.value("neuroncore_device_info", **INSTANCE, neuroncore="2", neuron_device_index="1") == 1
    assert scraper.value("neuron_device_memory_size_bytes", **INSTANCE, neuron_device_index="11") == 34359738368
    assert scraper.value("neuron_hardware_info", **INSTANCE, neuron_device_count="12",
                         neuron_device_memory_size="34359738368", neuroncore_per_device_count="2") == 1


def test_up_reports_a_fresh_report_from_a_reachable_daemon():
    scraper = Scraper()
    assert scraper.value("neuron_monitor_up") == 0
    assert scraper.value("neuron_monitor_report_age_seconds") is None

    scraper.feed(report_data("a"))
    scraper.clock.now += 2.5
    assert scraper.value("neuron_monitor_up") == 1
    assert scraper.value("neuron_monitor_report_age_seconds") == 2.5

    unreachable = report_data()
    unreachable["neuron_hardware_info"]["error"] = "neurond unreachable at unix:///run/neurond.sock"
    scraper.feed(unreachable)
    assert scraper.value("neuron_monitor_up") == 0
    assert scraper.value("neuron_monitor_group_success", group="neuron_hardware_info", runtime_tag="") == 0


def test_a_stale_report_is_withheld():
    scraper = Scraper(stale_after=15.0).feed(report_data("a"))

    scraper.clock.now += 15.0
    assert scraper.value("system_vcpu_count", **INSTANCE) == 4
    scraper.clock.now += 0.5
    assert scraper.value("system_vcpu_count", **INSTANCE) is None
    assert scraper.value("neuron_monitor_up") == 0
    assert scraper.value("neuron_monitor_report_age_seconds") == 15.5
    assert scraper.names() <= {name.removesuffix("_total") for name in EXPOSED_METRIC_NAMES
                               if name.startswith("neuron_monitor_")}


def test_staleness_allows_three_of_the_reports_own_periods():
    data = report_data("a")
    app(data)["memory_used"]["period"] = 60.0  # a slow group: reports come every minute
    scraper = Scraper(stale_after=15.0).feed(data)

    scraper.clock.now += 179.0
    assert scraper.value("neuron_monitor_up") == 1
    scraper.clock.now += 2.0
    assert scraper.value("neuron_monitor_up") == 0


def test_stale_after_infinity_serves_the_last_report_forever():
    scraper = Scraper(stale_after=math.inf).feed(report_data("a"))
    scraper.clock.now += 1e9

    assert scraper.value("neuron_monitor_up") == 1
    assert scraper.value("system_vcpu_count", **INSTANCE) == 4


def test_self_counters_count_reports_and_rejected_lines():
    scraper = Scraper().feed(report_data(), report_data())
    scraper.mapping.reject_line()

    assert scraper.value("neuron_monitor_reports_total") == 2
    assert scraper.value("neuron_monitor_rejected_lines_total") == 1
    assert scraper.value("neuron_monitor_scrape_duration_seconds") >= 0


def test_lean_leaves_out_client_and_created_series():
    mapping = PrometheusMapping(created_series=False)
    mapping.update(Report.model_validate(report_data("a")))
    text = generate_latest(metrics_registry(mapping, client_metrics=False)).decode()

    assert "_created" not in text
    assert "python_" not in text and "process_" not in text
    assert "execution_status_total{" in text


def test_restricted_scrape_returns_only_the_asked_families():
    scraper = Scraper().feed(report_data("a"))
    restricted = scraper.registry.restricted_registry(["neuroncore_utilization_ratio", "neuron_monitor_up"])

    families = {family.name for family in text_string_to_metric_families(generate_latest(restricted).decode())}

    assert families == {"neuroncore_utilization_ratio", "neuron_monitor_up"}


def test_every_exposed_name_is_declared():
    data = report_data("a")
    data["neuron_hardware_info"]["neuron_device_memory_size"] = 8589934592
    data["system_data"]["neurond_totals"] = {  # our opt-in group
        "period": 1.0, "error": "", "neuron_runtimes": [
            {"neuron_runtime_tag": "llm", "execution_summary": {"completed": 3}, "error_summary": {"hardware": 1}}],
        "neuron_devices": [{"neuron_device_index": 0, "resets": 1}]}
    scraper = Scraper().feed(data)
    scraper.mapping.reject_line()

    text = generate_latest(scraper.registry).decode()
    sample_names = {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}

    assert sample_names == EXPOSED_METRIC_NAMES


def test_scrapes_reuse_the_families_built_for_the_report():
    scraper = Scraper().feed(report_data("a"))

    first = list(scraper.mapping.collect())
    second = list(scraper.mapping.collect())

    report_families = [metric for metric in first if not metric.name.startswith("neuron_monitor_")]
    assert report_families and all(any(metric is other for other in second) for metric in report_families)


def test_reports_built_in_process_map_as_their_json_lines(address):
    # What `neuron-monitor --prometheus-port` feeds the mapping: the collector's Report objects,
    # never encoded. They must give the exposition their JSON line gives the stdin companion.
    from neurontools.client import Device, Session
    from neurontools.monitor.collector import Collector
    from neurontools.monitor.config import default_config
    from neurontools.monitor.report_json import dumps_report, loads_report

    device = Device(address)
    try:
        with Session(address, visible_cores="2-3", tag="in-process"):
            collector = Collector(default_config(), device.snapshot)
            reports = [collector.collect(), collector.collect()]
    finally:
        device.close()
    direct, decoded = Scraper(), Scraper()
    for scraper in (direct, decoded):
        scraper.mapping._wall_clock = lambda: 1700000000.0
    for report in reports:
        direct.mapping.update(report)
        decoded.mapping.update(loads_report(dumps_report(report)))

    def stable(scraper: Scraper) -> list[str]:
        return [line for line in generate_latest(scraper.registry).decode().splitlines()
                if "scrape_duration" not in line and "_created" not in line]

    assert stable(direct) == stable(decoded)
    assert 'runtime_tag="in-process"' in "\n".join(stable(direct))


def test_neurond_totals_are_exposed_as_they_are_not_added_up():
    """The daemon's running totals are already cumulative: two reports of 5 then 7 expose 7."""
    data = report_data("a")
    scraper = Scraper()
    for completed in (5, 7):
        data["system_data"]["neurond_totals"] = {
            "period": 1.0, "error": "", "neuron_runtimes": [
                {"neuron_runtime_tag": "gone", "execution_summary": {"completed": completed, "timed_out": 2},
                 "error_summary": {"transient": 2}}], "neuron_devices": []}
        scraper.feed(data)
    text = generate_latest(scraper.registry).decode()
    values = {(s.name, s.labels.get("status_type") or s.labels.get("error_type")): s.value
              for family in text_string_to_metric_families(text) for s in family.samples
              if s.name.startswith("neurond_execution") and s.name.endswith("_total")}
    assert values == {("neurond_execution_status_total", "completed"): 7.0,
                      ("neurond_execution_status_total", "timed_out"): 2.0,
                      ("neurond_execution_errors_total", "transient"): 2.0}
