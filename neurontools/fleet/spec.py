"""What a fleet is: its hosts (name, instance type, identity, group), and whether this machine can run it.

Hosts get what a real fleet's hosts have: distinct instance ids, hostnames and availability zones
(spread round-robin over a region's three zones, as an auto-scaling group does). Everything is
deterministic in the fleet's name, so a scenario can name hosts and the same command gives the same fleet.
"""

from __future__ import annotations

import functools
import hashlib
import os
import resource
from dataclasses import dataclass

import psutil

from neurontools.daemon.device import topology as topo

REGION = "us-east-2"
ZONES = (("us-east-2a", "use2-az1"), ("us-east-2b", "use2-az2"), ("us-east-2c", "use2-az3"))
ROLE = "inference"
# One busy inf2.48xlarge host of a running fleet was 77 MiB (neurond) + 52 MiB (neuron-monitor)
# + 36 MiB (neuron-monitor-prometheus) resident; rounded up for growth: what a host is counted at.
MEMORY_PER_HOST_BYTES = 200 * 2**20
# A neuron-workload process serving a preset: 76-84 MiB resident measured (bert-tiny, bert-base).
MEMORY_PER_WORKLOAD_BYTES = 128 * 2**20
# Descriptors this process holds per host: the daemon's gRPC channel (a few), log files, the pipes
# of three children; rounded up. Plus what Prometheus and Python need.
FDS_PER_HOST, FDS_BASE = 16, 128


class FleetSpecError(ValueError):
    pass


@dataclass(frozen=True)
class HostSpec:
    index: int
    name: str                # the hostname, and the `host` label
    instance_type: str
    group: str               # the instance type unless --mix names groups otherwise
    instance_id: str
    availability_zone: str
    availability_zone_id: str

    def daemon_flags(self) -> list[str]:
        return ["--instance-type", self.instance_type, "--instance-id", self.instance_id,
                "--instance-name", self.name, "--availability-zone", self.availability_zone,
                "--availability-zone-id", self.availability_zone_id, "--region", REGION]

    def labels(self) -> dict[str, str]:
        return {"host": self.name, "instance_type": self.instance_type, "availability_zone": self.availability_zone,
                "group": self.group, "role": ROLE}


def parse_mix(text: str) -> list[tuple[str, int]]:
    """`inf2.xlarge=20,inf2.48xlarge=12` -> [(type, count), ...], checked against the catalog."""
    mix = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, count = part.partition("=")
        try:
            number = int(count)
        except ValueError:
            raise FleetSpecError(f"--mix entry {part!r} is not TYPE=COUNT (e.g. inf2.xlarge=20)") from None
        if number < 1:
            raise FleetSpecError(f"--mix entry {part!r}: the count must be at least 1")
        _check_type(kind)
        mix.append((kind, number))
    if not mix:
        raise FleetSpecError("--mix is empty: give TYPE=COUNT entries, e.g. inf2.xlarge=20,inf2.48xlarge=12")
    return mix


def _check_type(kind: str) -> None:
    try:
        topo.lookup(kind)
    except topo.UnknownInstanceType as exc:
        raise FleetSpecError(str(exc)) from None


def fleet_hosts(*, hosts: int | None = None, instance_type: str = topo.DEFAULT_INSTANCE_TYPE,
                mix: str | None = None, name: str = "fleet") -> list[HostSpec]:
    if mix:
        groups = parse_mix(mix)
        if hosts is not None and hosts != sum(n for _, n in groups):
            raise FleetSpecError(f"--hosts {hosts} does not match --mix, which adds up to "
                                 f"{sum(n for _, n in groups)} hosts: give one or the other")
    else:
        if hosts is None or hosts < 1:
            raise FleetSpecError("give --hosts N (at least 1) or --mix TYPE=COUNT,...")
        _check_type(instance_type)
        groups = [(instance_type, hosts)]
    specs = []
    for kind, count in groups:
        for _ in range(count):
            index = len(specs)
            zone, zone_id = ZONES[index % len(ZONES)]
            digest = hashlib.sha256(f"{name}/{index}".encode()).hexdigest()
            specs.append(HostSpec(index=index, name=f"{name}-{index:03d}", instance_type=kind, group=kind,
                                  instance_id="i-0" + digest[:16], availability_zone=zone,
                                  availability_zone_id=zone_id))
    return specs


