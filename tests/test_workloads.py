"""Model-shaped workloads: compute mode against numpy, memory footprints against the architectures'
arithmetic, what fits where, and the clear failure of what does not."""

from __future__ import annotations

import numpy as np
import pytest

from neurontools.client import Device, Session
from neurontools.daemon.server.embedded import running_daemon
from neurontools.workloads.architectures import DECODERS, ENCODERS
from neurontools.workloads.decoder import DecoderShape
from neurontools.workloads.decoder_workload import DecoderWorkload
from neurontools.workloads.encoder_workload import EncoderWorkload
from neurontools.workloads.memory_plan import DoesNotFit
from neurontools.workloads.runner import WorkloadRunner
from neurontools.workloads.summary import workload_summary

GIB = 1 << 30
TOLERANCE = {"float32": 1e-5, "bfloat16": 2e-2}  # of the largest expected value


def _verify(address: str, workload) -> tuple[float, float]:
    with Session(address, visible_cores=",".join(map(str, workload.cores))) as session:
        replica = workload.replica(workload.groups[0])
        replica.load(session)
        try:
            return replica.verify()
        finally:
            replica.close()


# -- compute mode ------------------------------------------------------------------------------------

def test_weight_streaming_matmul_matches_numpy_across_chunk_edges(address):
    from neurontools.workloads.pooled_kernel import PooledKernel
    from neurontools.workloads.transformer_ops import weight_streaming_matmul
    m, kk, n = 3, 300, 2600  # K not a multiple of 128, N two weight tiles and a ragged 512-column piece
    rng = np.random.default_rng(0)
    a, w = rng.standard_normal((m, kk)).astype(np.float32), rng.standard_normal((kk, n)).astype(np.float32)
    k = PooledKernel()
    out = k.output("out", (m, n), "float32")
    with k.operation():
        weight_streaming_matmul(k, out, k.input("a", (m, kk), "float32"), k.constant("w", w))
    with Session(address, visible_cores="12") as session:
        model = session.load_model("wsm", k.program())
        result = session.allocate((m, n), "float32")
        model.execute(a=session.tensor_from(a), out=result)
        np.testing.assert_allclose(result.read(), a @ w, rtol=2e-5, atol=2e-4)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_encoder_on_two_cores_matches_numpy(address, dtype):
    workload = EncoderWorkload(ENCODERS["bert-tiny"], [0, 1], batch=2, seq_len=64, dtype=dtype, compute=True)
    error, scale = _verify(address, workload)
    assert error <= TOLERANCE[dtype] * scale, (error, scale)


def test_an_encoder_without_pooler_or_token_types_matches_numpy(address):
    """DistilBERT's shape: no token-type table, no pooler program (bert-tiny sized)."""
    from dataclasses import replace
    arch = replace(ENCODERS["bert-tiny"], token_types=0, pooler=False)
    workload = EncoderWorkload(arch, [2], batch=1, seq_len=32, dtype="float32", compute=True)
    assert set(workload.programs) == {"embed", "layers"} and "pooled" not in workload.workspace_shapes()
    error, scale = _verify(address, workload)
    assert error <= TOLERANCE["float32"] * scale, (error, scale)


@pytest.mark.parametrize("preset, tp, dtype", [
    ("llama-tiny", 2, "float32"),   # grouped-query attention, 2 KV heads over 2 cores
    ("llama-tiny", 4, "float32"),   # more cores than KV heads: each core keeps its group's KV head
    ("opt-tiny", 2, "float32"),     # LayerNorm, biases, ReLU MLP, learned positions, tied LM head
    ("llama-tiny", 2, "bfloat16"),
])
def test_decoder_prefill_and_decode_steps_match_numpy(address, preset, tp, dtype):
    workload = DecoderWorkload(DECODERS[preset], list(range(4, 4 + tp)), tp=tp, batch=2, prompt_len=12, gen_len=3,
                               dtype=dtype, compute=True)
    error, scale = _verify(address, workload)
    assert error <= TOLERANCE[dtype] * scale, (error, scale)


# -- shapes and memory -------------------------------------------------------------------------------

