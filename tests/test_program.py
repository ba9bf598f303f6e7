"""The program compiler/validator and the numpy engines (neurontools.daemon.program)."""

from __future__ import annotations

import math
import time
import warnings

import ml_dtypes
import numpy as np
import pytest

from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.activation_functions import FUNCTIONS, erf64
from neurontools.daemon.program import ProgramError, compile_program

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


def onchip_program(op_instructions, tiles, inputs, outputs):
    """Loads each input into the same-named tile, runs the ops, stores tiles into outputs."""
    params = [inp(n, list(t.shape), t.dtype) for n, t in inputs.items()]
    params += [out(n, list(t.shape), t.dtype) for n, t in outputs.items()]
    instrs = [dma(f"t_{n}", n) for n in inputs] + list(op_instructions) + [dma(n, f"t_{n}") for n in outputs]
    return program(params, [pb.Tile(name=f"t_{n}", buffer=t.buffer or pb.SBUF, shape=t.shape, dtype=t.dtype)
                            for n, t in {**inputs, **outputs}.items()] + list(tiles), instrs)


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
    assert result.flops == 2 * 128 * 512 * 256 + 128 * 512
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
        pb.SIN: np.sin(x), pb.ARCTAN: np.arctan(x),
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
    assert result.flops == 32 * 40 + 32


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


def test_compiling_10k_instructions_is_fast():
    instrs = []
    for i in range(2000):
        rows = (i % 2) * 64
        instrs += [dma("x_t", ref("x", (rows, rows + 64))), matmul("acc", "w_t", "x_t"), act("o", "acc"),
                   tt("o", "o", "o", pb.ADD), dma(ref("y", (i % 16 * 128, i % 16 * 128 + 128)), "o")]
    prog = program([inp("x", [128, 512], BF16), out("y", [2048, 512], BF16)],
                   [sbuf("w_t", [64, 128], BF16), sbuf("x_t", [64, 512], BF16), psum("acc", [128, 512]),
                    sbuf("o", [128, 512], BF16)], instrs)
    started = time.perf_counter()
    compiled = compile_program(prog)
    elapsed = time.perf_counter() - started
    assert compiled.instruction_count == 10_000
    assert elapsed < 1.0, f"compile took {elapsed:.2f} s"


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