def check_capacity(count: int, with_workloads: int = 0) -> None:
    """FleetSpecError naming the limit when this machine cannot hold `count` hosts, `with_workloads` of
    them running a neuron-workload: ports (one exporter each, plus Prometheus), file descriptors, memory."""
    low, high = _ephemeral_range()
    ports = high - low + 1  # free ports are picked by the kernel from the ephemeral range
    if count + 1 > ports // 2:  # leave half of it to outgoing connections (the scrapes, gRPC)
        raise FleetSpecError(f"{count} hosts need {count + 1} listening ports; the ephemeral range {low}-{high} "
                             f"(net.ipv4.ip_local_port_range) leaves room for {ports // 2 - 1} hosts")
    need_fds = FDS_BASE + FDS_PER_HOST * count
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and need_fds > soft:
        if hard == resource.RLIM_INFINITY or need_fds <= hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need_fds, hard))  # ours to raise, up to the hard limit
        else:
            raise FleetSpecError(f"{count} hosts need about {need_fds} file descriptors; the limit is {hard} "
                                 f"(ulimit -Hn): raise it, or run fewer hosts (at most "
                                 f"{(hard - FDS_BASE) // FDS_PER_HOST})")
    available = psutil.virtual_memory().available
    need = count * MEMORY_PER_HOST_BYTES + with_workloads * MEMORY_PER_WORKLOAD_BYTES
    if need > available:
        each = f"{MEMORY_PER_HOST_BYTES // 2**20} MiB each" + (
            f", {MEMORY_PER_WORKLOAD_BYTES // 2**20} MiB more for each of the {with_workloads} serving a --workload"
            if with_workloads else "")
        raise FleetSpecError(f"{count} hosts need about {need / 2**30:.1f} GiB of memory ({each}); "
                             f"{available / 2**30:.1f} GiB is available: "
                             f"run at most {available // MEMORY_PER_HOST_BYTES} hosts")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = open("/proc/sys/net/ipv4/ip_local_port_range").read().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def runtime_directory() -> str:
    """Where `up` leaves its state file for `down` and `targets`: $XDG_RUNTIME_DIR, else /tmp, per user."""
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return os.path.join(base, f"neuron-fleet-{os.getuid()}")


def assign_workloads(hosts: list[HostSpec], entries: list[str], option: str = "--workload") -> dict[str, list[str]]:
    """--workload entries -> the neuron-workload specs of each host (by name).

    An entry is `SPEC` (every host) or `TARGET=SPEC`, TARGET a host name, a group (an instance type or
    a --mix entry) or an availability zone. Each spec is checked as neuron-workload checks it, and a
    target must exist, before anything starts."""
    assigned: dict[str, list[str]] = {host.name: [] for host in hosts}
    for entry in entries:
        target, _, spec = entry.partition("=")
        if not spec or ":" in target:  # no target: the '=' (if any) is a setting of the spec itself
            target, spec = "", entry
        check_workload(spec, f"{option} {entry!r}")
        chosen = [h for h in hosts if not target or target in (h.name, h.group, h.instance_type, h.availability_zone)]
        if not chosen:
            names = sorted({h.name for h in hosts} | {h.group for h in hosts} | {h.availability_zone for h in hosts})
            raise FleetSpecError(f"{option} {entry!r}: no host, group or availability zone {target!r}; "
                                 f"the fleet has {', '.join(names)}")
        for host in chosen:
            assigned[host.name].append(spec)
    for host in hosts:
        check_placement(host, assigned[host.name], option)
    return assigned


def check_workload(spec: str, where: str) -> None:
    """FleetSpecError unless neuron-workload would take `spec` (`where` names it in the message)."""
    from neurontools.workloads import catalog  # noqa: PLC0415 (only with workloads)

    try:
        catalog.parse_spec(spec, catalog.Settings())
    except catalog.SpecError as exc:
        raise FleetSpecError(f"{where}: {exc}") from None


def idle_placer(instance_type: str):
    """neuron-workload's core placer (catalog.Placer) on an idle host of this type, every core and
    every byte of HBM free."""
    from neurontools._proto import neurond_pb2 as pb  # noqa: PLC0415
    from neurontools.workloads import catalog  # noqa: PLC0415

    machine = topo.lookup(instance_type)
    snapshot = pb.Snapshot()
    for core in range(machine.core_count):
        snapshot.cores.add(core_id=core)
    for device in machine.devices:
        stacks = snapshot.devices.add(device_index=device.index).stacks
        for _ in range(topo.DEVICE_MEMORY_BYTES // topo.HBM_STACK_BYTES):
            stacks.add(free_bytes=topo.HBM_STACK_BYTES)
    return catalog.Placer(snapshot)


@functools.cache
def _placement_error(instance_type: str, specs: tuple[str, ...]) -> str | None:
    """neuron-workload's own placement of `specs` on an idle host of this type: None, or why not."""
    from neurontools.workloads import catalog  # noqa: PLC0415

    placer = idle_placer(instance_type)
    try:
        for spec in specs:
            catalog.build(catalog.parse_spec(spec, catalog.Settings()), placer)
    except (catalog.SpecError, ValueError) as exc:  # ValueError: a shape the model cannot take
        return f"{spec}: {exc}"
    return None


def check_placement(host: HostSpec, specs: list[str] | tuple[str, ...], where: str) -> None:
    """FleetSpecError unless the host's NeuronCores hold all of `specs` at once (checked before anything
    starts; whether the weights fit in HBM is neuron-workload's check when it loads them)."""
    if specs:
        error = _placement_error(host.instance_type, tuple(specs))
        if error is not None:
            raise FleetSpecError(f"{where}: {host.name} ({host.instance_type}) cannot serve {error}")