def test_parameter_counts_are_the_published_ones():
    assert ENCODERS["bert-base"].parameters() == 109_482_240      # bert-base-uncased
    assert ENCODERS["bert-large"].parameters() == 335_141_888     # bert-large-uncased
    assert DECODERS["llama-2-7b"].parameters() == 6_738_415_616
    assert DECODERS["llama-2-13b"].parameters() == 13_015_864_320
    assert DECODERS["llama-2-70b"].parameters() == 68_976_648_192
    # OPT-30B: tables (50272 tokens + 2050 positions) x 7168, 48 layers of attention with biases
    # 4 (7168^2 + 7168), fc1 7168 x 28672 + 28672, fc2 28672 x 7168 + 7168, two LayerNorms 4 x 7168,
    # and the final LayerNorm 2 x 7168; the LM head is the token table.
    layer = 4 * (7168**2 + 7168) + (7168 * 28672 + 28672) + (28672 * 7168 + 7168) + 4 * 7168
    assert DECODERS["opt-30b"].parameters() == (50272 + 2050) * 7168 + 48 * layer + 2 * 7168 == 29_974_540_288
    assert 174e9 < DECODERS["opt-175b"].parameters() < 176e9
    # The model cards' counts: distilbert-base-uncased (no token types, no pooler), Meta-Llama-3-8B and
    # Mistral-7B-v0.1 (grouped-query attention, 8 KV heads); OPT-13B as OPT-30B above.
    assert ENCODERS["distilbert-base"].parameters() == 66_362_880
    assert DECODERS["llama-3-8b"].parameters() == 8_030_261_248
    assert DECODERS["mistral-7b"].parameters() == 7_241_732_096
    layer = 4 * (5120**2 + 5120) + (5120 * 20480 + 20480) + (20480 * 5120 + 5120) + 4 * 5120
    assert DECODERS["opt-13b"].parameters() == (50272 + 2050) * 5120 + 40 * layer + 2 * 5120


def _weight_elements(workload: DecoderWorkload) -> int:
    """Weight elements the workload places over all its cores: stage tensors and head constants."""
    s = workload.shape
    per_core_layers = sum(r * c for r, c in s.layer_weights(workload.layers_per_program).values()) * workload.stages
    per_core_head = sum(r * c for r, c in s.head_constants().values())
    return s.tp * (per_core_layers + per_core_head)


@pytest.mark.parametrize("preset, tp", [("llama-2-7b", 8), ("llama-2-13b", 8), ("llama-2-70b", 8),
                                        ("opt-30b", 8), ("opt-66b", 8)])
