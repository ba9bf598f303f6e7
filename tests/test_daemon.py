"""neurond end to end over its real Unix socket: sessions, tensors, models, executions, telemetry."""

import os
import stat
import subprocess
import sys
import textwrap
import time

import grpc
import numpy as np
import pytest

from neurontools import addresses
from neurontools._proto import neurond_pb2 as pb
from neurontools.client import (AccessDenied, Device, ExecutionError, InvalidRequest, NotFoundError,
                                OutOfResources, Session, Tensor)
from neurontools.kernels.examples import gelu, mlp_program
from neurontools.latency_histogram import difference, percentiles


def _session(address, cores, **kw):
    return Session(address, visible_cores=cores, command="pytest worker", **kw)


def test_socket_is_private(address):
    mode = os.stat(addresses.unix_socket_path(address)).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


def test_health_reports_serving_and_reflection_lists_services(address):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"neurontools.v1.NeuronDevice", "neurontools.v1.NeuronRuntime", "neurontools.v1.NeuronAdmin"} <= names


def test_tensor_roundtrip_in_chunks(address):
    data = np.arange(3 * 1024 * 1024, dtype=np.float32).reshape(3, 1024, 1024)  # 12 MiB: many chunks
    with _session(address, "0") as session:
        tensor = session.tensor_from(data)
        np.testing.assert_array_equal(tensor.read(), data)
        assert tensor.read_bytes(offset=8, length=4) == data.tobytes()[8:12]
        host = session.tensor_from(np.ones((4, 4), np.int8), placement="host")
        assert host.read().sum() == 16


# float32 inputs -> what each dtype must store, computed by hand: round to the nearest value the
# format holds, ties to even; floats overflow to inf, integers saturate. 1/3 lies in [0.25, 0.5), so
# with m mantissa bits it becomes round(1/3 * 2**(m + 2)) / 2**(m + 2); 5e9 is 4999999488 in float32.
DTYPE_CASES = {
    "tfloat32": ([1.0, 1 / 3, 1000.25, 1000.3, -2.75, 5e9],  # 10 mantissa bits: 1000.25 ties to 1000.0
                 [1.0, 1365 / 4096, 1000.0, 1000.5, -2.75, 1192 * 2.0**22]),
    "bfloat16": ([1.0, 1 / 3, 1000.25, 300.0, -200.0, 5e9],  # 7 bits: steps of 4 in [512, 1024)
                 [1.0, 171 / 512, 1000.0, 300.0, -200.0, 149 * 2.0**25]),
    "float16": ([1.0, 1 / 3, 1000.25, -2.75, 70000.0],  # 10 bits; largest finite 65504
                [1.0, 1365 / 4096, 1000.0, -2.75, np.inf]),
    "float8_e4m3": ([1.0, 1 / 3, -2.75, -200.0, 0.01],  # 3 bits; -200 = -12.5 steps of 16: ties to -192
                    [1.0, 11 / 32, -2.75, -192.0, 5 * 2.0**-9]),  # 0.01 = 5.12 subnormal steps of 2**-9
    "float8_e5m2": ([1.0, 1 / 3, -2.75, 300.0, -200.0],  # 2 bits: -2.75 = -5.5 steps of 0.5: ties to -3
                    [1.0, 5 / 16, -3.0, 320.0, -192.0]),
    "int8": ([1.0, 1 / 3, -2.75, 2.5, 3.5, 300.0, -200.0, 5e9],
             [1, 0, -3, 2, 4, 127, -128, 127]),
    "uint32": ([1.0, 1 / 3, -2.75, 2.5, 1000.5, 300.0, -200.0, 5e9],
               [1, 0, 0, 2, 1000, 300, 0, 2**32 - 1]),
}


