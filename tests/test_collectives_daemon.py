"""Collectives end to end through a real neurond: the numbers every rank gets, the bytes on the links in
snapshots, link faults, load-time rules and timeouts."""

from __future__ import annotations

import math
import time

import ml_dtypes
import numpy as np
import pytest

from neurontools._proto import neurond_pb2 as pb
from neurontools.client import Device, InvalidRequest, Session
from neurontools.daemon.isa.activation_functions import erf64
from neurontools.daemon.device import topology as topo
from neurontools.daemon.server.embedded import running_daemon
from neurontools.kernels import library
from neurontools.kernels.builder import Kernel


@pytest.fixture(scope="module")
def daemon():
    with running_daemon("inf2.48xlarge") as running:
        yield running


def _session(daemon, cores: str, **options) -> Session:
    return Session(daemon.address, visible_cores=cores, command="pytest collectives", **options)


def _run(session: Session, programs: dict[int, pb.Program], inputs: dict[int, dict[str, np.ndarray]],
         outputs: dict[str, tuple[tuple[int, ...], str]], *, timing_only: bool = False, check: bool = True):
    """Loads and runs a model of `programs`; returns (result, {core: {output: array}})."""
    model = session.load_model("collectives", programs)
    bindings = {}
    for core in programs:
        bound = {name: session.tensor_from(array, core_id=core) for name, array in inputs.get(core, {}).items()}
        bound.update({name: session.allocate(shape, dtype, core_id=core) for name, (shape, dtype) in outputs.items()})
        bindings[core] = bound
    result = session.execute(model, {}, core_bindings=bindings, timing_only=timing_only, check=check)
    read = {core: {name: bindings[core][name].read() for name in outputs} for core in programs}
    model.unload()
    return result, read


def _collective(cores, kind: str, x_shape, y_shape, dtype="float32", **options) -> dict[int, pb.Program]:
    programs = {}
    for core in cores:
        k = Kernel()
        getattr(library, kind)(k, k.output("y", y_shape, dtype), k.input("x", x_shape, dtype), **options)
        programs[core] = k.program()
    return programs


def test_tensor_parallel_matmul_across_all_24_cores_gives_numpys_numbers(daemon):
    rng = np.random.default_rng(24)
    cores = list(range(24))
    m, kk, n = 128, 24 * 128, 512
    a = rng.standard_normal((m, kk), dtype=np.float32)
    w = rng.standard_normal((kk, n), dtype=np.float32)
    with _session(daemon, "0-23") as session:
        programs = library.tensor_parallel_matmul_programs(m, kk, n, cores, weights=w)
        shards = {core: {"a": a[:, 128 * r:128 * (r + 1)]} for r, core in enumerate(cores)}
        result, out = _run(session, programs, shards, {"out": ((m, n), "float32")})
    assert result.ok and result.flops == 2 * m * kk * n
    expected = a.astype(np.float64) @ w.astype(np.float64)
    np.testing.assert_allclose(out[0]["out"], expected, rtol=1e-4, atol=1e-3)
    for core in cores[1:]:
        np.testing.assert_array_equal(out[core]["out"], out[0]["out"])  # every rank, the same bits


