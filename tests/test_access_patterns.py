"""Access patterns (a step per dimension, a tile's free dimension read as up to 4 dimensions) and the
convolution kernels written with them, checked against numpy computed independently."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.isa import cost_model as cm
from neurontools.daemon.isa.operands import ProgramError
from neurontools.daemon.isa.program import compile_program
from neurontools.kernels import Kernel
from neurontools.kernels import convolution as conv


def _run(k: Kernel, arrays: dict) -> dict:
    prog = compile_program(k.program())
    prog.run(arrays, timing_only=False)
    return arrays


def reference_conv(x, w, b, stride, padding, residual=None, relu=False):
    """Direct convolution in float64: the sum over taps of each shifted, strided window times its weights."""
    _, _, h, wd = x.shape
    _, kh, kw, _ = w.shape
    oh, ow = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = b[:, 0][None, :, None, None].astype(np.float64)
    for dy in range(kh):
        for dx in range(kw):
            window = xp[:, :, dy:dy + stride * (oh - 1) + 1:stride, dx:dx + stride * (ow - 1) + 1:stride]
            out = out + np.einsum("bchw,co->bohw", window, w[:, dy, dx, :])
    if residual is not None:
        out = out + residual
    return np.maximum(out, 0) if relu else out


@pytest.mark.parametrize("batch, c, h, w, co, size, stride, padding, shortcut", [
    (2, 130, 9, 11, 140, 3, 2, 1, True),    # two input chunks, two output blocks, strided taps, shortcut
    (1, 16, 14, 14, 24, 1, 1, 0, False),    # 1 x 1: a plain matmul over the pixels
    (1, 3, 23, 23, 8, 7, 2, 3, False),      # ResNet's stem shape, scaled down
    (1, 8, 40, 40, 8, 3, 1, 1, False),      # several output row blocks (40 x 40 > 512 columns)
])
def test_conv2d_matches_a_direct_convolution(batch, c, h, w, co, size, stride, padding, shortcut):
    rng = np.random.default_rng(0)
    oh, ow = conv.output_size(h, size, stride, padding), conv.output_size(w, size, stride, padding)
    k = Kernel()
    x, wt = k.input("x", (batch, c, h, w), "float32"), k.input("w", (c, size, size, co), "float32")
    b, o = k.input("b", (co, 1), "float32"), k.output("o", (batch, co, oh, ow), "float32")
    r = k.input("r", (batch, co, oh, ow), "float32") if shortcut else None
    conv.conv2d(k, o, x, wt, b, stride=stride, padding=padding, function="relu", residual=r)
    arrays = {"x": rng.standard_normal((batch, c, h, w)).astype(np.float32),
              "w": rng.standard_normal((c, size, size, co)).astype(np.float32),
              "b": rng.standard_normal((co, 1)).astype(np.float32),
              "o": np.zeros((batch, co, oh, ow), np.float32)}
    if shortcut:
        arrays["r"] = rng.standard_normal((batch, co, oh, ow)).astype(np.float32)
    _run(k, arrays)
    want = reference_conv(arrays["x"].astype(np.float64), arrays["w"].astype(np.float64), arrays["b"], stride,
                          padding, arrays.get("r"), relu=True)
    assert np.abs(arrays["o"] - want).max() <= 1e-5 * np.abs(want).max()


def test_max_pool_and_global_average_pool_match_numpy():
    rng = np.random.default_rng(1)
    batch, c, h, w = 2, 70, 12, 10
    oh, ow = conv.output_size(h, 3, 2, 1), conv.output_size(w, 3, 2, 1)
    k = Kernel()
    x = k.input("x", (batch, c, h, w), "bfloat16")
    pooled, means = k.output("o", (batch, c, oh, ow), "bfloat16"), k.output("g", (batch, c), "float32")
    conv.max_pool2d(k, pooled, x)
    conv.global_average_pool(k, means, x)
    data = np.abs(rng.standard_normal((batch, c, h, w))).astype(ml_dtypes.bfloat16)
    arrays = _run(k, {"x": data, "o": np.zeros((batch, c, oh, ow), ml_dtypes.bfloat16),
                      "g": np.zeros((batch, c), np.float32)})
    padded = np.pad(data.astype(np.float32), ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    want = np.max([padded[:, :, dy:dy + 2 * (oh - 1) + 1:2, dx:dx + 2 * (ow - 1) + 1:2]
                   for dy in range(3) for dx in range(3)], axis=0)
    assert np.array_equal(arrays["o"].astype(np.float32), want)
    np.testing.assert_allclose(arrays["g"], data.astype(np.float32).mean(axis=(2, 3)), rtol=1e-6)


def test_strided_hbm_views_move_every_other_element():
    k = Kernel()
    x, o = k.input("x", (4, 10), "float32"), k.output("o", (4, 5), "float32")
    t = k.sbuf((4, 5), "float32")
    k.load(t, x.pattern(slice(0, 4), slice(1, 10, 2)))
    k.store(o, t)
    data = np.arange(40, dtype=np.float32).reshape(4, 10)
    assert np.array_equal(_run(k, {"x": data, "o": np.zeros((4, 5), np.float32)})["o"], data[:, 1::2])


def _program(tiles, instruction, params=()):
    return pb.Program(parameters=list(params), tiles=tiles, instructions=[instruction])


def _tile(name, shape, dtype=pb.FLOAT32, buffer=pb.SBUF):
    return pb.Tile(name=name, buffer=buffer, shape=shape, dtype=dtype)


def _ref(name, slices=(), free_shape=()):
    return pb.Ref(name=name, slices=[pb.Slice(start=a, stop=b, step=c) for a, b, c in slices],
                  free_shape=list(free_shape))


def test_pattern_rules_are_checked_at_load_time():
    tiles = [_tile("a", [128, 64]), _tile("b", [128, 64])]
    copy = lambda dst, src: pb.Instruction(tensor_copy=pb.TensorCopy(dst=dst, src=src))  # noqa: E731
    with pytest.raises(ProgramError, match="no stride along the partition dimension"):
        compile_program(_program(tiles, copy(_ref("b", [(0, 64, 1)]), _ref("a", [(0, 128, 2)]))))
    with pytest.raises(ProgramError, match="at most the free size 64"):
        compile_program(_program(tiles, copy(_ref("b"), _ref("a", free_shape=(8, 9)))))
    with pytest.raises(ProgramError, match="engine destination rule"):
        compile_program(_program(tiles, copy(_ref("b", [(0, 128, 1), (0, 64, 2)]), _ref("a", [(0, 128, 1), (0, 32, 1)]))))
    with pytest.raises(ProgramError, match="up to 4 free dimensions"):
        compile_program(_program(tiles, copy(_ref("b"), _ref("a", free_shape=(2, 2, 2, 2, 4)))))
    # A legal one: every other column, read as [128, 32].
    compile_program(_program(tiles, copy(_ref("b", [(0, 128, 1), (0, 32, 1)]), _ref("a", [(0, 128, 1), (0, 64, 2)]))))


def test_costs_follow_the_pattern():
    # DMA: an innermost step makes every element its own descriptor (a run of one); full rows are one.
    params = [pb.Parameter(name="x", kind=pb.INPUT, shape=[128, 64], dtype=pb.FLOAT32)]
    tiles = [_tile("t", [128, 32])]
    dma = lambda src: pb.Instruction(dma_copy=pb.DmaCopy(dst=_ref("t"), src=src))  # noqa: E731
    strided = compile_program(_program(tiles, dma(_ref("x", [(0, 128, 1), (0, 64, 2)])), params))
    window = compile_program(_program(tiles, dma(_ref("x", [(0, 128, 1), (0, 32, 1)])), params))
    # 4096 one-element descriptors over 16 engines, 16 ns each, against 128 over 16.
    per_engine_bytes = 128 * 32 * 4 / 16
    rate = min(cm.DMA_ENGINE_BYTES_PER_S, cm.HBM_BYTES_PER_S_PER_CORE / 16) / 1e9
    assert strided.estimate.device_time_ns == pytest.approx(4096 / 16 * 16 + per_engine_bytes / rate + 1300, abs=2)
    assert window.estimate.device_time_ns == pytest.approx(128 / 16 * 16 + per_engine_bytes / rate + 1300, abs=2)
    # Tensor engine: a float32 moving operand 8 elements (32 B) apart streams at half rate (ref §2.3);
    # 2 elements (8 B) apart at full rate. One fp32 step of N = 128: 4 x 128 cycles at 2.8 GHz.
    tiles = [_tile("s", [128, 128]), _tile("m", [128, 1024]), _tile("acc", [128, 128], buffer=pb.PSUM)]
    mm = lambda step: pb.Instruction(matmul=pb.Matmul(  # noqa: E731
        dst=_ref("acc"), stationary=_ref("s"), moving=_ref("m", [(0, 128, 1), (0, 128 * step, step)])))
    occupancy = 4 * 128 / 2.8
    assert compile_program(_program(tiles, mm(2))).estimate.engine_busy_ns[pb.TENSOR] == pytest.approx(occupancy, abs=1)
    assert compile_program(_program(tiles, mm(8))).estimate.engine_busy_ns[pb.TENSOR] == pytest.approx(2 * occupancy, abs=1)


def _store_then_load(step: int, reload: bool) -> pb.Program:
    k = Kernel()
    y = k.output("y", (128, 64), "float32")
    t, u = k.sbuf((128, 64 // step), "float32"), k.sbuf((128, 64), "float32")
    k.memset(t, 1.0)
    k.store(y.pattern(slice(0, 128), slice(0, 64, step)), t)
    if reload:  # columns 0-62: inside the strided store's bounding box (its last column is 62)
        k.load(u[:, 0:63], y[:, 0:63])
    return k.program()


def test_a_strided_store_leaves_nothing_for_a_later_load_to_fuse_with():
    """Fusion reads a load's data from SBUF only when stores wrote all of it; a store with a step fills
    every other column of its bounding box, so loading the box must still come from HBM."""
    busy = {(step, reload): compile_program(_store_then_load(step, reload)).estimate.engine_busy_ns[pb.DMA]
            for step in (1, 2) for reload in (False, True)}
    assert busy[1, True] == pytest.approx(busy[1, False], abs=1)  # fused: the reload takes no DMA time
    assert busy[2, True] > busy[2, False] + 100                   # from HBM: 8 descriptors per engine and 2 KiB
