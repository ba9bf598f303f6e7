"""The typed Python client of neurond: what every tool and every user program goes through.

    from neurontools.client import Session
    with Session(visible_cores="0") as session:
        a = session.tensor_from(numpy_array)
        ...

Device is the read-only side (topology, snapshots, watch). Session is a Neuron runtime session,
kept alive by a stream: when this process exits or its connection drops, the daemon releases
everything the session holds. gRPC errors become NeuronError subclasses whose message says what
was wrong and how to fix it. numpy is imported only by the calls that move tensor data, so
tools that only read state (neuron-ls) start fast.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

# gRPC's core logs a failed TLS handshake on stderr at INFO, next to the NeuronError that says what
# failed and how to fix it; keep its warnings and errors only, unless the user chose otherwise.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import grpc  # noqa: E402  (after the verbosity setting on purpose)

from neurontools import addresses, connection_options
from neurontools._proto import neurond_pb2 as pb
from neurontools._proto import neurond_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    import numpy as np

RUNTIME_VERSION = "2.30.51"  # the Neuron runtime version our sessions report
CHUNK_BYTES = 1 << 20
INLINE_CONSTANT_BYTES = 1 << 20  # larger constants are uploaded as tensors first
default_address = addresses.default_address


# -------------------------------------------------------------------------------------------------
# Errors
# -------------------------------------------------------------------------------------------------

class NeuronError(Exception):
    """A request neurond refused or could not serve; `code` is the gRPC status."""

    code: grpc.StatusCode | None = None

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


class DaemonUnavailable(NeuronError, ConnectionError):
    pass


class InvalidRequest(NeuronError, ValueError):
    pass


class NotFoundError(NeuronError, LookupError):
    pass


class AccessDenied(NeuronError, PermissionError):
    pass


class OutOfResources(NeuronError):
    """Cores taken, HBM or host memory exhausted."""


class RequestTimeout(NeuronError, TimeoutError):
    pass


class ExecutionError(NeuronError):
    """An execution that did not complete cleanly; `.result` holds the daemon's answer."""

    def __init__(self, message: str, result: "ExecutionResult") -> None:
        super().__init__(message)
        self.result = result


_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
    grpc.StatusCode.OUT_OF_RANGE: InvalidRequest,
    grpc.StatusCode.FAILED_PRECONDITION: InvalidRequest,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.PERMISSION_DENIED: AccessDenied,
    grpc.StatusCode.UNAUTHENTICATED: AccessDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: OutOfResources,
    grpc.StatusCode.DEADLINE_EXCEEDED: RequestTimeout,
}


def _translate(error: grpc.RpcError, address: str) -> NeuronError:
    code = error.code()
    details = error.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE and details.startswith("neurond is shutting down"):
        return DaemonUnavailable(details, code)  # the daemon answered: it is going away
    if code == grpc.StatusCode.UNAVAILABLE:
        return DaemonUnavailable(connection_options.unreachable_message(address, details), code)
    return _ERRORS.get(code, NeuronError)(details or f"neurond answered {code.name}", code)


def _tool_command_line() -> str:
    """How a tool names itself to the daemon: "neuron-ls -a", as the real (Go) binaries appear,
    not "/path/python /path/neuron-ls -a"; scripts run as `python file.py` keep their full form."""
    if sys.argv and os.path.basename(sys.argv[0]).startswith("neuron"):
        return " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]])
    return _command_line()


def _command_line() -> str:
    try:
        with open("/proc/self/cmdline", "rb") as f:
            parts = f.read().split(b"\0")
        return " ".join(p.decode(errors="replace") for p in parts if p)
    except OSError:
        return " ".join([sys.executable, *sys.argv])


# -------------------------------------------------------------------------------------------------
# Connection
# -------------------------------------------------------------------------------------------------

