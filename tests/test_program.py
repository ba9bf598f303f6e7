"""The program compiler/validator and the numpy engines (neurontools.daemon.isa)."""

from __future__ import annotations

import math
import time
import warnings

import ml_dtypes
import numpy as np
import pytest

from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.isa.activation_functions import FUNCTIONS, erf64
from neurontools.daemon.isa.program import ProgramError, RunResult, compile_program
from neurontools.kernels import Kernel

F32, BF16, F16, TF32 = pb.FLOAT32, pb.BFLOAT16, pb.FLOAT16, pb.TFLOAT32


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


# -- builders ---------------------------------------------------------------------------------------

def ref(name: str, *slices: tuple[int, int]) -> pb.Ref:
    return pb.Ref(name=name, slices=[pb.Slice(start=a, stop=b) for a, b in slices])


def _r(x: str | pb.Ref) -> pb.Ref:
    return ref(x) if isinstance(x, str) else x


def inp(name, shape, dtype=F32):
    return pb.Parameter(name=name, kind=pb.INPUT, shape=shape, dtype=dtype)


def out(name, shape, dtype=F32):
    return pb.Parameter(name=name, kind=pb.OUTPUT, shape=shape, dtype=dtype)


def sbuf(name, shape, dtype=F32):
    return pb.Tile(name=name, buffer=pb.SBUF, shape=shape, dtype=dtype)


def psum(name, shape, dtype=F32):
    return pb.Tile(name=name, buffer=pb.PSUM, shape=shape, dtype=dtype)


def dma(dst, src):
    return pb.Instruction(dma_copy=pb.DmaCopy(dst=_r(dst), src=_r(src)))


def matmul(dst, stationary, moving, accumulate=False):
    return pb.Instruction(matmul=pb.Matmul(dst=_r(dst), stationary=_r(stationary), moving=_r(moving),
                                           accumulate=accumulate))


def act(dst, src, function=pb.COPY, scale=0.0, bias=None):
    return pb.Instruction(activation=pb.Activation(dst=_r(dst), src=_r(src), function=function, scale=scale,
                                                   bias=_r(bias) if bias else None))


def reduce_(dst, src, op):
    return pb.Instruction(tensor_reduce=pb.TensorReduce(dst=_r(dst), src=_r(src), op=op))


def tt(dst, a, b, op):
    return pb.Instruction(tensor_tensor=pb.TensorTensor(dst=_r(dst), a=_r(a), b=_r(b), op=op))


def program(params=(), tiles=(), instructions=(), constants=()):
    return pb.Program(parameters=list(params), tiles=list(tiles), instructions=list(instructions),
                      constants=list(constants))


def bind(compiled, **arrays):
    """Arrays for every parameter: given ones converted to storage dtype, outputs zero-filled."""
    hbm = {}
    for name, spec in compiled.parameters.items():
        hbm[name] = (np.asarray(arrays[name]).astype(spec.np_dtype) if name in arrays
                     else np.zeros(spec.shape, spec.np_dtype))
    for spec in compiled.constants:
        hbm[spec.name] = arrays.get(spec.name)
    return hbm


def run(prog, **arrays):
    compiled = compile_program(prog)
    hbm = bind(compiled, **arrays)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a validated program must never make numpy warn or raise
        result = compiled.run(hbm, timing_only=False)
    return hbm, result


def rounded(x, dtype):
    """x as the engines see it after storing in `dtype`."""
    return dtypes.cast_to(np.asarray(x, np.float32), dtype).astype(np.float32)


# -- DMA ----------------------------------------------------------------------------------------------

def test_dma_roundtrip_and_cast_round_to_nearest_even(rng):
    x = rng.standard_normal((128, 64)).astype(np.float32)
    prog = program([inp("x", [128, 64]), out("y", [128, 64])], [sbuf("t", [128, 64], BF16)],
                   [dma("t", "x"), dma("y", "t")])
    hbm, result = run(prog, x=x)
    np.testing.assert_array_equal(hbm["y"], x.astype(ml_dtypes.bfloat16).astype(np.float32))
    assert result.nonfinite_outputs == []


def test_dma_slices_and_reshape_when_one_side_is_a_tile(rng):
    x = rng.standard_normal((2, 64, 32)).astype(np.float32)
    prog = program([inp("x", [2, 64, 32]), out("y", [4, 64, 32])], [sbuf("t", [128, 32])],
                   [dma("t", "x"),                                   # [2, 64, 32] -> [128, 32]
                    dma(ref("y", (1, 3)), "t")])                     # [128, 32] -> y[1:3]
    hbm, _ = run(prog, x=x)
    np.testing.assert_array_equal(hbm["y"][1:3], x)
    assert not hbm["y"][0].any() and not hbm["y"][3].any()


def test_dma_to_integer_saturates_and_rounds_half_to_even():
    x = np.array([[0.5, 1.5, 2.5, -0.5, 300.0, -300.0, 126.6, -127.4]], np.float32)
    prog = program([inp("x", [1, 8]), out("y", [1, 8], pb.INT8)], [sbuf("t", [1, 8], pb.INT8)],
                   [dma("t", "x"), dma("y", "t")])
    hbm, _ = run(prog, x=x)
    assert hbm["y"].tolist() == [[0, 2, 2, 0, 127, -128, 127, -127]]


def test_hbm_to_hbm_copy_and_column_slices(rng):
    x = rng.standard_normal((8, 16)).astype(np.float32)
    prog = program([inp("x", [8, 16]), out("y", [8, 16])], [],
                   [dma(ref("y", (0, 0), (0, 8)), ref("x", (0, 0), (8, 16))),
                    dma(ref("y", (0, 0), (8, 16)), ref("x", (0, 0), (0, 8)))])
    hbm, _ = run(prog, x=x)
    np.testing.assert_array_equal(hbm["y"], np.concatenate([x[:, 8:], x[:, :8]], axis=1))


def test_constants_with_data_and_unbound_constants_read_as_zeros():
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    prog = program([out("y", [2, 3]), out("z", [2, 3])], [sbuf("t", [2, 3])],
                   [dma("t", "w"), dma("y", "t"), dma("t", "empty"), dma("z", "t")],
                   constants=[pb.Constant(name="w", shape=[2, 3], dtype=F32, data=w.tobytes()),
                              pb.Constant(name="empty", shape=[2, 3], dtype=BF16)])
    compiled = compile_program(prog)
    assert [(c.name, c.kind, c.shape, c.nbytes) for c in compiled.constants] == [
        ("w", 0, (2, 3), 24), ("empty", 0, (2, 3), 12)]
    assert compiled.constant_data == {"w": w.tobytes()}
    hbm = bind(compiled, w=np.frombuffer(compiled.constant_data["w"], np.float32).reshape(2, 3), empty=None)
    compiled.run(hbm, timing_only=False)
    np.testing.assert_array_equal(hbm["y"], w)
    assert not hbm["z"].any()


def test_parameters_keep_declaration_order_and_specs():
    prog = program([out("b", [4], BF16), inp("a", [2, 3, 4, 5], pb.INT32)])
    specs = compile_program(prog).parameters
    assert list(specs) == ["b", "a"]
    assert specs["a"].kind == pb.INPUT and specs["a"].shape == (2, 3, 4, 5) and specs["a"].nbytes == 480
    assert specs["b"].np_dtype == np.dtype(ml_dtypes.bfloat16) and specs["b"].nbytes == 8


# -- matmul -------------------------------------------------------------------------------------------

def _matmul_program(k, m, n, dtype):
    return program(
        [inp("w", [k, m], dtype), inp("x", [k, n], dtype), out("y", [m, n])],
        [sbuf("w_t", [k, m], dtype), sbuf("x_t", [k, n], dtype), psum("acc", [m, n]), sbuf("y_t", [m, n])],
        [dma("w_t", "w"), dma("x_t", "x"), matmul("acc", "w_t", "x_t"), act("y_t", "acc"), dma("y", "y_t")])