@pytest.mark.parametrize("dtype", DTYPE_CASES)
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # float16's inf case
def test_dtypes_are_stored_faithfully(address, dtype):
    inputs, expected = DTYPE_CASES[dtype]
    values = np.array(inputs, np.float32)
    with _session(address, "0") as session:
        tensor = session.allocate(values.shape, dtype)
        tensor.write(values)
        stored = tensor.read()
    assert stored.astype(np.float64).tolist() == expected


def test_hand_computed_dtype_values_agree_with_ml_dtypes():
    # A check on the table above: ml_dtypes (no code of ours) rounds the floats the same way.
    import ml_dtypes
    for dtype, storage in (("bfloat16", ml_dtypes.bfloat16), ("float16", np.float16),
                           ("float8_e4m3", ml_dtypes.float8_e4m3), ("float8_e5m2", ml_dtypes.float8_e5m2)):
        inputs, expected = DTYPE_CASES[dtype]
        with np.errstate(over="ignore"):  # float16's overflow to inf is one of the cases
            assert np.array(inputs, np.float32).astype(storage).astype(np.float64).tolist() == expected, dtype


def test_copy_and_free(address):
    with _session(address, "0") as session:
        a = session.tensor_from(np.arange(16, dtype=np.int32))
        b = session.allocate((16,), "int32")
        b.copy_from(a)
        np.testing.assert_array_equal(b.read(), np.arange(16))
        a.free()
        with pytest.raises(NotFoundError, match="already freed"):
            a.read()


def test_small_kernel_computes_numpys_numbers(address):
    rng = np.random.default_rng(1)
    x_t = rng.standard_normal((128, 64), dtype=np.float32)
    w = rng.standard_normal((128, 256), dtype=np.float32) / 8
    with _session(address, "2-3") as session:
        model = session.load_model("mlp", {3: mlp_program(weights=w)})
        assert model.model_id >= 10001 and len(model.info.uuid) == 32
        x = session.tensor_from(x_t, core_id=3)
        out = session.allocate((64, 256), "float32", core_id=3)
        rowmax = session.allocate((64, 1), "float32", core_id=3)
        result = model.execute(xT=x, out=out, rowmax=rowmax)
        expected = gelu(x_t.T @ w)
        np.testing.assert_allclose(out.read(), expected, atol=1e-4)
        np.testing.assert_allclose(rowmax.read()[:, 0], expected.max(axis=1), atol=1e-4)
        assert result.status == "completed" and result.device_latency > 0
        assert result.total_latency >= result.device_latency and result.flops >= 2 * 128 * 64 * 256


def test_large_constant_travels_as_a_tensor(address):
    w = np.random.default_rng(2).standard_normal((128, 4096), dtype=np.float32)  # 2 MiB, above the inline limit
    program = mlp_program(n=4096, weights=w)
    # the PSUM tile of this shape breaks the one-bank rule, so only use the constant path: shrink the matmul
    del program.instructions[:]
    program.tiles[2].shape[:] = [64, 256]
    with _session(address, "4") as session:
        model = session.load_model("big-constant", program)
        snap = Device(address).snapshot()
        sg = next(m for m in snap.models if m.model_id == model.model_id).subgraphs[0]
        constants = next(u.used_bytes for u in sg.device_memory if u.category == pb.CONSTANTS)
        assert constants == w.nbytes


def test_nan_output_completes_with_numerical_error(address):
    x_t = np.full((128, 64), np.nan, np.float32)
    with _session(address, "5") as session:
        model = session.load_model("nan", mlp_program(weights=np.ones((128, 256), np.float32)))
        x = session.tensor_from(x_t)
        out, rowmax = session.allocate((64, 256), "float32"), session.allocate((64, 1), "float32")
        with pytest.raises(ExecutionError, match="NaN") as info:
            model.execute(xT=x, out=out, rowmax=rowmax)
        assert info.value.result.status == "completed_with_num_err"
        stats = next(s for s in Device(address).snapshot().sessions if s.session_id == session.session_id).stats
        assert stats.executions.completed_with_num_err == 1 and stats.errors.numerical == 1