class _Connection:
    """A channel plus the metadata every call carries (who we are, the token, the session).

    `address` is a DaemonEndpoint (what the tools pass) or an address (None: the default); the
    token and CA not given come from the environment (neurontools.connection_options).
    """

    def __init__(self, address: "str | connection_options.DaemonEndpoint | None", token: str | None,
                 timeout: float, root_certificates: bytes | None = None) -> None:
        endpoint = connection_options.resolve(address, token=token, root_certificates=root_certificates)
        self.address = endpoint.address
        self.timeout = timeout
        options = [("grpc.max_receive_message_length", 64 << 20),
                   ("grpc.keepalive_time_ms", 10_000), ("grpc.keepalive_timeout_ms", 5_000)]
        if endpoint.uses_tls:
            self.channel = grpc.secure_channel(self.address, grpc.ssl_channel_credentials(endpoint.root_certificates),
                                               options)
        else:
            self.channel = grpc.insecure_channel(self.address, options)
        self.metadata: list[tuple[str, str]] = [("neuron-client-pid", str(os.getpid())),
                                                ("neuron-client-command-bin", _tool_command_line()[:4096].encode())]
        if endpoint.token:
            self.metadata.append(("authorization", f"Bearer {endpoint.token}"))

    def unary(self, method, request, timeout: float | None = None):
        try:
            return method(request, metadata=self.metadata, timeout=timeout or self.timeout)
        except grpc.RpcError as error:
            raise _translate(error, self.address) from None

    def close(self) -> None:
        self.channel.close()


class Device:
    """Read-only access to the machine: topology, snapshots, watch streams, operator actions."""

    def __init__(self, address: "str | connection_options.DaemonEndpoint | None" = None, *, timeout: float = 5.0,
                 token: str | None = None, root_certificates: bytes | None = None) -> None:
        self._conn = _Connection(address, token, timeout, root_certificates)
        self._device = pb_grpc.NeuronDeviceStub(self._conn.channel)
        self._admin = pb_grpc.NeuronAdminStub(self._conn.channel)
        self._observation: grpc.Future | None = None  # the Observe stream, while observing

    @property
    def address(self) -> str:
        return self._conn.address

    def topology(self) -> pb.Topology:
        return self._conn.unary(self._device.GetTopology, pb.GetTopologyRequest())

    def snapshot(self) -> pb.Snapshot:
        return self._conn.unary(self._device.GetSnapshot, pb.SnapshotRequest())

    def profile(self, model_id: int, core_id: int | None = None, session_id: int | None = None) -> pb.Profile:
        """The profile of a loaded model's first execution on `core_id` (default: its first subgraph's
        core); `profile_json` holds it (docs/profile.md). With `session_id`, the model must belong to that
        open session. Raises NotFoundError for a session, model or core that is not there, InvalidRequest
        when the model has not executed yet."""
        request = pb.GetProfileRequest(model_id=model_id)
        if core_id is not None:
            request.core_id = core_id
        if session_id is not None:
            request.session_id = session_id
        return self._conn.unary(self._device.GetProfile, request)

    def watch(self, interval: float = 1.0, queue_depth: int = 4) -> Iterator[pb.WatchFrame]:
        """Frames every `interval` seconds until the caller stops iterating or the daemon goes away."""
        call = self._device.Watch(pb.WatchRequest(interval_ns=int(interval * 1e9), queue_depth=queue_depth),
                                  metadata=self._conn.metadata)
        try:
            yield from call
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                raise _translate(error, self.address) from None
        finally:
            call.cancel()

    def observe(self) -> None:
        """Be listed among the daemon's observers (what neuron-ls -a shows) until close(), as a tool
        that watches is: neuron-top and neuron-monitor call it. Reopened if the daemon restarted."""
        if self._observation is None or self._observation.done():
            # Nothing is ever read from it: the open stream is the presence.
            self._observation = self._device.Observe(pb.ObserveRequest(), metadata=self._conn.metadata)

    def end_session(self, session_id: int, reason: str = "") -> None:
        """End another process's runtime session (operator action; refused to sessions)."""
        self._conn.unary(self._admin.EndSession, pb.EndSessionRequest(session_id=session_id, reason=reason))

    def inject_fault(self, kind: str | int, *, device: int = 0, core: int = 0, link: int = 0, count: int = 1,
                     duration: float = 0.0) -> pb.Fault:
        """Inject a fault (operator action): kind is a pb.FaultKind value or name such as "core_hang"."""
        kind_value = kind if isinstance(kind, int) else pb.FaultKind.Value(kind.upper().replace("-", "_"))
        fault = pb.Fault(kind=kind_value, device_index=device, core_id=core, link_id=link, count=count,
                         duration_ns=int(duration * 1e9))
        return self._conn.unary(self._admin.InjectFault, pb.InjectFaultRequest(fault=fault))

    def clear_faults(self, fault_id: int = 0) -> int:
        """Clear one lasting fault, or all of them (0); returns how many were cleared."""
        return self._conn.unary(self._admin.ClearFaults, pb.ClearFaultsRequest(fault_id=fault_id)).cleared

    def faults(self) -> list[pb.Fault]:
        return list(self._conn.unary(self._admin.ListFaults, pb.ListFaultsRequest()).faults)

    def close(self) -> None:
        if self._observation is not None:
            self._observation.cancel()
            self._observation = None
        self._conn.close()

    def __enter__(self) -> "Device":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -------------------------------------------------------------------------------------------------
