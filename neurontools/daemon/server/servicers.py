"""gRPC servicers: request validation and status mapping around RuntimeState and Executor.

Every handler runs on the event loop. A RequestError becomes its gRPC status with its message;
anything else is a daemon bug, logged with its traceback and reported as INTERNAL, and the
daemon keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import logging
import time
from collections.abc import Callable

import grpc

from neurontools._proto import neurond_pb2 as pb
from neurontools._proto import neurond_pb2_grpc as pb_grpc
from neurontools.daemon.errors import (FailedPrecondition, InvalidArgument, NotFound, PermissionDenied,
                                       RequestError, Unauthenticated, Unavailable)
from neurontools.daemon.runtime import profiles
from neurontools.daemon.runtime.execution import Executor
from neurontools.daemon.runtime.loads import LoadService
from neurontools.daemon.runtime.sessions import RuntimeState, Session
from neurontools.daemon.runtime.snapshot import SnapshotBuilder
from neurontools.daemon.server.registration import Malformed

log = logging.getLogger("neurond")

SESSION_KEY_METADATA = "neuron-session-key"
CLIENT_PID_METADATA = "neuron-client-pid"
CLIENT_COMMAND_METADATA = "neuron-client-command-bin"
DEFAULT_CHUNK_BYTES = 1 << 20
MAX_CHUNK_BYTES = 2 << 20  # stays well inside the default 4 MiB gRPC message limit
MIN_WATCH_INTERVAL_NS = 10_000_000
MAX_WATCH_QUEUE = 64
CLOSED_BY_CLIENT = "closed by the client"
CONNECTION_LOST = "connection lost (the client exited, was killed or lost its connection)"
SHUTTING_DOWN = "neurond is shutting down"


def _metadata(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for item in context.invocation_metadata() or ():
        if item.key == key:
            return item.value
    return None


class Access:
    """Who may call: local Unix-socket peers always; TCP peers with the bearer token unless insecure."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    def check(self, context: grpc.aio.ServicerContext) -> None:
        if self.token is None or context.peer().startswith("unix:"):
            return
        header = _metadata(context, "authorization")
        if not header:
            raise Unauthenticated("no token sent: this daemon asks TCP clients for its token; give the file "
                                  "holding it with --token-file or $NEURON_DAEMON_TOKEN_FILE (Python: token=)")
        scheme, _, supplied = header.partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthenticated(f"the authorization header must be 'Bearer <token>', not {scheme[:20]!r}")
        if not hmac.compare_digest(supplied.encode(), self.token.encode()):
            raise Unauthenticated("wrong token: the token sent does not match this daemon's (its --token-file); "
                                  "check the client's --token-file or $NEURON_DAEMON_TOKEN_FILE")


def _check_decoded(request) -> None:
    if isinstance(request, Malformed):
        raise InvalidArgument(request.reason)


@contextlib.asynccontextmanager
async def _answering(access: "Access", context: grpc.aio.ServicerContext, name: str):
    """Access check, then every failure of the body becomes a gRPC status."""
    try:
        access.check(context)
        yield
    except RequestError as exc:
        await context.abort(exc.code, str(exc))
    except (asyncio.CancelledError, grpc.aio.AbortError):
        raise
    except Exception:
        log.exception("%s failed", name)
        await context.abort(grpc.StatusCode.INTERNAL, f"neurond internal error in {name}; see the daemon's log")


def _handler(method: Callable) -> Callable:
    """For unary-request handlers."""

    name = method.__name__

    @functools.wraps(method)
    async def wrapper(self, request, context):
        # What _answering does, inline: this wraps every Execute call, where each microsecond shows.
        try:
            self.access.check(context)
            _check_decoded(request)
            return await method(self, request, context)
        except RequestError as exc:
            await context.abort(exc.code, str(exc))
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception:
            log.exception("%s failed", name)
            await context.abort(grpc.StatusCode.INTERNAL, f"neurond internal error in {name}; see the daemon's log")
    return wrapper


def _stream_handler(method: Callable) -> Callable:
    """For server-streaming handlers (async generators)."""

    @functools.wraps(method)
    async def wrapper(self, request, context):
        async with _answering(self.access, context, method.__name__):
            _check_decoded(request)
            async for item in method(self, request, context):
                yield item
    return wrapper


