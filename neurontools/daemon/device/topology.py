"""The topology catalog: the machines neurond can be, with the facts of the real instance types.

Sources are in ../shared/reference (inferentia2.md sections 1.1-1.3, neuron-tools.md section 0).
Where the reference has no fact, a plausible value is synthesized and marked SYNTHESIZED here and
in docs/topology.md. A custom machine is described by a JSON topology file (CustomTopology).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from neurontools._proto import neurond_pb2 as pb

GIB = 1 << 30
CORES_PER_DEVICE = 2
HBM_STACK_BYTES = 16 * GIB  # two stacks per chip (DRV v2/address_map.h)
DEVICE_MEMORY_BYTES = 2 * HBM_STACK_BYTES
# NeuronLink-v2: 96 GiB/s per link (inf2-topology.png), 2 links per Inferentia2, 4 per Trainium.
LINK_BYTES_PER_SECOND = 96 * GIB


@dataclass(frozen=True)
class Platform:
    """Identity strings of a chip family (driver dhal tables, neuron-monitor captures)."""

    name: str
    neuron_device_type: str
    neuron_device_version: str
    neuroncore_version: str
    device_arch: str
    core_arch: str
    device_name: str
    platform_name: str
    pci_device_id: int


PLATFORMS = {
    "inf2": Platform("inf2", "inferentia2", "v3", "v2", "NDv3", "NCv2", "Inferentia2", "Inf2", 0x7264),
    "trn1": Platform("trn1", "trainium", "v2", "v2", "NDv2", "NCv2", "Trainium1", "Trn1", 0x7164),
}
PCI_VENDOR_AMAZON = 0x1D0F


@dataclass(frozen=True)
class DeviceSpec:
    index: int
    bdf: str  # full form "0000:80:1e.0"
    cpu_affinity: str
    numa_node: int
    connected_to: tuple[int, ...]  # the driver's neighbour-table order

    @property
    def core_ids(self) -> tuple[int, ...]:
        first = self.index * CORES_PER_DEVICE
        return tuple(range(first, first + CORES_PER_DEVICE))


@dataclass(frozen=True)
class MachineSpec:
    instance_type: str
    platform: Platform
    vcpus: int
    host_memory_bytes: int
    devices: tuple[DeviceSpec, ...]
    shape: str  # "single", "chain", "ring", "torus", "custom"

    @property
    def core_count(self) -> int:
        return len(self.devices) * CORES_PER_DEVICE

    def device_of_core(self, core_id: int) -> int:
        return core_id // CORES_PER_DEVICE

    def links(self) -> list[tuple[int, int]]:
        """Undirected links (a < b), ordered by a then b."""
        pairs = {tuple(sorted((d.index, n))) for d in self.devices for n in d.connected_to}
        return sorted(pairs)

    def serial_number(self, device_index: int) -> str:
        # SYNTHESIZED: the driver exposes a serial per device; its format is not in the reference.
        digest = hashlib.sha256(f"{self.instance_type}/{device_index}".encode()).hexdigest()
        return digest[:16]


def _ring(n: int) -> list[tuple[int, ...]]:
    # inf2_48xl_neighbor_ids: {prev, next} with wrap-around
    return [((i - 1) % n, (i + 1) % n) for i in range(n)]


def _chain(n: int) -> list[tuple[int, ...]]:
    # inf2_24xl_neighbor_ids: {prev, next}, no wrap-around
    return [tuple(j for j in (i - 1, i + 1) if 0 <= j < n) for i in range(n)]


def _torus_4x4() -> list[tuple[int, ...]]:
    # trn1_32xl_neigbor_ids: north, west, south, east with wrap-around; device d at row d//4, col d%4
    out = []
    for d in range(16):
        row, col = divmod(d, 4)
        out.append((((row - 1) % 4) * 4 + col, row * 4 + (col - 1) % 4,
                    ((row + 1) % 4) * 4 + col, row * 4 + (col + 1) % 4))
    return out


def _machine(instance_type: str, platform: str, vcpus: int, host_gib: int, shape: str,
             rows: list[tuple[str, str, int]], neighbours: list[tuple[int, ...]]) -> MachineSpec:
    devices = tuple(DeviceSpec(i, bdf, affinity, numa, tuple(neighbours[i]))
                    for i, (bdf, affinity, numa) in enumerate(rows))
    return MachineSpec(instance_type, PLATFORMS[platform], vcpus, host_gib * GIB, devices, shape)


# inf2.48xlarge NUMA layout (runtime-performance-tips.rst): bus -> (cpu affinity, numa node)
_INF2_48_NUMA = {"80": ("48-71,144-167", 2), "90": ("72-95,168-191", 3),
                 "20": ("24-47,120-143", 1), "10": ("0-23,96-119", 0)}
_INF2_48_BDFS = ["80:1e.0", "90:1e.0", "80:1d.0", "90:1f.0", "80:1f.0", "90:1d.0",
                 "20:1e.0", "20:1f.0", "10:1e.0", "10:1f.0", "10:1d.0", "20:1d.0"]
_INF2_24_NUMA = {"20": ("24-47,72-95", 1), "10": ("0-23,48-71", 0)}
_INF2_24_BDFS = ["20:1e.0", "20:1f.0", "10:1e.0", "10:1f.0", "10:1d.0", "20:1d.0"]
# trn1.32xlarge BDFs are from nrt-developer-guide.rst; the bus -> NUMA mapping is SYNTHESIZED
# (the reference gives the two affinity sets but not which bus sits on which node).
_TRN1_32_NUMA = {"10": ("0-31,64-95", 0), "20": ("0-31,64-95", 0),
                 "90": ("32-63,96-127", 1), "a0": ("32-63,96-127", 1)}
_TRN1_32_BDFS = ["10:1c.0", "10:1d.0", "a0:1c.0", "a0:1d.0", "20:1b.0", "20:1c.0", "90:1b.0", "90:1c.0",
                 "20:1d.0", "20:1e.0", "90:1d.0", "90:1e.0", "10:1e.0", "10:1b.0", "a0:1e.0", "a0:1b.0"]


def _rows(bdfs: list[str], numa: dict[str, tuple[str, int]]) -> list[tuple[str, str, int]]:
    return [(f"0000:{bdf}", *numa[bdf[:2]]) for bdf in bdfs]


CATALOG: dict[str, MachineSpec] = {
    m.instance_type: m for m in [
        _machine("inf2.xlarge", "inf2", 4, 16, "single", [("0000:00:1f.0", "0-3", -1)], [()]),
        # SYNTHESIZED cpu affinity and NUMA node: the only inf2.8xlarge capture predates those columns;
        # they follow the inf2.xlarge capture (all vCPUs, no NUMA information).
        _machine("inf2.8xlarge", "inf2", 32, 128, "single", [("0000:00:1f.0", "0-31", -1)], [()]),
        _machine("inf2.24xlarge", "inf2", 96, 384, "chain", _rows(_INF2_24_BDFS, _INF2_24_NUMA), _chain(6)),
        _machine("inf2.48xlarge", "inf2", 192, 768, "ring", _rows(_INF2_48_BDFS, _INF2_48_NUMA), _ring(12)),
        _machine("trn1.2xlarge", "trn1", 8, 32, "single", [("0000:00:1e.0", "0-7", -1)], [()]),
        _machine("trn1.32xlarge", "trn1", 128, 512, "torus", _rows(_TRN1_32_BDFS, _TRN1_32_NUMA),
                 _torus_4x4()),
    ]
}
DEFAULT_INSTANCE_TYPE = "inf2.48xlarge"


class UnknownInstanceType(ValueError):
    pass


def lookup(instance_type: str) -> MachineSpec:
    try:
        return CATALOG[instance_type]
    except KeyError:
        raise UnknownInstanceType(
            f"unknown instance type {instance_type!r}; known: {', '.join(CATALOG)} "
            "(or describe another machine with --topology-file)") from None


# ------------------------------------------------------------------------------------------------
# Custom topology files
# ------------------------------------------------------------------------------------------------

_BDF = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
_CPULIST = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
MAX_CUSTOM_DEVICES = 64


def parse_cpulist(text: str) -> list[int]:
    cpus: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        lo, hi = int(first), int(last or first)
        if hi < lo:
            raise ValueError(f"cpu range {part!r} runs backwards")
        cpus.extend(range(lo, hi + 1))
    return cpus


class CustomDevice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bdf: str = Field(description='full PCI address, e.g. "0000:10:1e.0"')
    cpu_affinity: str = Field(description='kernel cpulist, e.g. "0-23,96-119"')
    numa_node: int = Field(-1, ge=-1)
    connected_to: list[int] = Field(default_factory=list)

    @field_validator("bdf")
    @classmethod
    def _bdf_form(cls, value: str) -> str:
        if not _BDF.match(value):
            raise ValueError('must be a full lowercase PCI address like "0000:10:1e.0"')
        return value

    @field_validator("cpu_affinity")
    @classmethod
    def _cpulist_form(cls, value: str) -> str:
        if not _CPULIST.match(value):
            raise ValueError('must be a kernel cpulist like "0-23,96-119"')
        parse_cpulist(value)
        return value


class CustomTopology(BaseModel):
    """A user-described machine (--topology-file)."""

    model_config = ConfigDict(extra="forbid")

    instance_type: str = Field(min_length=1, max_length=64)
    platform: Literal["inf2", "trn1"] = "inf2"
    vcpus: int = Field(ge=1, le=4096)
    host_memory_gib: int = Field(ge=1, le=1 << 16)
    devices: list[CustomDevice] = Field(min_length=1, max_length=MAX_CUSTOM_DEVICES)

    @model_validator(mode="after")
    def _consistent(self) -> "CustomTopology":
        count = len(self.devices)
        bdfs = [d.bdf for d in self.devices]
        if len(set(bdfs)) != count:
            raise ValueError("two devices share a PCI BDF")
        for i, device in enumerate(self.devices):
            for cpu in parse_cpulist(device.cpu_affinity):
                if cpu >= self.vcpus:
                    raise ValueError(f"devices[{i}].cpu_affinity names cpu {cpu} but the machine "
                                     f"has {self.vcpus} vcpus")
            for peer in device.connected_to:
                if not 0 <= peer < count or peer == i:
                    raise ValueError(f"devices[{i}].connected_to has {peer}: links go to another "
                                     f"device index in 0..{count - 1}")
                if i not in self.devices[peer].connected_to:
                    raise ValueError(f"devices[{i}] links to {peer} but devices[{peer}] does not "
                                     f"link back; links are bidirectional")
        return self

    def to_machine(self) -> MachineSpec:
        devices = tuple(DeviceSpec(i, d.bdf, d.cpu_affinity, d.numa_node, tuple(d.connected_to))
                        for i, d in enumerate(self.devices))
        return MachineSpec(self.instance_type, PLATFORMS[self.platform], self.vcpus,
                           self.host_memory_gib * GIB, devices, "custom")


class TopologyFileError(ValueError):
    pass


def describe_problems(exc: ValidationError) -> str:
    """One line naming each bad field and its problem: "devices.0.bdf: must be ...; vcpus: ..."."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors())


