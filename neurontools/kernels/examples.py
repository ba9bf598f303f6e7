"""A small NeuronCore-v2 kernel written directly as wire messages (no builder): the example the
README's tour and many tests use.

mlp_program: DMA -> Tensor-engine matmul -> Scalar-engine GELU -> Vector-engine row max -> DMA.
"""

from __future__ import annotations

import numpy as np

from neurontools._proto import neurond_pb2 as pb


def _ref(name: str, rows: tuple[int, int] | None = None) -> pb.Ref:
    ref = pb.Ref(name=name)
    if rows:
        ref.slices.add(start=rows[0], stop=rows[1])
    return ref


def mlp_program(k: int = 128, m: int = 64, n: int = 256, weights: np.ndarray | None = None,
                repeat: int = 1) -> pb.Program:
    """out[m, n] = gelu(xT[k, m].T @ w[k, n]); rowmax[m, 1] = max over n. Weights are a constant.

    `repeat` > 1 recomputes the matmul and GELU that many times (same result, longer kernel)."""
    f32 = pb.FLOAT32
    program = pb.Program(
        parameters=[pb.Parameter(name="xT", kind=pb.INPUT, shape=[k, m], dtype=f32),
                    pb.Parameter(name="out", kind=pb.OUTPUT, shape=[m, n], dtype=f32),
                    pb.Parameter(name="rowmax", kind=pb.OUTPUT, shape=[m, 1], dtype=f32)],
        constants=[pb.Constant(name="w", shape=[k, n], dtype=f32,
                               data=b"" if weights is None else np.asarray(weights, np.float32).tobytes())],
        tiles=[pb.Tile(name="x_sb", buffer=pb.SBUF, shape=[k, m], dtype=f32),
               pb.Tile(name="w_sb", buffer=pb.SBUF, shape=[k, n], dtype=f32),
               pb.Tile(name="acc", buffer=pb.PSUM, shape=[m, n], dtype=f32),
               pb.Tile(name="y_sb", buffer=pb.SBUF, shape=[m, n], dtype=f32),
               pb.Tile(name="max_sb", buffer=pb.SBUF, shape=[m, 1], dtype=f32)])
    ops = program.instructions
    ops.add(dma_copy=pb.DmaCopy(dst=_ref("x_sb"), src=_ref("xT")))
    ops.add(dma_copy=pb.DmaCopy(dst=_ref("w_sb"), src=_ref("w")))
    for _ in range(repeat):
        ops.add(matmul=pb.Matmul(dst=_ref("acc"), stationary=_ref("x_sb"), moving=_ref("w_sb")))
        ops.add(activation=pb.Activation(dst=_ref("y_sb"), src=_ref("acc"), function=pb.GELU))
    ops.add(tensor_reduce=pb.TensorReduce(dst=_ref("max_sb"), src=_ref("y_sb"), op=pb.MAXIMUM))
    ops.add(dma_copy=pb.DmaCopy(dst=_ref("out"), src=_ref("y_sb")))
    ops.add(dma_copy=pb.DmaCopy(dst=_ref("rowmax"), src=_ref("max_sb")))
    return program


def gelu(x: np.ndarray) -> np.ndarray:
    from math import erf
    return 0.5 * x * (1.0 + np.vectorize(erf)(x / np.sqrt(2.0)))