def test_incorrect_input_is_counted_not_raised_as_rpc_error(address):
    with _session(address, "6") as session:
        model = session.load_model("mlp", mlp_program())
        wrong = session.allocate((64, 128), "float32")
        out, rowmax = session.allocate((64, 256), "float32"), session.allocate((64, 1), "float32")
        result = model.execute(xT=wrong, out=out, rowmax=rowmax, check=False)
        assert result.status == "incorrect_input" and "expects float32[128, 64]" in result.message
        result = model.execute(out=out, rowmax=rowmax, check=False)
        assert result.status == "incorrect_input" and "'xT'" in result.message


def test_timeout_status(address):
    with _session(address, "7", exec_timeout=1e-7) as session:
        model = session.load_model("slow", mlp_program())
        x = session.allocate((128, 64), "float32")
        out, rowmax = session.allocate((64, 256), "float32"), session.allocate((64, 1), "float32")
        result = model.execute(xT=x, out=out, rowmax=rowmax, check=False)
        assert result.status == "timed_out" and "NEURON_RT_EXEC_TIMEOUT" in result.message


def test_taken_core_names_the_owner(address):
    with _session(address, "8-9", pid=4242):
        with pytest.raises(OutOfResources, match="NeuronCore 9 is already in use by pid 4242"):
            _session(address, "9-10").open()
        with pytest.raises(InvalidRequest, match="not contiguous"):
            _session(address, "10,12").open()


def test_foreign_handles_are_refused(address):
    with _session(address, "10") as alice, _session(address, "11") as bob:
        tensor = alice.tensor_from(np.zeros(4, np.float32))
        model = alice.load_model("m", mlp_program())
        with pytest.raises(AccessDenied, match="belongs to another session"):
            Tensor(bob, tensor.info).read()
        with pytest.raises(AccessDenied, match="belongs to another session"):
            bob._call("FreeTensor", pb.FreeTensorRequest(tensor_id=tensor.tensor_id))
        with pytest.raises(AccessDenied, match="belongs to another session"):
            bob._call("Execute", pb.ExecuteRequest(model_id=model.model_id))
        with pytest.raises(AccessDenied, match="not part of this session"):
            bob.allocate((4,), "float32", core_id=10)
        tensor.read()  # alice is unaffected


def test_out_of_hbm_names_device_needed_and_free(address):
    with _session(address, "12-13") as session:
        # 24 GiB of 32: each 16 GiB stack also holds the runtime's own reservations of one core
        held = [session.allocate((4, 1 << 30), "int8", core_id=12) for _ in range(6)]
        with pytest.raises(OutOfResources) as info:
            session.allocate((9, 1 << 30), "int8", core_id=12)
        message = str(info.value)
        assert "needs 9.0 GiB on neuron device 6, 7.9 GiB free" in message
        with pytest.raises(OutOfResources, match="the largest free block is .* bytes, short of") as info:
            session.allocate((4, 1 << 30), "int8", core_id=13)
        assert len(held) == 6


def test_writes_past_the_end_are_refused(address):
    with _session(address, "14") as session:
        tensor = session.allocate((4,), "float32")
        with pytest.raises(InvalidRequest, match="runs past the end of tensor"):
            tensor.write(b"x" * 8, offset=12)