class Observers:
    """Processes using the device without a session (watchers, snapshot callers), for neuron-ls -a."""

    def __init__(self) -> None:
        self._active: dict[int, tuple[int, str]] = {}
        self._next = 0

    def enter(self, context: grpc.aio.ServicerContext) -> int:
        pid = _metadata(context, CLIENT_PID_METADATA)
        self._next += 1
        # Advisory only: a value that is no pid is ignored rather than refused.
        if pid and pid.isascii() and pid.isdigit() and 0 < len(pid) <= 10 and int(pid) < 2**31:
            command = _metadata(context, CLIENT_COMMAND_METADATA) or b""
            self._active[self._next] = (int(pid), command[:4096].decode(errors="replace"))
        return self._next

    def leave(self, token: int) -> None:
        self._active.pop(token, None)

    def current(self) -> list[tuple[int, str]]:
        return sorted(set(self._active.values()))


class DeviceServicer(pb_grpc.NeuronDeviceServicer):
    def __init__(self, state: RuntimeState, snapshots: SnapshotBuilder, observers: Observers,
                 access: Access, loads: LoadService) -> None:
        self.state = state
        self.snapshots = snapshots
        self.observers = observers
        self.access = access
        self.loads = loads
        self._stopping: asyncio.Event | None = None  # set when the daemon stops: Observe streams end

    def stop_observing(self) -> None:
        """End every Observe stream now, so that they do not hold up the server's stop."""
        if self._stopping is not None:
            self._stopping.set()

    def _snapshot(self) -> pb.Snapshot:
        # In-daemon load's executions up to now are in the counters, and the snapshot is taken at the
        # instant they were settled to: a clock read later would count occupied time they do not have.
        settled_ns = self.loads.settle()
        return self.snapshots.build(self.observers.current(), now_ns=settled_ns)

    @_handler
    async def GetTopology(self, request, context):
        return self.state.topology

    @_handler
    async def GetSnapshot(self, request, context):
        token = self.observers.enter(context)
        try:
            return self._snapshot()
        finally:
            self.observers.leave(token)

    @_handler
    async def GetProfile(self, request, context):
        profile, subgraph = profiles.profiled_subgraph(self.state, request)
        profile.profile_json = await asyncio.to_thread(profiles.profile_json, subgraph)
        return profile

    @_stream_handler
    async def Observe(self, request, context):
        """Lists the caller as an observer until it goes away (neuron-top, neuron-monitor)."""
        if self._stopping is None:
            self._stopping = asyncio.Event()
        token = self.observers.enter(context)
        try:
            yield pb.ObserveEvent()  # listed from now on
            await self._stopping.wait()  # or cancelled: the caller cancels, exits or loses its connection
        finally:
            self.observers.leave(token)

    @_stream_handler
    async def Watch(self, request, context):
        interval_ns = request.interval_ns or 1_000_000_000
        if interval_ns < MIN_WATCH_INTERVAL_NS:
            raise InvalidArgument(f"watch interval {interval_ns} ns is below the minimum of "
                                  f"{MIN_WATCH_INTERVAL_NS} ns (10 ms)")
        depth = request.queue_depth or 4
        if depth > MAX_WATCH_QUEUE:
            raise InvalidArgument(f"queue_depth {depth} is above the maximum of {MAX_WATCH_QUEUE}")
        frames: asyncio.Queue = asyncio.Queue(maxsize=depth)
        missed = 0
        token = self.observers.enter(context)

        async def produce() -> None:
            # Ticks on the daemon's schedule; a slow reader loses its oldest frames, never slows us.
            nonlocal missed
            next_tick = time.monotonic()
            while True:
                snapshot = self._snapshot()
                if frames.full():
                    frames.get_nowait()
                    missed += 1
                frames.put_nowait(snapshot)
                next_tick += interval_ns / 1e9
                await asyncio.sleep(max(0.0, next_tick - time.monotonic()))

        producer = asyncio.create_task(produce())
        try:
            while True:
                snapshot = await frames.get()
                frame = pb.WatchFrame(snapshot=snapshot, missed_frames=missed)
                missed = 0
                yield frame
        finally:
            producer.cancel()
            self.observers.leave(token)


