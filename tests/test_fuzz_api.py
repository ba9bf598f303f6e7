"""Fuzzing neurond's request surface over its real Unix socket (DESIGN principle 7; issue 2, "Bad input").

Every RPC gets arbitrary-but-typed requests (tests/fuzz_strategies.py) through raw gRPC stubs, and the
methods also get bytes that are no message at all. Whatever is sent, the daemon must:

- answer within CALL_TIMEOUT (a hang fails the test) with success or a client-error status whose
  message is non-empty and clear: never INTERNAL or UNKNOWN, never a traceback, and where the right
  status is cheap to work out (tensor I/O, copies, frees, watch, end session) exactly that status;
- log no error (a traceback in the daemon's log fails the example that caused it);
- keep serving: health and a snapshot answer after every example, and a bystander session on its own
  NeuronCore reads its tensor back and runs its model correctly after every test;
- lose nothing: a refused request leaves device memory as it was, and closing a fuzzing session gives
  back every byte it held (snapshot memory, stacks, categories, materialized bytes).

Most examples are valid requests (tests/fuzz_strategies.py), so they reach the success paths and the
oracles behind them; how far each fuzzer got is printed in the terminal summary ("fuzz reach").

The tests after the fuzzers pin the daemon bugs found while writing them, each with its minimal request.
NEURON_FUZZ_SCALE=20 runs twenty times the examples (a longer hunt; the default keeps the file ~1 min).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import os
import re
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

import grpc
import numpy as np
import pytest
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

import fuzz_strategies as fs
from fuzz_reach import REACH
from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools._proto import neurond_pb2_grpc as pb_grpc

CALL_TIMEOUT = 10.0  # seconds; DEADLINE_EXCEEDED is a hang and fails the test
SC = grpc.StatusCode
CLIENT_ERRORS = frozenset({SC.INVALID_ARGUMENT, SC.NOT_FOUND, SC.PERMISSION_DENIED, SC.RESOURCE_EXHAUSTED,
                           SC.FAILED_PRECONDITION, SC.OUT_OF_RANGE, SC.UNAUTHENTICATED})
FUZZ_CORES = [0, 1, 2, 3]   # neuron devices 0 and 1; every fuzzing session of this module holds them
BYSTANDER_CORE = 23         # neuron device 11
EXEC_TIMEOUT_NS = 500_000_000
SCALE = float(os.environ.get("NEURON_FUZZ_SCALE", "1"))


def event(text: str) -> None:
    """Count an outcome for --hypothesis-show-statistics (only inside a fuzzer)."""
    if currently_in_test_context():
        hypothesis_event(text)


def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example,
                                           HealthCheck.function_scoped_fixture])


# -------------------------------------------------------------------------------------------------
# What the daemon logs
# -------------------------------------------------------------------------------------------------

class DaemonLog(logging.Handler):
    """ERROR records of the daemon ("neurond", "neurond.execution"), of grpc's server, and of what would
    report a task or callback of the daemon's that failed unseen: asyncio ("Task exception was never
    retrieved", an exception in a callback) and concurrent.futures (a failing done-callback)."""

    LOGGERS = ("neurond", "grpc", "asyncio", "concurrent.futures")

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.records: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, self.format(record)))

    def attach(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)

    def detach(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeHandler(self)

    def take(self, loggers: tuple[str, ...] = LOGGERS) -> list[str]:
        """The records logged since the last take() by `loggers` (or their children)."""
        taken = [text for name, text in self.records
                 if any(name == n or name.startswith(f"{n}.") for n in loggers)]
        self.records.clear()
        return taken


# -------------------------------------------------------------------------------------------------
# Memory as the snapshot shows it
# -------------------------------------------------------------------------------------------------

def memory_of(snap: pb.Snapshot, *, materialized: bool = True) -> dict:
    state = {}
    for d in snap.devices:
        state[f"device {d.device_index}"] = {
            "used_bytes": d.memory_used_bytes,
            "stacks (used, allocations, free blocks)": [(s.used_bytes, s.allocations, s.free_blocks) for s in d.stacks],
            "categories": {pb.MemoryCategory.Name(m.category): m.used_bytes for m in d.memory if m.used_bytes},
            **({"materialized_bytes": d.materialized_bytes} if materialized else {}),
        }
    for c in snap.cores:
        state[f"core {c.core_id}"] = {pb.MemoryCategory.Name(m.category): m.used_bytes
                                      for m in c.memory if m.used_bytes}
    return state


def memory_change(before: pb.Snapshot, after: pb.Snapshot, *, materialized: bool = True) -> str:
    """'' when memory is the same, else what changed."""
    a, b = memory_of(before, materialized=materialized), memory_of(after, materialized=materialized)
    return "; ".join(f"{key}: {a[key]} -> {b[key]}" for key in a if a[key] != b[key])


# -------------------------------------------------------------------------------------------------
# Sessions over raw stubs
# -------------------------------------------------------------------------------------------------

@dataclass
class OpenedSession:
    call: grpc.Call
    opened: pb.SessionOpened
    tensors: dict[int, bytearray] = field(default_factory=dict)  # own live tensor id -> expected bytes
    handles: dict[str, int] = field(default_factory=dict)       # handle kind -> id
    named: dict[str, int] = field(default_factory=dict)         # test-specific tensor name -> id

    @property
    def session_id(self) -> int:
        return self.opened.session_id

    @property
    def core_ids(self) -> list[int]:
        return list(self.opened.core_ids)

    @property
    def metadata(self) -> list[tuple[str, str]]:
        return [("neuron-session-key", self.opened.session_key)]

    def resolve(self, kind: str) -> int:
        return self.handles[kind]


@dataclass
class Bystander:
    session: OpenedSession
    tensor_id: int
    data: bytes
    model_id: int
    x_id: int
    y_id: int
    r_id: int
    x: np.ndarray


class Harness:
    """Raw stubs on one channel, status checks, and the sessions of the fuzzers and the bystander."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 << 20)])
        self.device = pb_grpc.NeuronDeviceStub(self.channel)
        self.runtime = pb_grpc.NeuronRuntimeStub(self.channel)
        self.admin = pb_grpc.NeuronAdminStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fuzz-next")
        self.log = DaemonLog()
        self.log.attach()
        self.bystander: Bystander | None = None

    def close(self) -> None:
        if self.bystander is not None:
            self.bystander.session.call.cancel()
        self.log.detach()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.channel.close()

    # -- statuses ---------------------------------------------------------------------------------

    def check_error(self, what: str, error: grpc.RpcError, allowed=CLIENT_ERRORS) -> None:
        code, details = error.code(), error.details() or ""
        assert code != SC.DEADLINE_EXCEEDED, f"{what}: no answer within {CALL_TIMEOUT} s (a hang)"
        assert code in allowed, f"{what}: {code.name} is not one of {sorted(c.name for c in allowed)}: {details!r}"
        assert details.strip(), f"{what}: {code.name} without a message"
        assert "Traceback" not in details and "internal error" not in details, f"{what}: {details!r}"

    def call(self, what: str, method, request, *, metadata=None, allowed=CLIENT_ERRORS):
        """(response, None) or (None, error) after checking the error's status and message."""
        try:
            reply = method(request, metadata=metadata, timeout=CALL_TIMEOUT)
        except grpc.RpcError as exc:
            error = exc
        else:
            event(f"{what.split(' ')[0]}: OK")
            return reply, None
        event(f"{what.split(' ')[0]}: {error.code().name}")
        self.check_error(what, error, allowed)  # outside the except: no chained context to vary by run
        return None, error

    def stream(self, what: str, method, request, *, metadata=None, allowed=CLIENT_ERRORS):
        """All messages of a server stream, or (None, error)."""
        try:
            return list(method(request, metadata=metadata, timeout=CALL_TIMEOUT)), None
        except grpc.RpcError as exc:
            error = exc
        self.check_error(what, error, allowed)
        return None, error

    def next_of(self, what: str, call):
        """The next message of a long-lived stream, with a deadline of our own (the stream has none)."""
        try:
            return self.pool.submit(next, call).result(timeout=CALL_TIMEOUT)
        except FutureTimeout:
            call.cancel()
            pytest.fail(f"{what}: no message within {CALL_TIMEOUT} s (a hang)")

    # -- daemon health ----------------------------------------------------------------------------

    def snapshot(self) -> pb.Snapshot:
        return self.device.GetSnapshot(pb.SnapshotRequest(), timeout=CALL_TIMEOUT)

    def check_alive(self) -> pb.Snapshot:
        reply = self.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=CALL_TIMEOUT)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        return self.snapshot()

    def settled_snapshot(self) -> pb.Snapshot:
        """A snapshot once only the bystander holds a session and nothing runs."""
        wanted = {self.bystander.session.session_id}
        deadline = time.monotonic() + 5
        while True:
            snap = self.snapshot()
            sessions = {s.session_id for s in snap.sessions}
            if sessions <= wanted and not any(c.in_flight for c in snap.cores):
                return snap
            assert time.monotonic() < deadline, f"sessions {sorted(sessions - wanted)} still open 5 s after closing"
            time.sleep(0.002)

    @contextlib.contextmanager
    def example(self, loggers: tuple[str, ...] = DaemonLog.LOGGERS):
        """One fuzzing example: afterwards the daemon answers and has logged no error."""
        self.log.take()
        yield
        self.check_alive()
        errors = self.log.take(loggers)
        assert not errors, "the daemon logged errors:\n" + "\n".join(errors)

    def unchanged(self, what: str, before: pb.Snapshot) -> None:
        # Materialized bytes may grow (a refused Execute may have zero-filled its outputs already): that is
        # the daemon's RAM, not device memory, and it is checked when the session closes.
        change = memory_change(before, self.snapshot(), materialized=False)
        REACH.checked("nothing lost (device memory as before the request)")
        assert not change, f"{what} changed device memory: {change}"

    def intact(self, session: OpenedSession, tensor_id: int, expected: bytes) -> None:
        """The tensor holds exactly the bytes it must."""
        REACH.checked("bytes intact (a tensor read back as written)")
        assert self.read(session, tensor_id) == expected, f"tensor {tensor_id} holds the wrong bytes"

    # -- sessions ---------------------------------------------------------------------------------

    def open(self, what: str, request: pb.OpenSessionRequest, allowed=CLIENT_ERRORS):
        """(OpenedSession, None) or (None, error)."""
        call = self.runtime.OpenSession(request)
        try:
            first = self.next_of(what, call)
        except grpc.RpcError as exc:
            error = exc
        except StopIteration:
            pytest.fail(f"{what}: the session stream ended without an event")
        else:
            assert first.HasField("opened"), f"{what}: first event is {first}"
            event("OpenSession: OK")
            return OpenedSession(call, first.opened), None
        event(f"OpenSession: {error.code().name}")
        self.check_error(what, error, allowed)
        return None, error

    def release(self, session: OpenedSession) -> None:
        session.call.cancel()
        deadline = time.monotonic() + 5
        while any(s.session_id == session.session_id for s in self.snapshot().sessions):
            assert time.monotonic() < deadline, f"session {session.session_id} still open 5 s after its stream ended"
            time.sleep(0.002)

    @contextlib.contextmanager
    def fuzz_session(self):
        """A session on FUZZ_CORES; once closed, memory must be exactly what it was before it opened."""
        before = self.settled_snapshot()
        session, _ = self.open("open the fuzz session", pb.OpenSessionRequest(
            pid=os.getpid(), command="fuzz", visible_cores="0-3", exec_timeout_ns=EXEC_TIMEOUT_NS),
            allowed=frozenset())
        try:
            yield session
        finally:
            self.release(session)
        change = memory_change(before, self.settled_snapshot())
        REACH.checked("nothing lost (a closed session gave back every byte)")
        assert not change, f"closing the fuzz session did not give back all it held: {change}"

    def allocate(self, session: OpenedSession, shape, dtype, *, core: int | None = None,
                 placement=pb.DEVICE, data: bytes | None = None) -> int:
        request = pb.AllocateTensorRequest(shape=shape, dtype=dtype, placement=placement,
                                           core_id=session.core_ids[0] if core is None else core)
        info = self.runtime.AllocateTensor(request, metadata=session.metadata, timeout=CALL_TIMEOUT)
        # what the tensor must hold; not kept for huge tensors (they are never read back)
        session.tensors[info.tensor_id] = bytearray(info.size_bytes) if info.size_bytes <= 64 << 20 else None
        if data is not None:
            self.write(session, info.tensor_id, data)
        return info.tensor_id

    def write(self, session: OpenedSession, tensor_id: int, data: bytes, offset: int = 0) -> None:
        self.runtime.WriteTensor(iter([pb.WriteTensorChunk(tensor_id=tensor_id, offset=offset, data=data)]),
                                 metadata=session.metadata, timeout=CALL_TIMEOUT)
        if session.tensors[tensor_id] is not None:
            session.tensors[tensor_id][offset:offset + len(data)] = data

    def read(self, session: OpenedSession, tensor_id: int) -> bytes:
        chunks = self.runtime.ReadTensor(pb.ReadTensorRequest(tensor_id=tensor_id), metadata=session.metadata,
                                         timeout=CALL_TIMEOUT)
        return b"".join(c.data for c in chunks)

    def free(self, session: OpenedSession, tensor_id: int) -> None:
        self.runtime.FreeTensor(pb.FreeTensorRequest(tensor_id=tensor_id), metadata=session.metadata,
                                timeout=CALL_TIMEOUT)
        del session.tensors[tensor_id]

    def load(self, session: OpenedSession, programs: dict[int, pb.Program], name: str = "fuzz") -> int:
        request = pb.LoadModelRequest(name=name, subgraphs=[pb.SubgraphProgram(core_id=c, program=p)
                                                            for c, p in programs.items()])
        return self.runtime.LoadModel(request, metadata=session.metadata, timeout=CALL_TIMEOUT).model_id

    def unload(self, session: OpenedSession, model_id: int) -> None:
        self.runtime.UnloadModel(pb.UnloadModelRequest(model_id=model_id), metadata=session.metadata,
                                 timeout=CALL_TIMEOUT)

    def prepare_handles(self, session: OpenedSession, *, models: bool = False) -> None:
        """Own tensors with known bytes, a freed tensor, the bystander's handles (and models)."""
        h = session.handles
        h["own_tensor"] = self.allocate(session, [8], pb.FLOAT32, data=bytes(range(32)))
        h["own_host_tensor"] = self.allocate(session, [4, 4], pb.INT8, placement=pb.HOST, data=bytes(range(100, 116)))
        h["own_far_tensor"] = self.allocate(session, [3, 5], pb.BFLOAT16, core=2, data=bytes(range(200, 230)))
        h["own_twin_tensor"] = self.allocate(session, [8], pb.FLOAT32, core=session.core_ids[1],
                                             data=bytes(range(50, 82)))
        h["freed_tensor"] = self.allocate(session, [2], pb.INT32)
        self.free(session, h["freed_tensor"])
        h["foreign_tensor"] = self.bystander.tensor_id
        h["foreign_model"] = self.bystander.model_id
        h["own_session"] = session.session_id
        if models:
            h["own_model"] = self.load(session, {0: fs.elementwise_program()})
            h["unloaded_model"] = self.load(session, {0: fs.elementwise_program()})
            self.unload(session, h["unloaded_model"])
        else:  # not loaded: ids that are no model of anyone's (tensor ids never reach 2**60)
            h["own_model"], h["unloaded_model"] = 2**60, 2**60 + 1

    def owner(self, session: OpenedSession, tensor_id: int) -> str:
        if tensor_id in session.tensors:
            return "own"
        return "foreign" if tensor_id in self.bystander_tensors() else "missing"

    def bystander_tensors(self) -> set[int]:
        b = self.bystander
        return {b.tensor_id, b.x_id, b.y_id, b.r_id}

    # -- the bystander ------------------------------------------------------------------------------

    def start_bystander(self) -> None:
        session, _ = self.open("open the bystander", pb.OpenSessionRequest(
            pid=os.getpid(), command="bystander", visible_cores=str(BYSTANDER_CORE)), allowed=frozenset())
        data = np.random.default_rng(7).integers(0, 256, 1 << 16, dtype=np.uint8).tobytes()
        tensor_id = self.allocate(session, [1 << 14], pb.FLOAT32, data=data)
        x = np.linspace(-4, 4, 64 * 32, dtype=np.float32).reshape(64, 32)
        x_id = self.allocate(session, [64, 32], pb.FLOAT32, data=x.tobytes())
        y_id = self.allocate(session, [64, 32], pb.BFLOAT16)
        r_id = self.allocate(session, [64, 1], pb.FLOAT32)
        model_id = self.load(session, {BYSTANDER_CORE: fs.elementwise_program()}, name="bystander")
        self.bystander = Bystander(session, tensor_id, data, model_id, x_id, y_id, r_id, x)
        self.check_bystander()

    def check_bystander(self) -> None:
        """The bystander's tensor reads back intact and its model computes the right numbers."""
        b = self.bystander
        assert self.read(b.session, b.tensor_id) == b.data, "the bystander's tensor changed"
        for tensor_id in (b.y_id, b.r_id):
            self.write(b.session, tensor_id, bytes(len(b.session.tensors[tensor_id])))
        reply = self.runtime.Execute(pb.ExecuteRequest(model_id=b.model_id, bindings=[
            pb.TensorBinding(name="x", tensor_id=b.x_id), pb.TensorBinding(name="y", tensor_id=b.y_id),
            pb.TensorBinding(name="r", tensor_id=b.r_id)]), metadata=b.session.metadata, timeout=CALL_TIMEOUT)
        assert reply.status == pb.COMPLETED, reply
        y = np.frombuffer(self.read(b.session, b.y_id), dtypes.storage_dtype(pb.BFLOAT16)).reshape(64, 32)
        expected = np.maximum(2 * b.x, 0) + b.x
        np.testing.assert_array_equal(y.astype(np.float32), expected.astype(y.dtype).astype(np.float32))
        r = np.frombuffer(self.read(b.session, b.r_id), np.float32)
        np.testing.assert_array_equal(r, expected.max(axis=1))
        snap = self.snapshot()
        assert snap.cores[BYSTANDER_CORE].owner_session_id == b.session.session_id