def test_calls_without_a_session_are_unauthenticated(address):
    with grpc.insecure_channel(address) as channel:
        from neurontools._proto import neurond_pb2_grpc as pb_grpc
        with pytest.raises(grpc.RpcError) as info:
            pb_grpc.NeuronRuntimeStub(channel).AllocateTensor(pb.AllocateTensorRequest(shape=[1]), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_snapshot_shows_session_memory_and_utilization(address):
    with _session(address, "15") as session, Device(address) as device:
        model = session.load_model("mlp", mlp_program())
        x = session.allocate((128, 64), "float32")
        out, rowmax = session.allocate((64, 256), "float32"), session.allocate((64, 1), "float32")
        before = device.snapshot()
        for _ in range(20):
            model.execute(xT=x, out=out, rowmax=rowmax, timing_only=True)
        after = device.snapshot()
        core = after.cores[15]
        assert core.owner_session_id == session.session_id
        assert core.occupied_ns > before.cores[15].occupied_ns and core.executions - before.cores[15].executions == 20
        assert core.flops > before.cores[15].flops
        info = next(s for s in after.sessions if s.session_id == session.session_id)
        assert (info.pid, info.command, info.tag) == (os.getpid(), "pytest worker", str(os.getpid()))
        categories = {u.category for u in info.core_memory[0].memory}
        assert {pb.TENSORS, pb.CONSTANTS, pb.MODEL_CODE, pb.RUNTIME_MEMORY, pb.MODEL_SHARED_SCRATCHPAD} <= categories
        latency = difference(info.stats.device_latency, None)
        assert sum(latency) == 20 and percentiles(latency, [0.5])[0] > 0
        model_info = next(m for m in after.models if m.model_id == model.model_id)
        assert model_info.subgraphs[0].name == "sg_00" and model_info.executions == 20


def _comparable(snapshot: pb.Snapshot) -> str:
    """The snapshot as text, without what belongs to the instant it was taken or the builder's start."""
    for name in ("unix_ns", "monotonic_ns", "daemon_start_unix_ns"):
        snapshot.ClearField(name)
    for core in snapshot.cores:
        core.ClearField("occupied_ns")
    return str(snapshot)


def test_snapshots_built_from_kept_parts_equal_a_build_from_scratch(daemon):
    # The daemon keeps the parts of a snapshot between calls and rebuilds only what changed; a
    # builder that has never built anything reads everything from the state (the oracle). After
    # each kind of change, both must agree.
    from neurontools.daemon.runtime.snapshot import SnapshotBuilder
    state, kept = daemon.server.state, daemon.server.snapshots

    def agree(step: str) -> None:
        with state.lock:  # no other test's change between the two builds
            assert _comparable(kept.build([])) == _comparable(SnapshotBuilder(state).build([])), step

    agree("start")
    with _session(daemon.address, "20-21") as session, Device(daemon.address) as device:
        agree("session opened")
        model = session.load_model("mlp", mlp_program())
        agree("model loaded")
        x = session.allocate((128, 64), "float32", core_id=20)
        out, rowmax = session.allocate((64, 256), "float32"), session.allocate((64, 1), "float32")
        agree("tensors allocated")
        x.write(np.ones((128, 64), np.float32))
        agree("tensor written (materialized)")
        model.execute(xT=x, out=out, rowmax=rowmax, timing_only=True)
        agree("executed")
        model.execute(xT=x, out=out, rowmax=rowmax)
        agree("executed with data")
        spare = session.allocate((8,), "int8", core_id=21)
        agree("small tensor")
        spare.free()
        agree("tensor freed")
        device.inject_fault("mem_ecc_corrected", device=10, count=3)
        agree("ECC events")  # an instant event: nothing lasting to clear
        model.unload()
        agree("model unloaded")
    agree("session closed")


def test_watch_streams_frames_and_reports_missed_ones(address):
    # A reader with small transport buffers that stops reading for a second: the daemon keeps its
    # own pace, drops what the reader's queue cannot hold and says how much was dropped.
    from neurontools._proto import neurond_pb2_grpc as pb_grpc
    options = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 8192)]
    with grpc.insecure_channel(address, options=options) as channel:
        frames = pb_grpc.NeuronDeviceStub(channel).Watch(pb.WatchRequest(interval_ns=10_000_000, queue_depth=1))
        first = next(frames)
        time.sleep(1.0)
        later = [next(frames) for _ in range(6)]
        frames.cancel()
    assert later[-1].snapshot.monotonic_ns > first.snapshot.monotonic_ns
    missed = sum(f.missed_frames for f in later)
    assert 50 < missed < 110  # about 100 ticks of 10 ms went by while we slept