# Runtime sessions
# -------------------------------------------------------------------------------------------------

class Tensor:
    """A tensor in HBM (or host memory) owned by a session."""

    def __init__(self, session: "Session", info: pb.TensorInfo) -> None:
        self.session = session
        self.info = info

    @property
    def tensor_id(self) -> int:
        return self.info.tensor_id

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.info.shape)

    @property
    def dtype(self) -> str:
        return pb.DType.Name(self.info.dtype).lower()

    @property
    def nbytes(self) -> int:
        return self.info.size_bytes

    def write(self, data: "np.ndarray | bytes", offset: int = 0) -> int:
        """Write an array (cast to the tensor's dtype) or raw bytes, in chunks of any total size."""
        payload = data if isinstance(data, (bytes, bytearray, memoryview)) else self._encode(data)
        view = memoryview(payload).cast("B")
        if not len(view):
            raise InvalidRequest("nothing to write: the data is empty")

        def chunks():
            for start in range(0, len(view), CHUNK_BYTES):
                yield pb.WriteTensorChunk(tensor_id=self.tensor_id, offset=offset + start,
                                          data=bytes(view[start:start + CHUNK_BYTES]))

        response = self.session._conn.unary(self.session._runtime.WriteTensor, chunks(),
                                            timeout=max(self.session._conn.timeout, len(view) / 50e6))
        return response.bytes_written

    def _encode(self, array) -> bytes:
        import numpy as np

        from neurontools import dtypes
        array = np.asarray(array)
        if array.shape != self.shape:
            raise InvalidRequest(f"array shape {array.shape} does not match tensor {self.tensor_id} "
                                 f"shape {self.shape}")
        return np.ascontiguousarray(dtypes.cast_to(array, self.info.dtype)).tobytes()

    def read_bytes(self, offset: int = 0, length: int = 0) -> bytes:
        request = pb.ReadTensorRequest(tensor_id=self.tensor_id, offset=offset, length=length)
        try:
            stream = self.session._runtime.ReadTensor(request, metadata=self.session._conn.metadata,
                                                      timeout=max(self.session._conn.timeout, self.nbytes / 50e6))
            return b"".join(chunk.data for chunk in stream)
        except grpc.RpcError as error:
            raise _translate(error, self.session._conn.address) from None

    def read(self) -> "np.ndarray":
        import numpy as np

        from neurontools import dtypes
        return np.frombuffer(self.read_bytes(), dtype=dtypes.storage_dtype(self.info.dtype)).reshape(self.shape).copy()

    def copy_from(self, source: "Tensor") -> None:
        self.session._call("CopyTensor", pb.CopyTensorRequest(src_tensor_id=source.tensor_id,
                                                              dst_tensor_id=self.tensor_id))

    def free(self) -> None:
        self.session._call("FreeTensor", pb.FreeTensorRequest(tensor_id=self.tensor_id))

    def __repr__(self) -> str:
        return f"Tensor({self.tensor_id}, {self.dtype}{list(self.shape)}, core {self.info.core_id})"


class ExecutionResult:
    def __init__(self, response: pb.ExecuteResponse) -> None:
        self.response = response
        self.status = pb.ExecutionStatus.Name(response.status).lower()
        self.device_latency = response.device_latency_ns / 1e9  # seconds, modeled NeuronCore-v2 time
        self.total_latency = response.total_latency_ns / 1e9    # seconds, wall time in the daemon
        self.flops = response.flops
        self.message = response.message

    @property
    def ok(self) -> bool:
        return self.response.status == pb.COMPLETED

    def __repr__(self) -> str:
        return (f"ExecutionResult({self.status}, device {self.device_latency * 1e6:.1f} us, "
                f"total {self.total_latency * 1e6:.1f} us)")


