"""The /metrics exposition against the reference's verbatim ones (neuron-tools.md §4.1).

The three expositions below are copied verbatim from the reference: a real inf1.xlarge companion
from Feb 2023 (a user's notes), the per-core memory families of a trn1n.32xlarge (AWS's CloudWatch
agent test fixtures, 2024) and `neuron_hardware_info` of an inf1.xlarge (Datadog's fixture, 2024).
Each test feeds the mapping reports that hold the values those expositions show, and compares the
text byte for byte, with these masks only:

* `*_created` samples: their value is the time the series was created; the rest of the line
  (name, labels) must match.
* prometheus_client's own families (python_gc_*, python_info, process_*): values belong to the
  process, HELP texts and python_info labels to the client and Python versions (the 2023 client said
  "Uncollectable object found during GC", today's says "objects"); only their names and types are
  compared.

Our exposition has more families than the 2023 one, and the test names each: the per-core memory
and `neuron_hardware_info` families the companion gained later, and our own additions.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

from prometheus_client import generate_latest

from neurontools.monitor.prometheus import PrometheusMapping, metrics_registry
from neurontools.monitor.report import Report

CAPTURES = Path(__file__).parent / "data" / "captures"

INF1_2023 = """\
# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 248.0
python_gc_objects_collected_total{generation="1"} 100.0
python_gc_objects_collected_total{generation="2"} 0.0
# HELP python_gc_objects_uncollectable_total Uncollectable object found during GC
# TYPE python_gc_objects_uncollectable_total counter
python_gc_objects_uncollectable_total{generation="0"} 0.0
python_gc_objects_uncollectable_total{generation="1"} 0.0
python_gc_objects_uncollectable_total{generation="2"} 0.0
# HELP python_gc_collections_total Number of times this generation was collected
# TYPE python_gc_collections_total counter
python_gc_collections_total{generation="0"} 42.0
python_gc_collections_total{generation="1"} 3.0
python_gc_collections_total{generation="2"} 0.0
# HELP python_info Python platform information
# TYPE python_info gauge
python_info{implementation="CPython",major="3",minor="7",patchlevel="16",version="3.7.16"} 1.0
# HELP process_virtual_memory_bytes Virtual memory size in bytes.
# TYPE process_virtual_memory_bytes gauge
process_virtual_memory_bytes 2.25394688e+08
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 2.0619264e+07
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1.67573580656e+09
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 0.06999999999999999
# HELP process_open_fds Number of open file descriptors.
# TYPE process_open_fds gauge
process_open_fds 6.0
# HELP process_max_fds Maximum number of open file descriptors.
# TYPE process_max_fds gauge
process_max_fds 1024.0
# HELP execution_errors_total Execution errors total
# TYPE execution_errors_total counter
execution_errors_total{availability_zone="us-east-2a",error_type="generic",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 0.0
execution_errors_total{availability_zone="us-east-2a",error_type="numerical",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 0.0
execution_errors_total{availability_zone="us-east-2a",error_type="transient",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 0.0
execution_errors_total{availability_zone="us-east-2a",error_type="model",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 0.0
execution_errors_total{availability_zone="us-east-2a",error_type="runtime",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 0.0
execution_errors_total{availability_zone="us-east-2a",error_type="hardware",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 0.0
# HELP execution_errors_created Execution errors total
# TYPE execution_errors_created gauge
execution_errors_created{availability_zone="us-east-2a",error_type="generic",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 1.6757358073695595e+09
execution_errors_created{availability_zone="us-east-2a",error_type="numerical",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 1.6757358073695862e+09
execution_errors_created{availability_zone="us-east-2a",error_type="transient",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 1.675735807369603e+09
execution_errors_created{availability_zone="us-east-2a",error_type="model",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 1.6757358073696237e+09
execution_errors_created{availability_zone="us-east-2a",error_type="runtime",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 1.6757358073696394e+09
execution_errors_created{availability_zone="us-east-2a",error_type="hardware",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 1.6757358073696558e+09
# HELP execution_status_total Execution status total
# TYPE execution_status_total counter
execution_status_total{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",status_type="completed",subnet_id="subnet-dd4589b6"} 2977.0
execution_status_total{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",status_type="completed_with_err",subnet_id="subnet-dd4589b6"} 0.0
execution_status_total{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",status_type="completed_with_num_err",subnet_id="subnet-dd4589b6"} 0.0
execution_status_total{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",status_type="timed_out",subnet_id="subnet-dd4589b6"} 0.0
execution_status_total{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",status_type="incorrect_input",subnet_id="subnet-dd4589b6"} 0.0
execution_status_total{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",status_type="failed_to_queue",subnet_id="subnet-dd4589b6"} 0.0
# HELP execution_status_created Execution status total
# TYPE execution_status_created gauge
execution_status_created{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",status_type="completed",subnet_id="subnet-dd4589b6"} 1.675735807369699e+09
execution_status_created{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",status_type="completed_with_err",subnet_id="subnet-dd4589b6"} 1.675735807369714e+09
execution_status_created{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",status_type="completed_with_num_err",subnet_id="subnet-dd4589b6"} 1.6757358073697314e+09
execution_status_created{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",status_type="timed_out",subnet_id="subnet-dd4589b6"} 1.6757358073697498e+09
execution_status_created{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",status_type="incorrect_input",subnet_id="subnet-dd4589b6"} 1.6757358073697636e+09
execution_status_created{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",status_type="failed_to_queue",subnet_id="subnet-dd4589b6"} 1.6757358073697774e+09
# HELP execution_latency_seconds Execution latency in seconds
# TYPE execution_latency_seconds gauge
execution_latency_seconds{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",percentile="p0",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 0.003222942352294922
execution_latency_seconds{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",percentile="p1",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 0.0032320022583007812
execution_latency_seconds{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",percentile="p100",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 0.004114866256713867
execution_latency_seconds{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",percentile="p25",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 0.003286123275756836
execution_latency_seconds{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",percentile="p50",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 0.0033063888549804688
execution_latency_seconds{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",percentile="p75",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 0.0033516883850097656
execution_latency_seconds{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",percentile="p99",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 0.0035369396209716797
# HELP neuron_runtime_memory_used_bytes Runtime memory used bytes
# TYPE neuron_runtime_memory_used_bytes gauge
neuron_runtime_memory_used_bytes{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",memory_location="host",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 1.127288832e+09
neuron_runtime_memory_used_bytes{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",memory_location="neuron_device",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 6.3118912e+07
# HELP neuron_runtime_vcpu_usage_ratio Runtime vCPU utilization ratio
# TYPE neuron_runtime_vcpu_usage_ratio gauge
neuron_runtime_vcpu_usage_ratio{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6",usage_type="user"} 0.0365
neuron_runtime_vcpu_usage_ratio{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6",usage_type="system"} 0.0231
# HELP neuroncore_utilization_ratio NeuronCore utilization ratio
# TYPE neuroncore_utilization_ratio gauge
neuroncore_utilization_ratio{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",neuroncore="0",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 0.8633101879976985
neuroncore_utilization_ratio{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",neuroncore="1",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 0.0
neuroncore_utilization_ratio{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",neuroncore="2",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 0.0
neuroncore_utilization_ratio{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",neuroncore="3",region="us-east-2",runtime_tag="15439",subnet_id="subnet-dd4589b6"} 0.0
# HELP system_memory_total_bytes System memory total_bytes bytes
# TYPE system_memory_total_bytes gauge
system_memory_total_bytes{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",subnet_id="subnet-dd4589b6"} 8.033951744e+09
# HELP system_memory_used_bytes System memory used_bytes bytes
# TYPE system_memory_used_bytes gauge
system_memory_used_bytes{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",subnet_id="subnet-dd4589b6"} 7.090806784e+09
# HELP system_swap_total_bytes System swap total_bytes bytes
# TYPE system_swap_total_bytes gauge
system_swap_total_bytes{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",subnet_id="subnet-dd4589b6"} 0.0
# HELP system_swap_used_bytes System swap used_bytes bytes
# TYPE system_swap_used_bytes gauge
system_swap_used_bytes{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",subnet_id="subnet-dd4589b6"} 0.0
# HELP hardware_ecc_events_total Hardware ecc events total
# TYPE hardware_ecc_events_total counter
hardware_ecc_events_total{availability_zone="us-east-2a",event_type="mem_ecc_corrected",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",neuron_device_index="0",region="us-east-2",subnet_id="subnet-dd4589b6"} 0.0
hardware_ecc_events_total{availability_zone="us-east-2a",event_type="mem_ecc_uncorrected",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",neuron_device_index="0",region="us-east-2",subnet_id="subnet-dd4589b6"} 0.0
hardware_ecc_events_total{availability_zone="us-east-2a",event_type="sram_ecc_corrected",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",neuron_device_index="0",region="us-east-2",subnet_id="subnet-dd4589b6"} 0.0
hardware_ecc_events_total{availability_zone="us-east-2a",event_type="sram_ecc_uncorrected",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",neuron_device_index="0",region="us-east-2",subnet_id="subnet-dd4589b6"} 0.0
# HELP hardware_ecc_events_created Hardware ecc events total
# TYPE hardware_ecc_events_created gauge
hardware_ecc_events_created{availability_zone="us-east-2a",event_type="mem_ecc_corrected",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",neuron_device_index="0",region="us-east-2",subnet_id="subnet-dd4589b6"} 1.6757358073704762e+09
hardware_ecc_events_created{availability_zone="us-east-2a",event_type="mem_ecc_uncorrected",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",neuron_device_index="0",region="us-east-2",subnet_id="subnet-dd4589b6"} 1.6757358073704946e+09
hardware_ecc_events_created{availability_zone="us-east-2a",event_type="sram_ecc_corrected",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",neuron_device_index="0",region="us-east-2",subnet_id="subnet-dd4589b6"} 1.6757358073705146e+09
hardware_ecc_events_created{availability_zone="us-east-2a",event_type="sram_ecc_uncorrected",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",neuron_device_index="0",region="us-east-2",subnet_id="subnet-dd4589b6"} 1.6757358073705287e+09
# HELP system_vcpu_count System vCPU count
# TYPE system_vcpu_count gauge
system_vcpu_count{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",subnet_id="subnet-dd4589b6"} 4.0
# HELP system_vcpu_usage_ratio System CPU utilization ratio
# TYPE system_vcpu_usage_ratio gauge
system_vcpu_usage_ratio{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",subnet_id="subnet-dd4589b6",usage_type="user"} 0.2798
system_vcpu_usage_ratio{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",subnet_id="subnet-dd4589b6",usage_type="system"} 0.029300000000000003
# HELP instance_info EC2 instance information
# TYPE instance_info gauge
instance_info{availability_zone="us-east-2a",instance_id="i-0823d657f57057590",instance_name="",instance_type="inf1.xlarge",region="us-east-2",subnet_id="subnet-dd4589b6"} 1.0
"""

TRN1N_2024_CORE_MEMORY = """\
# HELP neuroncore_memory_usage_constants NeuronCore memory utilization for constants
# TYPE neuroncore_memory_usage_constants gauge
neuroncore_memory_usage_constants{availability_zone="us-east-1c",instance_id="i-09db9b55e0095612f",instance_name="",instance_type="trn1n.32xlarge",memory_location="None",neuroncore="0",region="us-east-1",runtime_tag="367",subnet_id="subnet-06a7754948e8a000f"} 0.0
# HELP neuroncore_memory_usage_model_code NeuronCore memory utilization for model_code
# TYPE neuroncore_memory_usage_model_code gauge
neuroncore_memory_usage_model_code{availability_zone="us-east-1c",instance_id="i-09db9b55e0095612f",instance_name="",instance_type="trn1n.32xlarge",memory_location="None",neuroncore="0",region="us-east-1",runtime_tag="367",subnet_id="subnet-06a7754948e8a000f"} 1.00752896e+08
# HELP neuroncore_memory_usage_model_shared_scratchpad NeuronCore memory utilization for model_shared_scratchpad
# TYPE neuroncore_memory_usage_model_shared_scratchpad gauge
neuroncore_memory_usage_model_shared_scratchpad{availability_zone="us-east-1c",instance_id="i-09db9b55e0095612f",instance_name="",instance_type="trn1n.32xlarge",memory_location="None",neuroncore="0",region="us-east-1",runtime_tag="367",subnet_id="subnet-06a7754948e8a000f"} 0.0
# HELP neuroncore_memory_usage_runtime_memory NeuronCore memory utilization for runtime_memory
# TYPE neuroncore_memory_usage_runtime_memory gauge
neuroncore_memory_usage_runtime_memory{availability_zone="us-east-1c",instance_id="i-09db9b55e0095612f",instance_name="",instance_type="trn1n.32xlarge",memory_location="None",neuroncore="0",region="us-east-1",runtime_tag="367",subnet_id="subnet-06a7754948e8a000f"} 0.0
# HELP neuroncore_memory_usage_tensors NeuronCore memory utilization for tensors
# TYPE neuroncore_memory_usage_tensors gauge
neuroncore_memory_usage_tensors{availability_zone="us-east-1c",instance_id="i-09db9b55e0095612f",instance_name="",instance_type="trn1n.32xlarge",memory_location="None",neuroncore="0",region="us-east-1",runtime_tag="367",subnet_id="subnet-06a7754948e8a000f"} 6.315872e+06
"""

INF1_2024_HARDWARE_INFO = """\
# HELP neuron_hardware_info Neuron Hardware Information
# TYPE neuron_hardware_info gauge
neuron_hardware_info{availability_zone="eu-north-1a",instance_id="i-022af70542e30e040",instance_name="",instance_type="inf1.xlarge",neuron_device_count="1",neuron_device_memory_size="8589934592",neuroncore_per_device_count="4",region="eu-north-1",subnet_id="subnet-2677974f"} 1.0
"""

# Families the 2023 companion did not have yet: they came with later tools (§4.1).
LATER_COMPANION_FAMILIES = {
    "neuroncore_memory_usage_constants",
    "neuroncore_memory_usage_model_code",
    "neuroncore_memory_usage_model_shared_scratchpad",
    "neuroncore_memory_usage_runtime_memory",
    "neuroncore_memory_usage_tensors",
    "neuron_hardware_info",
}
# Ours, documented in docs/exporters.md.
OUR_FAMILIES = {
    "neuroncore_device_info",
    "neuron_monitor_group_success",
    "neuron_monitor_up",
    "neuron_monitor_report_age_seconds",
    "neuron_monitor_reports_total",
    "neuron_monitor_reports_created",
    "neuron_monitor_rejected_lines_total",
    "neuron_monitor_rejected_lines_created",
    "neuron_monitor_scrape_duration_seconds",
}
CLIENT_FAMILY = re.compile(r"python_|process_")
CREATED_SAMPLE = re.compile(r"^(\w+_created(?:\{.*\})?) \S+$")


def families(exposition: str) -> dict[str, list[str]]:
    """Family name -> its lines (HELP, TYPE, samples), in exposition order."""
    out: dict[str, list[str]] = {}
    lines: list[str] = []
    for line in exposition.splitlines():
        if line.startswith("# HELP "):
            lines = out.setdefault(line.split()[2], [])
        lines.append(line)
    return out


def masked(name: str, lines: list[str]) -> list[str]:
    if CLIENT_FAMILY.match(name):
        return [lines[1]]  # the TYPE line: the rest belongs to the process and the client version
    return [CREATED_SAMPLE.sub(r"\1 <creation time>", line) for line in lines]


def exposition(*reports: Report) -> str:
    mapping = PrometheusMapping()
    registry = metrics_registry(mapping)
    for report in reports:
        mapping.update(report)
    return generate_latest(registry).decode()


def capture(name: str) -> dict:
    return json.loads((CAPTURES / name).read_text())


def test_inf1_2023_exposition_is_the_companions_byte_for_byte():
    # The capture is the same instance and application as the exposition, some time earlier:
    # feed it, then a report whose period counts bring the totals to the exposition's.
    first = capture("inf1-xlarge-one-app-2023.json")
    later = copy.deepcopy(first)
    report = later["neuron_runtime_data"][0]["report"]
    report["execution_stats"]["execution_summary"]["completed"] = 2977 - 14
    report["execution_stats"]["latency_stats"]["total_latency"] = {
        "p0": 0.003222942352294922, "p1": 0.0032320022583007812, "p100": 0.004114866256713867,
        "p25": 0.003286123275756836, "p50": 0.0033063888549804688, "p75": 0.0033516883850097656,
        "p99": 0.0035369396209716797,
    }
    report["memory_used"]["neuron_runtime_used_bytes"].update(host=1127288832, neuron_device=63118912)
    report["neuron_runtime_vcpu_usage"]["vcpu_usage"] = {"user": 3.65, "system": 2.31}
    report["neuroncore_counters"]["neuroncores_in_use"]["0"]["neuroncore_utilization"] = 86.33101879976985
    later["system_data"]["memory_info"]["memory_used_bytes"] = 7090806784
    later["system_data"]["vcpu_usage"]["average_usage"].update(user=27.98, nice=0, system=2.93)
    assert first["neuron_runtime_data"][0]["report"]["execution_stats"]["execution_summary"]["completed"] == 14

    ours = families(exposition(Report.model_validate(first), Report.model_validate(later)))
    theirs = families(INF1_2023)

    assert [name for name in ours if name in theirs] == list(theirs)
    for name, lines in theirs.items():
        assert masked(name, ours[name]) == masked(name, lines), name
    assert set(ours) - set(theirs) == LATER_COMPANION_FAMILIES | OUR_FAMILIES
    # The later families sit where the newer companion creates them.
    names = list(ours)
    assert names.index("neuroncore_memory_usage_constants") == names.index("neuron_runtime_memory_used_bytes") + 1
    assert names.index("neuron_hardware_info") == names.index("instance_info") + 1


def test_trn1n_core_memory_families_are_the_companions_byte_for_byte():
    data = capture("inf1-xlarge-one-app-2023.json")
    data["instance_info"].update(
        instance_name="", instance_id="i-09db9b55e0095612f", instance_type="trn1n.32xlarge",
        instance_availability_zone="us-east-1c", instance_region="us-east-1", subnet_id="subnet-06a7754948e8a000f")
    runtime = data["neuron_runtime_data"][0]
    runtime["neuron_runtime_tag"] = "367"
    runtime["report"]["memory_used"]["neuron_runtime_used_bytes"]["usage_breakdown"]["neuroncore_memory_usage"] = {
        "0": {"constants": 0, "model_code": 100752896, "model_shared_scratchpad": 0, "runtime_memory": 0,
              "tensors": 6315872},
    }

    ours = families(exposition(Report.model_validate(data)))

    for name, lines in families(TRN1N_2024_CORE_MEMORY).items():
        assert ours[name] == lines, name


def test_neuron_hardware_info_is_the_companions_byte_for_byte():
    data = capture("inf1-xlarge-idle-2023.json")
    data["instance_info"].update(
        instance_name="", instance_id="i-022af70542e30e040", instance_type="inf1.xlarge",
        instance_availability_zone="eu-north-1a", instance_region="eu-north-1", subnet_id="subnet-2677974f")
    data["neuron_hardware_info"] = {
        "neuron_device_count": 1, "neuron_device_memory_size": 8589934592, "neuroncore_per_device_count": 4,
        "error": ""}

    ours = families(exposition(Report.model_validate(data)))

    assert ours["neuron_hardware_info"] == families(INF1_2024_HARDWARE_INFO)["neuron_hardware_info"]


def test_idle_node_exposes_system_ecc_and_identity_families_only():
    # §4.1: with no Neuron application, no execution_*, neuron_runtime_* or neuroncore_* family.
    ours = families(exposition(Report.model_validate(capture("inf1-xlarge-idle-2023.json"))))

    neuron_families = {name for name in ours if not CLIENT_FAMILY.match(name)} - OUR_FAMILIES
    assert neuron_families == {
        "system_memory_total_bytes", "system_memory_used_bytes", "system_swap_total_bytes", "system_swap_used_bytes",
        "hardware_ecc_events_total", "hardware_ecc_events_created", "system_vcpu_count", "system_vcpu_usage_ratio",
        "instance_info", "neuron_hardware_info",
    }
    assert "neuron_monitor_group_success" in ours