@pytest.mark.parametrize("dtype, rtol", [(F32, 1e-6), (TF32, 2e-3), (BF16, 1.6e-2), (F16, 2e-3)])
def test_matmul_matches_numpy_within_dtype_tolerance(dtype, rtol, rng):
    k, m, n = 128, 96, 200
    w = rng.standard_normal((k, m)).astype(np.float32)
    x = rng.standard_normal((k, n)).astype(np.float32)
    hbm, _ = run(_matmul_program(k, m, n, dtype), w=dtypes.cast_to(w, dtype), x=dtypes.cast_to(x, dtype))
    # Exact up to FP32 accumulation order against the inputs as stored ...
    stored = rounded(w, dtype).astype(np.float64).T @ rounded(x, dtype).astype(np.float64)
    np.testing.assert_allclose(hbm["y"], stored, rtol=1e-5, atol=1e-4)
    # ... and within the dtype's rounding of the full-precision product.
    exact = w.astype(np.float64).T @ x.astype(np.float64)
    scale = np.abs(w).T.astype(np.float64) @ np.abs(x).astype(np.float64)
    assert np.max(np.abs(hbm["y"] - exact) / scale) < rtol


def test_tfloat32_tiles_round_unrounded_bits_before_multiplying():
    w = np.full((1, 1), 1 + 2**-12, np.float32)  # below tf32 precision
    prog = _matmul_program(1, 1, 1, TF32)
    hbm, _ = run(prog, w=w, x=np.ones((1, 1), np.float32))  # same-dtype DMA copies bits unrounded
    assert hbm["y"][0, 0] == 1.0