def test_sharded_weights_add_up_to_the_parameters_plus_replicated_norms(preset, tp):
    arch = DECODERS[preset]
    if arch.family == "opt":  # OPT's vocabulary (50272) and positions (2050) do not split in 8: padded rows
        vocab_rows, position_rows = -(-50272 // tp) * tp, -(-2050 // tp) * tp
        padding = (vocab_rows - arch.vocab + position_rows - arch.learned_positions) * arch.hidden
    else:
        padding = 0
    workload = DecoderWorkload(arch, list(range(tp)), tp=tp)
    # Every core keeps the whole hidden state, so it holds every norm weight (and OPT's biases of the
    # row-parallel products, added after the all-reduce): (tp - 1) extra copies of those.
    replicated = arch.layers * workload.shape.vector_rows * arch.hidden + (2 if arch.biases else 1) * arch.hidden
    assert _weight_elements(workload) == arch.parameters() + (tp - 1) * replicated + padding


def test_llama_2_7b_memory_plan_is_its_weights_kv_cache_and_the_daemon_overheads():
    # tp=2, batch 4, 128 + 32 positions (one 256-position decode bucket): 6,738,415,616 parameters in
    # bfloat16 plus 4096 x 2 norm weights replicated once; KV cache 2 (k, v) x 32 layers x 4 sequences x
    # 256 positions x 4096 x 2 bytes.
    workload = DecoderWorkload(DECODERS["llama-2-7b"], [0, 1], tp=2, batch=4, prompt_len=128, gen_len=32)
    plan = workload.memory_plan()
    weights = 2 * (6_738_415_616 + (32 * 2 + 1) * 4096)
    kv_cache = 2 * 32 * 4 * 256 * 4096 * 2
    tensors_and_constants = plan.per_category()["tensors"] + plan.per_category()["constants"]
    staging = tensors_and_constants - weights - kv_cache  # workspaces and the daemon's per-model I/O staging
    assert 0 < staging < 0.1 * weights
    # the head's constants on each of the 2 cores: embed and lm_head shards (16000 of the 32000 tokens
    # each) and the final norm
    assert plan.per_category()["constants"] == 2 * (2 * 4096 * 16000 + 4096) * 2


def test_plan_matches_what_the_daemon_accounts(address):
    workload = DecoderWorkload(DECODERS["opt-tiny"], [8, 9], tp=2, batch=2, prompt_len=16, gen_len=4)
    runner = WorkloadRunner(address)
    name = runner.add(workload, limit=1)
    runner.start(name)
    assert runner.wait(name, timeout=60)
    run = runner.runs[name]
    assert run.error is None and workload_summary(name, run)["requests_by_status"] == {"ok": 1}
    assert run.memory == workload.memory_plan().per_category()


def test_a_175b_decoder_in_bfloat16_fits_the_12_chips_of_an_inf2_48xlarge():
    arch = DECODERS["opt-175b"]
    # 4 layers per program: 4x fewer tensors to place than 1, and the daemon's I/O staging of each
    # model's parameters (4 layers of weights for the prefill and for the decode model) still fits.
    workload = DecoderWorkload(arch, list(range(24)), tp=24, batch=1, prompt_len=128, gen_len=32,
                               layers_per_program=4)
    plan = workload.memory_plan()
    assert 2 * arch.parameters() / 1e9 > 349  # 350 GB of weights
    assert plan.largest_device_need() < 32 * GIB
    with running_daemon("inf2.48xlarge") as daemon, Device(daemon.address) as device:
        plan.check(device.snapshot(), "opt-175b")  # does not raise
        with Session(daemon.address) as session:
            workload.replica(workload.groups[0]).allocate(session)  # every weight and KV tensor, no data
            used = [d.memory_used_bytes for d in device.snapshot().devices]
        assert len(used) == 12 and min(used) > 27 * GIB and max(used) < 32 * GIB
        assert sum(d.materialized_bytes for d in device.snapshot().devices) < 64 << 20


def test_the_175b_decoder_does_not_fit_an_inf2_24xlarge_and_says_by_how_much():
    workload = DecoderWorkload(DECODERS["opt-175b"], list(range(12)), tp=12)
    with running_daemon("inf2.24xlarge") as daemon, Device(daemon.address) as device:
        with pytest.raises(DoesNotFit, match=r"needs \d+\.\d GiB per device .*, \d+\.\d GiB free \(short by "):
            workload.memory_plan().check(device.snapshot(), "opt-175b")


def test_a_model_too_big_for_its_cores_fails_at_load_with_the_shortfall_and_leaves_nothing(address):
    runner = WorkloadRunner(address)
    name = runner.add(DecoderWorkload(DECODERS["llama-2-70b"], [10, 11], tp=2))
    runner.start(name)
    assert runner.wait(name, timeout=60)
    error = runner.runs[name].error
    assert error is not None and "needs" in error and "GiB per device" not in error  # one device: "on"
    assert "on neuron device 5" in error and "free" in error and "short by" in error
    with Device(address) as device:
        assert not device.snapshot().sessions


def test_decode_buckets_cover_the_generation():
    shape = DecoderShape(DECODERS["llama-2-7b"], 8, 1, 100, 200)
    assert shape.capacity == 512
    workload = DecoderWorkload(DECODERS["llama-2-7b"], list(range(8)), tp=8, prompt_len=100, gen_len=200)
    assert workload.buckets == [128, 256, 512]


# -- specs, fixed costs and the in-process estimate --------------------------------------------------

def test_a_spec_overrides_the_layer_count():
    from neurontools.workloads import catalog
    spec = catalog.parse_spec("llama-3-8b:layers=2,tp=8", catalog.Settings())
    arch = catalog.architecture(spec)
    assert (arch.layers, arch.kv_heads, arch.vocab) == (2, 8, 128256)
    assert catalog.architecture(catalog.parse_spec("bert-large", catalog.Settings())).layers == 24
    with pytest.raises(catalog.SpecError, match="layers must be >= 1"):
        catalog.parse_spec("bert-base:layers=0", catalog.Settings())


def test_fixed_costs_of_a_step():
    from neurontools.daemon.isa import cost_model as cm
    from neurontools.workloads.workload import step_overhead_seconds
    # 32 MB over the 32 GB/s host link is 1 ms, next to one launch; a generation adds its start.
    assert step_overhead_seconds(32_000_000) == pytest.approx(1e-3 + cm.EXECUTION_LAUNCH_NS / 1e9)
    assert step_overhead_seconds(0, starts_generation=True) == pytest.approx(
        (cm.EXECUTION_LAUNCH_NS + cm.GENERATION_START_NS) / 1e9)
    # A bert-base request on one core: 128 embeddings in and one pooled vector out, bfloat16.
    workload = EncoderWorkload(ENCODERS["bert-base"], [0], batch=1, seq_len=128)
    assert workload.overhead_seconds() == pytest.approx(step_overhead_seconds(129 * 768 * 2))


def test_the_in_process_estimate_adds_up_the_programs_and_the_fixed_costs():
    from neurontools.daemon.isa.program import compile_program
    from neurontools.workloads.estimate import estimate
    workload = EncoderWorkload(ENCODERS["bert-tiny"], [0], batch=1, seq_len=64)
    modeled = estimate(workload, "inf2.xlarge").request
    programs = sum(compile_program(p).estimate.device_time_ns * (workload.stages if name == "layers" else 1)
                   for name, p in workload.programs.items()) / 1e9
    assert modeled.total == pytest.approx(programs + workload.overhead_seconds())
    assert modeled.seconds["fixed"] == pytest.approx(workload.overhead_seconds())
    assert modeled.seconds["collectives"] == 0
    # A tensor-parallel decoder's collectives show up as their own share.
    decoder = estimate(DecoderWorkload(DECODERS["llama-tiny"], [0, 1], tp=2, batch=1, prompt_len=16, gen_len=4),
                       "inf2.xlarge")
    assert decoder.token.seconds["collectives"] > 0 and decoder.request.seconds["fixed"] > 0.016


@pytest.mark.parametrize("spec", ["bert-tiny:cores=2,batch=2", "llama-tiny:tp=2,gen_len=4,seq_len=16"])
def test_served_in_the_daemon_models_the_same_request_as_per_call(address, spec):
    """The request load runs the executions the per-call path calls, with the same fixed costs: the
    modeled time of a request and its executions agree (to the nanosecond rounding of host time)."""
    from neurontools.workloads import catalog
    summaries = []
    for per_call in (True, False):
        with Device(address) as device:
            placer = catalog.Placer(device.snapshot())
        runner = WorkloadRunner(address, per_call=per_call)
        name = runner.add(catalog.build(catalog.parse_spec(spec, catalog.Settings()), placer), limit=3)
        runner.start(name)
        assert runner.wait(name, timeout=120)
        summaries.append(workload_summary(name, runner.runs[name]))
    per_call, in_daemon = summaries
    assert (per_call["served"], in_daemon["served"]) == ("per call", "in the daemon")
    assert per_call["requests_by_status"] == in_daemon["requests_by_status"] == {"ok": 3}
    assert per_call["executions"] == in_daemon["executions"]
    assert in_daemon["device_latency_seconds"]["mean"] == pytest.approx(per_call["device_latency_seconds"]["mean"],
                                                                       abs=1e-6)
    if per_call["kind"] == "decoder":
        for key in ("device_time_to_first_token_seconds", "device_inter_token_latency_seconds"):
            assert in_daemon[key]["mean"] == pytest.approx(per_call[key]["mean"], abs=1e-6), key
    # Alone on its cores, a request in the daemon takes exactly its modeled time.
    assert in_daemon["latency_seconds"]["mean"] == pytest.approx(in_daemon["device_latency_seconds"]["mean"])
