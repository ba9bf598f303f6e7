"""The neuron-monitor report model and its Go-compatible encoding, checked against real captures.

Real captures live in tests/data/captures (see its README for what each one is and is not).
"""

from __future__ import annotations

import importlib.util
import json
import math
import pathlib
import re
import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from neurontools.monitor.report import (
    CoreCounters,
    CpuUsage,
    ErrorSummary,
    ExecutionStats,
    ExecutionSummary,
    InstanceInfo,
    LatencyPercentiles,
    LatencyStats,
    MemoryInfo,
    MemoryUsed,
    NeuronCoreCounters,
    NeuronHardwareInfo,
    NeuronHwCounters,
    NeuronK8sInfo,
    Report,
    RuntimeData,
    RuntimeReport,
    SystemData,
    VcpuUsage,
)
from neurontools.monitor.report_json import dumps_report, go_float, go_string, loads_report

ROOT = pathlib.Path(__file__).resolve().parent.parent
CAPTURES = pathlib.Path(__file__).parent / "data" / "captures"
PRETTY_CAPTURES = ["inf1-xlarge-idle-2023.json", "inf1-xlarge-one-app-2023.json"]
TRN1N_EXCERPT = "trn1n-32xlarge-cwagent-fixture-2024-excerpt.json"


# --- helpers: whitespace-free re-serialisation that keeps the capture's own number literals ------


class _Literal(str):
    """A JSON number exactly as written in the capture."""


def _parse_literally(text: str) -> object:
    return json.loads(text, parse_int=_Literal, parse_float=_Literal)