def load_topology_file(path: str | Path) -> MachineSpec:
    """Read and validate a custom topology file; errors name the file, the field and the problem."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise TopologyFileError(f"{path}: cannot read topology file: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise TopologyFileError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} "
                                f"column {exc.colno}") from None
    try:
        return CustomTopology.model_validate(raw).to_machine()
    except ValidationError as exc:
        raise TopologyFileError(f"{path}: invalid topology file: {describe_problems(exc)}") from None


# ------------------------------------------------------------------------------------------------
# Wire form
# ------------------------------------------------------------------------------------------------

def to_proto(machine: MachineSpec, instance: pb.InstanceInfo) -> pb.Topology:
    platform = machine.platform
    hardware = pb.HardwareInfo(
        neuron_device_type=platform.neuron_device_type,
        neuron_device_version=platform.neuron_device_version,
        neuroncore_version=platform.neuroncore_version,
        device_arch=platform.device_arch,
        core_arch=platform.core_arch,
        device_name=platform.device_name,
        platform_name=platform.platform_name,
        neuroncore_per_device_count=CORES_PER_DEVICE,
        neuron_device_memory_size=DEVICE_MEMORY_BYTES,
        logical_neuroncore_config=1,
        pci_vendor_id=PCI_VENDOR_AMAZON,
        pci_device_id=platform.pci_device_id,
    )
    devices = [pb.Device(index=d.index, core_ids=d.core_ids, memory_bytes=DEVICE_MEMORY_BYTES,
                         hbm_stack_bytes=[HBM_STACK_BYTES, HBM_STACK_BYTES],
                         connected_to=d.connected_to, bdf=d.bdf, cpu_affinity=d.cpu_affinity,
                         numa_node=d.numa_node, serial_number=machine.serial_number(d.index))
               for d in machine.devices]
    links = [pb.Link(link_id=i, device_a=a, device_b=b, bandwidth_bytes_per_second=LINK_BYTES_PER_SECOND)
             for i, (a, b) in enumerate(machine.links())]
    return pb.Topology(instance=instance, hardware=hardware, vcpu_count=machine.vcpus,
                       host_memory_bytes=machine.host_memory_bytes, devices=devices, links=links,
                       shape=machine.shape)