def test_matmul_accumulate_group_and_overwrite(rng):
    k, m, n = 64, 32, 128
    a1, a2, a3 = (rng.standard_normal((k, m)).astype(np.float32) for _ in range(3))
    b = rng.standard_normal((k, n)).astype(np.float32)
    prog = program(
        [inp("a1", [k, m]), inp("a2", [k, m]), inp("a3", [k, m]), inp("b", [k, n]),
         out("sum", [m, n]), out("last", [m, n])],
        [sbuf("a1t", [k, m]), sbuf("a2t", [k, m]), sbuf("a3t", [k, m]), sbuf("bt", [k, n]),
         psum("acc", [m, n]), sbuf("o", [m, n])],
        [dma("a1t", "a1"), dma("a2t", "a2"), dma("a3t", "a3"), dma("bt", "b"),
         matmul("acc", "a1t", "bt"), matmul("acc", "a2t", "bt", accumulate=True),
         act("o", "acc"), dma("sum", "o"),
         matmul("acc", "a3t", "bt"),  # accumulate=False starts a new group: overwrites
         act("o", "acc"), dma("last", "o")])
    hbm, _ = run(prog, a1=a1, a2=a2, a3=a3, b=b)
    np.testing.assert_allclose(hbm["sum"], (a1 + a2).T @ b, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(hbm["last"], a3.T @ b, rtol=1e-5, atol=1e-4)


def _tiled_matmul_program():
    """out[128, 512] = A[128, 256] @ B[256, 512] with A given as AT[256, 128]: two K-chunks of 128."""
    instrs = [dma("at0", ref("at", (0, 128))), dma("at1", ref("at", (128, 256))),
              dma("b0", ref("b", (0, 128))), dma("b1", ref("b", (128, 256))),
              matmul("acc", "at0", "b0"), matmul("acc", "at1", "b1", accumulate=True),
              act("o", "acc"), dma("out", "o")]
    return program([inp("at", [256, 128], BF16), inp("b", [256, 512], BF16), out("out", [128, 512], BF16)],
                   [sbuf("at0", [128, 128], BF16), sbuf("at1", [128, 128], BF16),
                    sbuf("b0", [128, 512], BF16), sbuf("b1", [128, 512], BF16),
                    psum("acc", [128, 512]), sbuf("o", [128, 512], BF16)], instrs)


def test_tiled_matmul_end_to_end(rng):
    at = rng.standard_normal((256, 128)).astype(ml_dtypes.bfloat16)
    b = rng.standard_normal((256, 512)).astype(ml_dtypes.bfloat16)
    hbm, result = run(_tiled_matmul_program(), at=at, b=b)
    a64, b64 = at.astype(np.float64), b.astype(np.float64)
    expected, scale = a64.T @ b64, np.abs(a64).T @ np.abs(b64)
    # FP32 accumulation over two chunks, then one rounding to bfloat16 (half an ulp <= 2^-8 relative).
    assert np.all(np.abs(hbm["out"].astype(np.float64) - expected) <= 2**-8 * np.abs(expected) + 1e-6 * scale)
    assert result.flops == 2 * 128 * 512 * 256  # the PSUM evacuation (a plain COPY) is no arithmetic
    assert result.engine_instructions == {pb.TENSOR: 2, pb.VECTOR: 0, pb.SCALAR: 1, pb.GPSIMD: 0, pb.DMA: 5}
    assert result.device_time_ns > 0


# -- activation ---------------------------------------------------------------------------------------

@np.errstate(all="ignore")
def _reference(function: int, x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    erf = np.vectorize(math.erf)
    softplus = np.logaddexp(0, x)
    return {
        pb.COPY: x, pb.RELU: np.maximum(x, 0), pb.GELU: 0.5 * x * (1 + erf(x / math.sqrt(2))),
        pb.GELU_APPRX_TANH: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
        pb.SIGMOID: 1 / (1 + np.exp(-x)), pb.SILU: x / (1 + np.exp(-x)), pb.TANH: np.tanh(x),
        pb.EXP: np.exp(x), pb.LOG: np.log(np.abs(x)), pb.SQRT: np.sqrt(np.abs(x)),
        pb.RSQRT: 1 / np.sqrt(np.abs(x)), pb.SQUARE: x * x, pb.RECIPROCAL: 1 / x, pb.ABS: np.abs(x),
        pb.SIGN: np.sign(x), pb.ERF: erf(x), pb.SOFTPLUS: softplus, pb.MISH: x * np.tanh(softplus),
        pb.SIN: np.sin(x), pb.ARCTAN: np.arctan(x), pb.PRELU: np.maximum(x, 0),  # alpha 0
        pb.GELU_DX: 0.5 * (1 + erf(x / math.sqrt(2))) + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi),
        pb.GELU_APPRX_SIGMOID: x / (1 + np.exp(-1.702 * x)),
        pb.GELU_APPRX_SIGMOID_DX: (1 / (1 + np.exp(-1.702 * x))) * (1 + 1.702 * x * (1 - 1 / (1 + np.exp(-1.702 * x)))),
        pb.SILU_DX: (1 / (1 + np.exp(-x))) * (1 + x * (1 - 1 / (1 + np.exp(-x)))),
        pb.ERF_DX: 2 / math.sqrt(math.pi) * np.exp(-x * x),
    }[function]


def test_every_activation_function_is_implemented():
    assert set(FUNCTIONS) == set(pb.ActivationFunction.values()) - {pb.ACTIVATION_FUNCTION_UNSPECIFIED}


@pytest.mark.parametrize("function", sorted(FUNCTIONS), ids=pb.ActivationFunction.Name)
def test_activation_functions_float32(function):
    x = np.concatenate([np.linspace(-9, 9, 1001), [-30, -1e-3, 1e-3, 30]]).astype(np.float32).reshape(5, -1)
    if function in (pb.LOG, pb.SQRT, pb.RSQRT):
        x = np.abs(x)  # their domain
    prog = program([inp("x", list(x.shape)), out("y", list(x.shape))], [sbuf("t", list(x.shape))],
                   [dma("t", "x"), act("t", "t", function), dma("y", "t")])
    hbm, _ = run(prog, x=x)
    np.testing.assert_allclose(hbm["y"], _reference(function, x), rtol=2e-6, atol=2e-7)


def test_activation_scale_bias_and_low_precision_storage(rng):
    x = rng.standard_normal((64, 100)).astype(np.float32)
    bias = rng.standard_normal((64, 1)).astype(np.float32)
    prog = program([inp("x", [64, 100], BF16), inp("bias", [64, 1]), out("y", [64, 100], F16)],
                   [sbuf("xt", [64, 100], BF16), sbuf("bt", [64, 1]), sbuf("yt", [64, 100], F16)],
                   [dma("xt", "x"), dma("bt", "bias"), act("yt", "xt", pb.SILU, 0.5, "bt"), dma("y", "yt")])
    hbm, result = run(prog, x=x, bias=bias)
    z = rounded(x, BF16).astype(np.float64) * 0.5 + bias
    np.testing.assert_allclose(hbm["y"], z / (1 + np.exp(-z)), rtol=2**-10, atol=2**-24)  # float16 rounding
    assert result.flops == 64 * 100


def test_erf_accuracy():
    xs = np.linspace(-8, 8, 160_001)
    assert np.max(np.abs(erf64(xs) - np.vectorize(math.erf)(xs))) < 1e-10
    assert erf64(np.array([np.inf, -np.inf])).tolist() == pytest.approx([1.0, -1.0])
    assert np.isnan(erf64(np.array([np.nan])))[0]


# -- vector engine ------------------------------------------------------------------------------------

@pytest.mark.parametrize("op, reference", [(pb.ADD, np.sum), (pb.MULTIPLY, np.prod),
                                           (pb.MAXIMUM, np.max), (pb.MINIMUM, np.min)],
                         ids=["add", "multiply", "maximum", "minimum"])
@pytest.mark.parametrize("dtype", [F32, BF16, F16])
def test_tensor_reduce(op, reference, dtype, rng):
    x = rng.uniform(0.5, 1.5, (32, 40)).astype(np.float32)
    prog = program([inp("x", [32, 40], dtype), out("y", [32, 1])], [sbuf("t", [32, 40], dtype), psum("r", [32, 1])],
                   [dma("t", "x"), reduce_("r", "t", op), act(ref("t", (0, 0), (0, 1)), "r"),
                    dma("y", ref("t", (0, 0), (0, 1)))])
    hbm, result = run(prog, x=dtypes.cast_to(x, dtype))
    expected = reference(rounded(x, dtype).astype(np.float64), axis=1, keepdims=True)
    np.testing.assert_allclose(hbm["y"], rounded(expected, dtype), rtol=1e-5)
    assert result.flops == 32 * 40  # the reduce; the COPY after it moves data only


@pytest.mark.parametrize("op, reference", [(pb.ADD, np.add), (pb.SUBTRACT, np.subtract),
                                           (pb.MULTIPLY, np.multiply), (pb.MAXIMUM, np.maximum),
                                           (pb.MINIMUM, np.minimum), (pb.DIVIDE, np.divide)],
                         ids=["add", "subtract", "multiply", "maximum", "minimum", "divide"])
@pytest.mark.parametrize("dtype", [F32, BF16, F16])
def test_tensor_tensor(op, reference, dtype, rng):
    a = rng.standard_normal((16, 24)).astype(np.float32)
    b = rng.uniform(0.5, 2, (16, 24)).astype(np.float32)
    prog = program([inp("a", [16, 24], dtype), inp("b", [16, 24], dtype), out("y", [16, 24], dtype)],
                   [sbuf("at", [16, 24], dtype), sbuf("bt", [16, 24], dtype), sbuf("yt", [16, 24], dtype)],
                   [dma("at", "a"), dma("bt", "b"), tt("yt", "at", "bt", op), dma("y", "yt")])
    hbm, _ = run(prog, a=dtypes.cast_to(a, dtype), b=dtypes.cast_to(b, dtype))
    expected = reference(rounded(a, dtype), rounded(b, dtype))  # FP32 math, one rounding to dtype
    np.testing.assert_array_equal(hbm["y"].astype(np.float32), rounded(expected, dtype))


def test_tensor_tensor_reads_one_psum_input_and_writes_psum():
    prog = program([out("y", [4, 8])], [psum("p", [4, 8]), sbuf("s", [4, 8]), sbuf("o", [4, 8])],
                   [tt("p", "p", "s", pb.ADD), tt("o", "p", "s", pb.ADD), dma("y", "o")])
    hbm, _ = run(prog)
    assert not hbm["y"].any()


# -- results, modes, numerics -------------------------------------------------------------------------

def _nan_program():
    """y = 0 / x, so x = 0 gives NaN; z is untouched."""
    return program([inp("x", [2, 4]), out("y", [2, 4]), out("z", [2, 4])],
                   [sbuf("t", [2, 4]), sbuf("q", [2, 4])],
                   [dma("t", "x"), tt("q", "q", "t", pb.DIVIDE), dma("y", "q")])


def test_nonfinite_outputs_are_reported():
    hbm, result = run(_nan_program(), x=np.zeros((2, 4), np.float32))
    assert np.isnan(hbm["y"]).all()
    assert result.nonfinite_outputs == ["y"]
    _, result = run(_nan_program(), x=np.ones((2, 4), np.float32))
    assert result.nonfinite_outputs == []


def test_inf_in_bfloat16_output_is_reported():
    prog = program([inp("x", [1, 2]), out("y", [1, 2], BF16)], [sbuf("t", [1, 2], BF16)],
                   [dma("t", "x"), act("t", "t", pb.EXP), dma("y", "t")])
    _, result = run(prog, x=np.array([[1.0, 200.0]], np.float32))
    assert result.nonfinite_outputs == ["y"]


def test_timing_only_leaves_outputs_untouched_and_returns_the_estimate():
    compiled = compile_program(_tiled_matmul_program())
    hbm = bind(compiled, at=np.ones((256, 128)), b=np.ones((256, 512)))
    hbm["out"][:] = 7
    result = compiled.run(hbm, timing_only=True)
    assert (hbm["out"] == 7).all()
    assert result == compiled.estimate
    computed = compiled.run(hbm, timing_only=False)
    assert (hbm["out"] == 256).all()
    assert computed == compiled.estimate
    computed.engine_busy_ns[pb.TENSOR] = -1  # results are copies: the estimate cannot be corrupted
    assert compiled.estimate.engine_busy_ns[pb.TENSOR] > 0


def test_in_place_input_and_output_may_share_a_buffer():
    buffer = np.arange(8, dtype=np.float32).reshape(2, 4)
    prog = program([inp("x", [2, 4]), out("y", [2, 4])], [sbuf("t", [2, 4])],
                   [dma("t", "x"), act("t", "t", pb.SQUARE), dma("y", "t")])
    compiled = compile_program(prog)
    readonly = buffer.view()
    readonly.flags.writeable = False
    compiled.run({"x": readonly, "y": buffer}, timing_only=False)
    np.testing.assert_array_equal(buffer, np.arange(8, dtype=np.float32).reshape(2, 4) ** 2)


def test_run_rejects_arrays_that_do_not_match_the_declaration():
    compiled = compile_program(program([inp("x", [2, 4]), out("y", [2, 4])]))
    with pytest.raises(ValueError, match="'x' is bound to float64"):
        compiled.run({"x": np.zeros((2, 4)), "y": np.zeros((2, 4), np.float32)}, timing_only=False)
    with pytest.raises(ValueError, match="no array bound for 'y'"):
        compiled.run({"x": None}, timing_only=False)


def test_code_bytes_excludes_constant_data():
    data = np.ones((100, 100), np.float32).tobytes()
    prog = program([out("y", [100, 100])], [],
                   [dma("y", "w")], constants=[pb.Constant(name="w", shape=[100, 100], dtype=F32, data=data)])
    stripped = pb.Program()
    stripped.CopyFrom(prog)
    stripped.constants[0].ClearField("data")
    compiled = compile_program(prog)
    assert compiled.code_bytes == len(stripped.SerializeToString())
    assert compiled.instruction_count == 1
    no_constants = program([out("y", [4])], [], [dma("y", ref("y"))])
    assert compile_program(no_constants).code_bytes == len(no_constants.SerializeToString())


def test_compiling_50k_instructions_takes_seconds_at_most():
    instrs = []
    for i in range(10_000):
        rows = (i % 2) * 64
        instrs += [dma("x_t", ref("x", (rows, rows + 64))), matmul("acc", "w_t", "x_t"), act("o", "acc"),
                   tt("o", "o", "o", pb.ADD), dma(ref("y", (i % 16 * 128, i % 16 * 128 + 128)), "o")]
    prog = program([inp("x", [128, 512], BF16), out("y", [2048, 512], BF16)],
                   [sbuf("w_t", [64, 128], BF16), sbuf("x_t", [64, 512], BF16), psum("acc", [128, 512]),
                    sbuf("o", [128, 512], BF16)], instrs)
    started = time.process_time()  # CPU time: the test machine may be shared
    compiled = compile_program(prog)
    elapsed = time.process_time() - started
    assert compiled.instruction_count == 50_000
    assert elapsed < 4.0, f"compile took {elapsed:.2f} s of CPU"


# -- validation: each rule names itself, the operand and its shape ------------------------------------

def _one(instr, params=(), tiles=()):
    return program(params, tiles, [instr])


BAD_PROGRAMS = {
    "empty name": (program([inp("", [4])]), ["parameter 0", "empty name"]),
    "duplicate name": (program([inp("a", [4])], [sbuf("a", [4, 4])]),
                       ['tile 0 "a"', "already declared", "one namespace"]),
    "parameter kind": (program([pb.Parameter(name="a", shape=[4], dtype=F32)]),
                       ['parameter 0 "a"', "INPUT or OUTPUT"]),
    "zero dim": (program([inp("a", [4, 0])]), ['"a"', "[4, 0]", "every dimension >= 1"]),
    "rank 5": (program([inp("a", [1, 1, 1, 1, 1])]), ['"a"', "rank 1 to 4"]),
    "dtype unset": (program([inp("a", [4], pb.DTYPE_UNSPECIFIED)]), ['"a"', "dtype must be set"]),
    "tile rank": (program(tiles=[sbuf("t", [4])]), ['tile 0 "t"', "[4]", "[P, F]"]),
    "tile buffer": (program(tiles=[pb.Tile(name="t", shape=[4, 4], dtype=F32)]), ['"t"', "SBUF or PSUM"]),
    "tile partitions": (program(tiles=[sbuf("t", [256, 4])]),
                        ['tile 0 "t"', "[256, 4]", "256 partitions", "partition dimension <= 128"]),
    "psum dtype": (program(tiles=[psum("p", [128, 512], BF16)]),
                   ['"p"', "bfloat16", "PSUM holds float32 only"]),
    "psum bank": (program(tiles=[psum("p", [128, 1024])]),
                  ['"p"', "[128, 1024]", "4096 bytes per partition", "one 2 KiB bank", "F <= 512"]),
    "psum banks": (program(tiles=[psum(f"p{i}", [128, 300]) for i in range(9)]),
                   ["PSUM capacity", "9 banks", "8 banks", "straddle"]),
    "sbuf capacity": (program(tiles=[sbuf("a", [128, 32768]), sbuf("b", [128, 40960], BF16)]),
                      ["SBUF capacity", "208 KiB per partition", '"a" 128 KiB', "192 KiB per partition"]),
    "constant data size": (program(constants=[pb.Constant(name="w", shape=[4], dtype=F32, data=b"12")]),
                           ['constant 0 "w"', "2 bytes", "needs 16"]),
    "constant data and tensor": (program(constants=[pb.Constant(name="w", shape=[1], dtype=F32,
                                                                data=b"1234", tensor_id=3)]),
                                 ['"w"', "both data and tensor_id"]),
    "no operation": (program(instructions=[pb.Instruction()]), ["instruction 0", "no operation set"]),
    "unknown name": (_one(dma("t", "nope"), tiles=[sbuf("t", [4, 4])]),
                     ["instruction 0 (dma_copy)", 'src refers to "nope"', "not declared", "declared: t"]),
    "missing operand": (_one(dma("t", ""), tiles=[sbuf("t", [4, 4])]), ["src: operand missing"]),
    "slice out of range": (_one(dma("t", ref("x", (0, 4), (0, 9))), [inp("x", [4, 8])], [sbuf("t", [4, 4])]),
                           ['src input parameter "x" [4, 8]', "slice [0:9] of dimension 1 is out of range",
                            "8 elements"]),
    "empty slice": (_one(dma("t", ref("x", (3, 3))), [inp("x", [4, 8])], [sbuf("t", [4, 4])]),
                    ['"x" [4, 8]', "slice [3:3] of dimension 0 is empty"]),
    "too many slices": (_one(dma("t", ref("x", (0, 1), (0, 1), (0, 1))), [inp("x", [4, 8])],
                             [sbuf("t", [1, 1])]), ['"x" [4, 8] has rank 2 but 3 slices']),
    "dma psum": (_one(dma("y", "p"), [out("y", [4, 4])], [psum("p", [4, 4])]),
                 ['src PSUM tile "p" [4, 4]', "cannot access PSUM", "DMA memory access rule"]),
    "dma into input": (_one(dma("x", "t"), [inp("x", [4, 4])], [sbuf("t", [4, 4])]),
                       ['dst input parameter "x" [4, 4]', "INPUT parameter", "read-only"]),
    "dma into constant": (program([], [sbuf("t", [4, 4])], [dma("w", "t")],
                                  [pb.Constant(name="w", shape=[4, 4], dtype=F32)]),
                          ['dst constant "w"', "read-only"]),
    "dma element count": (_one(dma("t", "x"), [inp("x", [4, 8])], [sbuf("t", [4, 4])]),
                          ['dst SBUF tile "t" [4, 4] has 16 elements', 'src input parameter "x" [4, 8] has 32',
                           "DMA shape rule"]),
    "hbm copy shape": (_one(dma("y", "x"), [inp("x", [4, 8]), out("y", [8, 4])]),
                       ['dst output parameter "y" [8, 4]', '"x" [4, 8]', "HBM-to-HBM copy shape rule"]),
    "matmul stationary in hbm": (_one(matmul("p", "w", "x"), [inp("w", [4, 4])],
                                      [sbuf("x", [4, 4]), psum("p", [4, 4])]),
                                 ['stationary input parameter "w" [4, 4]', "Tensor engine reads SBUF only",
                                  "dma_copy"]),
    "matmul moving in psum": (_one(matmul("p", "w", "q"), [], [sbuf("w", [4, 4]), psum("q", [4, 4]),
                                                              psum("p", [4, 4])]),
                              ['moving PSUM tile "q"', "Tensor engine reads SBUF only"]),
    "matmul dst in sbuf": (_one(matmul("d", "w", "x"), [], [sbuf("w", [4, 4]), sbuf("x", [4, 4]),
                                                           sbuf("d", [4, 4])]),
                           ['dst SBUF tile "d" [4, 4]', "Tensor engine writes PSUM only"]),
    "matmul K mismatch": (_one(matmul("p", "w", ref("x", (0, 64))), [],
                               [sbuf("w", [128, 4]), sbuf("x", [128, 4]), psum("p", [4, 4])]),
                          ['stationary SBUF tile "w" [128, 4] contracts K=128', "view [0:64, :] = [64, 4] has K=64",
                           "matmul layout rule"]),
    "matmul M": (_one(matmul("p", "w", "x"), [], [sbuf("w", [8, 256]), sbuf("x", [8, 4]), psum("p", [128, 4])]),
                 ['stationary SBUF tile "w" [8, 256] has M=256', "stationary free size <= 128"]),
    "matmul N": (_one(matmul("p", "w", "x"), [], [sbuf("w", [8, 4]), sbuf("x", [8, 1024]), psum("p", [4, 512])]),
                 ['moving SBUF tile "x" [8, 1024] has N=1024', "moving free size <= 512"]),
    "matmul dst shape": (_one(matmul("p", "w", "x"), [], [sbuf("w", [8, 4]), sbuf("x", [8, 16]),
                                                         psum("p", [4, 8])]),
                         ['dst PSUM tile "p" [4, 8] must be [M, N] = [4, 16]', "matmul shape rule"]),
    "matmul int": (_one(matmul("p", "w", "x"), [], [sbuf("w", [8, 4], pb.INT8), sbuf("x", [8, 16], pb.INT8),
                                                   psum("p", [4, 16])]),
                   ['stationary SBUF tile "w" [8, 4] is int8', "matmul dtype rule"]),
    "matmul fp32 pairing": (_one(matmul("p", "w", "x"), [], [sbuf("w", [8, 4]), sbuf("x", [8, 16], BF16),
                                                            psum("p", [4, 16])]),
                            ['"w" [8, 4] is float32', '"x" [8, 16] is bfloat16', "pair only with float32/tfloat32"]),
    "partition start": (_one(matmul("p", ref("w", (16, 48)), ref("x", (16, 48))), [],
                             [sbuf("w", [128, 4]), sbuf("x", [128, 16]), psum("p", [4, 16])]),
                        ['stationary SBUF tile "w" [128, 4] view [16:48, :] = [32, 4] starts at partition 16',
                         "0 or 32 or 64 or 96", "partition start rule"]),
    "partition start 33-64": (_one(act(ref("t", (32, 96)), ref("t", (32, 96))), [], [sbuf("t", [128, 4])]),
                              ["starts at partition 32", "33 to 64 partitions must start at partition 0 or 64"]),
    "activation hbm": (_one(act("t", "x"), [inp("x", [4, 4])], [sbuf("t", [4, 4])]),
                       ["instruction 0 (activation)", 'src input parameter "x" [4, 4]',
                        "Scalar engine reads SBUF or PSUM only"]),
    "activation hbm dst": (_one(act("y", "t"), [out("y", [4, 4])], [sbuf("t", [4, 4])]),
                           ['dst output parameter "y"', "Scalar engine writes SBUF or PSUM only",
                            "store it with dma_copy"]),
    "activation shapes": (_one(act("t", "s"), [], [sbuf("t", [4, 4]), sbuf("s", [4, 8])]),
                          ['dst SBUF tile "t" [4, 4]', 'src SBUF tile "s" [4, 8]', "elementwise shape rule"]),
    "activation function": (_one(act("t", "t", pb.ACTIVATION_FUNCTION_UNSPECIFIED), [], [sbuf("t", [4, 4])]),
                             ["not an activation function", "COPY"]),
    "activation scale": (_one(act("t", "t", scale=float("nan")), [], [sbuf("t", [4, 4])]), ["scale nan"]),
    "activation bias shape": (_one(act("t", "t", bias="b"), [], [sbuf("t", [4, 4]), sbuf("b", [4, 2])]),
                              ['bias SBUF tile "b" [4, 2] must be [P, 1] = [4, 1]', "activation bias rule"]),
    "free size": (_one(act("t", "t"), [], [sbuf("t", [1, 70000], pb.UINT8)]),
                  ['"t" [1, 70000] has 70000 elements per partition', "at most 65536", "free size limit"]),
    "reduce op": (_one(reduce_("r", "t", pb.SUBTRACT), [], [sbuf("t", [4, 4]), sbuf("r", [4, 1])]),
                  ["instruction 0 (tensor_reduce)", "op SUBTRACT cannot reduce"]),
    "reduce divide": (_one(reduce_("r", "t", pb.DIVIDE), [], [sbuf("t", [4, 4]), sbuf("r", [4, 1])]),
                      ["op DIVIDE cannot reduce"]),
    "reduce dst": (_one(reduce_("r", "t", pb.ADD), [], [sbuf("t", [4, 4]), sbuf("r", [4, 4])]),
                   ['dst SBUF tile "r" [4, 4] must be [P, 1] = [4, 1]', "partition axis cannot be reduced"]),
    "reduce hbm": (_one(reduce_("r", "x", pb.ADD), [inp("x", [4, 4])], [sbuf("r", [4, 1])]),
                   ['src input parameter "x"', "Vector engine reads SBUF or PSUM only"]),
    "tensor_tensor psum pair": (_one(tt("s", "p", "q", pb.ADD), [], [psum("p", [4, 4]), psum("q", [4, 4]),
                                                                     sbuf("s", [4, 4])]),
                                ['a PSUM tile "p" [4, 4]', 'b PSUM tile "q" [4, 4]', "PSUM read-port rule"]),
    "tensor_tensor shapes": (_one(tt("s", "a", "b", pb.ADD), [], [sbuf("a", [4, 4]), sbuf("b", [4, 8]),
                                                                 sbuf("s", [4, 4])]),
                             ['a SBUF tile "a" [4, 4]', 'b SBUF tile "b" [4, 8]', "elementwise shape rule"]),
    "tensor_tensor op": (_one(tt("s", "s", "s", pb.ALU_OP_UNSPECIFIED), [], [sbuf("s", [4, 4])]),
                         ["op ALU_OP_UNSPECIFIED is not an elementwise op", "DIVIDE"]),
}


def _kernel(build, *tiles) -> pb.Program:
    """A one-instruction program: build(k, *tiles) with tiles given as (shape, dtype, buffer)."""
    k = Kernel()
    made = [k.psum(shape) if buffer == "psum" else k.sbuf(shape, dtype)
            for shape, dtype, buffer in ((t + ("sbuf",))[:3] for t in tiles)]
    build(k, *made)
    return k.program()


BAD_PROGRAMS.update({
    "gpsimd psum": (_kernel(lambda k, p, s: k.tensor_copy(p, s, engine="gpsimd"), ((4, 4), F32, "psum"), ((4, 4), F32)),
                    ['dst PSUM tile "psum0" [4, 4]', "GpSimd engine writes SBUF only", "cannot access PSUM"]),
    "iota psum": (_kernel(lambda k, p: k.iota(p), ((4, 4), F32, "psum")),
                  ["instruction 0 (iota)", "GpSimd engine writes SBUF only"]),
    "tensor_copy scalar": (_kernel(lambda k, s: k.tensor_copy(s, s, engine="scalar"), ((4, 4), F32)),
                           ["activation(COPY)", "engine selection rule"]),
    "memset engine": (_kernel(lambda k, s: k.memset(s, 0, engine="scalar"), ((4, 4), F32)),
                      ["engine SCALAR cannot run memset; use VECTOR or GPSIMD"]),
    "transpose to sbuf": (_kernel(lambda k, s, d: k.transpose(d, s), ((4, 8), F32), ((8, 4), F32)),
                          ['dst SBUF tile "sbuf1" [8, 4]', "Tensor engine writes PSUM only"]),
    "transpose vector size": (_kernel(lambda k, s, d: k.transpose(d, s, engine="vector"), ((4, 40), F32),
                                      ((40, 4), F32)),
                              ['"sbuf0" [4, 40] is larger than 32 x 32', "use the Tensor engine"]),
    "transpose shape": (_kernel(lambda k, s, p: k.transpose(p, s), ((4, 8), F32), ((4, 8), F32, "psum")),
                        ['dst PSUM tile "psum0" [4, 8] must be [8, 4]', "transpose shape rule"]),
    "transpose int": (_kernel(lambda k, s, p: k.transpose(p, s), ((4, 8), pb.INT8), ((8, 4), F32, "psum")),
                      ['src SBUF tile "sbuf0" [4, 8] is int8', "matmul dtype rule"]),
    "power on vector": (_kernel(lambda k, s: k.tensor_tensor(s, s, s, "power", engine="vector"), ((4, 4), F32)),
                        ["POWER runs on the GpSimd engine only"]),
    "bitwise on floats": (_kernel(lambda k, s: k.tensor_tensor(s, s, s, "bitwise_and"), ((4, 4), F32)),
                          ['"sbuf0" [4, 4] is float32', "bitvec dtype rule"]),
    "tensor_scalar classes": (_kernel(lambda k, s: k.tensor_scalar(s, s, "add", 1, "left_shift", 1), ((4, 4), pb.INT32)),
                              ["op0 ADD and op1 LEFT_SHIFT", "tensor_scalar class rule"]),
    "bitvec operand": (_kernel(lambda k, s: k.tensor_scalar(s, s, "bitwise_and", 1.5), ((4, 4), pb.INT32)),
                       ["operand0 1.5 of bitvec op BITWISE_AND", "bitvec operand rule"]),
    "tensor_scalar operand tile": (_kernel(lambda k, s, c: k.tensor_scalar(s, s, "add", c), ((4, 4), F32),
                                           ((4, 2), F32)),
                                   ['operand0 SBUF tile "sbuf1" [4, 2] must be [P, 1] = [4, 1]',
                                    "tensor_scalar operand rule"]),
    "activation scale dtype": (_kernel(lambda k, s, c: k.activation(s, s, scale=c), ((4, 4), F32), ((4, 1), BF16)),
                               ['"sbuf1" [4, 1] is bfloat16', "a scale tile is float32"]),
    "activation two scales": (_one(pb.Instruction(activation=pb.Activation(
        dst=ref("t"), src=ref("t"), function=pb.COPY, scale=2.0, scale_tile=ref("c"))), [],
        [sbuf("t", [4, 4]), sbuf("c", [4, 1])]), ["scale 2 and", "are both given; use one"]),
    "activation alpha": (_kernel(lambda k, s: k.activation(s, s, "relu", alpha=0.1), ((4, 4), F32)),
                         ["only PRELU takes alpha"]),
    "activation reduce shape": (_kernel(lambda k, s, r: k.activation(s, s, reduce=r), ((4, 4), F32), ((4, 4), F32)),
                                ['reduce_dst SBUF tile "sbuf1" [4, 4] must be [P, 1]', "activation reduce rule"]),
    "reduce free_shape": (_kernel(lambda k, s, r: k.tensor_reduce(r, s, "add", free_shape=(3, 3)), ((4, 8), F32),
                                  ((4, 1), F32)),
                          ["free_shape [3, 3] does not split the 8 elements"]),
    "reduce axes": (_kernel(lambda k, s, r: k.tensor_reduce(r, s, "add", free_shape=(2, 4), axes=3), ((4, 8), F32),
                            ((4, 1), F32)),
                    ["axes 3: free_shape [2, 4] has 2 axes"]),
    "reduce kept shape": (_kernel(lambda k, s, r: k.tensor_reduce(r, s, "add", free_shape=(2, 4), axes=1),
                                  ((4, 8), F32), ((4, 1), F32)),
                          ['dst SBUF tile "sbuf1" [4, 1] must be [P, F1] = [4, 2]']),
    "reduce negate bitwise": (_kernel(lambda k, s, r: k.tensor_reduce(r, s, "bitwise_or", negate=True),
                                      ((4, 8), pb.INT32), ((4, 1), pb.INT32)),
                              ["negate applies to arithmetic reductions"]),
    "bn_stats free": (_kernel(lambda k, s, d: k.bn_stats(d, s), ((4, 600), F32), ((4, 6), F32)),
                      ["600 elements per partition; bn_stats takes at most 512", "bn_aggr"]),
    "bn_stats dst": (_kernel(lambda k, s, d: k.bn_stats(d, s), ((4, 60), F32), ((4, 2), F32)),
                     ['dst SBUF tile "sbuf1" [4, 2] must be [P, 6] = [4, 6]', "bn_stats layout"]),
    "bn_aggr triples": (_kernel(lambda k, s, d: k.bn_aggr(d, s), ((4, 7), F32), ((4, 2), F32)),
                        ["7 elements per partition", "multiple of 3"]),
    "iota pattern": (_kernel(lambda k, s: k.iota(s, [(1, 3), (1, 3)]), ((4, 8), pb.INT32)),
                     ["covers 9 positions", "8 elements per partition"]),
    "affine_select cmp": (_kernel(lambda k, s: k.affine_select(s, s, 0.0, cmp="add"), ((4, 8), F32)),
                          ["cmp_op ADD is not a comparison", "IS_GE"]),
    "partition reduce op": (_kernel(lambda k, s, d: k.partition_reduce(d, s, "subtract"), ((4, 8), F32), ((1, 8), F32)),
                            ["op SUBTRACT cannot reduce across partitions", "AVERAGE"]),
    "partition reduce dst": (_kernel(lambda k, s, d: k.partition_reduce(d, s, "add"), ((4, 8), F32), ((4, 8), F32)),
                             ['"sbuf1" [4, 8] must be [1, F] = [1, 8]']),
    "custom unknown": (_kernel(lambda k, s: k.custom("nope", [s], [s]), ((4, 8), F32)),
                       ['no custom operator "nope"', "registered: rmsnorm, topk8"]),
    "custom arity": (_kernel(lambda k, s: k.custom("rmsnorm", [s], [s]), ((4, 8), F32)),
                     ['custom operator "rmsnorm" takes 2 inputs (x, weight), not 1']),
    "custom attribute": (_kernel(lambda k, s: k.custom("rmsnorm", [s], [s, s], epsilon=1.0), ((4, 8), F32)),
                         ['has no attribute "epsilon"', "eps"]),
    "custom operator rule": (_kernel(lambda k, s, v, i: k.custom("topk8", [v, i], [s]), ((4, 4), F32),
                                     ((4, 8), F32), ((4, 8), F32)),
                             ['custom operator "topk8": topk8 takes 8 to 16384 elements per partition, not 4']),
    "custom output shape": (_kernel(lambda k, s, v, i: k.custom("topk8", [v, i], [s]), ((4, 40), F32),
                                    ((4, 4), F32), ((4, 8), F32)),
                            ['output values SBUF tile "sbuf1" [4, 4] must be [4, 8]']),
    "memset nan int": (_kernel(lambda k, s: k.memset(s, float("nan")), ((4, 8), pb.INT8)),
                       ["value nan cannot be stored"]),
})


@pytest.mark.parametrize("case", list(BAD_PROGRAMS))
def test_validation_rules(case):
    prog, expected = BAD_PROGRAMS[case]
    with pytest.raises(ProgramError) as info:
        compile_program(prog)
    message = str(info.value)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_program_error_is_a_value_error():
    assert issubclass(ProgramError, ValueError)


# -- the NKI instruction set, written with the kernel builder --------------------------------------



def run_kernel(k: Kernel, **arrays) -> tuple[dict, RunResult]:
    return run(k.program(), **arrays)


def onchip(k: Kernel, name: str, array: np.ndarray, dtype=F32):
    """An input loaded into an SBUF tile of the same shape and dtype."""
    tile = k.sbuf(array.shape, dtype, name=f"{name}_t")
    k.load(tile, k.input(name, array.shape, dtype))
    return tile


def result_of(k: Kernel, tile, dtype=F32, name="y"):
    """Stores `tile` (a view or tile) into a new output parameter."""
    view = tile.whole if hasattr(tile, "whole") else tile
    if view.tensor.space == "psum":
        staged = k.sbuf(view.shape, dtype)
        k.tensor_copy(staged, view)
        view = staged.whole
    k.store(k.output(name, view.shape, dtype), view)


def test_tensor_engine_transpose_is_exact_and_spreads_inf_over_its_row(rng):
    x = rng.standard_normal((100, 70)).astype(np.float32)
    for dtype in (F32, BF16):
        k = Kernel()
        t = onchip(k, "x", x, dtype)
        p = k.psum((70, 100))
        k.transpose(p, t)
        result_of(k, p)
        hbm, result = run_kernel(k, x=x)
        np.testing.assert_array_equal(hbm["y"], rounded(x, dtype).T)
        assert result.engine_instructions[pb.TENSOR] == 1 and result.flops == 0
    x[3, 5] = np.inf  # the identity matmul gives inf * 0 = NaN along column 5's transposed row
    hbm, _ = run_kernel(k, x=x)
    assert np.isnan(hbm["y"][5, np.arange(100) != 3]).all() and hbm["y"][5, 3] == np.inf
    assert np.isfinite(np.delete(hbm["y"], 5, axis=0)).all()


def test_vector_engine_transpose_copies_bits():
    x = np.arange(32 * 20, dtype=np.int32).reshape(32, 20) - 300
    k = Kernel()
    t = onchip(k, "x", x, pb.INT32)
    y = k.sbuf((20, 32), pb.INT32)
    k.transpose(y, t, engine="vector")
    result_of(k, y, pb.INT32)
    hbm, result = run_kernel(k, x=x)
    np.testing.assert_array_equal(hbm["y"], x.T)
    assert result.engine_instructions[pb.VECTOR] == 1


def test_activation_scale_tile_bias_and_add_reduce(rng):
    x = rng.standard_normal((64, 100)).astype(np.float32)
    scale = rng.uniform(0.5, 2, (64, 1)).astype(np.float32)
    bias = rng.standard_normal((64, 1)).astype(np.float32)
    k = Kernel()
    t, s, b = onchip(k, "x", x), onchip(k, "scale", scale), onchip(k, "bias", bias)
    y, total = k.sbuf((64, 100), BF16), k.sbuf((64, 1), F32)
    k.activation(y, t, "exp", scale=s, bias=b, reduce=total)
    result_of(k, y, BF16)
    result_of(k, total, name="total")
    hbm, result = run_kernel(k, x=x, scale=scale, bias=bias)
    exact = np.exp(x.astype(np.float64) * scale + bias)
    np.testing.assert_allclose(hbm["y"].astype(np.float64), exact, rtol=2**-8)
    # The accumulators sum the FP32 results, before they are rounded to bfloat16.
    np.testing.assert_allclose(hbm["total"], exact.sum(axis=1, keepdims=True), rtol=1e-5)
    assert result.flops == 2 * 64 * 100


def test_prelu_takes_alpha():
    x = np.array([[-2.0, -0.5, 0.0, 3.0]], np.float32)
    k = Kernel()
    t = onchip(k, "x", x)
    k.activation(t, t, "prelu", alpha=0.25)
    result_of(k, t)
    hbm, _ = run_kernel(k, x=x)
    assert hbm["y"].tolist() == [[-0.5, -0.125, 0.0, 3.0]]


def test_tensor_scalar_two_ops_reverse_and_tile_operands(rng):
    x = rng.uniform(1, 2, (16, 24)).astype(np.float32)
    col = rng.uniform(1, 2, (16, 1)).astype(np.float32)
    for engine in ("vector", "scalar", "gpsimd"):
        k = Kernel()
        t, c = onchip(k, "x", x), onchip(k, "col", col)
        y = k.sbuf((16, 24), F32)
        # (10 - x) * col, then reversed division: 3 / ((x - col) * 2)
        k.tensor_scalar(y, t, "subtract", 10.0, "multiply", c, reverse0=True, engine=engine)
        z = k.sbuf((16, 24), F32)
        k.tensor_scalar(z, t, "subtract", c, "multiply", 2.0, engine=engine)
        k.tensor_scalar(z, z, "divide", 3.0, reverse0=True, engine=engine)
        result_of(k, y)
        result_of(k, z, name="z")
        hbm, result = run_kernel(k, x=x, col=col)
        np.testing.assert_allclose(hbm["y"], (10 - x) * col, rtol=1e-6)
        np.testing.assert_allclose(hbm["z"], 3 / ((x - col) * 2), rtol=1e-6)
        assert result.engine_instructions[pb.Engine.Value(engine.upper())] == 3


def test_tensor_scalar_bitvec_ops_on_integer_bit_patterns():
    x = np.array([[-1, 12, 255, 7]], np.int32)
    k = Kernel()
    t = onchip(k, "x", x, pb.INT32)
    y = k.sbuf((1, 4), pb.INT32)
    k.tensor_scalar(y, t, "right_shift", 1, "bitwise_and", 0x7FFFFFF0)  # logical shift of the bits
    result_of(k, y, pb.INT32)
    hbm, _ = run_kernel(k, x=x)
    assert hbm["y"].tolist() == [[0x7FFFFFF0, 0, 0x70, 0]]


ALU_CASES = [("is_equal", np.equal), ("not_equal", np.not_equal), ("is_gt", np.greater),
             ("is_ge", np.greater_equal), ("is_lt", np.less), ("is_le", np.less_equal),
             ("logical_and", lambda a, b: (a != 0) & (b != 0)), ("logical_or", lambda a, b: (a != 0) | (b != 0)),
             ("logical_xor", lambda a, b: (a != 0) ^ (b != 0)),
             ("abs_max", lambda a, b: np.maximum(np.abs(a), np.abs(b))),
             ("abs_min", lambda a, b: np.minimum(np.abs(a), np.abs(b)))]


@pytest.mark.parametrize("op, reference", ALU_CASES, ids=[c[0] for c in ALU_CASES])
def test_tensor_tensor_comparisons_and_logical_ops(op, reference):
    a = np.array([[-2, -1, 0, 0, 1, 2, 3, 0.5]], np.float32)
    b = np.array([[-2, 1, 0, 1, 0, 3, 2, -0.5]], np.float32)
    k = Kernel()
    ta, tb = onchip(k, "a", a), onchip(k, "b", b)
    k.tensor_tensor(ta, ta, tb, op)
    result_of(k, ta)
    hbm, _ = run_kernel(k, a=a, b=b)
    np.testing.assert_array_equal(hbm["y"], reference(a, b).astype(np.float32))


def test_tensor_tensor_bitwise_on_integers():
    a = np.array([[0b1100, -1, 5, 1]], np.int16)
    b = np.array([[0b1010, 0x00FF, 3, 4]], np.int16)
    k = Kernel()
    ta, tb = onchip(k, "a", a, pb.INT16), onchip(k, "b", b, pb.INT16)
    for op in ("bitwise_and", "bitwise_or", "bitwise_xor", "left_shift"):
        y = k.sbuf((1, 4), pb.INT16)
        k.tensor_tensor(y, ta, tb, op)
        result_of(k, y, pb.INT16, name=op)
    hbm, _ = run_kernel(k, a=a, b=b)
    assert hbm["bitwise_and"].tolist() == [[0b1000, 0x00FF, 1, 0]]
    assert hbm["bitwise_or"].tolist() == [[0b1110, -1, 7, 5]]
    assert hbm["bitwise_xor"].tolist() == [[0b0110, -256, 6, 5]]
    assert hbm["left_shift"].tolist() == [[0b1100 << 10, 0, 40, 16]]  # shifting 255 places clears the bits


def test_power_runs_on_gpsimd_and_int32_arithmetic_is_exact_there():
    big = np.array([[2**30 + 1, 7, -5]], np.int32)
    k = Kernel()
    a, b = onchip(k, "a", big, pb.INT32), onchip(k, "b", np.ones((1, 3), np.int32), pb.INT32)
    s = k.sbuf((1, 3), pb.INT32)
    k.tensor_tensor(s, a, b, "add")  # all int32 in SBUF: GpSimd, exact
    v = k.sbuf((1, 3), pb.INT32)
    k.tensor_tensor(v, a, b, "add", engine="vector")  # FP32 datapath: 2^30 + 2 is not a float32
    x = onchip(k, "x", np.array([[2.0, 9.0]], np.float32))
    e = onchip(k, "e", np.array([[10.0, 0.5]], np.float32))
    k.tensor_tensor(x, x, e, "power")
    result_of(k, s, pb.INT32, name="exact")
    result_of(k, v, pb.INT32, name="fp32")
    result_of(k, x, name="power")
    hbm, result = run_kernel(k, a=big, b=np.ones((1, 3), np.int32), x=np.array([[2.0, 9.0]], np.float32),
                             e=np.array([[10.0, 0.5]], np.float32))
    assert hbm["exact"].tolist() == [[2**30 + 2, 8, -4]]
    assert hbm["fp32"][0, 0] != 2**30 + 2
    assert hbm["power"].tolist() == [[1024.0, 3.0]]
    assert result.engine_instructions[pb.GPSIMD] == 2 and result.engine_instructions[pb.VECTOR] == 1


def test_tensor_reduce_over_trailing_free_axes_with_negate(rng):
    x = rng.standard_normal((8, 2 * 3 * 4)).astype(np.float32)
    k = Kernel()
    t = onchip(k, "x", x)
    last, two = k.sbuf((8, 6), F32), k.sbuf((8, 2), F32)
    everything = k.sbuf((8, 1), F32)
    k.tensor_reduce(last, t, "maximum", free_shape=(2, 3, 4), axes=1)
    k.tensor_reduce(two, t, "add", free_shape=(2, 3, 4), axes=2, negate=True)
    k.tensor_reduce(everything, t, "minimum")
    result_of(k, last, name="last")
    result_of(k, two, name="two")
    result_of(k, everything, name="all")
    hbm, _ = run_kernel(k, x=x)
    x4 = x.reshape(8, 2, 3, 4)
    np.testing.assert_array_equal(hbm["last"], x4.max(axis=3).reshape(8, 6))
    np.testing.assert_allclose(hbm["two"], -x4.sum(axis=(2, 3)), rtol=1e-6)
    np.testing.assert_array_equal(hbm["all"], x.min(axis=1, keepdims=True))


def test_tensor_reduce_logical_and_bitwise():
    x = np.array([[1, 3, 5], [0, 2, 6]], np.int32)
    k = Kernel()
    t = onchip(k, "x", x, pb.INT32)
    anded, ored = k.sbuf((2, 1), pb.INT32), k.sbuf((2, 1), F32)
    k.tensor_reduce(anded, t, "bitwise_or")
    k.tensor_reduce(ored, t, "logical_and")
    result_of(k, anded, pb.INT32, name="or")
    result_of(k, ored, name="and")
    hbm, _ = run_kernel(k, x=x)
    assert hbm["or"].tolist() == [[7], [6]] and hbm["and"].tolist() == [[1.0], [0.0]]


def test_bn_stats_layout_and_bn_aggr_over_slices(rng):
    x = rng.standard_normal((4, 5)).astype(np.float32)
    k = Kernel()
    t = onchip(k, "x", x)
    stats = k.sbuf((4, 6), F32)
    k.bn_stats(stats, t)
    result_of(k, stats)
    hbm, _ = run_kernel(k, x=x)
    even, odd = x[:, 0::2].astype(np.float64), x[:, 1::2].astype(np.float64)
    expected = np.stack([np.full(4, 3.0), even.mean(1), even.var(1) * 3, np.full(4, 2.0), odd.mean(1),
                         odd.var(1) * 2], axis=1)
    np.testing.assert_allclose(hbm["y"], expected, rtol=1e-5, atol=1e-6)
    # 1000 elements: two bn_stats (512 + 488) side by side, one bn_aggr.
    x = rng.normal(3, 2, (128, 1000)).astype(np.float32)
    k = Kernel()
    t = onchip(k, "x", x)
    stats, moments = k.sbuf((128, 12), F32), k.sbuf((128, 2), F32)
    k.bn_stats(stats[:, 0:6], t[:, 0:512])
    k.bn_stats(stats[:, 6:12], t[:, 512:1000])
    k.bn_aggr(moments, stats)
    result_of(k, moments)
    hbm, result = run_kernel(k, x=x)
    np.testing.assert_allclose(hbm["y"][:, 0], x.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(hbm["y"][:, 1], x.var(axis=1), rtol=1e-4)
    assert result.engine_instructions[pb.VECTOR] == 3


def test_iota_and_affine_select_causal_mask():
    k = Kernel()
    idx = k.sbuf((4, 6), pb.INT32)
    k.iota(idx, [(10, 2), (-1, 3)], offset=100, channel_multiplier=1000)
    ramp = k.sbuf((3, 4), F32)
    k.iota(ramp, channel_multiplier=-1, offset=2**31 - 1)  # int32 wraps: 2^31 - 1 - p stays in range
    scores = k.sbuf((4, 4), F32)
    k.memset(scores, 1.0)
    k.affine_select(scores, scores, -9.0, pattern=[(-1, 4)], offset=0, channel_multiplier=1, cmp="is_ge")
    result_of(k, idx, pb.INT32, name="idx")
    result_of(k, scores, name="masked")
    result_of(k, ramp, name="ramp")
    hbm, result = run_kernel(k)
    p = np.arange(4)[:, None]
    free = (np.arange(2)[:, None] * 10 - np.arange(3)[None, :]).reshape(-1)
    np.testing.assert_array_equal(hbm["idx"], 100 + 1000 * p + free)
    np.testing.assert_array_equal(hbm["masked"], np.where(np.tril(np.ones((4, 4))) > 0, 1.0, -9.0))
    assert hbm["ramp"][1, 0] == np.float32(2**31 - 2)
    assert result.engine_instructions[pb.GPSIMD] == 3


def test_partition_reduce(rng):
    x = rng.standard_normal((100, 8)).astype(np.float32)
    k = Kernel()
    t = onchip(k, "x", x)
    for op in ("add", "average", "maximum"):
        y = k.sbuf((1, 8), F32)
        k.partition_reduce(y, t, op)
        result_of(k, y, name=op)
    bits = onchip(k, "b", np.array([[1], [2], [8]], np.uint8), pb.UINT8)
    ored = k.sbuf((1, 1), pb.UINT8)
    k.partition_reduce(ored, bits, "bitwise_or")
    result_of(k, ored, pb.UINT8, name="or")
    hbm, result = run_kernel(k, x=x, b=np.array([[1], [2], [8]], np.uint8))
    np.testing.assert_allclose(hbm["add"], x.sum(axis=0, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(hbm["average"], x.mean(axis=0, keepdims=True), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(hbm["maximum"], x.max(axis=0, keepdims=True))
    assert hbm["or"].tolist() == [[11]]
    assert result.engine_instructions[pb.GPSIMD] == 4


def test_custom_operators_run_by_name(rng):
    x = rng.standard_normal((16, 300)).astype(np.float32)
    weight = rng.standard_normal((1, 300)).astype(np.float32)
    k = Kernel()
    t, w = onchip(k, "x", x), onchip(k, "weight", weight)
    values, indices, normed = k.sbuf((16, 8), F32), k.sbuf((16, 8), pb.UINT32), k.sbuf((16, 300), F32)
    k.custom("topk8", outputs=[values, indices], inputs=[t])
    k.custom("rmsnorm", outputs=[normed], inputs=[t, w], eps=1e-5)
    result_of(k, values, name="values")
    result_of(k, indices, pb.UINT32, name="indices")
    result_of(k, normed, name="normed")
    hbm, result = run_kernel(k, x=x, weight=weight)
    order = np.argsort(-x, axis=1)[:, :8]
    np.testing.assert_array_equal(hbm["indices"], order)
    np.testing.assert_array_equal(hbm["values"], np.take_along_axis(x, order, axis=1))
    expected = x / np.sqrt((x.astype(np.float64) ** 2).mean(axis=1, keepdims=True) + 1e-5) * weight
    np.testing.assert_allclose(hbm["normed"], expected, rtol=1e-5, atol=1e-6)
    assert result.engine_instructions[pb.GPSIMD] == 2
    assert result.engine_busy_ns[pb.GPSIMD] > 0


def test_memset_and_tensor_copy_cast_and_copy_bits():
    k = Kernel()
    ints, halves = k.sbuf((2, 3), pb.INT8), k.sbuf((2, 3), F16)
    k.memset(ints, 1000.0)  # saturates
    k.memset(halves, 1 / 3, engine="gpsimd")
    wide = k.sbuf((2, 3), F32)
    k.tensor_copy(wide, halves)
    same = k.sbuf((2, 3), F16)
    k.tensor_copy(same, halves, engine="gpsimd")
    result_of(k, ints, pb.INT8, name="ints")
    result_of(k, wide, name="wide")
    result_of(k, same, F16, name="same")
    hbm, result = run_kernel(k)
    assert (hbm["ints"] == 127).all()
    assert (hbm["wide"] == np.float32(np.float16(1 / 3))).all() and (hbm["same"] == np.float16(1 / 3)).all()
    assert result.engine_instructions[pb.GPSIMD] == 2 and result.engine_instructions[pb.VECTOR] == 2


def test_fused_matmul_batches_see_operands_written_between_groups(rng):
    """Groups sharing a moving operand run together, unless a stationary changes in between."""
    w = [rng.standard_normal((128, 64)).astype(np.float32) for _ in range(3)]
    x = rng.standard_normal((256, 96)).astype(np.float32)
    k = Kernel()
    xs = k.sbuf((128, 2 * 96), F32)
    k.load(xs[:, 0:96], k.input("x", (256, 96), F32)[0:128])
    k.load(xs[:, 96:192], k.input("x2", (256, 96), F32)[128:256])
    ws = [onchip(k, f"w{i}", w[i]) for i in range(3)]
    outs = []
    for i, stationary in enumerate([ws[0], ws[1], ws[1], ws[2]]):
        if i == 2:  # overwrite w1 after its first use: the third group must see the new values
            k.tensor_scalar(ws[1], ws[1], "multiply", 2.0)
        acc = k.psum((64, 96))
        k.matmul(acc, stationary, xs[:, 0:96])
        k.matmul(acc, stationary, xs[:, 96:192], accumulate=True)
        outs.append(acc)
        result_of(k, acc, name=f"y{i}")
    hbm, _ = run_kernel(k, x=x, x2=x, w0=w[0], w1=w[1], w2=w[2])
    for i, (weights, factor) in enumerate([(w[0], 1), (w[1], 1), (w[1], 2), (w[2], 1)]):
        expected = (weights * factor).T @ (x[0:128] + x[128:256])
        np.testing.assert_allclose(hbm[f"y{i}"], expected, rtol=1e-5, atol=1e-4)


def _every_instruction_kind() -> Kernel:
    k = Kernel()
    x = onchip(k, "x", np.zeros((32, 32), np.float32))
    p = k.psum((32, 32))
    k.matmul(p, x, x)
    k.transpose(p, x)
    k.activation(x, p, "gelu")
    k.tensor_scalar(x, x, "add", 1.0)
    k.tensor_tensor(x, x, x, "multiply")
    r = k.sbuf((32, 1), F32)
    k.tensor_reduce(r, x, "add")
    stats, moments = k.sbuf((32, 6), F32), k.sbuf((32, 2), F32)
    k.bn_stats(stats, x)
    k.bn_aggr(moments, stats)
    k.iota(x)
    k.affine_select(x, x, 0.0, cmp="is_gt")
    k.partition_reduce(x[0:1], x, "add")
    k.custom("rmsnorm", outputs=[x], inputs=[x, x])
    k.memset(x, 1.0)
    k.tensor_copy(x, x)
    result_of(k, x)
    return k


def test_every_instruction_kind_runs_and_timing_only_computes_nothing():
    k = _every_instruction_kind()
    kinds = {i.WhichOneof("op") for i in k.program().instructions}
    # Fields from 32 on are collectives: they run as ranks of a model (tests/test_collectives.py).
    assert kinds == {field.name for field in pb.Instruction.DESCRIPTOR.oneofs_by_name["op"].fields
                     if field.number < 32}
    compiled = compile_program(k.program())
    hbm = bind(compiled)
    hbm["y"][:] = 7
    assert compiled.run(hbm, timing_only=True) == compiled.estimate
    assert (hbm["y"] == 7).all()
    assert compiled.run(hbm, timing_only=False) == compiled.estimate
    assert (hbm["y"] == 1).all()
    assert all(count > 0 for count in compiled.estimate.engine_instructions.values())