class Model:
    def __init__(self, session: "Session", info: pb.ModelInfo) -> None:
        self.session = session
        self.info = info

    @property
    def model_id(self) -> int:
        return self.info.model_id

    def execute(self, bindings: Mapping[str, Tensor] | None = None, *, timing_only: bool = False,
                check: bool = True, **named: Tensor) -> ExecutionResult:
        return self.session.execute(self, {**(bindings or {}), **named}, timing_only=timing_only, check=check)

    def unload(self) -> None:
        self.session._call("UnloadModel", pb.UnloadModelRequest(model_id=self.model_id))

    def start_load(self, bindings: Mapping[str, Tensor] | None = None, **options) -> "Load":
        """Drive this model from inside the daemon (Session.start_load has the options)."""
        return self.session.start_load(self, bindings or {}, **options)


class Load:
    """A load running inside the daemon (StartLoad): observe it with progress(), wait(), stop()."""

    def __init__(self, session: "Session", progress: pb.LoadProgress) -> None:
        self.session = session
        self.load_id = progress.load_id
        self.last = progress

    def progress(self) -> pb.LoadProgress:
        self.last = self.session._call("GetLoad", pb.GetLoadRequest(load_id=self.load_id))
        return self.last

    def wait(self, timeout: float = 600.0) -> pb.LoadProgress:
        """Until the load finished or stopped, or `timeout` seconds passed; returns its progress."""
        wait_ns = int(min(timeout, 600.0) * 1e9)
        self.last = self.session._call("GetLoad", pb.GetLoadRequest(load_id=self.load_id, wait_ns=wait_ns),
                                       timeout=self.session._conn.timeout + wait_ns / 1e9)
        return self.last

    def stop(self) -> pb.LoadProgress:
        self.last = self.session._call("StopLoad", pb.StopLoadRequest(load_id=self.load_id))
        return self.last

    @property
    def finished(self) -> bool:
        return self.last.state in (pb.LOAD_FINISHED, pb.LOAD_STOPPED)

    def __repr__(self) -> str:
        return f"Load({self.load_id}, {pb.LoadState.Name(self.last.state)}, {self.last.submitted} submitted)"


@dataclass(frozen=True)
class RequestStep:
    """One step of a request load: an execution of `model` with its inputs, after `host_seconds` of host
    time (launch, inputs and outputs over the host link); `ends_item` when it completes an item (a token)."""

    model: Model
    core_bindings: Mapping[int, Mapping[str, Tensor]] = field(default_factory=dict)
    host_seconds: float = 0.0
    ends_item: bool = False


def _add_bindings(target, model: Model, bindings: Mapping[str, Tensor],
                  core_bindings: Mapping[int, Mapping[str, Tensor]] | None) -> None:
    cores = [sg.core_id for sg in model.info.subgraphs]
    for name, tensor in bindings.items():
        for core in cores:
            target.add(core_id=core, name=name, tensor_id=tensor.tensor_id)
    for core, named in (core_bindings or {}).items():
        for name, tensor in named.items():
            target.add(core_id=core, name=name, tensor_id=tensor.tensor_id)


def _env_int(name: str) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() else 0