def test_column_parallel_matmul_and_megatron_mlp(daemon):
    rng = np.random.default_rng(5)
    cores = [4, 5, 6, 7]
    a = rng.standard_normal((128, 256), dtype=np.float32)
    w = rng.standard_normal((256, 512), dtype=np.float32)
    with _session(daemon, "4-7") as session:
        programs = library.tensor_parallel_matmul_programs(128, 256, 512, cores, weights=w, parallel="column")
        _, out = _run(session, programs, {c: {"a": a} for c in cores},
                      {"out": ((128, 512), "float32"), "part": ((128, 128), "float32")})
        np.testing.assert_allclose(out[6]["out"], a @ w, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(out[6]["part"], a @ w[:, 256:384], rtol=1e-4, atol=1e-3)
        x = rng.standard_normal((256, 128), dtype=np.float32)
        w1 = rng.standard_normal((128, 512), dtype=np.float32) / 8
        w2 = rng.standard_normal((512, 128), dtype=np.float32) / 8
        mlp = library.tensor_parallel_mlp_programs(256, 128, 512, cores, w1, w2)
        _, out = _run(session, mlp, {c: {"x": x} for c in cores}, {"out": ((256, 128), "float32")})
    h = x.astype(np.float64) @ w1
    np.testing.assert_allclose(out[7]["out"], 0.5 * h * (1 + erf64(h / math.sqrt(2))) @ w2, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("op, reduce", [("add", np.add), ("maximum", np.maximum), ("minimum", np.minimum)])
def test_all_reduce_accumulates_in_fp32_and_rounds_to_nearest_even(daemon, op, reduce):
    rng = np.random.default_rng(11)
    cores = [2, 3, 4, 5]  # devices 1 and 2
    xs = {c: rng.standard_normal((64, 32)).astype(ml_dtypes.bfloat16) for c in cores}
    with _session(daemon, "2-5") as session:
        _, out = _run(session, _collective(cores, "all_reduce", (64, 32), (64, 32), "bfloat16", op=op),
                      {c: {"x": xs[c]} for c in cores}, {"y": ((64, 32), "bfloat16")})
    total = xs[2].astype(np.float32)
    for c in cores[1:]:
        total = reduce(total, xs[c].astype(np.float32))
    expected = total.astype(ml_dtypes.bfloat16)  # ml_dtypes rounds to nearest even
    for c in cores:
        assert out[c]["y"].tobytes() == expected.tobytes()


def test_all_gather_reduce_scatter_permute_and_send_recv(daemon):
    rng = np.random.default_rng(12)
    cores = [2, 3, 4, 5]
    xs = {c: rng.standard_normal((8, 6), dtype=np.float32) for c in cores}
    inputs = {c: {"x": xs[c]} for c in cores}
    with _session(daemon, "2-5") as session:
        _, gathered = _run(session, _collective(cores, "all_gather", (8, 6), (8, 24), axis=1), inputs,
                           {"y": ((8, 24), "float32")})
        _, scattered = _run(session, _collective(cores, "reduce_scatter", (8, 6), (2, 6)), inputs,
                            {"y": ((2, 6), "float32")})
        _, shifted = _run(session, _collective(cores, "permute", (8, 6), (8, 6), shift=-1), inputs,
                          {"y": ((8, 6), "float32")})
        # A ring exchange with send_recv: each core sends to the next and receives from the previous.
        ring = {}
        for i, core in enumerate(cores):
            k = Kernel()
            library.send_recv(k, src=k.input("x", (8, 6), "float32"), send_to=cores[(i + 1) % 4],
                              dst=k.output("y", (8, 6), "float32"), recv_from=cores[i - 1])
            ring[core] = k.program()
        _, passed = _run(session, ring, inputs, {"y": ((8, 6), "float32")})
    total = xs[2] + xs[3] + xs[4] + xs[5]
    for i, c in enumerate(cores):
        np.testing.assert_array_equal(gathered[c]["y"], np.concatenate([xs[d] for d in cores], axis=1))
        np.testing.assert_array_equal(scattered[c]["y"], total[2 * i:2 * i + 2])
        np.testing.assert_array_equal(shifted[c]["y"], xs[cores[(i + 1) % 4]])  # shift -1: from the next rank
        np.testing.assert_array_equal(passed[c]["y"], xs[cores[i - 1]])


def test_collectives_in_place_and_on_views(daemon):
    """dst may be src; views of HBM tensors take part like whole tensors."""
    cores = [0, 1]
    programs = {}
    for core in cores:
        k = Kernel()
        x = k.output("x", (4, 8), "float32")
        library.permute(k, x, x)                # in place: each rank gets the other's
        library.all_reduce(k, x[0:2], x[2:4])   # rows 0-1 := sum over ranks of rows 2-3
        programs[core] = k.program()
    with _session(daemon, "0-1") as session:
        tensors = {c: session.tensor_from(np.full((4, 8), c + 1, np.float32), core_id=c) for c in cores}
        model = session.load_model("in-place", programs)
        session.execute(model, {}, core_bindings={c: {"x": tensors[c]} for c in cores})
        results = {c: tensors[c].read() for c in cores}
    np.testing.assert_array_equal(results[0][2:], np.full((2, 8), 2.0))
    np.testing.assert_array_equal(results[0][:2], np.full((2, 8), 3.0))
    np.testing.assert_array_equal(results[1][:2], np.full((2, 8), 3.0))


def _link_bytes(daemon) -> list[tuple[int, int]]:
    with Device(daemon.address) as device:
        return [(link.bytes_a_to_b, link.bytes_b_to_a) for link in device.snapshot().links]


def test_link_counters_in_snapshots_match_the_algorithms_arithmetic(daemon):
    n = 48 * 1024 * 8  # 1.5 MiB: large enough for the ring (small all-reduces take recursive doubling)
    size = 4 * n
    programs = _collective(range(24), "all_reduce", (n,), (n,))
    inputs = {c: {"x": np.ones(n, np.float32)} for c in range(24)}
    with _session(daemon, "0-23") as session:
        before = _link_bytes(daemon)
        _run(session, programs, inputs, {"y": ((n,), "float32")})
        middle = _link_bytes(daemon)
        result, out = _run(session, programs, inputs, {"y": ((n,), "float32")}, timing_only=True)
        after = _link_bytes(daemon)
    per_direction = 23 * size // 24  # two rings, half each: (R - 1)/R of the half, twice
    assert [(a1 - a0, b1 - b0) for (a0, b0), (a1, b1) in zip(before, middle)] == [(per_direction,) * 2] * 12
    # Timing only: no arithmetic, the same traffic and time.
    assert [(a1 - a0, b1 - b0) for (a0, b0), (a1, b1) in zip(middle, after)] == [(per_direction,) * 2] * 12
    assert result.ok and result.device_latency > 46 * 1.5e-6
    assert not out[0]["y"].any()  # nothing computed


def test_a_link_that_is_down_fails_the_collectives_that_need_it(daemon):
    rng = np.random.default_rng(1)
    cores = [6, 7, 8, 9]  # devices 3 and 4: link (3, 4)
    machine = topo.lookup("inf2.48xlarge")
    link = machine.links().index((3, 4))
    inputs = {c: {"x": rng.standard_normal(16, dtype=np.float32)} for c in cores}
    programs = _collective(cores, "all_reduce", (16,), (16,))
    with _session(daemon, "6-9") as session, Device(daemon.address) as device:
        fault = device.inject_fault("link_down", link=link)
        try:
            before = session_stats(device, session)
            result, _ = _run(session, programs, inputs, {"y": ((16,), "float32")}, check=False)
            assert result.response.status == pb.COMPLETED_WITH_ERR and result.response.error_kind == pb.HARDWARE
            assert result.message == (f"NeuronLink {link} (device 3 <-> device 4) is down: all_reduce (instruction 0) "
                                      "over NeuronCores 6-9 routes through it")
            after = session_stats(device, session)
            assert after.errors.hardware - before.errors.hardware == 1
            assert after.executions.completed_with_err - before.executions.completed_with_err == 1
            on_one_device = _collective([6, 7], "all_reduce", (16,), (16,))
            assert _run(session, on_one_device, inputs, {"y": ((16,), "float32")})[0].ok  # needs no link
        finally:
            device.clear_faults(fault.fault_id)
        assert _run(session, programs, inputs, {"y": ((16,), "float32")})[0].ok


def session_stats(device: Device, session: Session) -> pb.ExecutionStats:
    return next(s.stats for s in device.snapshot().sessions if s.session_id == session.session_id)


@pytest.mark.parametrize("programs, message", [
    (lambda: _collective([0, 1, 2], "all_reduce", (4,), (4,)),
     "model 'collectives': the group of NeuronCores 0-2 has 3 ranks; on Inferentia2 the Neuron runtime runs "
     "collectives over an even number of ranks on consecutive Neuron devices"),
    (lambda: _collective([0, 1, 4, 5], "all_reduce", (4,), (4,)),
     "spans Neuron devices 0 and 2, which are not consecutive \\(device 1 has no rank\\)"),
    (lambda: _collective([0], "all_reduce", (4,), (4,), group=[0, 1]),
     "names NeuronCore 1, which runs no subgraph of this model"),
])
def test_group_rules_are_checked_when_the_model_loads(daemon, programs, message):
    with _session(daemon, "0-5") as session, pytest.raises(InvalidRequest, match=message):
        session.load_model("collectives", programs())


def test_a_rank_that_is_late_past_the_timeout_fails_the_execution_without_hanging(daemon):
    """Rank 1 computes for real (numpy) well past NEURON_RT_EXEC_TIMEOUT before its all-reduce: rank 0 stops
    waiting at the collective, both report the same timeout, and the cores are free again afterwards."""
    size = 2048
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    started = time.perf_counter()
    a @ a
    repeats = int(0.1 / (time.perf_counter() - started)) + 1  # at least 0.1 s of numpy, 5x the timeout
    late = Kernel()
    x, y = late.input("x", (4,), "float32"), late.output("y", (4,), "float32")
    m, out = late.input("m", (size, size), "float32"), late.output("out", (size, size), "float32")
    for _ in range(repeats):
        library.matmul(late, out, m, m, a_transposed=True)
    library.all_reduce(late, y, x)
    programs = {0: _collective([0, 1], "all_reduce", (4,), (4,))[0], 1: late.program()}
    inputs = {0: {"x": np.ones(4, np.float32)}, 1: {"x": np.ones(4, np.float32), "m": a}}
    with _session(daemon, "0-1", exec_timeout=0.02) as session:
        outputs = {"y": ((4,), "float32")}
        model = session.load_model("late", programs)
        bound = {core: {name: session.tensor_from(array, core_id=core) for name, array in inputs[core].items()}
                 for core in programs}
        for core in programs:
            bound[core]["y"] = session.allocate((4,), "float32", core_id=core)
        bound[1]["out"] = session.allocate((size, size), "float32", core_id=1)
        result = session.execute(model, {}, core_bindings=bound, check=False)
        assert result.response.status == pb.TIMED_OUT
        assert result.message == ("NeuronCore 0 waited at all_reduce (instruction 0) for NeuronCore 1, which did not "
                                  "reach it within NEURON_RT_EXEC_TIMEOUT (0.02 s)")
        ones = {core: {"x": np.ones(4, np.float32)} for core in (0, 1)}
        assert _run(session, _collective([0, 1], "all_reduce", (4,), (4,)), ones, outputs)[0].ok


@pytest.mark.parametrize("instance, cores", [("inf2.24xlarge", range(12)), ("trn1.32xlarge", range(32))])
def test_all_reduce_on_the_chain_and_the_torus(instance, cores):
    rng = np.random.default_rng(7)
    cores = list(cores)
    n = 1 << 19  # 2 MiB: large enough for the ring and the torus, which use every link (small messages
    # take recursive doubling)
    xs = {c: rng.standard_normal(n, dtype=np.float32) for c in cores}
    with running_daemon(instance) as other, _session(other, f"0-{cores[-1]}") as session:
        before = _link_bytes(other)
        _, out = _run(session, _collective(cores, "all_reduce", (n,), (n,)), {c: {"x": xs[c]} for c in cores},
                      {"y": ((n,), "float32")})
        after = _link_bytes(other)
    total = xs[0].copy()
    for c in cores[1:]:
        total += xs[c]
    for c in cores:
        np.testing.assert_array_equal(out[c]["y"], total)
    assert all(a1 > a0 and b1 > b0 for (a0, b0), (a1, b1) in zip(before, after))  # every link, both ways
