"""Runtime sessions and the handles they own: cores, tensors and loaded models.

All mutations run on the server's event-loop thread; execution workers only read tensors'
bytes and update telemetry. Every handle belongs to one session, which alone may use it.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.device import topology as topo
from neurontools.daemon.collectives.planning import CollectiveError, ModelCollectives, plan_model
from neurontools.daemon.runtime.core_selection import select_cores
from neurontools.daemon.errors import (InvalidArgument, NotFound, OutOfRange, PermissionDenied,
                                       ResourceExhausted, Unauthenticated)
from neurontools.daemon.device.faults import FaultTable
from neurontools.daemon.device.hbm_allocator import DeviceMemory, HostMemory, OutOfMemory, Region
from neurontools.daemon.device.memory_ledger import MemoryLedger
from neurontools.daemon.isa.program import CompiledProgram, ProgramError, compile_program
from neurontools.daemon.device.telemetry import ExecutionTelemetry, Telemetry

MIB = 1 << 20
# What the runtime itself reserves, so memory views look like a real host (docs/api.md lists
# these; the real runtime's sizes vary by version and are not in the reference).
SESSION_RUNTIME_MEMORY_PER_CORE = 32 * MIB
SESSION_DMA_RINGS_PER_CORE = 4 * MIB
SESSION_HOST_APPLICATION_MEMORY = 64 * MIB
SESSION_HOST_DMA_BUFFERS_PER_CORE = 8 * MIB
MODEL_RUNTIME_MEMORY_PER_CORE = 4 * MIB
MODEL_SCRATCHPAD_PER_CORE = 16 * MIB
MODEL_CODE_BASE = 1 * MIB          # instruction streams, DMA descriptors, semaphores
MODEL_CODE_PER_PROGRAM_BYTE = 16   # our wire program is far denser than a NEFF
MODEL_HOST_DMA_BUFFERS_PER_CORE = 1 * MIB

DEFAULT_EXEC_TIMEOUT_NS = 30 * 1_000_000_000  # NEURON_RT_EXEC_TIMEOUT table default
MAX_TENSOR_RANK = 8
MAX_NAME_LENGTH = 256
FIRST_MODEL_ID = 10001


@dataclass(eq=False)
class Tensor:
    tensor_id: int
    session_id: int
    name: str
    shape: tuple[int, ...]
    dtype: int
    placement: int
    core_id: int
    device_index: int
    region: Region

    @property
    def np_dtype(self) -> np.dtype:
        return dtypes.storage_dtype(self.dtype)

    def info(self) -> pb.TensorInfo:
        return pb.TensorInfo(tensor_id=self.tensor_id, name=self.name, shape=self.shape, dtype=self.dtype,
                             placement=self.placement, core_id=self.core_id, device_index=self.device_index,
                             size_bytes=self.region.size, offset=self.region.offset)


@dataclass(eq=False)
class LoadedSubgraph:
    name: str
    core_id: int
    device_index: int
    program: CompiledProgram
    constants: dict[str, Region]
    regions: list[Region]  # everything the subgraph holds, constants included


@dataclass(eq=False)
class LoadedModel:
    model_id: int
    uuid: str
    name: str
    session_id: int
    subgraphs: list[LoadedSubgraph]
    running: int = 0
    executions: int = 0
    collectives: ModelCollectives | None = None  # how its subgraphs meet (collectives/planning.py)
    work: object = None  # load_engine.Work: what a timing-only execution does, prepared on first use

    def subgraph_on(self, core_id: int) -> LoadedSubgraph | None:
        return next((sg for sg in self.subgraphs if sg.core_id == core_id), None)


@dataclass(frozen=True)
class PreparedModel:
    programs: list[CompiledProgram]  # one per subgraph, in request order
    collectives: ModelCollectives | None


@dataclass(eq=False)
class Session:
    session_id: int
    key: str
    pid: int
    command: str
    runtime_version: str
    tag: str
    core_ids: list[int]
    exec_timeout_ns: int
    opened_unix_ns: int
    tensors: dict[int, Tensor] = field(default_factory=dict)
    models: dict[int, LoadedModel] = field(default_factory=dict)
    reserved: list[Region] = field(default_factory=list)        # runtime's own memory
    scratchpads: dict[int, Region] = field(default_factory=dict)  # core -> shared scratchpad
    stats: ExecutionTelemetry = field(default_factory=ExecutionTelemetry)
    closed_reason: str | None = None

    @property
    def owner_text(self) -> str:
        return f"pid {self.pid}" + (f" (tag {self.tag})" if self.tag != str(self.pid) else "")


class RuntimeState:
    def __init__(self, machine: topo.MachineSpec, instance: pb.InstanceInfo) -> None:
        self.machine = machine
        self.topology = topo.to_proto(machine, instance)
        self.ledger = MemoryLedger()
        self.devices = [DeviceMemory(d.index, [topo.HBM_STACK_BYTES] * 2, self.ledger)
                        for d in machine.devices]
        self.host = HostMemory(machine.host_memory_bytes, self.ledger)
        cores = [(c, machine.device_of_core(c)) for c in range(machine.core_count)]
        self.telemetry = Telemetry(cores, len(machine.devices), len(machine.links()))
        self.faults = FaultTable(machine, self.telemetry)
        self.sessions: dict[int, Session] = {}
        self.sessions_by_key: dict[str, Session] = {}
        self.core_owner: dict[int, Session] = {}
        self.tensors: dict[int, Tensor] = {}
        self.models: dict[int, LoadedModel] = {}
        self._session_ids = itertools.count(1)
        self._tensor_ids = itertools.count(1)
        self._model_ids = itertools.count(FIRST_MODEL_ID)
        # Guards the handle tables against snapshot readers on other threads.
        self.lock = threading.RLock()

    # -- sessions ---------------------------------------------------------------------------------

    def open_session(self, request: pb.OpenSessionRequest) -> Session:
        _check_text("command", request.command, 4096)
        _check_text("runtime_version", request.runtime_version, 64)
        _check_text("tag", request.tag, MAX_NAME_LENGTH)
        _check_text("visible_cores", request.visible_cores, 1024)
        with self.lock:
            owners = {core: s.owner_text for core, s in self.core_owner.items()}
            cores = select_cores(request.visible_cores, request.num_cores, self.machine.core_count, owners)
            session = Session(
                session_id=next(self._session_ids), key=secrets.token_urlsafe(24), pid=request.pid,
                command=request.command, runtime_version=request.runtime_version or "2.30.51",
                tag=request.tag or str(request.pid), core_ids=cores,
                exec_timeout_ns=request.exec_timeout_ns or DEFAULT_EXEC_TIMEOUT_NS,
                opened_unix_ns=time.time_ns())
            try:
                self._reserve_runtime_memory(session)
            except OutOfMemory as exc:
                self._free_all(session.reserved)
                raise ResourceExhausted(f"cannot start a runtime session: {exc}") from None
            self.sessions[session.session_id] = session
            self.sessions_by_key[session.key] = session
            for core in cores:
                self.core_owner[core] = session
            with self.telemetry.lock:
                self.telemetry.sessions_opened += 1
            return session

    def _reserve_runtime_memory(self, session: Session) -> None:
        for core in session.core_ids:
            for category, size in ((pb.RUNTIME_MEMORY, SESSION_RUNTIME_MEMORY_PER_CORE),
                                   (pb.DMA_RINGS, SESSION_DMA_RINGS_PER_CORE)):
                session.reserved.append(self._device_alloc(session, core, size, category))
            session.reserved.append(self._host_alloc(session, core, SESSION_HOST_DMA_BUFFERS_PER_CORE,
                                                     pb.DMA_BUFFERS))
        session.reserved.append(self._host_alloc(session, session.core_ids[0],
                                                 SESSION_HOST_APPLICATION_MEMORY, pb.APPLICATION_MEMORY))

    def close_session(self, session: Session, reason: str) -> None:
        """Release everything the session holds. Idempotent."""
        with self.lock:
            if session.session_id not in self.sessions:
                return
            session.closed_reason = reason
            for model in list(session.models.values()):
                self._unload(session, model)
            for tensor in list(session.tensors.values()):
                self._free_tensor(session, tensor)
            self._free_all(session.reserved)
            self._free_all(session.scratchpads.values())
            session.scratchpads.clear()
            for core in session.core_ids:
                if self.core_owner.get(core) is session:
                    del self.core_owner[core]
            del self.sessions[session.session_id]
            del self.sessions_by_key[session.key]
            self.ledger.forget(("session", session.session_id))
            self.ledger.forget(("host_session", session.session_id))
            for core in session.core_ids:
                self.ledger.forget(("session_core", session.session_id, core))
            with self.telemetry.lock:
                self.telemetry.sessions_closed += 1
                self.telemetry.retire_session(session.core_ids, session.stats)
                self.telemetry.end_session(session.tag, session.stats)

    def session_for_key(self, key: str | None) -> Session:
        if not key:
            raise Unauthenticated("this call needs a runtime session: open one with OpenSession and "
                                  "send its session_key as metadata 'neuron-session-key'")
        session = self.sessions_by_key.get(key)
        if session is None:
            raise Unauthenticated("unknown or closed runtime session: its stream ended (client exit, "
                                  "dropped connection or daemon restart); open a new session")
        return session

    def session_by_id(self, session_id: int) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            raise NotFound(f"no runtime session {session_id}; list them with a snapshot")
        return session

    # -- memory helpers ---------------------------------------------------------------------------

    def _device_alloc(self, session: Session, core: int, size: int, category: int,
                      model_id: int | None = None) -> Region:
        scopes: list = [("core", core), ("session", session.session_id),
                        ("session_core", session.session_id, core)]
        if model_id is not None:
            scopes.append(("model_core", model_id, core))
        device = self.machine.device_of_core(core)
        return self.devices[device].allocate(
            size, category, session_id=session.session_id, core_id=core, model_id=model_id,
            preferred_stack=core % topo.CORES_PER_DEVICE, scopes=scopes)

    def _host_alloc(self, session: Session, core: int, size: int, category: int,
                    model_id: int | None = None) -> Region:
        # Host memory is also kept per core and per device: the driver's sysfs shows it that way.
        scopes: list = [("host_session", session.session_id), ("host_core", core),
                        ("host_device", self.machine.device_of_core(core))]
        if model_id is not None:
            scopes.append(("model_host", model_id, core))
        return self.host.allocate(size, category, session_id=session.session_id, core_id=core,
                                  model_id=model_id, scopes=scopes)

    def _free_region(self, region: Region) -> None:
        if region.device_index is None:
            self.host.free(region)
        else:
            self.devices[region.device_index].free(region)

    def _free_all(self, regions) -> None:
        for region in list(regions):
            self._free_region(region)

    def _check_core(self, session: Session, core_id: int) -> None:
        if core_id not in session.core_ids:
            owner = self.core_owner.get(core_id)
            if core_id >= self.machine.core_count:
                raise InvalidArgument(f"NeuronCore {core_id} does not exist: this machine has cores "
                                      f"0-{self.machine.core_count - 1}")
            raise PermissionDenied(
                f"NeuronCore {core_id} is not part of this session (cores {_ranges(session.core_ids)})"
                + (f"; it belongs to {owner.owner_text}" if owner else ""))

    # -- tensors ----------------------------------------------------------------------------------

    def allocate_tensor(self, session: Session, request: pb.AllocateTensorRequest) -> Tensor:
        _check_text("name", request.name, MAX_NAME_LENGTH)
        shape = _check_shape(request.shape, "tensor")
        try:
            np_dtype = dtypes.storage_dtype(request.dtype)
        except dtypes.UnknownDType as exc:
            raise InvalidArgument(str(exc)) from None
        if request.placement not in (pb.DEVICE, pb.HOST):
            raise InvalidArgument("placement must be DEVICE (HBM of the core's device) or HOST")
        self._check_core(session, request.core_id)
        size = math.prod(shape) * np_dtype.itemsize
        with self.lock:
            try:
                if request.placement == pb.DEVICE:
                    region = self._device_alloc(session, request.core_id, size, pb.TENSORS)
                else:
                    region = self._host_alloc(session, request.core_id, size, pb.TENSORS)
            except OutOfMemory as exc:
                raise ResourceExhausted(f"tensor {request.name or ''} of {size} bytes: {exc}; free "
                                        "tensors or unload models first") from None
            tensor = Tensor(next(self._tensor_ids), session.session_id, request.name, shape,
                            request.dtype, request.placement, request.core_id,
                            self.machine.device_of_core(request.core_id), region)
            session.tensors[tensor.tensor_id] = tensor
            self.tensors[tensor.tensor_id] = tensor
            return tensor

    def tensor(self, session: Session, tensor_id: int) -> Tensor:
        tensor = self.tensors.get(tensor_id)
        if tensor is None:
            raise NotFound(f"no tensor {tensor_id}: it was never allocated or is already freed")
        if tensor.session_id != session.session_id:
            raise PermissionDenied(f"tensor {tensor_id} belongs to another session")
        return tensor

    def check_live(self, tensor: Tensor, action: str) -> None:
        if self.tensors.get(tensor.tensor_id) is not tensor:
            raise NotFound(f"tensor {tensor.tensor_id} was freed during the {action} (its session freed it "
                           "or ended)")

    def write_tensor(self, tensor: Tensor, offset: int, data: bytes) -> None:
        size = tensor.region.size
        if offset > size or len(data) > size - offset:
            raise OutOfRange(f"write of {len(data)} bytes at offset {offset} runs past the end of tensor "
                             f"{tensor.tensor_id} ({size} bytes)")
        with host_memory_errors():
            tensor.region.write(offset, data)

    def read_range(self, tensor: Tensor, offset: int, length: int) -> tuple[int, int]:
        size = tensor.region.size
        if offset > size:
            raise OutOfRange(f"read at offset {offset} is past the end of tensor {tensor.tensor_id} "
                             f"({size} bytes)")
        length = length or size - offset
        if length > size - offset:
            raise OutOfRange(f"read of {length} bytes at offset {offset} runs past the end of tensor "
                             f"{tensor.tensor_id} ({size} bytes)")
        return offset, length

    def copy_tensor(self, src: Tensor, dst: Tensor) -> int:
        if src.region.size != dst.region.size:
            raise InvalidArgument(f"cannot copy tensor {src.tensor_id} ({src.region.size} bytes) into tensor "
                                  f"{dst.tensor_id} ({dst.region.size} bytes): sizes differ")
        with host_memory_errors():
            dst.region.copy_from(src.region)
        return src.region.size

    def free_tensor(self, session: Session, tensor: Tensor) -> None:
        with self.lock:
            self._free_tensor(session, tensor)

    def _free_tensor(self, session: Session, tensor: Tensor) -> None:
        self._free_region(tensor.region)
        del session.tensors[tensor.tensor_id]
        del self.tensors[tensor.tensor_id]

    # -- models -----------------------------------------------------------------------------------

    def prepare_model(self, session: Session, request: pb.LoadModelRequest) -> "PreparedModel":
        """Validate and compile a model's subgraphs. Touches no shared state, so it runs off the event
        loop: a large model's compile must not stall every other client."""
        _check_text("name", request.name, MAX_NAME_LENGTH)
        if not request.subgraphs:
            raise InvalidArgument("a model needs at least one subgraph (a program and the core it runs on)")
        cores = [sg.core_id for sg in request.subgraphs]
        if len(set(cores)) != len(cores):
            raise InvalidArgument("two subgraphs name the same core; a model has one subgraph per core")
        compiled = []
        by_bytes: dict[bytes, CompiledProgram] = {}  # data-parallel models repeat one program per core
        for index, sg in enumerate(request.subgraphs):
            self._check_core(session, sg.core_id)
            key = sg.program.SerializeToString(deterministic=True)
            if key not in by_bytes:
                try:
                    by_bytes[key] = compile_program(sg.program)
                except ProgramError as exc:
                    raise InvalidArgument(f"subgraph {index} (NeuronCore {sg.core_id}): {exc}") from None
            compiled.append(by_bytes[key])
        try:
            collectives = plan_model(self.machine, list(zip(cores, compiled)))
        except CollectiveError as exc:
            raise InvalidArgument(f"model {request.name!r}: {exc}") from None
        if collectives is not None:
            compiled = [collectives.programs[core] for core in cores]  # timed among their peers
        return PreparedModel(compiled, collectives)

    def load_model(self, session: Session, request: pb.LoadModelRequest,
                   prepared: "PreparedModel | None" = None) -> LoadedModel:
        """Place a (prepared) model's memory and register it; runs on the event loop."""
        prepared = prepared or self.prepare_model(session, request)
        if session.closed_reason is not None:
            raise Unauthenticated(f"the session closed while the model was compiling ({session.closed_reason})")
        cores = [sg.core_id for sg in request.subgraphs]
        compiled, collectives = prepared.programs, prepared.collectives
        with self.lock:
            model = LoadedModel(next(self._model_ids), uuid.uuid4().hex, request.name, session.session_id, [],
                                collectives=collectives)
            try:
                for index, (sg, program) in enumerate(zip(request.subgraphs, compiled)):
                    self._place_subgraph(session, model, index, sg, program, request)
                self._grow_scratchpads(session, cores, request.scratchpad_bytes or MODEL_SCRATCHPAD_PER_CORE)
            except BaseException as exc:
                # Nothing of a model that failed to load may stay behind.
                for placed in model.subgraphs:
                    self._free_all(placed.regions)
                self._forget_model(model)
                self._release_unused_scratchpads(session)
                if isinstance(exc, OutOfMemory):
                    raise ResourceExhausted(f"model {request.name!r} does not fit: {exc}") from None
                raise
            session.models[model.model_id] = model
            self.models[model.model_id] = model
            with self.telemetry.lock:
                for core in set(cores):
                    self.telemetry.cores[core].model_loads += 1
            return model

    def _place_subgraph(self, session: Session, model: LoadedModel, index: int, sg: pb.SubgraphProgram,
                        program: CompiledProgram, request: pb.LoadModelRequest) -> None:
        core = sg.core_id
        placed = LoadedSubgraph(f"sg_{index:02d}", core, self.machine.device_of_core(core), program, {}, [])
        model.subgraphs.append(placed)  # first, so a failure below still frees what was placed

        def device(size: int, category: int) -> Region:
            region = self._device_alloc(session, core, size, category, model.model_id)
            placed.regions.append(region)
            return region

        sources = {c.name: c for c in sg.program.constants}
        for spec in program.constants:
            region = device(spec.nbytes, pb.CONSTANTS)
            placed.constants[spec.name] = region
            if spec.name in program.constant_data:
                region.write(0, program.constant_data[spec.name])
            elif sources[spec.name].tensor_id:
                source = self.tensor(session, sources[spec.name].tensor_id)
                if source.region.size != spec.nbytes:
                    raise InvalidArgument(f"constant {spec.name!r} needs {spec.nbytes} bytes but tensor "
                                          f"{source.tensor_id} holds {source.region.size}")
                region.copy_from(source.region)
        device(MODEL_CODE_BASE + MODEL_CODE_PER_PROGRAM_BYTE * program.code_bytes, pb.MODEL_CODE)
        device(request.runtime_memory_bytes or MODEL_RUNTIME_MEMORY_PER_CORE, pb.RUNTIME_MEMORY)
        # I/O staging buffers the runtime keeps per model, one per parameter.
        device(sum(p.nbytes for p in program.parameters.values()), pb.TENSORS)
        placed.regions.append(self._host_alloc(session, core, MODEL_HOST_DMA_BUFFERS_PER_CORE, pb.DMA_BUFFERS,
                                               model.model_id))

    def _grow_scratchpads(self, session: Session, cores: list[int], size: int) -> None:
        """The scratchpad is shared by a session's models on a core: it is as large as the largest need."""
        for core in cores:
            current = session.scratchpads.get(core)
            if current is not None and current.size >= size:
                continue
            region = self._device_alloc(session, core, size, pb.MODEL_SHARED_SCRATCHPAD)
            if current is not None:
                self._free_region(current)
            session.scratchpads[core] = region

    def model(self, session: Session, model_id: int) -> LoadedModel:
        model = self.models.get(model_id)
        if model is None:
            raise NotFound(f"no model {model_id}: it was never loaded or is already unloaded")
        if model.session_id != session.session_id:
            raise PermissionDenied(f"model {model_id} belongs to another session")
        return model

    def unload_model(self, session: Session, model: LoadedModel) -> None:
        with self.lock:
            self._unload(session, model)

    def _unload(self, session: Session, model: LoadedModel) -> None:
        for sg in model.subgraphs:
            self._free_all(sg.regions)
        del session.models[model.model_id]
        del self.models[model.model_id]
        self._forget_model(model)
        self._release_unused_scratchpads(session)

    def _release_unused_scratchpads(self, session: Session) -> None:
        still_used = {sg.core_id for m in session.models.values() for sg in m.subgraphs}
        for core in [c for c in session.scratchpads if c not in still_used]:
            self._free_region(session.scratchpads.pop(core))

    def _forget_model(self, model: LoadedModel) -> None:
        for sg in model.subgraphs:
            self.ledger.forget(("model_core", model.model_id, sg.core_id))
            self.ledger.forget(("model_host", model.model_id, sg.core_id))


@contextlib.contextmanager
def host_memory_errors():
    """The daemon's own RAM can run out when bytes are first written (lazy materialization)."""
    try:
        yield
    except OutOfMemory as exc:
        raise ResourceExhausted(f"cannot hold the data: {exc}") from None



def _check_text(what: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidArgument(f"{what} is {len(value)} characters long; the limit is {limit}")


def _check_shape(shape, what: str) -> tuple[int, ...]:
    shape = tuple(int(d) for d in shape)
    if not 1 <= len(shape) <= MAX_TENSOR_RANK:
        raise InvalidArgument(f"{what} shape {list(shape)} has rank {len(shape)}; give 1 to "
                              f"{MAX_TENSOR_RANK} dimensions")
    if any(d == 0 for d in shape):
        raise InvalidArgument(f"{what} shape {list(shape)} has a zero dimension; every dimension must be >= 1")
    return shape


def _ranges(cores: list[int]) -> str:
    return f"{cores[0]}-{cores[-1]}" if len(cores) > 1 else str(cores[0])