@pytest.fixture(scope="module")
def harness(daemon):
    h = Harness(daemon.address)
    h.start_bystander()
    yield h
    h.close()


@pytest.fixture(autouse=True)
def bystander_unharmed(harness):
    """After every test: the daemon serves, the bystander is intact, memory is back where it started."""
    before = harness.settled_snapshot()
    yield
    harness.check_alive()
    harness.check_bystander()
    change = memory_change(before, harness.settled_snapshot())
    assert not change, f"device memory did not return to its baseline after the test: {change}"


def faults_or_success(what: str, faults: set, reply, error) -> None:
    """With no fault the call must succeed; with faults it must fail with one of their statuses."""
    if not faults:
        assert error is None, f"{what}: refused a valid request: {error.code().name} {error.details()!r}"
    else:
        assert error is not None, f"{what}: accepted a request with faults {sorted(f.name for f in faults)}: {reply}"
        assert error.code() in faults, (f"{what}: {error.code().name} ({error.details()!r}); expected one of "
                                        f"{sorted(f.name for f in faults)}")


def tensor_fault(harness: Harness, session: OpenedSession, tensor_id: int) -> SC | None:
    return {"own": None, "foreign": SC.PERMISSION_DENIED, "missing": SC.NOT_FOUND}[harness.owner(session, tensor_id)]