def test_observers_are_listed(address):
    with Device(address) as device:
        frames = device.watch(interval=0.05)
        next(frames)
        snap = device.snapshot()
        frames.close()
    assert os.getpid() in {o.pid for o in snap.observers}


def test_admin_ends_a_session(address):
    with _session(address, "16") as session, Device(address) as device:
        device.end_session(session.session_id, "test says so")
        deadline = time.monotonic() + 2
        while session.closed_reason is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert session.closed_reason == "test says so"
        assert session.session_id not in {s.session_id for s in device.snapshot().sessions}
        with pytest.raises(AccessDenied, match="session"):
            session.allocate((1,), "float32")


CHILD = textwrap.dedent("""
    import sys, time, numpy as np
    from neurontools.client import Session
    s = Session(sys.argv[1], visible_cores="20-21", command="victim").open()
    for core in (20, 21):
        s.tensor_from(np.ones((1024, 1024), np.float32), core_id=core)
    print("ready", flush=True)
    time.sleep(60)
""")


@pytest.mark.slow
def test_killed_client_releases_everything_within_two_seconds(address):
    child = subprocess.Popen([sys.executable, "-c", CHILD, address], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        with Device(address) as device:
            snap = device.snapshot()
            victim = next(s for s in snap.sessions if s.pid == child.pid)
            assert victim.core_ids == [20, 21] and victim.tensors == 2
            child.kill()
            killed = time.monotonic()
            while time.monotonic() - killed < 2:
                snap = device.snapshot()
                if all(s.pid != child.pid for s in snap.sessions):
                    break
                time.sleep(0.02)
            assert all(s.pid != child.pid for s in snap.sessions)
            assert snap.cores[20].owner_session_id == 0 and snap.cores[21].owner_session_id == 0
            assert not any(u.used_bytes for u in snap.cores[20].memory)
        with _session(address, "20-21"):
            pass  # the cores are free again
    finally:
        child.kill()
        child.wait()


def test_deadline_is_honoured_and_the_core_recovers(address):
    from neurontools.client import RequestTimeout
    with _session(address, "17") as session, Device(address) as device:
        model = session.load_model("long", mlp_program(repeat=8000))  # several ms of modeled time
        x = session.allocate((128, 64), "float32")
        out, rowmax = session.allocate((64, 256), "float32"), session.allocate((64, 1), "float32")
        request = pb.ExecuteRequest(model_id=model.model_id, timing_only=True, bindings=[
            pb.TensorBinding(core_id=17, name=n, tensor_id=t.tensor_id)
            for n, t in (("xT", x), ("out", out), ("rowmax", rowmax))])
        with pytest.raises(RequestTimeout):
            session._call("Execute", request, timeout=0.001)
        assert model.execute(xT=x, out=out, rowmax=rowmax, timing_only=True).ok
        deadline = time.monotonic() + 2
        while device.snapshot().cores[17].in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert device.snapshot().cores[17].in_flight == 0


def test_a_model_that_does_not_fit_leaves_nothing_behind(address):
    with _session(address, "18") as session, Device(address) as device:
        def used():
            return {u.category: u.used_bytes for u in device.snapshot().cores[18].memory if u.used_bytes}
        baseline = used()
        with pytest.raises(OutOfResources, match="does not fit: needs 20.0 GiB on neuron device 9"):
            session.load_model("huge", mlp_program(), scratchpad_bytes=20 << 30)
        program = mlp_program()
        program.constants[0].tensor_id = 999_999  # an unknown tensor as the weights' source
        with pytest.raises(NotFoundError):
            session.load_model("bad-source", program)
        assert used() == baseline