class RuntimeServicer(pb_grpc.NeuronRuntimeServicer):
    def __init__(self, state: RuntimeState, executor: Executor, access: Access, loads: LoadService) -> None:
        self.state = state
        self.executor = executor
        self.access = access
        self.loads = loads
        self.closing: dict[int, asyncio.Future] = {}  # session id -> resolves with a closing reason
        self.shutting_down = False
        self._executing: set[asyncio.Task] = set()  # Execute calls waiting for their execution

    def shut_down(self) -> None:
        """Answers every Execute call in flight, and every later one, with UNAVAILABLE."""
        self.shutting_down = True
        for task in self._executing:
            task.cancel()

    def _session(self, context) -> Session:
        return self.state.session_for_key(_metadata(context, SESSION_KEY_METADATA))

    def end_session(self, session_id: int, reason: str) -> bool:
        future = self.closing.get(session_id)
        if future is None or future.done():
            return False
        future.set_result(reason)
        return True

    @_stream_handler
    async def OpenSession(self, request, context):
        session = self.state.open_session(request)
        closing = asyncio.get_running_loop().create_future()
        self.closing[session.session_id] = closing
        log.info("session %d opened: pid %d tag %s cores %s", session.session_id, session.pid, session.tag,
                 session.core_ids)
        # Unless the client says goodbye (CloseSession) or the daemon ends it, the stream ending means
        # the client exited, was killed or lost its connection.
        reason = CONNECTION_LOST
        try:
            yield pb.SessionEvent(opened=pb.SessionOpened(
                session_id=session.session_id, session_key=session.key, core_ids=session.core_ids,
                topology=self.state.topology))
            reason = await closing
            yield pb.SessionEvent(closing=pb.SessionClosing(reason=reason))
        finally:
            # Reached on normal end, on client cancel and on a dropped connection alike.
            del self.closing[session.session_id]
            self.loads.end_session(session, reason)
            self.state.close_session(session, reason)
            log.info("session %d closed: %s; resources released", session.session_id, reason)

    @_handler
    async def CloseSession(self, request, context):
        session = self._session(context)
        self.end_session(session.session_id, CLOSED_BY_CLIENT)
        return pb.CloseSessionResponse()

    @_handler
    async def AllocateTensor(self, request, context):
        return self.state.allocate_tensor(self._session(context), request).info()

    async def WriteTensor(self, request_iterator, context):
        async with _answering(self.access, context, "WriteTensor"):
            session = self._session(context)
            tensor = None
            written = 0
            async for chunk in request_iterator:
                _check_decoded(chunk)
                if tensor is None:
                    tensor = self.state.tensor(session, chunk.tensor_id)
                elif chunk.tensor_id not in (0, tensor.tensor_id):
                    raise InvalidArgument("all chunks of one write must name the same tensor")
                self.state.check_live(tensor, "write")
                self.state.write_tensor(tensor, chunk.offset, chunk.data)
                written += len(chunk.data)
            if tensor is None:
                raise InvalidArgument("a write needs at least one chunk naming its tensor")
            return pb.WriteTensorResponse(bytes_written=written)

    @_stream_handler
    async def ReadTensor(self, request, context):
        tensor = self.state.tensor(self._session(context), request.tensor_id)
        chunk = request.chunk_bytes or DEFAULT_CHUNK_BYTES
        if chunk > MAX_CHUNK_BYTES:
            raise InvalidArgument(f"chunk_bytes {chunk} is above the maximum of {MAX_CHUNK_BYTES}")
        offset, length = self.state.read_range(tensor, request.offset, request.length)
        end = offset + length
        while True:
            size = min(chunk, end - offset)
            self.state.check_live(tensor, "read")  # other calls run between our chunks
            yield pb.TensorChunk(offset=offset, data=tensor.region.read(offset, size))
            offset += size
            if offset >= end:
                break

    @_handler
    async def CopyTensor(self, request, context):
        session = self._session(context)
        src = self.state.tensor(session, request.src_tensor_id)
        dst = self.state.tensor(session, request.dst_tensor_id)
        return pb.CopyTensorResponse(bytes_copied=self.state.copy_tensor(src, dst))

    @_handler
    async def FreeTensor(self, request, context):
        session = self._session(context)
        self.state.free_tensor(session, self.state.tensor(session, request.tensor_id))
        return pb.FreeTensorResponse()

    @_handler
    async def LoadModel(self, request, context):
        session = self._session(context)
        prepared = await asyncio.to_thread(self.state.prepare_model, session, request)
        model = self.state.load_model(session, request, prepared)
        return pb.ModelInfo(model_id=model.model_id, uuid=model.uuid, name=model.name,
                            session_id=model.session_id,
                            subgraphs=[pb.Subgraph(name=sg.name, core_id=sg.core_id, device_index=sg.device_index)
                                       for sg in model.subgraphs])

    @_handler
    async def UnloadModel(self, request, context):
        session = self._session(context)
        model = self.state.model(session, request.model_id)
        load = self.loads.active_on(model)
        if load is not None:
            raise FailedPrecondition(f"model {model.model_id} is driven by load {load.load_id}; stop it (StopLoad) "
                                     "before unloading the model")
        await self.loads.finish_answered(model)
        if model.running:
            raise FailedPrecondition(f"model {model.model_id} has {model.running} executions in flight; wait "
                                  "for them before unloading it")
        self.state.unload_model(session, model)
        return pb.UnloadModelResponse()

    @_handler
    async def Execute(self, request, context):
        if self.shutting_down:
            raise Unavailable(SHUTTING_DOWN)
        session = self._session(context)
        model = self.state.model(session, request.model_id)
        task = asyncio.current_task()
        self._executing.add(task)
        try:
            return await self.executor.execute(session, model, request)
        except asyncio.CancelledError:
            if not self.shutting_down:
                raise
            task.uncancel()
            raise Unavailable(SHUTTING_DOWN) from None
        finally:
            self._executing.discard(task)

    @_handler
    async def StartLoad(self, request, context):
        load = self.loads.start(self._session(context), request.spec)
        return self.loads.progress(load)

    @_handler
    async def GetLoad(self, request, context):
        load = self.loads.get(self._session(context), request.load_id)
        if request.wait_ns:
            await self.loads.wait(load, request.wait_ns)
        self.loads.settle()
        return self.loads.progress(load)

    @_handler
    async def StopLoad(self, request, context):
        session = self._session(context)
        load = self.loads.get(session, request.load_id)
        self.loads.stop(load, f"stopped by its client (pid {session.pid})")
        return self.loads.progress(load)

    @_handler
    async def ListLoads(self, request, context):
        session = self._session(context)
        self.loads.settle()
        return pb.ListLoadsResponse(loads=[self.loads.progress(load) for load in self.loads.of_session(session)])