# -------------------------------------------------------------------------------------------------
# OpenSession
# -------------------------------------------------------------------------------------------------

CORE_COUNT = 24


def expected_cores(request: pb.OpenSessionRequest, owned: set[int]) -> tuple[set, list[int] | None] | None:
    """(faults, cores) by the NEURON_RT_VISIBLE_CORES / NEURON_RT_NUM_CORES rules, or None when the
    visible_cores text is not ASCII (the daemon reads digits of other scripts too; only the general
    properties are checked then)."""
    faults = set()
    for text, limit in ((request.command, 4096), (request.runtime_version, 64), (request.tag, 256)):
        if len(text) > limit:
            faults.add(SC.INVALID_ARGUMENT)
    visible = request.visible_cores
    if visible.strip():
        if not visible.isascii():
            return None
        bounds = []
        for part in visible.replace(" ", "").split(","):
            match = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", part)
            if not match or (match[2] and int(match[2]) < int(match[1])):
                return faults | {SC.INVALID_ARGUMENT}, None
            bounds.append((int(match[1]), int(match[2] or match[1])))
        if max(last for _, last in bounds) >= CORE_COUNT:  # checked before expanding: ranges may be huge
            return faults | {SC.INVALID_ARGUMENT}, None
        cores = sorted({core for first, last in bounds for core in range(first, last + 1)})
        if cores != list(range(cores[0], cores[-1] + 1)):
            return faults | {SC.INVALID_ARGUMENT}, None
    elif request.num_cores > CORE_COUNT:
        return faults | {SC.INVALID_ARGUMENT}, None
    elif request.num_cores:
        free_runs = [list(range(start, start + request.num_cores)) for start in range(CORE_COUNT - request.num_cores + 1)
                     if not owned & set(range(start, start + request.num_cores))]
        if not free_runs:
            return faults | {SC.RESOURCE_EXHAUSTED}, None
        cores = free_runs[0]
    else:
        cores = list(range(CORE_COUNT))
    if owned & set(cores):
        return faults | {SC.RESOURCE_EXHAUSTED}, None
    return faults, cores


@fuzz_settings(150)
@given(request=fs.open_session_requests(free_cores=list(range(BYSTANDER_CORE))))
def test_open_session_fuzz(harness, request):
    REACH.example("OpenSession")
    with harness.example():
        before = harness.settled_snapshot()
        owned = {c.core_id for c in before.cores if c.owner_session_id}
        expected = expected_cores(request, owned)
        session, error = harness.open(f"OpenSession {request}", request)
        if expected is not None:
            faults_or_success(f"OpenSession {request}", expected[0], session, error)
            if session is not None:
                assert session.core_ids == expected[1], f"OpenSession {request}: cores {session.core_ids}"
        if session is None:
            harness.unchanged("a refused OpenSession", before)
            assert len(harness.snapshot().sessions) == len(before.sessions)
            if error.code() == SC.RESOURCE_EXHAUSTED:
                assert "NeuronCore" in error.details()
            return
        try:
            cores = session.core_ids
            assert cores and cores == list(range(cores[0], cores[-1] + 1)), f"non-contiguous cores {cores}"
            assert all(before.cores[c].owner_session_id == 0 for c in cores), f"got taken cores {cores}"
            if not request.visible_cores.strip() and request.num_cores:
                assert len(cores) == request.num_cores
            info = next(s for s in harness.snapshot().sessions if s.session_id == session.session_id)
            assert (info.pid, info.command, info.tag) == (request.pid, request.command,
                                                          request.tag or str(request.pid))
            assert list(info.core_ids) == cores
            REACH.reached("OpenSession", "opened with the cores asked for")
        finally:
            harness.release(session)
        harness.unchanged("an opened and closed session", before)


# -------------------------------------------------------------------------------------------------
# Tensors
# -------------------------------------------------------------------------------------------------

