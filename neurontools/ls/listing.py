"""What neuron-ls shows: the devices of one daemon snapshot and the processes using each of them.

Renderers read only this model, so they can be tested without a daemon or protobuf messages.
Records are NamedTuples: creating dataclasses would add ~4 ms to every neuron-ls start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # the protobuf module is only needed when a snapshot is converted
    from neurontools._proto import neurond_pb2 as pb

# The RUNTIME VERSION neuron-ls prints for a process that uses a device without Neuron Runtime.
NOT_A_RUNTIME = "NA"


class Process(NamedTuple):
    pid: int
    command: str
    runtime_version: str  # NOT_A_RUNTIME for neuron-top, neuron-monitor, neuron-ls itself


class DeviceEntry(NamedTuple):
    index: int
    core_ids: tuple[int, ...]  # global NeuronCore ids
    memory_bytes: int
    connected_to: tuple[int, ...]  # the driver's neighbour order
    bdf: str  # full form "0000:80:1e.0"
    cpu_affinity: str
    numa_node: int  # -1 when unknown
    processes: tuple[Process, ...]  # ordered by pid


class Listing(NamedTuple):
    instance_type: str
    instance_id: str
    shape: str  # "single", "chain", "ring", "torus" or "custom" (the daemon's topology shape)
    devices: tuple[DeviceEntry, ...]

    @property
    def has_links(self) -> bool:
        return any(d.connected_to for d in self.devices)

    @property
    def has_processes(self) -> bool:
        return any(d.processes for d in self.devices)


def listing_from_snapshot(snapshot: pb.Snapshot, *, include_observers: bool) -> Listing:
    """Devices of the snapshot with their runtime sessions, plus observers when `include_observers`.

    A session uses the devices that own its cores; an observer (neuron-monitor, neuron-top, neuron-ls
    itself: a process with the devices open but no runtime) uses every device. A process is listed once
    per device, as a runtime process if it is one.
    """
    topology = snapshot.topology
    device_of_core = {core: device.index for device in topology.devices for core in device.core_ids}
    users: dict[int, dict[int, Process]] = {device.index: {} for device in topology.devices}
    for session in snapshot.sessions:
        process = Process(session.pid, session.command, session.runtime_version)
        for core in session.core_ids:
            users[device_of_core[core]].setdefault(session.pid, process)
    if include_observers:
        for observer in snapshot.observers:
            process = Process(observer.pid, observer.command, NOT_A_RUNTIME)
            for by_pid in users.values():
                by_pid.setdefault(observer.pid, process)
    devices = tuple(
        DeviceEntry(
            index=device.index,
            core_ids=tuple(device.core_ids),
            memory_bytes=device.memory_bytes,
            connected_to=tuple(device.connected_to),
            bdf=device.bdf,
            cpu_affinity=device.cpu_affinity,
            numa_node=device.numa_node,
            processes=tuple(sorted(users[device.index].values(), key=lambda p: p.pid)),
        )
        for device in topology.devices
    )
    return Listing(topology.instance.instance_type, topology.instance.instance_id, topology.shape, devices)