class AdminServicer(pb_grpc.NeuronAdminServicer):
    def __init__(self, state: RuntimeState, runtime: RuntimeServicer, access: Access, loads: LoadService) -> None:
        self.state = state
        self.runtime = runtime
        self.access = access
        self.loads = loads

    @staticmethod
    def _operator_only(context) -> None:
        if _metadata(context, SESSION_KEY_METADATA):
            raise PermissionDenied("admin calls are not available to runtime sessions")

    @_handler
    async def InjectFault(self, request, context):
        self._operator_only(context)
        self.loads.settle()  # executions that started before the fault do not see it
        fault = self.state.faults.inject(request.fault)
        self.loads.engine.faults_changed()
        log.warning("fault injected: %s", fault.description)
        if fault.kind == pb.DEVICE_RESET:
            for session in list(self.state.sessions.values()):
                if any(self.state.machine.device_of_core(c) == fault.device_index for c in session.core_ids):
                    self.runtime.end_session(session.session_id, fault.description)
        return fault

    @_handler
    async def ClearFaults(self, request, context):
        self._operator_only(context)
        self.loads.settle()
        cleared = self.state.faults.clear(request.fault_id)
        self.loads.engine.faults_changed()
        if request.fault_id and not cleared:
            raise NotFound(f"no lasting fault {request.fault_id} is in force (it expired, was cleared, or never "
                           "existed); 'neuron-fault list' shows those that are")
        return pb.ClearFaultsResponse(cleared=cleared)

    @_handler
    async def ListFaults(self, request, context):
        self._operator_only(context)
        return pb.ListFaultsResponse(faults=self.state.faults.active())

    @_handler
    async def EndSession(self, request, context):
        self._operator_only(context)
        session = self.state.session_by_id(request.session_id)
        caller = _metadata(context, CLIENT_PID_METADATA)
        reason = request.reason or (f"ended by an operator (pid {caller})" if caller else "ended by an operator")
        self.runtime.end_session(session.session_id, reason)
        return pb.EndSessionResponse()