@fuzz_settings(120)
@given(request=fs.allocate_tensor_requests(FUZZ_CORES))
def test_allocate_tensor_fuzz(harness, request):
    REACH.example("AllocateTensor")
    with harness.example(), harness.fuzz_session() as session:
        before = harness.snapshot()
        shape = list(request.shape)
        faults: set = set()
        if len(request.name) > 256 or not 1 <= len(shape) <= 8 or 0 in shape or request.dtype not in dtypes.NAMES \
                or request.placement not in (pb.DEVICE, pb.HOST) or request.core_id >= CORE_COUNT:
            faults.add(SC.INVALID_ARGUMENT)
        elif request.core_id not in session.core_ids:
            faults.add(SC.PERMISSION_DENIED)
        else:
            size = math.prod(shape) * dtypes.itemsize(request.dtype)
            if request.placement == pb.DEVICE:
                largest = max(s.largest_free_bytes for s in before.devices[request.core_id // 2].stacks)
                if -(-size // 512) * 512 > largest:
                    faults.add(SC.RESOURCE_EXHAUSTED)
            elif size > before.topology.host_memory_bytes:
                faults.add(SC.RESOURCE_EXHAUSTED)
            elif size > before.topology.host_memory_bytes // 2:
                faults.add(None)  # depends on the host memory the sessions hold: either answer is right
        info, error = harness.call(f"AllocateTensor {request}", harness.runtime.AllocateTensor, request,
                                   metadata=session.metadata)
        if None not in faults:
            faults_or_success(f"AllocateTensor {request}", faults, info, error)
        if error is not None:
            harness.unchanged("a refused AllocateTensor", before)
            if error.code() == SC.RESOURCE_EXHAUSTED and request.placement == pb.DEVICE:
                # the wording: name the device, the bytes needed and the bytes free
                assert re.search(r"needs [\d.]+ [KMGTP]?i?B on neuron device \d+, [\d.]+ [KMGTP]?i?B free",
                                 error.details()), error.details()
            return
        assert request.core_id in session.core_ids and request.placement in (pb.DEVICE, pb.HOST)
        assert 1 <= len(shape) <= 8 and min(shape) >= 1 and request.dtype in dtypes.NAMES and len(request.name) <= 256
        assert list(info.shape) == shape and info.dtype == request.dtype and info.core_id == request.core_id
        assert info.size_bytes == math.prod(shape) * dtypes.itemsize(request.dtype)
        assert info.device_index == request.core_id // 2
        REACH.reached("AllocateTensor", "allocated")
        session.tensors[info.tensor_id] = bytearray(info.size_bytes)
        if info.size_bytes <= 1 << 20:  # the new tensor holds zeros, then what is written to it
            harness.intact(session, info.tensor_id, bytes(info.size_bytes))
            data = np.random.default_rng(info.tensor_id).integers(0, 256, info.size_bytes, np.uint8).tobytes()
            harness.write(session, info.tensor_id, data)
            harness.intact(session, info.tensor_id, data)
            REACH.reached("AllocateTensor", "written and read back")
        harness.call("FreeTensor", harness.runtime.FreeTensor, pb.FreeTensorRequest(tensor_id=info.tensor_id),
                     metadata=session.metadata, allowed=frozenset())
        del session.tensors[info.tensor_id]
        harness.unchanged("an allocated and freed tensor", before)


@fuzz_settings(80)
@given(streams=st.lists(fs.write_chunk_streams(), min_size=1, max_size=4))
def test_write_tensor_fuzz(harness, streams):
    REACH.example("WriteTensor")
    with harness.example(), harness.fuzz_session() as session:
        harness.prepare_handles(session)
        written = False
        for chunks in streams:
            for chunk in chunks:
                fs.resolve_markers(chunk, session.resolve)
            written |= _write_stream(harness, session, chunks)
        if written:
            REACH.reached("WriteTensor", "a stream written and every tensor intact")


def _write_stream(harness: Harness, session: OpenedSession, chunks: list[pb.WriteTensorChunk]) -> bool:
    """One WriteTensor stream against what the daemon must do; afterwards every own tensor holds
    exactly what it must. True when the daemon accepted it."""
    # what the daemon must do, chunk by chunk
    faults: set = set()
    expected = {tid: bytearray(data) for tid, data in session.tensors.items()}
    if not chunks:
        faults.add(SC.INVALID_ARGUMENT)
    else:
        target = chunks[0].tensor_id
        fault = tensor_fault(harness, session, target)
        if fault:
            faults.add(fault)
        else:
            size = len(expected[target])
            for chunk in chunks:
                if chunk.tensor_id not in (0, target):
                    faults.add(SC.INVALID_ARGUMENT)
                    break
                if chunk.offset > size or len(chunk.data) > size - chunk.offset:
                    faults.add(SC.OUT_OF_RANGE)
                    break
                expected[target][chunk.offset:chunk.offset + len(chunk.data)] = chunk.data
    reply, error = harness.call("WriteTensor", harness.runtime.WriteTensor, iter(chunks),
                                metadata=session.metadata)
    faults_or_success(f"WriteTensor {[(c.tensor_id, c.offset, len(c.data)) for c in chunks]}", faults, reply, error)
    if error is None:
        assert reply.bytes_written == sum(len(c.data) for c in chunks)
    target = chunks[0].tensor_id if chunks else None
    for tensor_id, data in expected.items():
        if error is None or tensor_id != target:  # a refused stream may have written a prefix of its chunks
            harness.intact(session, tensor_id, bytes(data))
    if error is None:
        session.tensors.update(expected)
    else:  # what the refused stream left in its target is unknown: learn it, the other tensors are checked
        for tensor_id in session.tensors.keys() & {target}:
            session.tensors[tensor_id] = bytearray(harness.read(session, tensor_id))
    return error is None


@fuzz_settings(120)
@given(request=fs.read_tensor_requests())
def test_read_tensor_fuzz(harness, request):
    REACH.example("ReadTensor")
    with harness.example(), harness.fuzz_session() as session:
        harness.prepare_handles(session)
        fs.resolve_markers(request, session.resolve)
        faults: set = set()
        fault = tensor_fault(harness, session, request.tensor_id)
        chunk = request.chunk_bytes or (1 << 20)
        if fault:
            faults.add(fault)
        else:
            data = bytes(session.tensors[request.tensor_id])
            length = request.length or max(0, len(data) - request.offset)
            if request.offset > len(data) or length > len(data) - request.offset:
                faults.add(SC.OUT_OF_RANGE)
        if chunk > 2 << 20:
            faults.add(SC.INVALID_ARGUMENT)
        chunks, error = harness.stream(f"ReadTensor {request}", harness.runtime.ReadTensor, request,
                                       metadata=session.metadata)
        faults_or_success(f"ReadTensor {request}", faults, chunks, error)
        if error is None:
            REACH.checked("bytes intact (a tensor read back as written)")
            assert b"".join(c.data for c in chunks) == data[request.offset:request.offset + length]
            assert [c.offset for c in chunks] == list(range(request.offset, request.offset + max(length, 1), chunk))
            assert all(len(c.data) <= chunk for c in chunks)
            REACH.reached("ReadTensor", "read the right bytes")


@fuzz_settings(100)
@given(requests=st.lists(fs.copy_or_free_requests(), min_size=1, max_size=6))
def test_copy_and_free_fuzz(harness, requests):
    REACH.example("CopyTensor/FreeTensor")
    reached: set[str] = set()
    with harness.example(), harness.fuzz_session() as session:
        harness.prepare_handles(session)
        for request in requests:
            fs.resolve_markers(request, session.resolve)
            before = harness.snapshot()
            if isinstance(request, pb.CopyTensorRequest):
                src, dst = request.src_tensor_id, request.dst_tensor_id
                faults = {f for f in (tensor_fault(harness, session, src), tensor_fault(harness, session, dst)) if f}
                if not faults and len(session.tensors[src]) != len(session.tensors[dst]):
                    faults.add(SC.INVALID_ARGUMENT)
                reply, error = harness.call(f"CopyTensor {src} -> {dst}", harness.runtime.CopyTensor, request,
                                            metadata=session.metadata)
                faults_or_success(f"CopyTensor {src} -> {dst}", faults, reply, error)
                if error is None:
                    assert reply.bytes_copied == len(session.tensors[src])
                    session.tensors[dst] = bytearray(session.tensors[src])
                    reached.add("copied")
            else:
                fault = tensor_fault(harness, session, request.tensor_id)
                reply, error = harness.call(f"FreeTensor {request.tensor_id}", harness.runtime.FreeTensor, request,
                                            metadata=session.metadata)
                faults_or_success(f"FreeTensor {request.tensor_id}", {fault} - {None}, reply, error)
                if error is None:
                    del session.tensors[request.tensor_id]
                    reached.add("freed")
            if error is not None:
                harness.unchanged(f"a refused {type(request).__name__}", before)
        for tensor_id, data in session.tensors.items():
            harness.intact(session, tensor_id, bytes(data))
        for path in sorted(reached):
            REACH.reached("CopyTensor/FreeTensor", path)


# -------------------------------------------------------------------------------------------------
# Models and executions
# -------------------------------------------------------------------------------------------------

def _run_loaded_model(harness: Harness, session: OpenedSession, request: pb.LoadModelRequest, model_id: int,
                      timing_only: bool, write_inputs: bool, alias: bool) -> None:
    """Execute a model the daemon accepted, with tensors that fit its parameters (when they are small).
    With `alias`, parameters of the same shape, dtype and core share one tensor (in-place execution)."""
    total = sum(math.prod(p.shape) * dtypes.itemsize(p.dtype) for sg in request.subgraphs for p in sg.program.parameters)
    if total > 4 << 20:
        return
    bindings, tensors = [], {}
    for sg in request.subgraphs:
        for p in sg.program.parameters:
            key = (tuple(p.shape), p.dtype, sg.core_id)
            if not (alias and key in tensors):
                size = math.prod(p.shape) * dtypes.itemsize(p.dtype)
                data = (np.arange(size) % 251).astype(np.uint8).tobytes() if write_inputs else None
                tensors[key] = harness.allocate(session, list(p.shape), p.dtype, core=sg.core_id, data=data)
            bindings.append(pb.TensorBinding(core_id=sg.core_id, name=p.name, tensor_id=tensors[key]))
    reply, _ = harness.call("Execute", harness.runtime.Execute,
                            pb.ExecuteRequest(model_id=model_id, bindings=bindings, timing_only=timing_only),
                            metadata=session.metadata, allowed=frozenset())
    event(f"Execute of an accepted model: {pb.ExecutionStatus.Name(reply.status)}")
    REACH.reached("LoadModel", f"executed: {pb.ExecutionStatus.Name(reply.status)}")
    assert reply.status in (pb.COMPLETED, pb.COMPLETED_WITH_NUM_ERR, pb.TIMED_OUT), \
        f"a valid execution of an accepted model ended {pb.ExecutionStatus.Name(reply.status)}: {reply.message}"
    assert (reply.status == pb.COMPLETED) != bool(reply.message), reply
    for tensor_id in {b.tensor_id for b in bindings}:
        harness.free(session, tensor_id)


@fuzz_settings(160)
@given(request=fs.load_model_requests(FUZZ_CORES), timing_only=st.booleans(), write_inputs=st.booleans(),
       alias=st.booleans())
def test_load_model_fuzz(harness, request, timing_only, write_inputs, alias):
    REACH.example("LoadModel")
    with harness.example(), harness.fuzz_session() as session:
        harness.prepare_handles(session)
        fs.resolve_markers(request, session.resolve)
        before = harness.snapshot()
        info, error = harness.call(f"LoadModel {request}", harness.runtime.LoadModel, request,
                                   metadata=session.metadata)
        if error is not None:
            harness.unchanged(f"a refused LoadModel ({error.code().name}: {error.details()})", before)
            return
        assert [sg.core_id for sg in info.subgraphs] == [sg.core_id for sg in request.subgraphs]
        assert info.model_id in {m.model_id for m in harness.snapshot().models}
        REACH.reached("LoadModel", "loaded")
        _run_loaded_model(harness, session, request, info.model_id, timing_only, write_inputs, alias)
        harness.call("UnloadModel", harness.runtime.UnloadModel, pb.UnloadModelRequest(model_id=info.model_id),
                     metadata=session.metadata, allowed=frozenset())
        harness.unchanged("a loaded, executed and unloaded model", before)


# Tensors the Execute fuzzer binds, by name: (shape, dtype, core, placement). The single-core model is
# elementwise_program on core 0 (x, y, r); the two-core model adds matmul_program on core 2 (xT, out).
EXECUTE_TENSORS = {
    "x": ([64, 32], pb.FLOAT32, 0, pb.DEVICE), "y": ([64, 32], pb.BFLOAT16, 0, pb.DEVICE),
    "r": ([64, 1], pb.FLOAT32, 0, pb.DEVICE), "xT": ([16, 32], pb.FLOAT32, 2, pb.DEVICE),
    "out": ([32, 64], pb.FLOAT32, 2, pb.DEVICE), "x_host": ([64, 32], pb.FLOAT32, 0, pb.HOST),
    "x_bf16": ([64, 32], pb.BFLOAT16, 0, pb.DEVICE), "x_far": ([64, 32], pb.FLOAT32, 2, pb.DEVICE),
    "x_flat": ([64 * 32], pb.FLOAT32, 0, pb.DEVICE),
}
EXECUTE_PARAMETERS = {"single": {0: ["x", "y", "r"]}, "two_core": {0: ["x", "y", "r"], 2: ["xT", "out"]}}


@fuzz_settings(120)
@given(data=st.data())
def test_execute_fuzz(harness, data):
    REACH.example("Execute")
    with harness.example(), harness.fuzz_session() as session:
        harness.prepare_handles(session, models=True)
        # Inputs of the example's own (so valid examples differ, and Hypothesis keeps generating them)
        seed = data.draw(st.integers(0, 2**32 - 1), label="input seed")
        x = (np.random.default_rng(seed).standard_normal((64, 32)) * 3).astype(np.float32)
        for name, (shape, dtype, core, placement) in EXECUTE_TENSORS.items():
            session.named[name] = harness.allocate(session, shape, dtype, core=core, placement=placement,
                                                   data=x.tobytes() if name in ("x", "x_host") else None)
        models = {"single": session.handles["own_model"],
                  "two_core": harness.load(session, {0: fs.elementwise_program(), 2: fs.matmul_program()})}
        # Two examples in three: one of the session's own models with its right bindings (they execute and
        # have their numbers checked); the rest probe the refusals: edited or random bindings, other models.
        scenario = data.draw(st.integers(0, 99).map(
            lambda n: "right" if n < 70 else "edited" if n < 80 else "random bindings" if n < 90 else "other model"),
            label="scenario")
        kinds = ["marker", "random"] if scenario == "other model" else ["single", "two_core"]
        kind = data.draw(st.sampled_from(kinds), label="model")
        if kind == "marker":
            model_id = session.resolve(data.draw(st.sampled_from(fs.MODEL_KINDS), label="marker"))
        elif kind == "random":
            model_id = data.draw(fs.uint64s(), label="model_id")
        else:
            model_id = models[kind]
        params = EXECUTE_PARAMETERS.get(kind, EXECUTE_PARAMETERS["single"])
        correct = [(core, name, name) for core, names in params.items() for name in names]
        if scenario != "random bindings":
            bindings = data.draw(st.permutations(correct), label="bindings in any order")
            for _ in range(data.draw(st.integers(1, 2), label="edits") if scenario == "edited" else 0):
                if not bindings:
                    break
                i = data.draw(st.integers(0, len(bindings) - 1))
                edit = data.draw(st.sampled_from(["drop", "duplicate", "core", "name", "tensor"]))
                core, name, tensor = bindings[i]
                if edit == "drop":
                    del bindings[i]
                elif edit == "duplicate":
                    bindings.append(bindings[i])
                elif edit == "core":
                    bindings[i] = (data.draw(fs.core_ids(FUZZ_CORES)), name, tensor)
                elif edit == "name":
                    bindings[i] = (core, data.draw(st.sampled_from(fs.NAME_POOL) | st.text(max_size=4)), tensor)
                else:
                    bindings[i] = (core, name, data.draw(st.sampled_from(list(EXECUTE_TENSORS))
                                                         | fs.handle_ids(*fs.TENSOR_KINDS)))
        else:
            bindings = data.draw(st.lists(st.tuples(
                st.just(0) | fs.core_ids(FUZZ_CORES), st.sampled_from(fs.NAME_POOL) | st.text(max_size=4),
                st.sampled_from(list(EXECUTE_TENSORS)) | fs.handle_ids(*fs.TENSOR_KINDS)), max_size=7))
        timing_only = data.draw(st.booleans(), label="timing_only")
        request = pb.ExecuteRequest(model_id=model_id, timing_only=timing_only, bindings=[
            pb.TensorBinding(core_id=core, name=name,
                             tensor_id=session.named[t] if isinstance(t, str) else t) for core, name, t in bindings])
        fs.resolve_markers(request, session.resolve)
        before = harness.snapshot()
        reply, error = harness.call(f"Execute {request}", harness.runtime.Execute, request, metadata=session.metadata)
        if error is not None:
            harness.unchanged("a refused Execute", before)
            assert error.code() in (SC.NOT_FOUND, SC.PERMISSION_DENIED), (error.code(), error.details())
            return
        event(f"Execute status: {pb.ExecutionStatus.Name(reply.status)}")
        assert reply.status in (pb.COMPLETED, pb.INCORRECT_INPUT), \
            f"{pb.ExecutionStatus.Name(reply.status)}: {reply.message}"
        assert (reply.status == pb.COMPLETED) != bool(reply.message), reply
        sent = sorted((b.core_id, b.name, b.tensor_id) for b in request.bindings)
        is_correct = model_id in models.values() and sent == sorted((c, n, session.named[t]) for c, n, t in correct)
        if reply.status == pb.COMPLETED:
            REACH.reached("Execute", "completed")
        if is_correct:
            assert reply.status == pb.COMPLETED, reply.message
            if not timing_only:
                y = np.frombuffer(harness.read(session, session.named["y"]), dtypes.storage_dtype(pb.BFLOAT16))
                expected = np.maximum(2 * x, 0) + x
                np.testing.assert_array_equal(y.reshape(64, 32).astype(np.float32),
                                              expected.astype(y.dtype).astype(np.float32))
                REACH.reached("Execute", "computed numbers checked")


# -------------------------------------------------------------------------------------------------
# Device service, admin, metadata
# -------------------------------------------------------------------------------------------------

@fuzz_settings(60)
@given(request=fs.watch_requests())
def test_watch_fuzz(harness, request):
    REACH.example("Watch")
    with harness.example():
        interval = request.interval_ns or 1_000_000_000
        faults = {SC.INVALID_ARGUMENT} if interval < 10_000_000 or (request.queue_depth or 4) > 64 else set()
        call = harness.device.Watch(request, timeout=CALL_TIMEOUT)
        frame, error = None, None
        try:
            frame = next(call)
        except grpc.RpcError as exc:
            error = exc
        finally:
            call.cancel()
        if error is not None:
            harness.check_error(f"Watch {request}", error)
        faults_or_success(f"Watch {request}", faults, frame, error)
        if frame is not None:
            assert frame.snapshot.monotonic_ns and frame.missed_frames == 0
            REACH.reached("Watch", "got a frame")


@fuzz_settings(80)
@given(data=st.data())
def test_end_session_fuzz(harness, data):
    REACH.example("EndSession")
    with harness.example(), harness.fuzz_session() as session:
        # Mostly what an operator does (its own call, no session key, a live session), else anything.
        target = data.draw(fs.chance(85).flatmap(lambda own: st.just(session.session_id) if own else fs.uint64s()),
                           label="session_id")
        assume(target != harness.bystander.session.session_id)
        with_key = data.draw(fs.chance(15), label="with the session key")
        request = pb.EndSessionRequest(session_id=target, reason=data.draw(fs.texts(256), label="reason"))
        faults = ({SC.PERMISSION_DENIED} if with_key else set()) | ({SC.NOT_FOUND} if target != session.session_id
                                                                    else set())
        reply, error = harness.call(f"EndSession {request}", harness.admin.EndSession, request,
                                    metadata=session.metadata if with_key else None)
        faults_or_success(f"EndSession {request}", faults, reply, error)
        if error is None:
            closing = harness.next_of("the closing event", session.call)
            assert closing.closing.reason == (request.reason or "ended by an operator")
            harness.release(session)
            _, error = harness.call("AllocateTensor after EndSession", harness.runtime.AllocateTensor,
                                    pb.AllocateTensorRequest(shape=[1], dtype=pb.FLOAT32, placement=pb.DEVICE),
                                    metadata=session.metadata)
            assert error is not None and error.code() == SC.UNAUTHENTICATED
            REACH.reached("EndSession", "ended the session")


_PRINTABLE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)


@fuzz_settings(100)
@given(data=st.data())
def test_metadata_fuzz(harness, data):
    """Session keys, client pids and commands are the client's word: odd ones never break a call."""
    REACH.example("metadata")
    with harness.example(), harness.fuzz_session() as session:
        key_value = data.draw(fs.chance(75).flatmap(lambda right: st.just(session.opened.session_key) if right
                                                    else _PRINTABLE), label="session key")
        pid = st.tuples(st.just("neuron-client-pid"), st.one_of(
            _PRINTABLE, st.integers(0, 2**40).map(str), st.integers(0, 2**70).map(str), st.just(str(os.getpid()))))
        entries = data.draw(st.lists(st.one_of(
            st.tuples(st.just("neuron-session-key"), st.just(key_value)), pid, pid,
            st.tuples(st.just("neuron-client-command-bin"), st.binary(max_size=5000)),
            st.tuples(st.just("authorization"), _PRINTABLE),
            st.tuples(st.from_regex(r"\Ax-[a-z0-9_.-]{0,10}\Z").filter(lambda k: not k.endswith("-bin")),
                      _PRINTABLE),
        ), max_size=5), label="metadata")
        if data.draw(fs.chance(75), label="the session key first"):
            entries.insert(0, ("neuron-session-key", key_value))  # as a client sends it, then the rest
        keys = [v for k, v in entries if k == "neuron-session-key"]
        valid_key = bool(keys) and keys[0] == session.opened.session_key
        harness.call(f"GetSnapshot with metadata {entries}", harness.device.GetSnapshot, pb.SnapshotRequest(),
                     metadata=entries, allowed=frozenset())
        harness.call(f"GetTopology with metadata {entries}", harness.device.GetTopology, pb.GetTopologyRequest(),
                     metadata=entries, allowed=frozenset())
        info, error = harness.call(f"AllocateTensor with metadata {entries}", harness.runtime.AllocateTensor,
                                   pb.AllocateTensorRequest(shape=[4], dtype=pb.FLOAT32, placement=pb.DEVICE,
                                                            core_id=0), metadata=entries)
        faults_or_success(f"AllocateTensor with metadata {entries}", set() if valid_key else {SC.UNAUTHENTICATED},
                          info, error)
        if error is None:
            REACH.reached("metadata", "AllocateTensor accepted")


# -------------------------------------------------------------------------------------------------
# Bytes that are no message, messages that are too large
# -------------------------------------------------------------------------------------------------

METHODS = [(service.name, method) for service in pb.DESCRIPTOR.services_by_name.values() for method in service.methods]


def _request_class(method):
    return getattr(pb, method.input_type.name)


def _send_raw(harness: Harness, session: OpenedSession, service: str, method, payloads: list[bytes]):
    """Send raw payloads to a method (identity serializers); returns (responses, error)."""
    path = f"/neurontools.v1.{service}/{method.name}"
    identity = lambda b: b  # noqa: E731
    # Admin calls with a session key are refused before anything else: no garbage can end a session.
    metadata = session.metadata
    try:
        if method.client_streaming:
            call = harness.channel.stream_unary(path, request_serializer=identity, response_deserializer=identity)
            return [call(iter(payloads), metadata=metadata, timeout=CALL_TIMEOUT)], None
        if not method.server_streaming:
            call = harness.channel.unary_unary(path, request_serializer=identity, response_deserializer=identity)
            return [call(payloads[0], metadata=metadata, timeout=CALL_TIMEOUT)], None
        call = harness.channel.unary_stream(path, request_serializer=identity, response_deserializer=identity)
        stream = call(payloads[0], metadata=metadata, timeout=CALL_TIMEOUT)
        if method.name == "ReadTensor":
            return list(stream), None
        try:  # OpenSession, Watch and Observe run until cancelled: take the first message
            first = next(stream)
        finally:
            stream.cancel()
        if method.name == "OpenSession":
            opened = pb.SessionEvent.FromString(first).opened
            harness.release(OpenedSession(stream, opened))
        return [first], None
    except grpc.RpcError as error:
        return None, error


def _garbage() -> st.SearchStrategy[list[bytes]]:
    valid = st.sampled_from([
        pb.OpenSessionRequest(visible_cores="9", command="garbage").SerializeToString(),
        pb.AllocateTensorRequest(name="g", shape=[2, 3], dtype=pb.FLOAT32, placement=pb.DEVICE).SerializeToString(),
        pb.LoadModelRequest(name="g", subgraphs=[pb.SubgraphProgram(program=fs.matmul_program())]).SerializeToString(),
        pb.ReadTensorRequest(tensor_id=1, length=4).SerializeToString(),
        pb.WatchRequest(interval_ns=10**8).SerializeToString(),
    ])
    edits = st.lists(st.tuples(st.integers(0, 10**6), st.integers(-1, 255)), min_size=1, max_size=4)
    payload = st.one_of(st.binary(max_size=64), st.builds(fs.corrupt, valid, edits),
                        st.sampled_from([b"\xff", b"\x0a\x05ab", b"\x0a\x02\xc3\x28", b"\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"]))
    return st.lists(payload, min_size=1, max_size=3)


@fuzz_settings(150)
@given(target=st.sampled_from(METHODS), payloads=_garbage())
def test_garbage_bytes_never_hurt_the_daemon(harness, target, payloads):
    """Whatever bytes arrive, the daemon answers in time, keeps serving and holds on to nothing.
    (The status a malformed message gets is the next test's business.)"""
    service, method = target
    with harness.example(loggers=("neurond",)), harness.fuzz_session() as session:
        _, error = _send_raw(harness, session, service, method, payloads)
        if error is not None:
            assert error.code() not in (SC.DEADLINE_EXCEEDED, SC.UNAVAILABLE, SC.CANCELLED), \
                f"{method.name} {payloads}: {error.code().name} {error.details()!r}"


@fuzz_settings(60)
@given(target=st.sampled_from(METHODS), payloads=_garbage())
@example(target=next(t for t in METHODS if t[1].name == "AllocateTensor"), payloads=[b"\xff"])
def test_malformed_messages_get_invalid_argument(harness, target, payloads):
    service, method = target
    request_class = _request_class(method)
    malformed = []
    for payload in payloads:
        try:
            request_class.FromString(payload)
        except DecodeError:
            malformed.append(payload)
    assume(malformed)
    payloads = malformed[:1]
    with harness.example(), harness.fuzz_session() as session:
        _, error = _send_raw(harness, session, service, method, payloads)
        assert error is not None, f"{method.name} accepted the malformed {payloads}"
        harness.check_error(f"{method.name} with the malformed {payloads}", error,
                            allowed=frozenset({SC.INVALID_ARGUMENT}))


def test_oversized_messages_are_refused_and_the_daemon_serves_on(harness):
    with harness.example(), harness.fuzz_session() as session:
        tensor = harness.allocate(session, [1 << 20], pb.UINT8)
        huge = b"\x01" * ((64 << 20) + 1)
        _, error = harness.call("WriteTensor of a 64 MiB chunk", harness.runtime.WriteTensor,
                                iter([pb.WriteTensorChunk(tensor_id=tensor, data=huge)]), metadata=session.metadata)
        assert error is not None and error.code() == SC.RESOURCE_EXHAUSTED
        constant = pb.Constant(name="w", shape=[len(huge)], dtype=pb.UINT8, data=huge)
        _, error = harness.call("LoadModel with a 64 MiB constant", harness.runtime.LoadModel, pb.LoadModelRequest(
            name="huge", subgraphs=[pb.SubgraphProgram(core_id=0, program=pb.Program(constants=[constant]))]),
            metadata=session.metadata)
        assert error is not None and error.code() == SC.RESOURCE_EXHAUSTED
        assert harness.read(session, tensor) == bytes(1 << 20)


# -------------------------------------------------------------------------------------------------
# Daemon bugs the fuzzers found, each with its minimal request
# -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("visible_cores", ["²", "1" * 5000], ids=["superscript-two", "5000-digits"])
def test_visible_cores_that_str_isdigit_accepts_but_int_cannot_read(harness, visible_cores):
    """parse_visible_cores trusts str.isdigit(), which is true for '²' and for 5000 digits; int() then
    raises ValueError and the client gets INTERNAL instead of INVALID_ARGUMENT."""
    with harness.example():
        session, error = harness.open("OpenSession", pb.OpenSessionRequest(visible_cores=visible_cores),
                                      allowed=frozenset({SC.INVALID_ARGUMENT}))
        assert session is None


HUGE_RANGE_CHILD = textwrap.dedent("""
    import os, resource, sys, time, grpc
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # a runaway daemon fails here, not the machine
    from neurontools.daemon.server.embedded import running_daemon
    from neurontools._proto import neurond_pb2 as pb, neurond_pb2_grpc as pb_grpc
    with running_daemon("inf2.48xlarge") as daemon, grpc.insecure_channel(daemon.address) as channel:
        start = time.monotonic()
        try:
            next(pb_grpc.NeuronRuntimeStub(channel).OpenSession(
                pb.OpenSessionRequest(visible_cores="0-200000000"), timeout=5))
            print("OK", round(time.monotonic() - start, 3), flush=True)
        except grpc.RpcError as error:
            print(error.code().name, round(time.monotonic() - start, 3), error.details(), flush=True)
        os._exit(0)  # a daemon stuck in the request would not stop in time
""")


def test_huge_visible_cores_range_is_refused_at_once():
    """parse_visible_cores expands "0-200000000" into a list before checking it against the 24 cores:
    gigabytes and seconds on the event loop (every client waits), then MemoryError -> INTERNAL; a wider
    range takes the machine's memory. Run in a child process under a 3 GiB address-space limit so the bug
    cannot take the test machine down."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", HUGE_RANGE_CHILD], capture_output=True, text=True, timeout=60,
                            env=env)
    last = (result.stdout.strip().splitlines()
            or [f"DIED 0 the daemon's process died (exit {result.returncode}): {result.stderr[-3000:]}"])[-1]
    code, seconds, details = (last.split(" ", 2) + ["", ""])[:3]
    assert code == "INVALID_ARGUMENT", last
    assert float(seconds) < 1.0, f"refused after {seconds} s: {details}"


def test_the_log_check_hears_a_daemon_task_that_failed_unseen(harness, daemon):
    # A task of the daemon's (a Watch producer, say) that fails with nobody awaiting it is reported
    # only by asyncio's logger: the check after each fuzzing example must hear it.
    async def producer() -> None:
        raise RuntimeError("the frame producer failed")

    async def start_and_forget() -> None:
        task = asyncio.get_running_loop().create_task(producer())
        await asyncio.sleep(0.01)  # it runs and fails
        del task  # the last reference: asyncio logs "Task exception was never retrieved"
        gc.collect()

    with pytest.raises(AssertionError, match="the daemon logged errors") as raised:
        with harness.example():
            daemon.call(start_and_forget())
    assert "Task exception was never retrieved" in str(raised.value)
    assert "the frame producer failed" in str(raised.value)


def test_client_pid_metadata_beyond_uint32_does_not_break_snapshots(harness):
    """Observers.enter keeps any all-digit neuron-client-pid; pb.Observer(pid=...) is a uint32, so building
    the snapshot raises ValueError and GetSnapshot answers INTERNAL."""
    with harness.example():
        harness.call("GetSnapshot with neuron-client-pid 4294967296", harness.device.GetSnapshot,
                     pb.SnapshotRequest(), metadata=[("neuron-client-pid", "4294967296")], allowed=frozenset())


def test_watch_with_client_pid_beyond_uint32_does_not_break_other_clients(harness):
    """The same pid on a Watch stays registered while the watch runs: every other client's GetSnapshot and
    Watch fail with INTERNAL meanwhile, and the watcher never gets a frame (its producer task died)."""
    with harness.example():
        watch = harness.device.Watch(pb.WatchRequest(interval_ns=10**8), metadata=[("neuron-client-pid", "4294967296")],
                                     timeout=5)
        try:
            time.sleep(0.2)
            harness.call("another client's GetSnapshot while that watch runs", harness.device.GetSnapshot,
                         pb.SnapshotRequest(), allowed=frozenset())
            try:
                assert harness.next_of("the watcher's first frame", watch).snapshot.monotonic_ns
            except grpc.RpcError as error:
                pytest.fail(f"the watcher got no frame: {error.code().name} {error.details()!r}")
        finally:
            watch.cancel()
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:  # the broken observer leaves when the watch's stream ends
                try:
                    harness.snapshot()
                    break
                except grpc.RpcError:
                    time.sleep(0.02)


class _Paused:
    """Chunks for a client stream that stop after the first until released."""

    def __init__(self, tensor_id: int) -> None:
        import threading
        self.tensor_id = tensor_id
        self.sent_first = threading.Event()
        self.go_on = threading.Event()

    def __iter__(self):
        yield pb.WriteTensorChunk(tensor_id=self.tensor_id, offset=0, data=b"\x01" * 1024)
        self.sent_first.set()
        self.go_on.wait(CALL_TIMEOUT)
        yield pb.WriteTensorChunk(offset=1024, data=b"\x02" * 1024)


@pytest.mark.parametrize("release", ["FreeTensor", "EndSession", "session stream closed"])
@pytest.mark.parametrize("transfer", ["ReadTensor", "WriteTensor"])
def test_tensor_released_in_the_middle_of_a_transfer(harness, transfer, release):
    """A read or write stream holds the Tensor it looked up; when the tensor is freed (FreeTensor, or its session
    ends) before the stream's next chunk, Region.read/write raise ValueError("region N was freed"): ReadTensor
    answers INTERNAL with a traceback in the daemon's log, WriteTensor UNKNOWN "Unexpected <class 'ValueError'>"
    (it maps RequestError only). Expected: a client error such as NOT_FOUND "tensor N was freed during the read"."""
    with harness.example():
        session, _ = harness.open("open", pb.OpenSessionRequest(visible_cores="5", command="mid-stream"),
                                  allowed=frozenset())
        try:
            tensor = harness.allocate(session, [64 << 20], pb.UINT8, core=5)
            if transfer == "ReadTensor":
                stream = harness.runtime.ReadTensor(pb.ReadTensorRequest(tensor_id=tensor, chunk_bytes=1 << 16),
                                                    metadata=session.metadata, timeout=CALL_TIMEOUT)
                assert next(stream).offset == 0  # 1023 chunks to go: the daemon's generator is mid-way
            else:
                chunks = _Paused(tensor)
                stream = harness.runtime.WriteTensor.future(iter(chunks), metadata=session.metadata,
                                                            timeout=CALL_TIMEOUT)
                assert chunks.sent_first.wait(CALL_TIMEOUT)
                time.sleep(0.2)  # the daemon has taken the first chunk and waits for the next
            if release == "FreeTensor":
                harness.call("FreeTensor", harness.runtime.FreeTensor, pb.FreeTensorRequest(tensor_id=tensor),
                             metadata=session.metadata, allowed=frozenset())
            elif release == "EndSession":
                harness.call("EndSession", harness.admin.EndSession,
                             pb.EndSessionRequest(session_id=session.session_id), allowed=frozenset())
            else:
                session.call.cancel()
            if release != "FreeTensor":
                harness.release(session)  # waits until the daemon has closed the session, tensors and all
            try:
                if transfer == "ReadTensor":
                    for _ in stream:
                        pass
                else:
                    chunks.go_on.set()
                    stream.result()
            except grpc.RpcError as exc:
                error = exc
            else:
                pytest.fail(f"the {transfer} of a released tensor went on as if nothing happened")
            harness.check_error(f"{transfer} after {release}", error, allowed=CLIENT_ERRORS | {SC.ABORTED})
        finally:
            harness.release(session)


@pytest.mark.parametrize("edit", ["runtime_memory_bytes=2**63", "constant tensor_id=12345678"])
def test_refused_load_model_gives_back_what_it_placed(harness, edit):
    """RuntimeState.load_model frees the regions of fully placed subgraphs only: when _place_subgraph fails
    half way (OutOfMemory on MODEL_CODE/RUNTIME_MEMORY/TENSORS, or NotFound/PermissionDenied/InvalidArgument
    for a constant's tensor_id), the regions it already placed (constants, model code) stay allocated, belong
    to no model and are never freed, not even when the session closes."""
    with harness.example(), harness.fuzz_session() as session:
        program = fs.matmul_program()
        request = pb.LoadModelRequest(name="leak", subgraphs=[pb.SubgraphProgram(core_id=0, program=program)])
        if edit.startswith("runtime"):
            request.runtime_memory_bytes = 2**63
        else:
            program = request.subgraphs[0].program
            program.constants[0].data = b""
            program.constants[0].tensor_id = 12345678
        before = harness.snapshot()
        _, error = harness.call("LoadModel", harness.runtime.LoadModel, request, metadata=session.metadata)
        assert error is not None
        harness.unchanged(f"LoadModel refused with {error.code().name}", before)


def test_write_into_a_host_tensor_larger_than_the_daemons_ram(harness):
    """The first write materializes the region; numpy's MemoryError becomes hbm_allocator.OutOfMemory, which
    WriteTensor does not map (it catches RequestError only): the client gets UNKNOWN "Unexpected <class
    'neurontools.daemon.device.hbm_allocator.OutOfMemory'>" and grpc logs a traceback. Expected RESOURCE_EXHAUSTED."""
    with harness.example(), harness.fuzz_session() as session:
        tensor = harness.allocate(session, [700, 1 << 30], pb.UINT8, placement=pb.HOST)
        _, error = harness.call("WriteTensor of 1 byte into a 700 GiB host tensor", harness.runtime.WriteTensor,
                                iter([pb.WriteTensorChunk(tensor_id=tensor, data=b"x")]), metadata=session.metadata)
        if error is not None:
            assert error.code() == SC.RESOURCE_EXHAUSTED
