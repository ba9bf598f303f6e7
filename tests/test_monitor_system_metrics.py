"""neuron-monitor's host groups: vCPU shares, context switches, memory, a runtime's process CPU."""

from __future__ import annotations

import os
import time

from neurontools.monitor.system_metrics import (CpuSample, CpuTimes, ProcessCpuSample, SystemReader, memory_info,
                                                runtime_vcpu_usage, vcpu_usage)

MS = 1_000_000


def times(user: float = 0, system: float = 0, idle: float = 0, io_wait: float = 0, steal: float = 0) -> CpuTimes:
    return CpuTimes(user, 0.0, system, idle, io_wait, 0.0, 0.0, user + system + idle + io_wait + steal)


def test_vcpu_usage_is_each_states_share_of_the_period_rounded_like_the_real_tool():
    older = CpuSample(at_ns=0, average=times(10, 5, 100), per_cpu=(times(5, 2, 50), times(5, 3, 50)),
                      context_switches=1000)
    # cpu0: 1 tick user, 2 idle -> 33.33 / 66.67 (as the real capture's 16.67 / 83.33)
    newer = CpuSample(at_ns=62_500_000, average=times(11, 5, 103, steal=1),
                      per_cpu=(times(6, 2, 52), times(5, 3, 51, io_wait=0)), context_switches=1299)
    usage = vcpu_usage(newer, older)
    assert usage.period == 0.0625 and usage.error == "" and usage.context_switch_count == 299
    assert usage.usage_data["0"].model_dump() == {"user": 33.33, "nice": 0, "system": 0, "idle": 66.67,
                                                  "io_wait": 0, "irq": 0, "soft_irq": 0}
    assert usage.usage_data["1"].idle == 100.0
    assert usage.average_usage.user == 20.0 and usage.average_usage.idle == 60.0  # steal takes the rest
    assert list(usage.usage_data) == ["0", "1"]


def test_a_vcpu_without_a_clock_tick_in_the_period_reads_all_zeros():
    sample = CpuSample(at_ns=0, average=times(1, 1, 1), per_cpu=(times(1, 1, 1),), context_switches=5)
    usage = vcpu_usage(sample, sample)
    assert set(usage.usage_data["0"].model_dump().values()) == {0}
    assert usage.context_switch_count == 0


def test_runtime_vcpu_usage_is_normalised_by_the_vcpu_count():
    # The inf1.xlarge capture: one 10 ms tick of user time in a 62.5 ms period on 4 vCPUs reads 4.
    older = ProcessCpuSample(at_ns=0, user=1.00, system=0.5)
    newer = ProcessCpuSample(at_ns=62_500_000, user=1.01, system=0.5)
    usage = runtime_vcpu_usage(newer, older, cpu_count=4)
    assert usage.period == 0.0625 and usage.error == ""
    assert (usage.vcpu_usage.user, usage.vcpu_usage.system) == (4.0, 0.0)


def test_runtime_vcpu_usage_of_a_process_that_cannot_be_read_carries_the_error():
    error = "open /proc/784315/stat: no such file or directory"
    usage = runtime_vcpu_usage(ProcessCpuSample(at_ns=1000, error=error), ProcessCpuSample(at_ns=0), 4)
    assert usage.error == error and usage.vcpu_usage.user == 0.0


def test_memory_info_reports_the_reading_and_the_period():
    reading = SystemReader().memory()
    info = memory_info(reading, 1.5)
    assert info.period == 1.5 and info.error == ""
    assert 0 < info.memory_used_bytes <= info.memory_total_bytes
    assert 0 <= info.swap_used_bytes <= info.swap_total_bytes


def test_the_reader_sees_this_process_burn_cpu_and_not_a_missing_one():
    reader = SystemReader()
    before = reader.process_cpu(os.getpid())
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    after = reader.process_cpu(os.getpid())
    assert after.error == "" and after.user + after.system > before.user + before.system
    assert reader.process_exists(os.getpid())

    missing = 2**22 + 12345  # above the kernel's pid_max
    assert reader.process_cpu(missing).error == f"open /proc/{missing}/stat: no such file or directory"
    assert not reader.process_exists(missing)


def test_the_reader_samples_every_vcpu():
    reader = SystemReader()
    first = reader.cpu()
    second = reader.cpu()
    assert len(first.per_cpu) == reader.cpu_count == os.cpu_count()
    assert second.at_ns > first.at_ns and second.context_switches >= first.context_switches
    usage = vcpu_usage(second, first)
    assert sorted(usage.usage_data, key=int) == [str(i) for i in range(reader.cpu_count)]
    for cpu in (usage.average_usage, *usage.usage_data.values()):
        shares = cpu.model_dump().values()
        assert min(shares) >= 0 and sum(shares) <= 100.05  # below 100 only by steal time
