"""Reading neuron-monitor's stream as the companions do: what is accepted, left out or refused."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from neurontools.monitor.report_stream import UnreadableLine, parse_report_line

CAPTURE = json.loads((Path(__file__).parent / "data" / "captures" / "inf1-xlarge-one-app-2023.json").read_text())


def line(data: dict) -> str:
    return json.dumps(data)


def edited(edit) -> str:
    data = copy.deepcopy(CAPTURE)
    edit(data)
    return line(data)


def test_a_real_report_is_read_whole():
    report, notes = parse_report_line(line(CAPTURE))

    assert notes == []
    assert report.neuron_runtime_data[0].neuron_runtime_tag == "15439"


def test_broken_json_is_rejected_with_the_companions_message():
    with pytest.raises(UnreadableLine, match=r"^Unable to decode JSON Expecting"):
        parse_report_line('{"neuron_runtime_data": [')


def test_json_that_is_not_an_object_is_rejected():
    with pytest.raises(UnreadableLine, match="a JSON list, not an object"):
        parse_report_line("[1, 2]")


def test_a_report_without_instance_info_is_rejected_naming_the_field():
    # AWS's script cannot take it either: it reads instance_info on the first report.
    with pytest.raises(UnreadableLine, match=r"instance_info: Field required"):
        parse_report_line(edited(lambda data: data.pop("instance_info")))


def test_missing_groups_are_fine():
    def drop_groups(data: dict) -> None:
        data["neuron_runtime_data"][0]["report"].pop("neuroncore_counters")
        data["system_data"].pop("vcpu_usage")

    report, notes = parse_report_line(edited(drop_groups))

    assert notes == []
    assert report.neuron_runtime_data[0].report.neuroncore_counters is None
    assert report.system_data.vcpu_usage is None


def test_unknown_keys_and_groups_of_newer_tools_are_fine():
    def add_unknown(data: dict) -> None:
        data["schema_version"] = 3
        data["neuron_runtime_data"][0]["report"]["dma_counters"] = {"period": 1.0, "error": "", "bytes": 5}
        data["system_data"]["power"] = {"period": 1.0, "error": "", "watts": 42}
        data["neuron_runtime_data"][0]["report"]["execution_stats"]["error_summary"]["thermal"] = 0

    report, notes = parse_report_line(edited(add_unknown))

    assert notes == []
    assert report.neuron_runtime_data[0].report.execution_stats.error_summary.model_extra == {"thermal": 0}


def test_older_tools_reports_are_fine():
    # SDK 2.3-era: hardware info with counts only, `inference_stats` (no handler in AWS's script).
    def make_old(data: dict) -> None:
        runtime_report = data["neuron_runtime_data"][0]["report"]
        runtime_report["inference_stats"] = runtime_report.pop("execution_stats")
        data["neuron_hardware_info"] = {"neuron_device_count": 1, "neuroncore_per_device_count": 4, "error": ""}

    report, notes = parse_report_line(edited(make_old))

    assert notes == []
    assert report.neuron_runtime_data[0].report.execution_stats is None


def test_a_group_that_does_not_fit_is_left_out_and_the_rest_kept():
    def break_groups(data: dict) -> None:
        data["neuron_runtime_data"][0]["report"]["memory_used"].pop("loaded_models")
        data["system_data"]["vcpu_usage"]["usage_data"]["0"]["user"] = "busy"

    report, notes = parse_report_line(edited(break_groups))

    runtime_report = report.neuron_runtime_data[0].report
    assert runtime_report.memory_used is None and runtime_report.neuroncore_counters is not None
    assert report.system_data.vcpu_usage is None and report.system_data.memory_info is not None
    assert notes == [
        "left out memory_used of runtime entry 0 (neuron_runtime_data.0.report.memory_used.loaded_models: "
        "Field required)",
        "left out vcpu_usage (system_data.vcpu_usage.usage_data.0.user: Input should be a valid number, "
        "unable to parse string as a number)",
    ]


def test_a_runtime_entry_that_does_not_fit_is_left_out():
    def two_runtimes_one_broken(data: dict) -> None:
        broken = copy.deepcopy(data["neuron_runtime_data"][0])
        broken.pop("pid")
        broken["neuron_runtime_tag"] = "broken"
        data["neuron_runtime_data"].insert(0, broken)

    report, notes = parse_report_line(edited(two_runtimes_one_broken))

    assert [runtime.neuron_runtime_tag for runtime in report.neuron_runtime_data] == ["15439"]
    assert notes == ["left out runtime entry 0 (neuron_runtime_data.0.pid: Field required)"]


def test_bytes_that_are_not_utf8_are_rejected_not_fatal():
    with pytest.raises(UnreadableLine):
        parse_report_line(b'{"neuron_runtime_data": "\xff\xfe"}')
