"""Snapshot facts neuron-top shows beyond the neuron-monitor report, from the same snapshot pair.

The report is the published neuron-monitor schema and has no place for per-engine busy time, link
traffic, the topology or runtime session ids, and we do not reshape it (DESIGN principle 6). So this
small add-on is computed from the two snapshots the collector turned into the report, and only
for the live source: a neuron-monitor stream or recording does not carry these facts.

Engine figures are modeled device time (the cost model's clock) as a share of wall time
(DESIGN principle 3); link figures are bytes per second over the same period.
"""

from __future__ import annotations

from dataclasses import dataclass

from neurontools._proto import neurond_pb2 as pb

ENGINES = (("Tensor", pb.TENSOR), ("Vector", pb.VECTOR), ("Scalar", pb.SCALAR), ("GPSIMD", pb.GPSIMD),
           ("DMA", pb.DMA))
ENGINE_NAMES = tuple(name for name, _ in ENGINES)


@dataclass(frozen=True)
class CoreEngines:
    core_id: int
    busy: tuple[float, ...]  # per ENGINES: modeled busy time / wall time, 0..1 (engines overlap)
    occupied: float  # wall-clock occupied share, 0..1: the utilization the report shows
    in_flight: int  # executions queued or running at the second snapshot


@dataclass(frozen=True)
class LinkLoad:
    link_id: int
    device_a: int
    device_b: int
    a_to_b: float  # bytes per second
    b_to_a: float
    bandwidth: float  # bytes per second per direction
    up: bool

    @property
    def load(self) -> float:
        """The busier direction's share of its bandwidth, 0..1."""
        return max(self.a_to_b, self.b_to_a) / self.bandwidth if self.bandwidth else 0.0


@dataclass(frozen=True)
class SessionRef:
    session_id: int
    pid: int
    tag: str
    command: str
    core_ids: tuple[int, ...]


@dataclass(frozen=True)
class DeviceExtras:
    shape: str  # "single", "chain", "ring", "torus", "custom"
    device_count: int
    cores: dict[int, CoreEngines]
    links: tuple[LinkLoad, ...]
    sessions: tuple[SessionRef, ...]

    def sessions_of(self, pid: int, tag: str) -> list[SessionRef]:
        """The runtime sessions behind a report's application (pid and tag, as the collector names it)."""
        by_pid = [s for s in self.sessions if s.pid == pid]
        tagged = [s for s in by_pid if (s.tag or str(s.pid)) == tag]
        return tagged or by_pid


def device_extras(before: pb.Snapshot, after: pb.Snapshot) -> DeviceExtras:
    wall = max(1, after.monotonic_ns - before.monotonic_ns)
    earlier = {core.core_id: core for core in before.cores}
    cores: dict[int, CoreEngines] = {}
    for core in after.cores:
        old = earlier.get(core.core_id)
        old_busy = {e.engine: e.busy_ns for e in old.engines} if old else {}
        busy = {e.engine: e.busy_ns - old_busy.get(e.engine, 0) for e in core.engines}
        cores[core.core_id] = CoreEngines(
            core_id=core.core_id,
            busy=tuple(min(1.0, max(0, busy.get(engine, 0)) / wall) for _, engine in ENGINES),
            occupied=min(1.0, max(0, core.occupied_ns - (old.occupied_ns if old else 0)) / wall),
            in_flight=core.in_flight,
        )
    seconds = wall / 1e9
    old_links = {link.link_id: link for link in before.links}
    specs = {link.link_id: link for link in after.topology.links}
    links = []
    for link in after.links:
        old = old_links.get(link.link_id)
        spec = specs.get(link.link_id)
        links.append(LinkLoad(
            link_id=link.link_id,
            device_a=spec.device_a if spec else 0,
            device_b=spec.device_b if spec else 0,
            a_to_b=max(0, link.bytes_a_to_b - (old.bytes_a_to_b if old else 0)) / seconds,
            b_to_a=max(0, link.bytes_b_to_a - (old.bytes_b_to_a if old else 0)) / seconds,
            bandwidth=float(spec.bandwidth_bytes_per_second) if spec else 0.0,
            up=link.up,
        ))
    sessions = tuple(SessionRef(s.session_id, s.pid, s.tag, s.command, tuple(s.core_ids)) for s in after.sessions)
    return DeviceExtras(shape=after.topology.shape, device_count=len(after.topology.devices), cores=cores,
                        links=tuple(links), sessions=sessions)
