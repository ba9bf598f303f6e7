"""What a workload will hold in HBM, per device and category, computed before anything is loaded.

A model that does not fit should fail before its first byte is placed, with the shortfall in the
message ("needs 40.1 GiB per device, 31.9 GiB free"), not half-way through a thousand allocations.
The plan counts what the workload allocates (weights, KV cache, workspaces) and what the daemon
adds for each session and model, with the daemon's own sizes (docs/api.md, "Memory accounting").
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.runtime import sessions as rt
from neurontools.daemon.device.hbm_allocator import format_bytes
from neurontools.daemon.device.topology import CORES_PER_DEVICE

ALIGNMENT = 512  # HBM allocations are placed on 512-byte boundaries


class DoesNotFit(Exception):
    """The workload needs more HBM than the devices it would use have free."""


def category_name(category: int) -> str:
    return pb.MemoryCategory.Name(category).lower()


def device_of(core: int) -> int:
    return core // CORES_PER_DEVICE


class MemoryPlan:
    def __init__(self) -> None:
        self.bytes: dict[int, Counter[int]] = defaultdict(Counter)  # device -> category -> bytes
        self._placed: Counter[int] = Counter()  # device -> bytes with each allocation's alignment

    def add(self, core: int, category: int, nbytes: int) -> None:
        self.bytes[device_of(core)][category] += nbytes
        self._placed[device_of(core)] += -(-nbytes // ALIGNMENT) * ALIGNMENT

    def add_session(self, cores: Iterable[int]) -> None:
        """What opening a runtime session on `cores` reserves."""
        for core in cores:
            self.add(core, pb.RUNTIME_MEMORY, rt.SESSION_RUNTIME_MEMORY_PER_CORE)
            self.add(core, pb.DMA_RINGS, rt.SESSION_DMA_RINGS_PER_CORE)

    def add_model(self, programs: dict[int, pb.Program]) -> None:
        """What loading {core: program} places: constants, code, runtime memory, I/O staging. The
        session's shared scratchpad is added once per core by add_scratchpad()."""
        for core, program in programs.items():
            constants = sum(_constant_bytes(c) for c in program.constants)
            self.add(core, pb.CONSTANTS, constants)
            self.add(core, pb.MODEL_CODE, rt.MODEL_CODE_BASE + rt.MODEL_CODE_PER_PROGRAM_BYTE * code_bytes(program))
            self.add(core, pb.RUNTIME_MEMORY, rt.MODEL_RUNTIME_MEMORY_PER_CORE)
            self.add(core, pb.TENSORS, sum(_parameter_bytes(p) for p in program.parameters))

    def add_scratchpad(self, cores: Iterable[int], scratchpad_bytes: int = 0) -> None:
        for core in cores:
            self.add(core, pb.MODEL_SHARED_SCRATCHPAD, scratchpad_bytes or rt.MODEL_SCRATCHPAD_PER_CORE)

    def add_tensor(self, core: int, shape: Iterable[int], dtype: int) -> None:
        self.add(core, pb.TENSORS, _elements(shape) * dtypes.itemsize(dtype))

    def device_total(self, device: int) -> int:
        return sum(self.bytes[device].values())

    def per_category(self) -> dict[str, int]:
        total: Counter[int] = Counter()
        for categories in self.bytes.values():
            total.update(categories)
        return {category_name(c): n for c, n in sorted(total.items())}

    def largest_device_need(self) -> int:
        return max((self.device_total(d) for d in self.bytes), default=0)

    def check(self, snapshot: pb.Snapshot, what: str) -> None:
        """Raise DoesNotFit, naming the shortfall, when a device lacks the room this plan needs."""
        free = {d.device_index: sum(s.free_bytes for s in d.stacks) for d in snapshot.devices}
        short = [(d, self._placed[d], free.get(d, 0)) for d in sorted(self.bytes) if self._placed[d] > free.get(d, 0)]
        if not short:
            return
        device, need, available = max(short, key=lambda item: item[1] - item[2])
        devices = len(self.bytes)
        where = (f"per device ({len(short)} of its {devices} devices are short; worst: neuron device {device})"
                 if devices > 1 else f"on neuron device {device}")
        raise DoesNotFit(f"{what} needs {format_bytes(need)} {where}, {format_bytes(available)} free "
                         f"(short by {format_bytes(need - available)}): use more cores (a larger "
                         "tensor-parallel degree or instance type), a smaller batch or sequence, or free memory")


def code_bytes(program: pb.Program) -> int:
    """The program's encoded size without constant data, as the daemon charges model_code for it."""
    if not any(c.data for c in program.constants):
        return program.ByteSize()
    stripped = pb.Program()
    stripped.CopyFrom(program)
    for constant in stripped.constants:
        constant.data = b""
    return stripped.ByteSize()


def _elements(shape: Iterable[int]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def _constant_bytes(constant: pb.Constant) -> int:
    return _elements(constant.shape) * dtypes.itemsize(constant.dtype)


def _parameter_bytes(parameter: pb.Parameter) -> int:
    return _elements(parameter.shape) * dtypes.itemsize(parameter.dtype)
