"""neuron-monitor-cloudwatch: EMF documents valid against the specification, what they hold, the CLI."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pytest

from neurontools.monitor.cloudwatch import (
    MAX_METRIC_DATA_PER_CALL,
    MetricDocument,
    emf_lines,
    metric_documents,
    put_metric_data,
)
from neurontools.monitor.report import Report

CAPTURE = json.loads((Path(__file__).parent / "data" / "captures" / "inf1-xlarge-one-app-2023.json").read_text())
COMMAND = str(Path(sys.executable).parent / "neuron-monitor-cloudwatch")

UNITS = [
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
    "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
    "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
    "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
]
# Written from the CloudWatch "Specification: Embedded metric format": the root holds `_aws`
# (Timestamp in ms since the epoch, CloudWatchMetrics: MetricDirectives) and the target members;
# a MetricDirective has a Namespace, Dimensions (DimensionSets: arrays of at most 30 dimension
# keys) and at most 100 MetricDefinitions (Name, optional Unit from CloudWatch's units, optional
# StorageResolution 1 or 60). Objects defined by the specification have no other members. Limits
# of names and values are CloudWatch's (Namespace and metric name 1-255, dimension name 1-255,
# dimension value 1-1024 characters). What JSON Schema cannot say (each key names a top-level
# member of the right type) is checked by `check_targets` below.
EMF_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["_aws"],
    "properties": {
        "_aws": {
            "type": "object",
            "required": ["Timestamp", "CloudWatchMetrics"],
            "additionalProperties": False,
            "properties": {
                "Timestamp": {"type": "integer", "minimum": 0},
                "CloudWatchMetrics": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/MetricDirective"}},
            },
        },
    },
    "$defs": {
        "MetricDirective": {
            "type": "object",
            "required": ["Namespace", "Dimensions", "Metrics"],
            "additionalProperties": False,
            "properties": {
                "Namespace": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[^:]"},
                "Dimensions": {"type": "array", "items": {"$ref": "#/$defs/DimensionSet"}},
                "Metrics": {"type": "array", "minItems": 1, "maxItems": 100,
                            "items": {"$ref": "#/$defs/MetricDefinition"}},
            },
        },
        "DimensionSet": {
            "type": "array", "maxItems": 30, "uniqueItems": True,
            "items": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[^:]"},
        },
        "MetricDefinition": {
            "type": "object",
            "required": ["Name"],
            "additionalProperties": False,
            "properties": {
                "Name": {"type": "string", "minLength": 1, "maxLength": 255},
                "Unit": {"enum": UNITS},
                "StorageResolution": {"enum": [1, 60]},
            },
        },
    },
}


def check_targets(document: dict) -> None:
    """The specification's rules on target members: dimension values are strings of 1-1024 ASCII
    characters with a non-blank one; metric values are numbers (or arrays of at most 100)."""
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            for key in dimension_set:
                value = document[key]
                assert isinstance(value, str) and 1 <= len(value) <= 1024 and value.isascii() and value.strip(), key
        for metric in directive["Metrics"]:
            value = document[metric["Name"]]
            values = value if isinstance(value, list) else [value]
            assert len(values) <= 100
            assert all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in values), metric


def valid_emf(line: str) -> dict:
    document = json.loads(line)
    jsonschema.validate(document, EMF_SCHEMA)
    check_targets(document)
    return document


def report(edit=None) -> Report:
    data = copy.deepcopy(CAPTURE)
    data["neuron_hardware_info"].update(neuron_device_count=2, neuroncore_per_device_count=2)
    if edit:
        edit(data)
    return Report.model_validate(data)


def by_dimensions(documents: list[MetricDocument]) -> dict[tuple[tuple[str, str], ...], dict[str, float]]:
    return {tuple(document.dimensions.items()): {name: value for name, _, value in document.metrics}
            for document in documents}


INSTANCE = (("InstanceId", "i-0823d657f57057590"), ("InstanceType", "inf1.xlarge"))
RUNTIME = (*INSTANCE, ("RuntimeTag", "15439"))


def test_every_line_is_valid_emf():
    now_ms = int(time.time() * 1000)
    lines = emf_lines(report(), namespace="neuron_monitor_test", timestamp_ms=now_ms)

    documents = [valid_emf(line) for line in lines]
    assert {document["_aws"]["Timestamp"] for document in documents} == {now_ms}
    assert {document["_aws"]["CloudWatchMetrics"][0]["Namespace"] for document in documents} == {"neuron_monitor_test"}


def test_the_schema_rejects_what_the_specification_forbids():
    good = valid_emf(emf_lines(report(), namespace="NS", timestamp_ms=1)[0])
    broken = [
        {key: value for key, value in good.items() if key != "_aws"},
        {**good, "_aws": {**good["_aws"], "Timestamp": "now"}},
        {**good, "_aws": {**good["_aws"], "CloudWatchMetrics": [
            {**good["_aws"]["CloudWatchMetrics"][0], "Metrics": [{"Name": "X", "Unit": "Percentage"}]}]}},
        {**good, "_aws": {**good["_aws"], "CloudWatchMetrics": [
            {**good["_aws"]["CloudWatchMetrics"][0], "Dimensions": [[f"D{index}" for index in range(31)]]}]}},
    ]
    for document in broken:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(document, EMF_SCHEMA)
    with pytest.raises(KeyError):
        check_targets({**good, "_aws": {**good["_aws"], "CloudWatchMetrics": [
            {**good["_aws"]["CloudWatchMetrics"][0], "Dimensions": [["Missing"]]}]}})


def test_one_document_per_instance_device_runtime_and_used_core():
    documents = by_dimensions(metric_documents(report()))

    assert list(documents) == [
        INSTANCE,
        (*INSTANCE, ("NeuronDevice", "0")),
        RUNTIME,
        (*RUNTIME, ("NeuronDevice", "0"), ("NeuronCore", "0")),  # the only core the application uses
    ]


def test_values_keep_the_reports_units_and_periods():
    documents = by_dimensions(metric_documents(report()))

    host, runtime = documents[INSTANCE], documents[RUNTIME]
    core = documents[(*RUNTIME, ("NeuronDevice", "0"), ("NeuronCore", "0"))]
    assert host["VcpuCount"] == 4 and host["VcpuUser"] == 26.32 and host["HostMemoryTotal"] == 8033951744
    assert runtime["ExecutionsCompleted"] == 14  # the period's count, not a running total
    assert runtime["ExecutionLatencyP99"] == 0.003339529037475586
    assert runtime["DeviceLatencyP99"] == 0.0031936168670654297
    assert runtime["RuntimeDeviceMemoryUsed"] == 63118912 and runtime["LoadedModels"] == 1
    assert core["NeuronCoreUtilization"] == 89.01827638996558  # percent, CloudWatch's Percent unit
    assert core["NeuronCoreMemoryConstants"] == 61766864


def test_the_device_of_a_core_is_its_index_over_cores_per_device():
    def busy_core_3(data: dict) -> None:
        cores = data["neuron_runtime_data"][0]["report"]["neuroncore_counters"]["neuroncores_in_use"]
        cores["3"] = {"neuroncore_utilization": 12.5, "flops": 4000}

    documents = by_dimensions(metric_documents(report(busy_core_3)))

    core = documents[(*RUNTIME, ("NeuronDevice", "1"), ("NeuronCore", "3"))]
    assert (core["NeuronCoreUtilization"], core["NeuronCoreFlops"]) == (12.5, 4000)


def test_groups_and_runtimes_with_errors_are_left_out():
    def fail(data: dict) -> None:
        data["system_data"]["vcpu_usage"]["error"] = "no /proc/stat"
        data["neuron_runtime_data"][0]["report"]["execution_stats"]["error"] = "busy"
        gone = copy.deepcopy(data["neuron_runtime_data"][0])
        gone.update(neuron_runtime_tag="gone", error="process vanished")
        data["neuron_runtime_data"].append(gone)

    documents = by_dimensions(metric_documents(report(fail)))

    assert "VcpuCount" not in documents[INSTANCE] and "HostMemoryUsed" in documents[INSTANCE]
    assert "ExecutionsCompleted" not in documents[RUNTIME] and "LoadedModels" in documents[RUNTIME]
    assert not [key for key in documents if ("RuntimeTag", "gone") in key]


def test_an_instance_without_metadata_has_no_empty_dimensions():
    def no_imds(data: dict) -> None:
        data["instance_info"].update(instance_id="", instance_type="")

    for line in emf_lines(report(no_imds), namespace="NS", timestamp_ms=1):
        document = valid_emf(line)
        assert "InstanceId" not in document["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]


def test_more_than_100_metrics_take_several_directives():
    """Many execution_summary keys (newer tools add statuses) make one document hold 250 metrics."""
    def many_statuses(data: dict) -> None:
        summary = data["neuron_runtime_data"][0]["report"]["execution_stats"]["execution_summary"]
        summary.update({f"status_{index}": index for index in range(250)})

    runtime_line = next(line for line in emf_lines(report(many_statuses), namespace="NS", timestamp_ms=1)
                        if '"RuntimeTag"' in line and '"NeuronCore"' not in line)
    document = valid_emf(runtime_line)  # the schema allows at most 100 metrics per directive
    directives = document["_aws"]["CloudWatchMetrics"]
    names = [metric["Name"] for directive in directives for metric in directive["Metrics"]]
    assert len(names) == len(set(names)) > 250 and len(directives) == -(-len(names) // 100)
    assert {"ExecutionsStatus0", "ExecutionsStatus249"} <= set(names)
    assert all(directive["Dimensions"] == directives[0]["Dimensions"] for directive in directives)
    assert document["ExecutionsStatus249"] == 249


def test_dimension_values_are_cut_to_1024_ascii_characters():
    long_tag = "t" * 5000

    def tagged(data: dict) -> None:
        data["neuron_runtime_data"][0]["neuron_runtime_tag"] = long_tag
        second = copy.deepcopy(data["neuron_runtime_data"][0])
        second.update(neuron_runtime_tag="模型\n1", pid=second["pid"] + 1)
        data["neuron_runtime_data"].append(second)

    documents = [valid_emf(line) for line in emf_lines(report(tagged), namespace="NS", timestamp_ms=1)]
    tags = {document["RuntimeTag"] for document in documents if "RuntimeTag" in document}
    assert tags == {"t" * 1024, "\\u6a21\\u578b\\n1"}  # escaped as Python writes them: still tells them apart
    client = RecordingClient()
    put_metric_data(client, "NS", metric_documents(report(tagged)), datetime(2026, 1, 1, tzinfo=timezone.utc))
    values = {dimension["Value"] for call in client.calls for entry in call["MetricData"]
              for dimension in entry["Dimensions"] if dimension["Name"] == "RuntimeTag"}
    assert values == tags


class RecordingClient:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    def put_metric_data(self, **call) -> None:
        self.calls.append(call)


def test_put_metric_data_sends_the_same_metrics_in_as_few_requests_as_allowed():
    documents = [MetricDocument({"InstanceId": "i-1", "NeuronCore": str(core)},
                                [("NeuronCoreUtilization", "Percent", 1.0)])
                 for core in range(MAX_METRIC_DATA_PER_CALL + 1)]
    client = RecordingClient()
    stamp = datetime(2026, 1, 1, tzinfo=timezone.utc)

    assert put_metric_data(client, "NS", documents, stamp) == 2

    assert [len(call["MetricData"]) for call in client.calls] == [MAX_METRIC_DATA_PER_CALL, 1]
    assert client.calls[1] == {"Namespace": "NS", "MetricData": [{
        "MetricName": "NeuronCoreUtilization", "Unit": "Percent", "Value": 1.0, "Timestamp": stamp,
        "Dimensions": [{"Name": "InstanceId", "Value": "i-1"}, {"Name": "NeuronCore", "Value": "1000"}]}]}


# --- the process ---------------------------------------------------------------------------


def run(*args: str, stdin: str, env_path: Path | None = None) -> subprocess.CompletedProcess:
    env = None if env_path is None else {**os.environ, "PYTHONPATH": str(env_path)}
    return subprocess.run([COMMAND, *args], input=stdin, capture_output=True, text=True, timeout=60, env=env)


def test_cli_writes_emf_lines_and_skips_broken_input():
    result = run("--namespace", "neuron_monitor_test", "--region", "us-west-2",
                 stdin=json.dumps(CAPTURE) + "\nnot json\n\n" + json.dumps(CAPTURE) + "\n")

    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 2 * len(metric_documents(Report.model_validate(CAPTURE)))
    for line in lines:
        valid_emf(line)
    assert "Unable to decode JSON" in result.stderr


def test_cli_appends_to_an_output_file(tmp_path):
    output = tmp_path / "emf.log"
    output.write_text("earlier\n")

    result = run("--output", str(output), stdin=json.dumps(CAPTURE) + "\n")

    assert result.returncode == 0 and result.stdout == ""
    lines = output.read_text().splitlines()
    assert lines[0] == "earlier"
    assert valid_emf(lines[1])["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "NeuronMonitor"


def test_put_metric_data_without_boto3_is_a_clear_error(tmp_path):
    (tmp_path / "boto3.py").write_text("raise ImportError('No module named boto3')\n")  # even if boto3 is installed

    result = run("--put-metric-data", "--region", "us-west-2", stdin="", env_path=tmp_path)

    assert result.returncode == 1
    assert "--put-metric-data needs boto3, which is not installed (pip install boto3)" in result.stderr


def test_put_metric_data_goes_through_boto3(tmp_path):
    calls = tmp_path / "calls.jsonl"
    (tmp_path / "boto3.py").write_text(textwrap.dedent(f"""
        import json

        class _CloudWatch:
            def put_metric_data(self, Namespace, MetricData):
                with open({str(calls)!r}, "a") as out:
                    out.write(json.dumps({{"Namespace": Namespace, "MetricData": MetricData}}, default=str) + "\\n")

        def client(service, region_name=None):
            assert (service, region_name) == ("cloudwatch", "eu-north-1")
            return _CloudWatch()
    """))
    (tmp_path / "botocore").mkdir()
    (tmp_path / "botocore" / "__init__.py").write_text("")
    (tmp_path / "botocore" / "exceptions.py").write_text("class NoRegionError(Exception):\n    pass\n")

    result = run("--put-metric-data", "--region", "eu-north-1", "--namespace", "NS",
                 stdin=json.dumps(CAPTURE) + "\n", env_path=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # with --put-metric-data, EMF lines only go to --output
    [call] = [json.loads(line) for line in calls.read_text().splitlines()]
    assert call["Namespace"] == "NS"
    sent = {(entry["MetricName"], tuple(d["Value"] for d in entry["Dimensions"])): entry["Value"]
            for entry in call["MetricData"]}
    assert sent[("ExecutionsCompleted", ("i-0823d657f57057590", "inf1.xlarge", "15439"))] == 14


def test_a_bad_namespace_is_refused():
    result = run("--namespace", "AWS/Neuron", stdin="")

    assert result.returncode == 2
    assert "not starting with AWS/" in result.stderr


def test_a_closed_stdout_ends_it_quietly():
    many = (json.dumps(CAPTURE) + "\n") * 200
    pipeline = subprocess.run(f"{COMMAND} | head -n 1", shell=True, input=many, capture_output=True, text=True,
                              timeout=60)

    assert pipeline.returncode == 0
    assert len(pipeline.stdout.splitlines()) == 1
    assert "Traceback" not in pipeline.stderr and "BrokenPipe" not in pipeline.stderr