def _compact(value: object) -> str:
    """The capture as one line: its key order and number literals kept, whitespace dropped."""
    if isinstance(value, _Literal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k) + ":" + _compact(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_compact(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)  # str, bool, null: the captures hold plain ASCII paths


def _without_placeholders(value: object) -> object:
    """Drop the reference's abbreviation markers: list items "... (N total)" and map entries "...": "(...)"."""
    if isinstance(value, dict):
        return {k: _without_placeholders(v) for k, v in value.items() if k != "..."}
    if isinstance(value, list):
        return [_without_placeholders(v) for v in value if not (isinstance(v, str) and v.startswith("..."))]
    return value


def _capture_line(name: str) -> str:
    tree = _parse_literally((CAPTURES / name).read_text())
    return _compact(_without_placeholders(tree))


def _cpu(**percent: float) -> CpuUsage:
    return CpuUsage(**{"user": 0, "nice": 0, "system": 0, "idle": 0, "io_wait": 0, "irq": 0, "soft_irq": 0} | percent)


INSTANCE = InstanceInfo(
    instance_name="", instance_id="i-0123456789abcdef0", instance_type="inf2.xlarge",
    instance_availability_zone="us-east-2a", instance_availability_zone_id="use2-az1", instance_region="us-east-2",
    ami_id="ami-0123456789abcdef0", subnet_id="subnet-01234567", error="",
)
HARDWARE = NeuronHardwareInfo(
    neuron_device_type="inferentia2", neuron_device_version="v3", neuroncore_version="v2", neuron_device_count=1,
    neuron_device_memory_size=34359738368, neuroncore_per_device_count=2, logical_neuroncore_config=1, error="",
)


def _report(runtimes: list[RuntimeData] | None = None, system: SystemData | None = None) -> Report:
    return Report(neuron_runtime_data=runtimes or [], system_data=system or SystemData(),
                  instance_info=INSTANCE, neuron_hardware_info=HARDWARE)


# --- real captures ------------------------------------------------------------------------------


def _unknown_keys(value: object, path: str = "") -> list[str]:
    if isinstance(value, BaseModel):
        found = [f"{path}.{key}" for key in value.model_extra or {}]
        for name in type(value).model_fields:
            found += _unknown_keys(getattr(value, name), f"{path}.{name}")
        return found
    if isinstance(value, dict):
        return [key for k, v in value.items() for key in _unknown_keys(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [key for v in value for key in _unknown_keys(v, f"{path}[]")]
    return []


@pytest.mark.parametrize("name", [*PRETTY_CAPTURES, TRN1N_EXCERPT])
def test_capture_parses_and_round_trips(name: str) -> None:
    report = loads_report(_capture_line(name))
    assert _unknown_keys(report) == []  # every key of a real capture is a declared field
    assert loads_report(dumps_report(report)) == report


@pytest.mark.parametrize("name", PRETTY_CAPTURES)
def test_pretty_capture_is_reproduced_byte_for_byte_once_compacted(name: str) -> None:
    # The captures are pretty-printed; the Go tool writes the same tree on one line without spaces.
    # Comparing against the capture with whitespace removed (its key order and number literals kept)
    # checks key order, field presence, null handling and number formatting byte for byte.
    line = _capture_line(name)
    assert dumps_report(loads_report(line)) == line


def test_inf1_capture_values_are_read_in_base_units() -> None:
    report = loads_report(_capture_line("inf1-xlarge-one-app-2023.json"))
    runtime = report.neuron_runtime_data[0]
    stats = runtime.report.execution_stats
    assert stats is not None and stats.latency_stats.total_latency is not None
    assert stats.latency_stats.total_latency.p100 == 0.0033423900604248047  # seconds
    assert stats.error_summary.generic == 0
    memory = runtime.report.memory_used
    assert memory is not None
    assert memory.neuron_runtime_used_bytes.usage_breakdown.neuroncore_memory_usage["0"].constants == 61766864
    assert memory.loaded_models[0].subgraphs["sg_00"].neuroncore_index == 0
    counters = runtime.report.neuroncore_counters
    assert counters is not None and counters.neuroncores_in_use["0"].flops is None  # 2023: no flops key
    assert report.neuron_hardware_info.neuron_device_type is None  # 2023: three keys only


def test_trn1n_excerpt_is_reproduced_except_for_its_edited_group_order() -> None:
    # AWS's test team edited this fixture; its system_data groups are not in the sorted order the Go
    # tool writes a map in. With those keys sorted, the rest must match byte for byte (after
    # dropping the reference's "..." placeholders, see the captures README).
    tree = _without_placeholders(_parse_literally((CAPTURES / TRN1N_EXCERPT).read_text()))
    assert list(tree["system_data"]) == ["memory_info", "vcpu_usage", "neuron_hw_counters"]
    tree["system_data"] = dict(sorted(tree["system_data"].items()))
    line = _compact(tree)
    report = loads_report(line)
    assert dumps_report(report) == line
    runtime = report.neuron_runtime_data[0]
    assert runtime.address is None and runtime.pid == 784315 and runtime.neuron_runtime_tag == "535"
    assert runtime.report.neuron_runtime_vcpu_usage.error == "open /proc/784315/stat: no such file or directory"
    assert report.instance_info.ultraserver_id == "u-cafb07773a569a23"


def test_issue_633_line_is_a_prefix_of_our_encoding() -> None:
    # The only verbatim compact Go output we have, cut by its reporter in the middle of usage_data "2".
    # We encode the values it shows; whatever follows the cut is placeholder and never compared.
    verbatim = (CAPTURES / "inf1-issue633-container-2023-truncated.txt").read_text().rstrip("\n")
    report = Report(
        neuron_runtime_data=[],
        system_data=SystemData(
            memory_info=MemoryInfo(period=0.000690876, memory_total_bytes=16299401216,
                                   memory_used_bytes=6843494400, swap_total_bytes=0, swap_used_bytes=0, error=""),
            neuron_hw_counters=NeuronHwCounters(period=0.000694819, neuron_devices=None, error=""),
            vcpu_usage=VcpuUsage(period=0.000692292, average_usage=_cpu(idle=100),
                                 usage_data={"0": _cpu(), "1": _cpu(), "2": _cpu()},
                                 context_switch_count=0, error=""),  # past the cut
        ),
        instance_info=INSTANCE,  # past the cut
        neuron_hardware_info=HARDWARE,  # past the cut
    )
    line = dumps_report(report)
    assert len(verbatim) > 500
    assert line[: len(verbatim)] == verbatim


def _declared_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every key path a model declares; "*" stands for any key of a map, "[]" marks a list."""
    paths: set[tuple[str, ...]] = set()
    for name, info in model.model_fields.items():
        kind = info.annotation
        segment = [name]
        while True:
            # drop the None of `X | None` (also when annotated, as in `X | Omitted`)
            args = [a for a in typing.get_args(kind) if type(None) not in (a, *typing.get_args(a))]
            origin = typing.get_origin(kind)
            if origin is list:
                segment[-1] += "[]"
                kind = args[0]
            elif origin is dict:
                segment.append("*")
                kind = args[1]
            elif origin is not None and len(args) == 1:  # X | None
                kind = args[0]
            else:
                break
        path = prefix + tuple(segment)
        paths.add(path)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            paths |= _declared_paths(kind, path)
    return paths


def _listed_paths(text: str) -> list[tuple[bool, tuple[str, ...]]]:
    """(is a suffix, segments) for every key path in the inf2 listing, {a,b} alternatives expanded."""
    listed = []
    for line in text.splitlines():
        token = line.split(" ", 1)[0]
        suffix = token.startswith("...")
        token = token.removeprefix("...")
        if not re.fullmatch(r"[a-z_][a-z0-9_\[\]{},]*(\.[a-z0-9_\[\]{},]+)+", token):
            continue  # prose, the config JSON, section titles
        expanded = [()]
        for segment in token.split("."):
            choices = segment.strip("{}").split(",") if segment.startswith("{") else [segment]
            expanded = [p + (c,) for p in expanded for c in choices]
        listed.extend((suffix, p) for p in expanded)
    return listed


def _matches(declared: tuple[str, ...], listed: tuple[str, ...], suffix: bool) -> bool:
    if len(listed) > len(declared) or (not suffix and len(listed) != len(declared)):
        return False
    tail = declared[len(declared) - len(listed):]
    return all(d in ("*", s) for d, s in zip(tail, listed))


def test_every_key_of_the_2026_inf2_listing_is_a_declared_field() -> None:
    declared = _declared_paths(Report)
    listed = _listed_paths((CAPTURES / "inf2-xlarge-2026-keypaths.txt").read_text())
    assert len(listed) > 100
    unknown = [".".join(p) for suffix, p in listed if not any(_matches(d, p, suffix) for d in declared)]
    assert unknown == []
    assert (True, ("loaded_models[]", "subgraphs", "sg_00", "v2")) in listed


# --- encoding rules -----------------------------------------------------------------------------


def _counters(cores: int) -> NeuronCoreCounters:
    return NeuronCoreCounters(
        period=1.0, error="",
        neuroncores_in_use={str(i): CoreCounters(neuroncore_utilization=i) for i in range(cores)},
    )


def _runtime(report: RuntimeReport) -> RuntimeData:
    return RuntimeData(pid=2199, neuron_runtime_tag="2199", error="", report=report)


def _stats(latency: LatencyPercentiles | None, summary: ErrorSummary | None = None) -> ExecutionStats:
    return ExecutionStats(
        period=1.000590175,
        error_summary=summary or ErrorSummary(generic=0, numerical=0, transient=0, model=0, runtime=0, hardware=0),
        execution_summary=ExecutionSummary(completed=816, completed_with_err=0, completed_with_num_err=0,
                                           timed_out=0, incorrect_input=0, failed_to_queue=0),
        latency_stats=LatencyStats(total_latency=latency, device_latency=latency),
        error="",
    )


def test_map_keys_are_written_in_lexicographic_string_order() -> None:
    line = dumps_report(_report([_runtime(RuntimeReport(neuroncore_counters=_counters(12)))]))
    keys = re.findall(r'"(\d+)":\{"neuroncore_utilization"', line)
    assert keys == ["0", "1", "10", "11", "2", "3", "4", "5", "6", "7", "8", "9"]


def test_latency_percentiles_are_a_map_and_groups_are_sorted() -> None:
    latency = LatencyPercentiles(p0=0.001, p1=0.002, p25=0.003, p50=0.004, p75=0.005, p99=0.006, p100=0.007)
    runtime = _runtime(RuntimeReport(neuroncore_counters=_counters(1), execution_stats=_stats(latency)))
    system = SystemData(vcpu_usage=VcpuUsage(period=1, average_usage=_cpu(), usage_data={}, context_switch_count=0,
                                             error=""),
                        memory_info=MemoryInfo(period=1, memory_total_bytes=1, memory_used_bytes=1,
                                               swap_total_bytes=0, swap_used_bytes=0, error=""))
    line = dumps_report(_report([runtime], system))
    assert '"total_latency":{"p0":0.001,"p1":0.002,"p100":0.007,"p25":0.003,"p50":0.004,"p75":0.005,"p99":0.006}' in line
    assert line.index('"execution_stats"') < line.index('"neuroncore_counters"')
    assert line.index('"memory_info"') < line.index('"vcpu_usage"')


def test_struct_fields_keep_the_documented_order() -> None:
    line = dumps_report(_report([_runtime(RuntimeReport(execution_stats=_stats(None)))]))
    assert line.startswith('{"neuron_runtime_data":[{"pid":2199,"neuron_runtime_tag":"2199","error":"","report":'
                           '{"execution_stats":{"period":1.000590175,"error_summary":{"generic":0,"numerical":0,')
    assert '"latency_stats":{"total_latency":null,"device_latency":null},"error":""}' in line
    assert line.endswith('"neuron_hardware_info":{"neuron_device_type":"inferentia2","neuron_device_version":"v3",'
                         '"neuroncore_version":"v2","neuron_device_count":1,"neuron_device_memory_size":34359738368,'
                         '"neuroncore_per_device_count":2,"logical_neuroncore_config":1,"error":""}}')


def test_error_summary_without_generic_parses_and_stays_without_it() -> None:
    # The 2026 inf2 capture lists five error kinds; our own reports carry all six.
    summary = ErrorSummary(numerical=0, transient=0, model=0, runtime=0, hardware=1)
    line = dumps_report(_report([_runtime(RuntimeReport(execution_stats=_stats(None, summary)))]))
    assert '"error_summary":{"numerical":0,"transient":0,"model":0,"runtime":0,"hardware":1}' in line
    assert loads_report(line).neuron_runtime_data[0].report.execution_stats.error_summary.generic is None


@pytest.mark.parametrize(("value", "text"), [
    (0.0, "0"),
    (-0.0, "-0"),
    (100.0, "100"),
    (1e-07, "1e-7"),  # Go strips the exponent's leading zero
    (3.5e-07, "3.5e-7"),
    (1.5e-10, "1.5e-10"),
    (1e-06, "0.000001"),  # exponent form only below 1e-6 ...
    (1e20, "100000000000000000000"),
    (1e21, "1e+21"),  # ... or from 1e21 up
    (0.1, "0.1"),
    (89.01827638996558, "89.01827638996558"),
    (4.999666547, "4.999666547"),
    (4.9997283150000005, "4.9997283150000005"),
    (0.0032498836517333984, "0.0032498836517333984"),
    (123456789.0, "123456789"),
    (-2.5, "-2.5"),
    (5e-324, "5e-324"),
    (1.7976931348623157e308, "1.7976931348623157e+308"),
])
def test_floats_are_formatted_as_go_formats_them(value: float, text: str) -> None:
    assert go_float(value) == text


def test_non_finite_numbers_are_refused() -> None:
    with pytest.raises(ValueError):
        go_float(float("inf"))
    with pytest.raises(ValidationError):
        _cpu(user=float("nan"))


def test_integral_percentages_print_without_a_decimal_point() -> None:
    line = dumps_report(_report(system=SystemData(vcpu_usage=VcpuUsage(
        period=5, average_usage=_cpu(idle=100.0, user=4), usage_data={"0": _cpu(idle=87.5, system=12.5)},
        context_switch_count=299, error=""))))
    assert ('"vcpu_usage":{"period":5,"average_usage":{"user":4,"nice":0,"system":0,"idle":100,"io_wait":0,'
            '"irq":0,"soft_irq":0},"usage_data":{"0":{"user":0,"nice":0,"system":12.5,"idle":87.5,') in line


def test_large_integers_survive_exactly() -> None:
    huge = 2**53 + 1  # not representable as a float64
    line = dumps_report(_report([_runtime(RuntimeReport(neuroncore_counters=NeuronCoreCounters(
        period=1, error="", neuroncores_in_use={"0": CoreCounters(
            neuroncore_utilization=89.40087251059674, flops=huge, effective_flops=875590474948)})))]))
    assert f'"flops":{huge},"effective_flops":875590474948' in line
    assert '"neuron_device_memory_size":34359738368' in line
    assert dumps_report(loads_report(line)) == line


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_float_is_written_in_shortest_form_and_notation_of_go(value: float) -> None:
    text = go_float(value)
    assert float(text) == value and (text.startswith("-") == (math.copysign(1.0, value) < 0))
    mantissa, _, exponent = text.lstrip("-").partition("e")
    assert bool(exponent) == (value != 0 and not 1e-6 <= abs(value) < 1e21)
    assert not re.search(r"\.\d*0$|\.$|e[+-]?0", text)  # no trailing zeros, no padded exponent
    # the significant digits of repr: the shortest that read back exactly
    assert mantissa.replace(".", "").strip("0") == repr(abs(value)).split("e")[0].replace(".", "").strip("0")


def _busy_runtime(utilization: float, idle: CoreCounters, memory: MemoryUsed) -> RuntimeData:
    return _runtime(RuntimeReport(memory_used=memory, neuroncore_counters=NeuronCoreCounters(
        period=1, error="", neuroncores_in_use={"0": CoreCounters(neuroncore_utilization=utilization, flops=7),
                                                "1": idle, "2": idle})))


def test_objects_shared_in_a_report_and_reused_by_the_next_are_written_as_fresh_copies() -> None:
    # The collector shares one idle-core object and reuses unchanged memory groups; the encoder
    # writes each of them once and keeps their text for the next report.
    idle = CoreCounters(neuroncore_utilization=0, flops=0, effective_flops=0)
    memory = MemoryUsed.model_validate(_capture_memory_used())
    for utilization in (12.5, 99.25):
        report = _report([_busy_runtime(utilization, idle, memory), _busy_runtime(3.0, idle, memory)])
        fresh = Report.model_validate(report.model_dump())  # the same values in objects never encoded
        assert fresh.neuron_runtime_data[0].report.memory_used is not memory
        assert dumps_report(report) == dumps_report(fresh)
        assert f'"0":{{"neuroncore_utilization":{go_float(utilization)},"flops":7}},"1":{{' in dumps_report(report)


def test_kept_texts_never_stand_in_for_a_new_object_at_a_freed_address() -> None:
    # Texts are kept by identity; CPython soon puts new objects where freed ones were.
    for utilization in range(40):
        idle = CoreCounters(neuroncore_utilization=utilization)
        line = dumps_report(_report([_busy_runtime(0.5, idle, MemoryUsed.model_validate(_capture_memory_used()))]))
        assert f'"1":{{"neuroncore_utilization":{utilization}}}' in line


def _capture_memory_used() -> dict:
    capture = _without_placeholders(json.loads((CAPTURES / "inf1-xlarge-one-app-2023.json").read_text()))
    return capture["neuron_runtime_data"][0]["report"]["memory_used"]


def test_strings_are_escaped_as_go_escapes_them() -> None:
    assert go_string('a<b>&"\\') == '"a\\u003cb\\u003e\\u0026\\"\\\\"'
    assert go_string("\n\r\t\b\f\x01\x7f") == '"\\n\\r\\t\\b\\f\\u0001\x7f"'
    assert go_string("é/\u2028") == '"é/\\u2028"'
    assert go_string("\udc80") == '"\\ufffd"'


# --- tolerance ----------------------------------------------------------------------------------


BARE = dumps_report(_report())  # no application, no system group


def test_missing_groups_and_optional_fields_are_accepted_and_stay_absent() -> None:
    assert BARE.startswith('{"neuron_runtime_data":[],"system_data":{},"instance_info":{')
    report = loads_report(BARE)
    assert report.system_data == SystemData() and report.neuron_k8s_info is None
    assert dumps_report(report) == BARE
    runtime = _runtime(RuntimeReport())
    assert '"report":{}' in dumps_report(_report([runtime]))
    assert '"address"' not in dumps_report(_report([runtime]))


def test_null_is_accepted_where_the_go_tool_can_write_it() -> None:
    line = BARE.replace('"system_data":{}', '"system_data":null').replace('"neuron_runtime_data":[]',
                                                                          '"neuron_runtime_data":null')
    report = loads_report(line)
    assert report.neuron_runtime_data == [] and report.system_data == SystemData()
    line = dumps_report(_report([_runtime(RuntimeReport(execution_stats=_stats(None)))]))
    assert loads_report(line).neuron_runtime_data[0].report.execution_stats.latency_stats.total_latency is None
    tree = json.loads(line)
    tree["neuron_runtime_data"][0]["report"] = None
    assert loads_report(json.dumps(tree)).neuron_runtime_data[0].report == RuntimeReport()


def test_unknown_keys_are_kept_and_written_back() -> None:
    future = json.loads(BARE)
    future["neuron_temperature"] = {"z": 1, "a": [0.5, None, True]}  # unknown object: its own order kept
    future["system_data"] = {"inference_stats": {"period": 1}, "memory_info": {
        "period": 1, "memory_total_bytes": 2, "memory_used_bytes": 1, "swap_total_bytes": 0, "swap_used_bytes": 0,
        "error": "", "memory_free_bytes": 1}}
    line = json.dumps(future, separators=(",", ":"))
    report = loads_report(line)
    assert report.model_extra == {"neuron_temperature": {"z": 1, "a": [0.5, None, True]}}
    assert report.system_data.memory_info.model_extra == {"memory_free_bytes": 1}
    assert loads_report(dumps_report(report)) == report
    assert dumps_report(report) == line  # unknown struct key last, unknown map key in sorted place


def test_loads_accepts_the_newline_that_ends_each_line() -> None:
    assert loads_report(BARE + "\n") == loads_report(BARE)


# --- documented examples that no real capture covers [DOC, reference §3.6] ------------------------


def test_trn2_documented_groups_parse() -> None:
    counters = NeuronCoreCounters.model_validate_json(
        '{"period": 1.000113182, "neuroncores_in_use": {"0": {"neuroncore_utilization": 42.01, "flops": 1234567891011,'
        ' "v3d": {"nc_v3.0": {"neuroncore_utilization": 21.01}, "nc_v3.1": {"neuroncore_utilization": 63.01}}}},'
        ' "error": ""}')
    assert counters.neuroncores_in_use["0"].v3d["nc_v3.1"].neuroncore_utilization == 63.01
    hardware = NeuronHardwareInfo.model_validate_json(
        '{"neuron_device_type": "trainium2", "neuron_device_version": "v4", "neuroncore_version": "v3d",'
        ' "neuron_device_count": 16, "neuron_device_memory_size": 103079215104, "neuroncore_per_device_count": 4,'
        ' "logical_neuroncore_config": 2, "error": ""}')
    assert hardware.model_extra == {} and hardware.logical_neuroncore_config == 2
    k8s = NeuronK8sInfo.model_validate_json(
        '{"period": 15.030359284, "neuroncores_k8s_info": {"0": {"pod_name": "p0", "namespace": "n0",'
        ' "container_name": ["c0"]}}, "neurondevices_k8s_info": {"0": {"pod_name": "p0", "namespace": "n0",'
        ' "container_name": ["c0"]}}, "error": ""}')
    line = dumps_report(_report().model_copy(update={"neuron_k8s_info": k8s}))
    assert line.endswith(',"neuron_k8s_info":{"period":15.030359284,"neuroncores_k8s_info":{"0":{"pod_name":"p0",'
                         '"namespace":"n0","container_name":["c0"]}},"neurondevices_k8s_info":{"0":{"pod_name":"p0",'
                         '"namespace":"n0","container_name":["c0"]}},"error":""}}')


# --- published schema ---------------------------------------------------------------------------


def _export_script():
    spec = importlib.util.spec_from_file_location("export_report_schema", ROOT / "scripts" / "export_report_schema.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_schema_is_current() -> None:
    assert _export_script().main(["--check"]) == 0


def test_schema_check_detects_a_stale_file(tmp_path: pathlib.Path) -> None:
    script, schema = _export_script(), tmp_path / "schema.json"
    assert script.main(["--check", "--output", str(schema)]) == 1
    schema.write_text("{}\n")
    assert script.main(["--check", "--output", str(schema)]) == 1
    assert script.main(["--output", str(schema)]) == 0
    assert script.main(["--check", "--output", str(schema)]) == 0
    assert json.loads(schema.read_text())["required"] == [
        "neuron_runtime_data", "system_data", "instance_info", "neuron_hardware_info"]