class Session:
    """A Neuron runtime session (what a process using the runtime holds).

    Core selection follows the runtime's variables when not given: NEURON_RT_VISIBLE_CORES,
    NEURON_RT_NUM_CORES, NEURON_PROCESS_TAG and NEURON_RT_EXEC_TIMEOUT (seconds).
    """

    def __init__(self, address: "str | connection_options.DaemonEndpoint | None" = None, *,
                 visible_cores: str | None = None, num_cores: int | None = None,
                 tag: str | None = None, pid: int | None = None, command: str | None = None,
                 runtime_version: str = RUNTIME_VERSION, exec_timeout: float | None = None,
                 timeout: float = 30.0, token: str | None = None,
                 root_certificates: bytes | None = None) -> None:
        self._conn = _Connection(address, token, timeout, root_certificates)
        self._runtime = pb_grpc.NeuronRuntimeStub(self._conn.channel)
        timeout_env = os.environ.get("NEURON_RT_EXEC_TIMEOUT", "").strip()
        exec_timeout = exec_timeout if exec_timeout is not None else (float(timeout_env) if timeout_env else 0)
        self._request = pb.OpenSessionRequest(
            pid=pid if pid is not None else os.getpid(),
            command=command if command is not None else _command_line(),
            runtime_version=runtime_version,
            tag=tag if tag is not None else os.environ.get("NEURON_PROCESS_TAG", ""),
            visible_cores=visible_cores if visible_cores is not None else os.environ.get("NEURON_RT_VISIBLE_CORES", ""),
            num_cores=num_cores if num_cores is not None else _env_int("NEURON_RT_NUM_CORES"),
            exec_timeout_ns=int(exec_timeout * 1e9))
        self._stream = None
        self._events: threading.Thread | None = None
        self.session_id = 0
        self.core_ids: list[int] = []
        self.topology: pb.Topology | None = None
        self.closed_reason: str | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def open(self) -> "Session":
        self._stream = self._runtime.OpenSession(self._request, metadata=self._conn.metadata)
        try:
            event = next(self._stream)
        except grpc.RpcError as error:
            raise _translate(error, self._conn.address) from None
        opened = event.opened
        self.session_id = opened.session_id
        self.core_ids = list(opened.core_ids)
        self.topology = opened.topology
        self._conn.metadata.append(("neuron-session-key", opened.session_key))
        self._events = threading.Thread(target=self._follow, name=f"neuron-session-{self.session_id}", daemon=True)
        self._events.start()
        return self

    def _follow(self) -> None:
        try:
            for event in self._stream:
                if event.HasField("closing"):
                    self.closed_reason = event.closing.reason
        except grpc.RpcError as error:
            if self.closed_reason is None and error.code() != grpc.StatusCode.CANCELLED:
                self.closed_reason = f"connection to neurond lost ({error.code().name})"

    def close(self) -> None:
        if self._stream is not None:
            if self.closed_reason is None:
                # Say goodbye, so that the daemon can tell a close from a lost connection.
                try:
                    self._runtime.CloseSession(pb.CloseSessionRequest(), metadata=self._conn.metadata,
                                               timeout=min(self._conn.timeout, 5.0))
                except grpc.RpcError:
                    pass  # gone or closed already; cancelling the stream releases it all the same
            self._stream.cancel()
            self._stream = None
        self._conn.close()

    def __enter__(self) -> "Session":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, name: str, request, timeout: float | None = None):
        return self._conn.unary(getattr(self._runtime, name), request, timeout)

    # -- tensors --------------------------------------------------------------------------------

    def allocate(self, shape, dtype: Any = "float32", *, core_id: int | None = None, placement: str = "device",
                 name: str = "") -> Tensor:
        from neurontools import dtypes
        dtype_value = dtype if isinstance(dtype, int) else (
            dtypes.from_name(dtype) if isinstance(dtype, str) else dtypes.from_numpy(dtype))
        placement_value = {"device": pb.DEVICE, "host": pb.HOST}.get(placement)
        if placement_value is None:
            raise InvalidRequest(f"placement {placement!r}: use 'device' or 'host'")
        request = pb.AllocateTensorRequest(name=name, shape=list(shape), dtype=dtype_value,
                                           placement=placement_value,
                                           core_id=self.core_ids[0] if core_id is None else core_id)
        return Tensor(self, self._call("AllocateTensor", request))

    def tensor_from(self, array, *, dtype: Any = None, core_id: int | None = None, placement: str = "device",
                    name: str = "") -> Tensor:
        """Allocate a tensor shaped like `array` (dtype: the array's unless given) and write it."""
        import numpy as np
        array = np.asarray(array)
        tensor = self.allocate(array.shape, dtype if dtype is not None else array.dtype, core_id=core_id,
                               placement=placement, name=name)
        tensor.write(array)
        return tensor

    # -- models ---------------------------------------------------------------------------------

    def load_model(self, name: str, programs: "pb.Program | Mapping[int, pb.Program]", *,
                   scratchpad_bytes: int = 0, runtime_memory_bytes: int = 0) -> Model:
        """Load a program on one core (the session's first) or {core_id: program} on several."""
        if isinstance(programs, pb.Program):
            programs = {self.core_ids[0]: programs}
        uploads: list[Tensor] = []
        try:
            subgraphs = []
            for core, program in programs.items():
                subgraphs.append(pb.SubgraphProgram(core_id=core, program=self._upload_constants(program, core, uploads)))
            info = self._call("LoadModel", pb.LoadModelRequest(
                name=name, subgraphs=subgraphs, scratchpad_bytes=scratchpad_bytes,
                runtime_memory_bytes=runtime_memory_bytes), timeout=max(self._conn.timeout, 120))
        finally:
            for tensor in uploads:
                tensor.free()
        return Model(self, info)

    def _upload_constants(self, program: pb.Program, core: int, uploads: list[Tensor]) -> pb.Program:
        """Large inline constants travel as tensors, so no message has to hold them whole."""
        if all(len(c.data) <= INLINE_CONSTANT_BYTES for c in program.constants):
            return program
        program = pb.Program.FromString(program.SerializeToString())
        for constant in program.constants:
            if len(constant.data) > INLINE_CONSTANT_BYTES:
                tensor = self.allocate([len(constant.data)], "uint8", core_id=core, name=f"upload:{constant.name}")
                uploads.append(tensor)
                tensor.write(constant.data)
                constant.data = b""
                constant.tensor_id = tensor.tensor_id
        return program

    def execute(self, model: Model, bindings: Mapping[str, Tensor], *, timing_only: bool = False,
                check: bool = True, core_bindings: Mapping[int, Mapping[str, Tensor]] | None = None
                ) -> ExecutionResult:
        """Run a model. `bindings` maps parameter names to tensors (single-core models, or names shared by
        all subgraphs); `core_bindings` maps a core id to its own bindings for multi-core models."""
        request = pb.ExecuteRequest(model_id=model.model_id, timing_only=timing_only)
        _add_bindings(request.bindings, model, bindings, core_bindings)
        # The daemon enforces NEURON_RT_EXEC_TIMEOUT; the deadline only guards against a lost daemon.
        deadline = self._conn.timeout + (self._request.exec_timeout_ns / 1e9 or 30.0)
        result = ExecutionResult(self._call("Execute", request, timeout=deadline))
        if check and not result.ok:
            raise ExecutionError(f"execution of model {model.model_id} {result.status}: {result.message}", result)
        return result

    def start_load(self, model: Model, bindings: Mapping[str, Tensor], *, timing_only: bool = True,
                   in_flight_per_core: int = 0, rate: float = 0.0, arrivals: str = "constant",
                   duration: float = 0.0, count: int = 0, seed: int = 0,
                   core_bindings: Mapping[int, Mapping[str, Tensor]] | None = None) -> Load:
        """Start a load inside the daemon: a closed loop with `in_flight_per_core` executions outstanding,
        or an open loop at `rate` executions/s (`arrivals` "constant" or "poisson"), for `duration` seconds
        and/or `count` executions (neither: until stopped). Inputs are bound once. Every execution counts
        like an Execute call; the load ends with this session."""
        if not in_flight_per_core and not rate:
            in_flight_per_core = 1
        spec = pb.LoadSpec(model_id=model.model_id, timing_only=timing_only, in_flight_per_core=in_flight_per_core,
                           rate_per_second=rate, duration_ns=int(duration * 1e9), count=count, seed=seed)
        if rate:
            spec.arrivals = pb.Arrivals.Value(arrivals.upper())
        _add_bindings(spec.bindings, model, bindings, core_bindings)
        return Load(self, self._call("StartLoad", pb.StartLoadRequest(spec=spec)))

    def start_requests(self, steps: Sequence[RequestStep], *, in_flight: int = 0, rate: float = 0.0,
                       arrivals: str = "constant", duration: float = 0.0, count: int = 0, seed: int = 0,
                       max_failed: int = 0) -> Load:
        """Start a load of requests, each running `steps` in order (timing-only): a closed loop with
        `in_flight` requests outstanding or an open loop at `rate` requests/s, for `duration` seconds and/or
        `count` requests. A request that hits an error ends there; LoadProgress.requests counts them, and
        the load stops after `max_failed` failed requests (0: never)."""
        if not in_flight and not rate:
            in_flight = 1
        spec = pb.LoadSpec(timing_only=True, in_flight_per_core=in_flight, rate_per_second=rate,
                           duration_ns=int(duration * 1e9), count=count, seed=seed, max_failed_requests=max_failed)
        if rate:
            spec.arrivals = pb.Arrivals.Value(arrivals.upper())
        distinct: dict[tuple, int] = {}  # each distinct step once, then the order (a generation repeats them)
        for step in steps:
            key = (step.model.model_id, round(step.host_seconds * 1e9), step.ends_item,
                   tuple((core, name, tensor.tensor_id) for core, named in step.core_bindings.items()
                         for name, tensor in named.items()))
            if key not in distinct:
                distinct[key] = len(spec.steps)
                message = spec.steps.add(model_id=key[0], host_ns=key[1], ends_item=step.ends_item)
                _add_bindings(message.bindings, step.model, {}, step.core_bindings)
            spec.step_order.append(distinct[key])
        return Load(self, self._call("StartLoad", pb.StartLoadRequest(spec=spec)))

    def loads(self) -> list[pb.LoadProgress]:
        return list(self._call("ListLoads", pb.ListLoadsRequest()).loads)
