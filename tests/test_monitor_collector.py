"""neuron-monitor's collector: per-period values from pairs of hand-made snapshots, and the
schedule, runtime discovery and daemon outages of the Collector driven by a fake clock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from neurontools._proto import neurond_pb2 as pb
from neurontools.client import DaemonUnavailable, Device
from neurontools.latency_histogram import LatencyHistogram
from neurontools.monitor.collector import (Collector, IndexedSnapshot, execution_stats, latency_percentiles,
                                           memory_used, neuron_hw_counters, neuroncore_counters)
from neurontools.monitor.config import MonitorConfig, default_config, parse_config
from neurontools.monitor.report_json import dumps_report, loads_report
from neurontools.monitor.system_metrics import CpuSample, CpuTimes, MemoryReading, ProcessCpuSample

S = 1_000_000_000  # ns per second
DAEMON_START = 1_700_000_000 * S


# --- hand-made snapshots -----------------------------------------------------------------------


def histogram(*latencies_ns: int) -> pb.Histogram:
    recorded = LatencyHistogram()
    for value in latencies_ns:
        recorded.record(value)
    message = pb.Histogram()
    recorded.fill(message)
    return message


def session(session_id: int, pid: int, cores: list[int], *, tag: str = "", completed: int = 0,
            timed_out: int = 0, transient: int = 0, total_ns: tuple[int, ...] = (),
            device_ns: tuple[int, ...] = ()) -> pb.SessionInfo:
    info = pb.SessionInfo(session_id=session_id, pid=pid, tag=tag or str(pid), core_ids=cores)
    info.stats.executions.completed = completed
    info.stats.executions.timed_out = timed_out
    info.stats.errors.transient = transient
    info.stats.total_latency.CopyFrom(histogram(*total_ns))
    info.stats.device_latency.CopyFrom(histogram(*device_ns))
    return info


def snapshot(at_seconds: float, *, sessions: tuple[pb.SessionInfo, ...] = (),
             busy: dict[int, tuple[int, float, int]] | None = None, cores: int = 4,
             ecc: dict[int, int] | None = None, start: int = DAEMON_START) -> pb.Snapshot:
    """An inf2.24xlarge-like machine cut to `cores` cores; busy: core -> (owner, occupied s, flops)."""
    snap = pb.Snapshot(monotonic_ns=int(at_seconds * S), daemon_start_unix_ns=start)
    snap.topology.instance.MergeFrom(pb.InstanceInfo(
        instance_id="i-0123456789abcdef0", instance_type="inf2.24xlarge", availability_zone="us-east-2a",
        availability_zone_id="use2-az1", region="us-east-2", ami_id="ami-0fb6331b778d7fbf9",
        subnet_id="subnet-001b92984720c7328"))
    snap.topology.hardware.MergeFrom(pb.HardwareInfo(
        neuron_device_type="inferentia2", neuron_device_version="v3", neuroncore_version="v2",
        neuroncore_per_device_count=2, neuron_device_memory_size=34359738368, logical_neuroncore_config=1))
    for device in range(cores // 2):
        snap.topology.devices.add(index=device, core_ids=[2 * device, 2 * device + 1])
        snap.devices.add(device_index=device, mem_ecc_corrected=(ecc or {}).get(device, 0))
    for core in range(cores):
        owner, occupied, flops = (busy or {}).get(core, (0, 0.0, 0))
        snap.cores.add(core_id=core, device_index=core // 2, owner_session_id=owner,
                       occupied_ns=int(occupied * S), flops=flops)
    snap.sessions.extend(sessions)
    return snap


def indexed(*args, **kwargs) -> IndexedSnapshot:
    return IndexedSnapshot(snapshot(*args, **kwargs))


# --- group arithmetic --------------------------------------------------------------------------


def test_utilization_and_flops_are_rates_over_the_period_on_owned_cores_only():
    app = session(1, 4242, [1, 2])
    older = indexed(10.0, sessions=(app,), busy={1: (1, 3.0, 10**12), 2: (1, 3.0, 0), 3: (2, 1.0, 0)})
    newer = indexed(12.0, sessions=(app,), busy={1: (1, 4.5, 3 * 10**12), 2: (1, 3.0, 0), 3: (2, 3.0, 0)})
    counters = neuroncore_counters(newer, older, app)
    assert counters.period == 2.0 and counters.error == ""
    cores = counters.neuroncores_in_use
    assert list(cores) == ["0", "1", "2", "3"]  # every core of the machine, owned or not
    assert cores["1"].neuroncore_utilization == 75.0  # 1.5 s busy in 2 s
    assert cores["1"].flops == cores["1"].effective_flops == 10**12  # 2e12 FLOPs in 2 s
    assert cores["2"].neuroncore_utilization == 0.0 and cores["2"].flops == 0  # owned, idle
    assert cores["3"].neuroncore_utilization == 0.0  # busy, but another runtime's core
    assert cores["0"].model_dump() == {"neuroncore_utilization": 0.0, "flops": 0, "effective_flops": 0,
                                       "v3d": None}


def test_execution_counts_are_per_period_not_running_totals():
    older = session(1, 4242, [0], completed=100, timed_out=2, transient=2)
    newer = session(1, 4242, [0], completed=130, timed_out=3, transient=3)
    stats = execution_stats(newer, older, period=1.5)
    assert stats.period == 1.5
    assert stats.execution_summary.model_dump() == {
        "completed": 30, "completed_with_err": 0, "completed_with_num_err": 0, "timed_out": 1,
        "incorrect_input": 0, "failed_to_queue": 0}
    assert stats.error_summary.model_dump() == {
        "generic": 0, "numerical": 0, "transient": 1, "model": 0, "runtime": 0, "hardware": 0}


def test_a_session_without_a_baseline_counts_from_when_it_opened():
    stats = execution_stats(session(7, 1, [0], completed=5, total_ns=(2_000_000,) * 5), None, period=0.5)
    assert stats.execution_summary.completed == 5
    assert stats.latency_stats.total_latency is not None


def test_latency_percentiles_cover_only_the_periods_executions_in_seconds():
    before = (1_000_000,) * 100  # 1 ms, before the period: must not count
    during = (2_000_000,) * 98 + (5_000_000, 10_000_000)
    older = session(1, 1, [0], completed=100, total_ns=before)
    newer = session(1, 1, [0], completed=200, total_ns=before + during)
    total = execution_stats(newer, older, 1.0).latency_stats.total_latency
    assert total is not None
    values = total.model_dump()
    assert list(values) == ["p0", "p1", "p25", "p50", "p75", "p99", "p100"]
    for key in ("p0", "p1", "p25", "p50", "p75"):
        assert values[key] == pytest.approx(0.002, rel=0.01)
    assert values["p99"] == pytest.approx(0.005, rel=0.01)
    assert values["p100"] == pytest.approx(0.010, rel=0.01)


def test_latency_is_null_when_nothing_ran_in_the_period():
    same = session(1, 1, [0], completed=3, total_ns=(1_000_000,) * 3, device_ns=(900_000,) * 3)
    stats = execution_stats(same, same, 1.0)
    assert stats.latency_stats.total_latency is None and stats.latency_stats.device_latency is None
    assert latency_percentiles(pb.Histogram(), None) is None
    assert '"latency_stats":{"total_latency":null,"device_latency":null}' in _encoded_group(stats)


def _encoded_group(group) -> str:
    report = loads_report('{"neuron_runtime_data":[],"system_data":{},"instance_info":{"instance_name":"",'
                          '"instance_id":"","instance_type":"","instance_availability_zone":"",'
                          '"instance_availability_zone_id":"","instance_region":"","ami_id":"","subnet_id":"",'
                          '"error":""},"neuron_hardware_info":{"neuron_device_count":0,'
                          '"neuroncore_per_device_count":0,"error":""}}')
    data = report.model_copy(update={"neuron_runtime_data": [
        {"pid": 1, "neuron_runtime_tag": "1", "error": "", "report": {"execution_stats": group}}]})
    return dumps_report(data)


def _usage(category: int, used: int) -> pb.MemoryUsage:
    return pb.MemoryUsage(category=category, used_bytes=used, peak_bytes=used)


def test_memory_used_totals_every_category_and_breaks_down_the_tools_own():
    app = session(3, 99, [2, 3])
    app.host_memory.extend([_usage(pb.APPLICATION_MEMORY, 64 << 20), _usage(pb.DMA_BUFFERS, 16 << 20),
                            _usage(pb.TENSORS, 4096)])
    app.core_memory.add(core_id=2, memory=[_usage(pb.TENSORS, 1000), _usage(pb.CONSTANTS, 2000),
                                           _usage(pb.MODEL_CODE, 300), _usage(pb.MODEL_SHARED_SCRATCHPAD, 40),
                                           _usage(pb.RUNTIME_MEMORY, 5), _usage(pb.DMA_RINGS, 70000)])
    app.core_memory.add(core_id=3)  # held, nothing allocated: listed with zeros
    snap = snapshot(5.0, sessions=(app,))
    model = snap.models.add(model_id=10001, uuid="a" * 32, name="bert.neff", session_id=3, is_running=True)
    model.subgraphs.add(name="sg_00", core_id=2, device_index=1,
                        device_memory=[_usage(pb.CONSTANTS, 2000), _usage(pb.MODEL_CODE, 300),
                                       _usage(pb.DMA_RINGS, 7)],
                        host_memory=[_usage(pb.DMA_BUFFERS, 1 << 20)])
    snap.models.add(model_id=10002, uuid="b" * 32, name="other-session", session_id=4)
    used = memory_used(IndexedSnapshot(snap), app, period=1.25)
    runtime = used.neuron_runtime_used_bytes
    assert runtime.host == (64 << 20) + (16 << 20) + 4096
    assert runtime.neuron_device == 1000 + 2000 + 300 + 40 + 5 + 70000  # DMA rings in the total only
    assert runtime.usage_breakdown.host.model_dump() == {
        "application_memory": 64 << 20, "constants": 0, "dma_buffers": 16 << 20, "tensors": 4096}
    per_core = runtime.usage_breakdown.neuroncore_memory_usage
    assert list(per_core) == ["2", "3"]
    assert per_core["2"].model_dump() == {"constants": 2000, "model_code": 300, "model_shared_scratchpad": 40,
                                          "runtime_memory": 5, "tensors": 1000}
    assert set(per_core["3"].model_dump().values()) == {0}
    [loaded] = used.loaded_models  # only this session's models
    assert (loaded.name, loaded.model_id, loaded.is_running) == ("bert.neff", 10001, True)
    sg = loaded.subgraphs["sg_00"]
    assert (sg.neuroncore_index, sg.neuron_device_index, sg.v2) == (2, 1, "nc_v2.2")
    assert sg.memory_used_bytes.neuron_device == 2307 and sg.memory_used_bytes.host == 1 << 20
    assert sg.memory_used_bytes.usage_breakdown.neuron_device.model_dump() == {
        "constants": 2000, "model_code": 300, "runtime_memory": 0, "tensors": 0}


def test_ecc_events_are_counted_per_period():
    older, newer = indexed(1.0, ecc={0: 3}), indexed(3.0, ecc={0: 5, 1: 1})
    counters = neuron_hw_counters(newer, older)
    assert counters.period == 2.0
    assert [(d.neuron_device_index, d.mem_ecc_corrected) for d in counters.neuron_devices] == [(0, 2), (1, 1)]


# --- the Collector -----------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeDaemon:
    """Hands out the snapshot set for the current moment; counts the calls."""

    def __init__(self) -> None:
        self.snapshot: pb.Snapshot | None = None
        self.calls = 0

    def __call__(self) -> pb.Snapshot:
        self.calls += 1
        if self.snapshot is None:
            raise DaemonUnavailable("cannot reach neurond at unix:///tmp/test.sock: start it with 'neurond'")
        return self.snapshot


class FakeSystem:
    cpu_count = 4

    def __init__(self) -> None:
        self.alive: set[int] = set()
        self.ticks = 0
        self.process_reads: list[int] = []

    def cpu(self) -> CpuSample:
        self.ticks += 1
        times = CpuTimes(self.ticks, 0, 0, self.ticks, 0, 0, 0, 2 * self.ticks)
        return CpuSample(at_ns=self.ticks * S, average=times, per_cpu=(times, times), context_switches=self.ticks)

    def memory(self) -> MemoryReading:
        return MemoryReading(total=16 << 30, used=4 << 30, swap_total=0, swap_used=0)

    def process_cpu(self, pid: int) -> ProcessCpuSample:
        self.process_reads.append(pid)
        if pid not in self.alive:
            return ProcessCpuSample(0, error=f"open /proc/{pid}/stat: no such file or directory")
        self.ticks += 1
        return ProcessCpuSample(self.ticks * S, user=0.5 * self.ticks, system=0.0)

    def forget(self, pid: int) -> None:
        pass

    def process_exists(self, pid: int) -> bool:
        return pid in self.alive


@pytest.fixture
def rig():
    clock, daemon, system = FakeClock(), FakeDaemon(), FakeSystem()

    def make(config: MonitorConfig) -> Collector:
        return Collector(config, daemon, system, clock)

    return make, clock, daemon, system


def _config(text: str) -> MonitorConfig:
    return parse_config(text, "test.conf")


def test_first_report_is_measured_right_away_from_two_snapshots(rig):
    make, clock, daemon, system = rig
    app = session(1, 500, [0], completed=10)
    daemon.snapshot = snapshot(50.0, sessions=(app,), busy={0: (1, 10.0, 0)})
    collector = make(default_config())
    report = collector.collect()
    assert daemon.calls == 2  # baseline, then the measurement
    [runtime] = report.neuron_runtime_data
    assert (runtime.pid, runtime.neuron_runtime_tag, runtime.error) == (500, "500", "")
    assert set(type(runtime.report).model_fields) == set(runtime.report.model_dump(exclude_none=True))
    assert runtime.report.execution_stats.execution_summary.completed == 0  # nothing new between the two
    assert runtime.report.neuroncore_counters.period == 0.0
    assert report.neuron_hardware_info.neuron_device_type == "inferentia2"
    assert report.neuron_hardware_info.neuron_device_count == 2 and report.neuron_hardware_info.error == ""
    assert report.instance_info.instance_id == "i-0123456789abcdef0" and report.instance_info.error == ""
    assert set(report.system_data.model_dump(exclude_none=True)) == {"memory_info", "neuron_hw_counters",
                                                                     "vcpu_usage"}
    assert collector.next_due() == clock.now + 5.0


def test_groups_with_different_periods_refresh_on_their_own_schedule(rig):
    make, clock, daemon, system = rig
    daemon.snapshot = snapshot(1.0)
    collector = make(_config('{"period": "1s", "system_metrics": [{"type": "memory_info"},'
                             '{"type": "neuron_hw_counters", "period": "2s"}]}'))
    first = collector.collect()
    calls = daemon.calls
    clock.now += 1.0
    assert collector.next_due() == clock.now
    daemon.snapshot = snapshot(2.0)
    second = collector.collect()
    assert daemon.calls == calls  # only memory_info was due: no snapshot taken
    assert second.system_data.neuron_hw_counters is first.system_data.neuron_hw_counters  # last known value
    assert second.system_data.memory_info is not first.system_data.memory_info
    clock.now += 1.0
    daemon.snapshot = snapshot(3.0, ecc={0: 4})
    third = collector.collect()
    assert daemon.calls == calls + 1  # one snapshot for the tick, however many groups need it
    assert third.system_data.neuron_hw_counters.period == 2.0  # measured on the daemon's clock
    assert third.system_data.neuron_hw_counters.neuron_devices[0].mem_ecc_corrected == 4


def test_late_wake_ups_neither_split_groups_apart_nor_pile_up(rig):
    make, clock, daemon, system = rig
    daemon.snapshot = snapshot(1.0)
    collector = make(_config('{"period": "1s", "system_metrics": [{"type": "memory_info"},'
                             '{"type": "neuron_hw_counters", "period": "3s"}]}'))
    start = clock.now
    reports = [collector.collect()]
    for _ in range(6):
        clock.now = collector.next_due() + 0.03  # every wake-up 30 ms late
        reports.append(collector.collect())
    assert collector.next_due() == pytest.approx(start + 7.0)  # still on the first tick's grid
    hardware = [report.system_data.neuron_hw_counters for report in reports]
    refreshed = [index for index in range(1, 7) if hardware[index] is not hardware[index - 1]]
    assert refreshed == [3, 6]  # always with the 1 s group, never on a line of its own
    clock.now += 3.5  # a tick 3.5 s late: the missed slots are skipped, not caught up on
    collector.collect()
    assert collector.next_due() == pytest.approx(start + 10.0)


def test_counts_between_ticks_are_the_periods_own(rig):
    make, clock, daemon, system = rig
    daemon.snapshot = snapshot(10.0, sessions=(session(1, 500, [0], completed=10),))
    collector = make(_config('{"neuron_runtimes": [{"metrics": [{"type": "execution_stats"},'
                             '{"type": "neuroncore_counters"}]}]}'))
    collector.collect()
    clock.now += 5.0
    daemon.snapshot = snapshot(15.0, sessions=(session(1, 500, [0], completed=60, total_ns=(10**6,) * 50),),
                               busy={0: (1, 2.5, 5 * 10**12)})
    runtime = collector.collect().neuron_runtime_data[0].report
    assert runtime.execution_stats.execution_summary.completed == 50
    assert runtime.execution_stats.period == 5.0
    assert runtime.neuroncore_counters.neuroncores_in_use["0"].neuroncore_utilization == 50.0
    assert runtime.neuroncore_counters.neuroncores_in_use["0"].flops == 10**12


def test_memory_is_rebuilt_when_it_changes_and_reused_while_it_does_not(rig):
    make, clock, daemon, system = rig

    def app(tensors: int, running: bool) -> pb.Snapshot:
        info = session(1, 500, [0])
        info.core_memory.add(core_id=0, memory=[_usage(pb.TENSORS, tensors)])
        snap = snapshot(clock.now, sessions=(info,))
        model = snap.models.add(model_id=10001, uuid="c" * 32, name="m", session_id=1, is_running=running)
        model.subgraphs.add(name="sg_00", core_id=0, device_memory=[_usage(pb.MODEL_CODE, 64)])
        model.executions = int(clock.now)  # changes every tick, and is not part of the report
        return snap

    collector = make(_config('{"neuron_runtimes": [{"metrics": [{"type": "memory_used"}]}]}'))
    daemon.snapshot = app(1000, False)
    first = collector.collect().neuron_runtime_data[0].report.memory_used
    # A model that starts running (as with every execution) changes its flag, not its memory.
    for tensors, running, changed in ((1000, False, False), (5000, False, True), (5000, True, False)):
        clock.now += 5.0
        daemon.snapshot = app(tensors, running)
        used = collector.collect().neuron_runtime_data[0].report.memory_used
        assert used.period == 5.0
        assert used.neuron_runtime_used_bytes.neuron_device == tensors
        assert used.loaded_models[0].is_running is running
        assert (used.neuron_runtime_used_bytes is first.neuron_runtime_used_bytes) is not changed
        assert (used.loaded_models[0].subgraphs["sg_00"] is first.loaded_models[0].subgraphs["sg_00"]) is not changed
        first = used
    assert loads_report(dumps_report(collector.collect())).neuron_runtime_data[0].report.memory_used == used


def test_tag_filter_selects_runtimes_and_the_first_matching_entry_decides_their_groups(rig):
    make, clock, daemon, system = rig
    daemon.snapshot = snapshot(1.0, sessions=(session(1, 11, [0], tag="web-frontend"),
                                              session(2, 12, [1], tag="batch-7"),
                                              session(3, 13, [2])))
    collector = make(_config('{"neuron_runtimes": ['
                             '{"tag_filter": "^web", "metrics": [{"type": "memory_used"}]},'
                             '{"tag_filter": "[0-9]$", "metrics": [{"type": "execution_stats"}]}]}'))
    report = collector.collect()
    listed = {r.neuron_runtime_tag: set(r.report.model_dump(exclude_none=True)) for r in report.neuron_runtime_data}
    # "13" (no tag: the pid) also ends in a digit; Go's MatchString finds a match anywhere
    assert listed == {"web-frontend": {"memory_used"}, "batch-7": {"execution_stats"}, "13": {"execution_stats"}}


def test_a_runtime_whose_process_died_reports_the_error_once_then_disappears(rig):
    make, clock, daemon, system = rig
    system.alive = {500, 600}
    daemon.snapshot = snapshot(1.0, sessions=(session(1, 500, [0]), session(2, 600, [1])))
    collector = make(default_config())
    assert len(collector.collect().neuron_runtime_data) == 2
    system.alive = {600}  # 500 died; 600 only closed its runtime
    clock.now += 5.0
    daemon.snapshot = snapshot(6.0)
    report = collector.collect()
    [gone] = report.neuron_runtime_data
    assert (gone.pid, gone.neuron_runtime_tag) == (500, "500")
    assert gone.error == "open /proc/500/stat: no such file or directory"
    assert '"report":{}' in dumps_report(report)
    clock.now += 5.0
    assert collector.collect().neuron_runtime_data == []


def test_runtime_vcpu_usage_of_an_invisible_process_reports_the_go_error(rig):
    make, clock, daemon, system = rig
    daemon.snapshot = snapshot(1.0, sessions=(session(1, 784315, [0]),))
    report = make(default_config()).collect()
    vcpu = report.neuron_runtime_data[0].report.neuron_runtime_vcpu_usage
    assert vcpu.error == "open /proc/784315/stat: no such file or directory"
    assert (vcpu.vcpu_usage.user, vcpu.vcpu_usage.system) == (0.0, 0.0)
    assert report.neuron_runtime_data[0].error == ""  # the runtime itself is fine


def test_runtimes_of_one_process_read_its_cpu_times_once_per_tick(rig):
    make, clock, daemon, system = rig
    system.alive = {500, 600}
    three = (session(1, 500, [0]), session(2, 600, [1]), session(3, 500, [2]))  # pid 500 opened two runtimes
    daemon.snapshot = snapshot(1.0, sessions=three[:2])
    collector = make(_config('{"period": "1s", "neuron_runtimes": [{"metrics": [{"type": "neuron_runtime_vcpu_usage"}]}]}'))
    collector.collect()
    assert sorted(system.process_reads) == [500, 500, 600, 600]  # a baseline and a reading per process
    system.process_reads.clear()
    clock.now += 1.0
    daemon.snapshot = snapshot(2.0, sessions=three)  # the second runtime of 500 is new: it needs a baseline
    report = collector.collect()
    assert sorted(system.process_reads) == [500, 500, 600]
    system.process_reads.clear()
    clock.now += 1.0
    report = collector.collect()
    assert sorted(system.process_reads) == [500, 600]
    first, _, second = (runtime.report.neuron_runtime_vcpu_usage for runtime in report.neuron_runtime_data)
    assert first == second and first.period > 0 and first.vcpu_usage.user > 0


def test_daemon_down_is_reported_in_the_error_fields_and_the_stream_recovers(rig):
    make, clock, daemon, system = rig
    daemon.snapshot = snapshot(1.0, sessions=(session(1, 500, [0]),))
    collector = make(default_config())
    up = collector.collect()
    assert len(up.neuron_runtime_data) == 1

    daemon.snapshot = None
    clock.now += 5.0
    down = collector.collect()
    message = "cannot reach neurond at unix:///tmp/test.sock: start it with 'neurond'"
    assert down.neuron_runtime_data == []
    assert down.neuron_hardware_info.error == message and down.neuron_hardware_info.neuron_device_count == 0
    assert down.system_data.neuron_hw_counters.error == message
    assert down.system_data.neuron_hw_counters.neuron_devices is None
    assert down.instance_info == up.instance_info  # the machine's identity did not change
    assert down.system_data.vcpu_usage.error == "" and down.system_data.memory_info.error == ""
    assert '"neuron_devices":null' in dumps_report(down)

    # back, restarted: counters begin at zero again and must not go negative
    daemon.snapshot = snapshot(2.0, sessions=(session(1, 700, [1], completed=1),), start=DAEMON_START + 9 * S)
    clock.now += 5.0
    back = collector.collect()
    assert back.neuron_hardware_info.error == "" and back.system_data.neuron_hw_counters.error == ""
    [runtime] = back.neuron_runtime_data
    assert runtime.pid == 700 and runtime.report.execution_stats.execution_summary.completed == 0


def test_a_daemon_restarted_between_two_ticks_starts_a_fresh_baseline(rig):
    make, clock, daemon, system = rig
    daemon.snapshot = snapshot(1.0, sessions=(session(1, 500, [0], completed=1000),), ecc={0: 9})
    collector = make(default_config())
    collector.collect()
    daemon.snapshot = snapshot(7.0, sessions=(session(1, 500, [0], completed=3),), ecc={0: 1},
                               start=DAEMON_START + 6 * S)
    clock.now += 5.0
    report = collector.collect()
    assert report.neuron_runtime_data[0].report.execution_stats.execution_summary.completed == 0
    assert report.system_data.neuron_hw_counters.neuron_devices[0].mem_ecc_corrected == 0


def test_daemon_down_from_the_start_still_writes_complete_reports(rig):
    make, clock, daemon, system = rig
    report = make(default_config()).collect()
    assert report.neuron_runtime_data == []
    assert report.instance_info.error.startswith("cannot reach neurond")
    assert report.system_data.vcpu_usage is not None


def test_a_config_without_daemon_groups_still_refreshes_instance_info(rig):
    make, clock, daemon, system = rig
    daemon.snapshot = snapshot(1.0)
    collector = make(_config('{"period": "2s"}'))
    report = collector.collect()
    assert daemon.calls == 2 and report.instance_info.instance_type == "inf2.24xlarge"
    assert report.system_data.model_dump(exclude_none=True) == {}
    assert collector.next_due() == clock.now + 2.0


def test_the_report_parses_and_re_encodes_byte_for_byte(rig):
    make, clock, daemon, system = rig
    system.alive = {500}
    app = session(1, 500, [0, 1], tag="my_app_1", completed=7, total_ns=(1_234_567,) * 7,
                  device_ns=(1_000_000,) * 7)
    app.host_memory.append(_usage(pb.APPLICATION_MEMORY, 1 << 20))
    app.core_memory.add(core_id=0, memory=[_usage(pb.TENSORS, 4096)])
    app.core_memory.add(core_id=1)
    daemon.snapshot = snapshot(1.0, sessions=(app,), busy={0: (1, 0.25, 10**9)})
    collector = make(default_config())
    collector.collect()
    clock.now += 5.0
    later = session(1, 500, [0, 1], tag="my_app_1", completed=20, total_ns=(1_234_567,) * 20,
                    device_ns=(1_000_000,) * 20)
    later.host_memory.extend(app.host_memory)
    later.core_memory.extend(app.core_memory)
    daemon.snapshot = snapshot(6.0, sessions=(later,), busy={0: (1, 1.75, 4 * 10**9)})
    line = dumps_report(collector.collect())
    assert "\n" not in line and " " not in line
    parsed = loads_report(line)  # full validation of what model_construct built
    assert dumps_report(parsed) == line
    assert line.startswith('{"neuron_runtime_data":[{"pid":500,"neuron_runtime_tag":"my_app_1","error":"",'
                           '"report":{"execution_stats":{"period":5,')
    assert '"neuroncores_in_use":{"0":{"neuroncore_utilization":30,"flops":600000000,' in line


def test_a_killed_application_against_a_live_daemon_is_reported_once_then_dropped(address):
    config = _config('{"period": "10ms", "neuron_runtimes": [{"tag_filter": "^doomed$",'
                     '"metrics": [{"type": "memory_used"}]}]}')
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from neurontools.client import Session
        with Session({address!r}, visible_cores="10", tag="doomed"):
            print("ready", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        with Device(address) as device:
            collector = Collector(config, device.snapshot)  # real clock, real psutil
            [runtime] = collector.collect().neuron_runtime_data
            assert (runtime.pid, runtime.error) == (child.pid, "")
            child.kill()
            child.wait()
            deadline = time.monotonic() + 10
            while True:  # until the daemon has noticed its client is gone
                time.sleep(0.01)
                report = collector.collect()
                if report.neuron_runtime_data[0].error or time.monotonic() > deadline:
                    break
            [gone] = report.neuron_runtime_data
            assert (gone.pid, gone.neuron_runtime_tag) == (child.pid, "doomed")
            assert gone.error == f"open /proc/{child.pid}/stat: no such file or directory"
            time.sleep(0.01)
            assert collector.collect().neuron_runtime_data == []
    finally:
        child.kill()
        child.wait()
