"""The tiled operation library (neurontools.kernels.library) against numpy, within each dtype's tolerance:
compiled programs run directly (fast), and end to end through a real daemon session."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools.client import Session
from neurontools.daemon.isa.activation_functions import erf64
from neurontools.daemon.server.embedded import running_daemon
from neurontools.daemon.isa.program import compile_program
from neurontools.kernels import Kernel, library

F32, BF16 = "float32", "bfloat16"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(11)


def as_stored(x: np.ndarray, dtype: str) -> np.ndarray:
    """x as the kernel sees it after it is stored in `dtype`, in float64."""
    return dtypes.cast_to(x.astype(np.float32), dtypes.from_name(dtype)).astype(np.float64)


def run(kernel: Kernel, **arrays: np.ndarray) -> dict[str, np.ndarray]:
    """Compiles and runs the kernel on numpy; returns the outputs as float64."""
    compiled = compile_program(kernel.program())
    hbm = {}
    for name, spec in compiled.parameters.items():
        hbm[name] = (dtypes.cast_to(arrays[name].astype(np.float32), spec.dtype) if name in arrays
                     else np.zeros(spec.shape, spec.np_dtype))
    result = compiled.run(hbm, timing_only=False)
    assert result.nonfinite_outputs == []
    return {name: hbm[name].astype(np.float64) for name, spec in compiled.parameters.items() if spec.kind == pb.OUTPUT}


def gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + erf64(x / math.sqrt(2)))


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# Relative error allowed against numpy on the inputs as stored: FP32 accumulation order for float32;
# for bfloat16 the rounding of intermediates (probabilities, hidden activations) to 8 mantissa bits.
TOLERANCE = {F32: 2e-5, BF16: 1.5e-2}


def assert_close(actual: np.ndarray, expected: np.ndarray, dtype: str, scale: np.ndarray | float | None = None):
    scale = np.abs(expected).max() if scale is None else scale
    error = np.max(np.abs(actual - expected) / scale)
    assert error < TOLERANCE[dtype], f"relative error {error:.2e} above {TOLERANCE[dtype]:.0e} for {dtype}"


# -- matmul --------------------------------------------------------------------------------------------

MATMUL_SHAPES = [(1, 1, 1), (128, 128, 512), (200, 300, 700), (300, 1000, 130), (513, 129, 1025)]


@pytest.mark.parametrize("m, kk, n", MATMUL_SHAPES, ids=lambda v: str(v))
@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("a_transposed", [False, True], ids=["a", "a_transposed"])
def test_matmul_of_any_shape(m, kk, n, dtype, a_transposed, rng):
    a = rng.standard_normal((m, kk)).astype(np.float32)
    b = rng.standard_normal((kk, n)).astype(np.float32)
    out = run(_matmul_kernel(m, kk, n, dtype, a_transposed), a=a.T.copy() if a_transposed else a, b=b)["out"]
    a64, b64 = as_stored(a, dtype), as_stored(b, dtype)
    # FP32 accumulation of the stored inputs; the scale |A| @ |B| bounds the rounding of every sum.
    assert_close(out, a64 @ b64, F32, scale=np.abs(a64) @ np.abs(b64))


def _matmul_kernel(m: int, kk: int, n: int, dtype: str, a_transposed: bool, filler: int = 0) -> Kernel:
    k = Kernel()
    if filler:
        k.sbuf((128, filler), "float32")  # leaves little SBUF: forces the streaming plan
    a = k.input("a", (kk, m) if a_transposed else (m, kk), dtype)
    b = k.input("b", (kk, n), dtype)
    library.matmul(k, k.output("out", (m, n), "float32"), a, b, a_transposed=a_transposed)
    return k


@pytest.mark.parametrize("a_transposed", [False, True], ids=["a", "a_transposed"])
def test_matmul_streams_k_when_sbuf_is_short(a_transposed, rng):
    m, kk, n = 130, 1100, 600
    k = _matmul_kernel(m, kk, n, F32, a_transposed, filler=44_000)
    assert len({t.name for t in k.program().tiles}) < 20  # small rotating tiles, no resident A.T
    a = rng.standard_normal((m, kk)).astype(np.float32)
    b = rng.standard_normal((kk, n)).astype(np.float32)
    out = run(k, a=a.T.copy() if a_transposed else a, b=b)["out"]
    assert_close(out, a.astype(np.float64) @ b, F32, scale=np.abs(a) @ np.abs(b))


def test_matmul_keeps_all_of_a_resident_next_to_narrower_panels(rng):
    m, kk, n = 2200, 4096, 512  # A.T fits at once only next to narrower panels of B
    k = Kernel()
    a, b = k.input("a", (m, kk), BF16), k.input("b", (kk, n), BF16)
    library.matmul(k, k.output("out", (m, n), BF16), a, b)
    widths = [t.shape[1] for t in k.program().tiles]
    # 18 blocks of M, K in 32 chunks (8 KiB per block): all of A.T (144 KiB) fits the 192 KiB next to two
    # 256-column panels of B (2 x 16 KiB), not next to 512-column ones (2 x 32 KiB): B is read once
    # instead of three times with two buffers of 6 blocks taking turns.
    assert widths.count(32 * 18 * 128) == 1 and widths.count(32 * 256) == 2
    av, bv = rng.standard_normal((m, kk)).astype(np.float32), rng.standard_normal((kk, n)).astype(np.float32)
    out = run(k, a=av, b=bv)["out"]
    a64, b64 = as_stored(av, BF16), as_stored(bv, BF16)
    assert_close(out, a64 @ b64, BF16)


def test_matmul_with_two_superblock_buffers_taking_turns(rng):
    m, kk, n = 4400, 4096, 256
    k = Kernel()
    a, b = k.input("a", (m, kk), BF16), k.input("b", (kk, n), BF16)
    library.matmul(k, k.output("out", (m, n), BF16), a, b)
    # 35 blocks of 8 KiB: two buffers of 9 blocks (2 x 72 KiB) next to 128-column panels (2 x 8 KiB); with
    # 256-column panels (2 x 16 KiB) they would need 192 KiB and the rest leaves no room.
    widths = [t.shape[1] for t in k.program().tiles]
    assert widths.count(32 * 9 * 128) == 2 and widths.count(32 * 128) == 2
    av, bv = rng.standard_normal((m, kk)).astype(np.float32), rng.standard_normal((kk, n)).astype(np.float32)
    out = run(k, a=av, b=bv)["out"]
    assert_close(out, as_stored(av, BF16) @ as_stored(bv, BF16), BF16)


@pytest.mark.parametrize("m, kk, n", [(1, 200, 700), (300, 256, 520), (130, 1100, 2600)])
@pytest.mark.parametrize("dtype", [F32, BF16])
def test_matmul_epilogue_adds_the_bias_applies_the_function_and_the_residual(m, kk, n, dtype, rng):
    a, b = rng.standard_normal((m, kk)).astype(np.float32), rng.standard_normal((kk, n)).astype(np.float32)
    bias, res = rng.standard_normal(n).astype(np.float32), rng.standard_normal((m, n)).astype(np.float32)
    k = Kernel()
    library.matmul(k, k.output("out", (m, n), F32), k.input("a", (m, kk), dtype), k.input("b", (kk, n), dtype),
                   bias=k.input("bias", (1, n), dtype), function="gelu", residual=k.input("res", (m, n), dtype))
    out = run(k, a=a, b=b, bias=bias[None], res=res)["out"]
    product = as_stored(a, dtype).astype(np.float64) @ as_stored(b, dtype)
    expected = gelu(product + as_stored(bias, dtype)) + as_stored(res, dtype)
    assert_close(out, expected, dtype, scale=np.abs(as_stored(a, dtype)) @ np.abs(as_stored(b, dtype)) + 1)


def test_matmul_epilogue_checks_its_shapes():
    k = Kernel()
    a, b = k.input("a", (4, 8), F32), k.input("b", (8, 5), F32)
    with pytest.raises(ValueError, match=r"matmul bias \[4\]: need \[5\] or \[1, 5\]"):
        library.matmul(k, k.output("o", (4, 5), F32), a, b, bias=k.input("bias", (4,), F32))
    with pytest.raises(ValueError, match=r"matmul residual \[5, 4\]: need out's \[4, 5\]"):
        library.matmul(k, k.output("o2", (4, 5), F32), a, b, residual=k.input("r", (5, 4), F32))


def test_matmul_rejects_mismatched_shapes():
    k = Kernel()
    with pytest.raises(ValueError, match=r"need a \[4, 8\] and b \[8, 5\]"):
        library.matmul(k, k.output("o", (4, 5), F32), k.input("a", (8, 4), F32), k.input("b", (8, 5), F32))


# -- softmax and layernorm -----------------------------------------------------------------------------

@pytest.mark.parametrize("rows, cols", [(1, 1), (300, 1000), (128, 4096)])
@pytest.mark.parametrize("dtype", [F32, BF16])
def test_softmax(rows, cols, dtype, rng):
    x = (rng.standard_normal((rows, cols)) * 4).astype(np.float32)
    k = Kernel()
    library.softmax(k, k.output("y", (rows, cols), dtype), k.input("x", (rows, cols), dtype))
    y = run(k, x=x)["y"]
    expected = softmax(as_stored(x, dtype))
    assert_close(y, expected, dtype, scale=expected.max(axis=1, keepdims=True))
    np.testing.assert_allclose(y.sum(axis=1), 1, rtol=TOLERANCE[dtype] * 2)


@pytest.mark.parametrize("rows, d", [(5, 7), (300, 1000), (128, 1536)])
@pytest.mark.parametrize("dtype", [F32, BF16])
def test_layernorm(rows, d, dtype, rng):
    x = rng.normal(2, 3, (rows, d)).astype(np.float32)
    gamma, beta = rng.standard_normal(d).astype(np.float32), rng.standard_normal(d).astype(np.float32)
    k = Kernel()
    library.layernorm(k, k.output("y", (rows, d), dtype), k.input("x", (rows, d), dtype),
                      k.input("gamma", (d,), F32), k.input("beta", (d,), F32), eps=1e-5)
    y = run(k, x=x, gamma=gamma, beta=beta)["y"]
    xs = as_stored(x, dtype)
    expected = (xs - xs.mean(axis=1, keepdims=True)) / np.sqrt(xs.var(axis=1, keepdims=True) + 1e-5) * gamma + beta
    assert_close(y, expected, dtype)


# -- GELU MLP and attention ----------------------------------------------------------------------------

@pytest.mark.parametrize("tokens, d, hidden, d2", [(300, 200, 260, 130), (512, 256, 1024, 256), (600, 128, 128, 520)])
@pytest.mark.parametrize("dtype", [F32, BF16])
def test_gelu_mlp(tokens, d, hidden, d2, dtype, rng):
    x = rng.standard_normal((tokens, d)).astype(np.float32)
    w1 = (rng.standard_normal((d, hidden)) / math.sqrt(d)).astype(np.float32)
    w2 = (rng.standard_normal((hidden, d2)) / math.sqrt(hidden)).astype(np.float32)
    k = Kernel()
    library.gelu_mlp(k, k.output("y", (tokens, d2), F32), k.input("x", (tokens, d), dtype),
                     k.input("w1", (d, hidden), dtype), k.input("w2", (hidden, d2), dtype))
    y = run(k, x=x, w1=w1, w2=w2)["y"]
    expected = gelu(as_stored(x, dtype) @ as_stored(w1, dtype)) @ as_stored(w2, dtype)
    assert_close(y, expected, dtype)


def attention_reference(q, keys, values, causal):
    scores = q @ keys.T / math.sqrt(q.shape[1])
    if causal:
        scores = np.where(np.arange(len(q))[:, None] >= np.arange(len(keys))[None, :], scores, -np.inf)
    return softmax(scores) @ values


@pytest.mark.parametrize("s_q, s_kv, d", [(1, 1, 1), (300, 300, 64), (512, 512, 128), (200, 700, 100)])
@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_attention(s_q, s_kv, d, dtype, causal, rng):
    q, keys, values = (rng.standard_normal((s, d)).astype(np.float32) for s in (s_q, s_kv, s_kv))
    k = Kernel()
    library.attention(k, k.output("o", (s_q, d), F32), k.input("q", (s_q, d), dtype),
                      k.input("k", (s_kv, d), dtype), k.input("v", (s_kv, d), dtype), causal=causal)
    o = run(k, q=q, k=keys, v=values)["o"]
    expected = attention_reference(*(as_stored(t, dtype) for t in (q, keys, values)), causal)
    assert_close(o, expected, dtype)


# -- end to end through neurond ------------------------------------------------------------------------

def test_library_kernels_through_a_daemon_session(rng):
    """A bfloat16 causal attention and a float32 matmul loaded as models, on resident tensors."""
    s, d = 512, 128
    q, keys, values = (rng.standard_normal((s, d)).astype(np.float32) for _ in range(3))
    attention = Kernel()
    library.attention(attention, attention.output("o", (s, d), F32), attention.input("q", (s, d), BF16),
                      attention.input("k", (s, d), BF16), attention.input("v", (s, d), BF16), causal=True)
    a, b = rng.standard_normal((384, 256)).astype(np.float32), rng.standard_normal((256, 640)).astype(np.float32)
    with running_daemon("inf2.xlarge") as daemon, Session(daemon.address, command="pytest kernels") as session:
        model = session.load_model("attention", attention.program())
        tensors = {name: session.tensor_from(t.astype(ml_dtypes.bfloat16)) for name, t in
                   (("q", q), ("k", keys), ("v", values))}
        out = session.allocate((s, d), "float32")
        result = model.execute(o=out, **tensors)
        expected = attention_reference(*(as_stored(t, BF16) for t in (q, keys, values)), True)
        assert_close(out.read().astype(np.float64), expected, BF16)
        busy = {pb.Engine.Name(e.engine): e.busy_ns for e in result.response.engines}
        assert all(busy[engine] > 0 for engine in ("TENSOR", "VECTOR", "SCALAR", "GPSIMD", "DMA")), busy
        assert result.device_latency > 0 and result.flops > 2 * s * s * d

        matmul = session.load_model("matmul", library.matmul_program(384, 256, 640, F32))
        product = session.allocate((384, 640), "float32")
        matmul.execute(a=session.tensor_from(a), b=session.tensor_from(b), out=product)
        assert_close(product.read().astype(np.float64), a.astype(np.float64) @ b, F32,
                     scale=np.abs(a) @ np.abs(b))
