"""A BERT-style encoder as NeuronCore-v2 programs: the embedding LayerNorm, the layers, the pooler.

Three programs per copy of the model. The layer program is built once and serves every layer: its
weights are INPUT parameters, bound to that layer's tensors at each execution (a whole-model program of
constants would take seconds to compile per core at batch 8), and it runs `layers` consecutive layers.
The embedding program holds the token, position and type tables and the embedding LayerNorm as
constants; the tables' rows are gathered on the host (an indirect DMA the instruction set does not
have), so it starts from the summed embeddings. The pooler program holds the pooler's weights.

Per layer, with T = batch x sequence tokens and weights packed per layer as
w_in = [Wqkv | W1] [D, 3D + F], w_out = [Wo ; W2] [D + F, D], b_in = [bqkv | b1] [1, 3D + F] and
vectors = [bo, b2, ln1 gamma, ln1 beta, ln2 gamma, ln2 beta] [6, D]:

    qkv     = hidden @ Wqkv + bqkv                                  library.matmul, bias_add
    context = softmax(q k.T / sqrt(d)) v, per sequence and head     library.attention
    sum     = context @ Wo + bo + hidden                            library.matmul, bias_add
    hidden  = LayerNorm(sum)                                        library.layernorm
    mlp     = gelu(hidden @ W1 + b1)
    hidden  = LayerNorm(mlp @ W2 + b2 + hidden)

then pooled = tanh(hidden[CLS] @ Wp + bp) for each sequence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from neurontools._proto import neurond_pb2 as pb
from neurontools.kernels import library
from neurontools.kernels.builder import Kernel, Tensor
from neurontools.workloads.architectures import EncoderArchitecture
from neurontools.workloads.pooled_kernel import PooledKernel
from neurontools.workloads.transformer_ops import bias_add
from neurontools.workloads.weights import WeightMaker

LAYER_NORM_EPS = 1e-12  # BERT's
VECTORS = ("out.bias", "fc2.bias", "ln1.gamma", "ln1.beta", "ln2.gamma", "ln2.beta")


@dataclass(frozen=True)
class EncoderShape:
    arch: EncoderArchitecture
    batch: int
    seq_len: int
    dtype: str = "bfloat16"

    @property
    def tokens(self) -> int:
        return self.batch * self.seq_len

    def layer_weights(self, layers: int) -> dict[str, tuple[int, int]]:
        """The INPUT parameters holding the weights of `layers` consecutive layers."""
        d, f = self.arch.hidden, self.arch.intermediate
        return {"w_in": (layers * d, 3 * d + f), "w_out": (layers * (d + f), d),
                "b_in": (layers, 3 * d + f), "vectors": (layers * len(VECTORS), d)}

    def workspace(self, program: str) -> dict[str, tuple[int, int]]:
        """A program's HBM parameters besides its weights: inputs, outputs and intermediates."""
        t, d = self.tokens, self.arch.hidden
        return {"embed": {"embeddings": (t, d), "hidden": (t, d)},
                "layers": {"hidden": (t, d), "qkv": (t, 3 * d), "context": (t, d), "sum": (t, d),
                           "mlp": (t, self.arch.intermediate)},
                "pooler": {"hidden": (t, d), "cls": (self.batch, d), "pooled": (self.batch, d)}}[program]

    def constants(self, program: str) -> dict[str, tuple[int, int]]:
        arch, d = self.arch, self.arch.hidden
        token_types = {"embeddings.token_type": (arch.token_types, d)} if arch.token_types else {}
        return {"embed": {"embeddings.word": (arch.vocab, d), "embeddings.position": (arch.max_positions, d),
                          **token_types, "embeddings.ln": (2, d)},
                "layers": {},
                "pooler": {"pooler.weight": (d, d), "pooler.bias": (1, d)}}[program]


PROGRAMS = ("embed", "layers", "pooler")


def programs(arch: EncoderArchitecture) -> tuple[str, ...]:
    """The programs of a copy of the model: no pooler for a model without one (DistilBERT)."""
    return PROGRAMS if arch.pooler else PROGRAMS[:2]


def _declare(shape: EncoderShape, program: str, constants: Mapping[str, np.ndarray] | None
             ) -> tuple[PooledKernel, dict[str, Tensor], dict[str, Tensor]]:
    k = PooledKernel()
    const = {name: (k.constant(name, constants[name], dtype=shape.dtype) if constants is not None
                    else k.constant(name, shape=dims, dtype=shape.dtype))
             for name, dims in shape.constants(program).items()}
    io = {name: (k.input if name == "embeddings" else k.output)(name, dims, shape.dtype)
          for name, dims in shape.workspace(program).items()}
    return k, const, io


def _op(k: Kernel, operation, *args, **kwargs) -> None:
    with k.operation():
        operation(k, *args, **kwargs)


def build_embed(shape: EncoderShape, constants: Mapping[str, np.ndarray] | None = None) -> pb.Program:
    """hidden = LayerNorm(embeddings). `constants` gives the tables' data (compute mode)."""
    k, const, io = _declare(shape, "embed", constants)
    ln = const["embeddings.ln"]
    _op(k, library.layernorm, io["hidden"], io["embeddings"], ln[0:1], ln[1:2], eps=LAYER_NORM_EPS)
    return k.program()


def build_pooler(shape: EncoderShape, constants: Mapping[str, np.ndarray] | None = None) -> pb.Program:
    """pooled = tanh(hidden[CLS] @ Wp + bp), the CLS rows gathered by DMA."""
    k, const, io = _declare(shape, "pooler", constants)
    for b in range(shape.batch):
        k.dma_copy(io["cls"][b:b + 1], io["hidden"][b * shape.seq_len:b * shape.seq_len + 1])
    _op(k, library.matmul, io["pooled"], io["cls"], const["pooler.weight"])
    _op(k, bias_add, io["pooled"], io["pooled"], bias=const["pooler.bias"], function="tanh")
    return k.program()


def build_layers(shape: EncoderShape, layers: int) -> pb.Program:
    """`layers` encoder layers, their weights INPUT parameters."""
    arch = shape.arch
    d, f, dh, s = arch.hidden, arch.intermediate, arch.head_dim, shape.seq_len
    k, _, io = _declare(shape, "layers", None)
    w = {name: k.input(name, dims, shape.dtype) for name, dims in shape.layer_weights(layers).items()}
    hidden, qkv, context, total, mlp = (io[n] for n in ("hidden", "qkv", "context", "sum", "mlp"))
    for j in range(layers):
        w_in, w_out = w["w_in"][j * d:(j + 1) * d], w["w_out"][j * (d + f):(j + 1) * (d + f)]
        b_in = w["b_in"][j:j + 1]
        vec = {name: w["vectors"][j * len(VECTORS) + i:j * len(VECTORS) + i + 1] for i, name in enumerate(VECTORS)}
        _op(k, library.matmul, qkv, hidden, w_in[:, 0:3 * d], bias=b_in[:, 0:3 * d])
        for b in range(shape.batch):
            rows = slice(b * s, (b + 1) * s)
            for h in range(arch.heads):
                q, keys, values = (qkv[rows, part * d + h * dh:part * d + (h + 1) * dh] for part in range(3))
                _op(k, library.attention, context[rows, h * dh:(h + 1) * dh], q, keys, values)
        _op(k, library.matmul, total, context, w_out[0:d], bias=vec["out.bias"], residual=hidden)
        _op(k, library.layernorm, hidden, total, vec["ln1.gamma"], vec["ln1.beta"], eps=LAYER_NORM_EPS)
        _op(k, library.matmul, mlp, hidden, w_in[:, 3 * d:], bias=b_in[:, 3 * d:], function="gelu")
        _op(k, library.matmul, total, mlp, w_out[d:], bias=vec["fc2.bias"], residual=hidden)
        _op(k, library.layernorm, hidden, total, vec["ln2.gamma"], vec["ln2.beta"], eps=LAYER_NORM_EPS)
    return k.program()


def random_weights(shape: EncoderShape, seed: int = 0) -> tuple[list[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Per-layer packed weights (as layer_weights(1) names them) and the embedding and pooler constants."""
    arch = shape.arch
    d, f = arch.hidden, arch.intermediate
    make = WeightMaker(shape.dtype, seed)
    layers = []
    for _ in range(arch.layers):
        vectors = np.concatenate([make.offsets(2, d), make.gains(1, d), make.offsets(1, d), make.gains(1, d),
                                  make.offsets(1, d)])
        layers.append({"w_in": np.concatenate([make.matrix(d, 3 * d), make.matrix(d, f)], axis=1),
                       "w_out": np.concatenate([make.matrix(d, d), make.matrix(f, d)]),
                       "b_in": make.offsets(1, 3 * d + f), "vectors": vectors})
    constants = {"embeddings.word": make.offsets(arch.vocab, d),
                 "embeddings.position": make.offsets(arch.max_positions, d),
                 "embeddings.ln": np.concatenate([make.gains(1, d), make.offsets(1, d)])}
    if arch.token_types:
        constants["embeddings.token_type"] = make.offsets(arch.token_types, d)
    if arch.pooler:
        constants |= {"pooler.weight": make.matrix(d, d), "pooler.bias": make.offsets(1, d)}
    return layers, constants


def reference(shape: EncoderShape, layers: list[dict[str, np.ndarray]], constants: Mapping[str, np.ndarray],
              embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same computation in float32 numpy: (hidden states [T, D], pooled [B, D] or None without a
    pooler)."""
    arch = shape.arch
    d, dh, s = arch.hidden, arch.head_dim, shape.seq_len

    def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
        mean, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
        return (x - mean) / np.sqrt(var + LAYER_NORM_EPS) * gamma + beta

    ln = constants["embeddings.ln"]
    x = layer_norm(embeddings.astype(np.float32), ln[0], ln[1])
    for weights in layers:
        w_in, w_out, b_in = weights["w_in"], weights["w_out"], weights["b_in"][0]
        vec = dict(zip(VECTORS, weights["vectors"]))
        qkv = x @ w_in[:, :3 * d] + b_in[:3 * d]
        context = np.empty_like(x)
        for b in range(shape.batch):
            rows = slice(b * s, (b + 1) * s)
            for h in range(arch.heads):
                q, kk, v = (qkv[rows, part * d + h * dh:part * d + (h + 1) * dh] for part in range(3))
                context[rows, h * dh:(h + 1) * dh] = softmax(q @ kk.T / math.sqrt(dh)) @ v
        x = layer_norm(context @ w_out[:d] + vec["out.bias"] + x, vec["ln1.gamma"], vec["ln1.beta"])
        mlp = gelu(x @ w_in[:, 3 * d:] + b_in[3 * d:])
        x = layer_norm(mlp @ w_out[d:] + vec["fc2.bias"] + x, vec["ln2.gamma"], vec["ln2.beta"])
    if not arch.pooler:
        return x, None
    pooled = np.tanh(x[::s] @ constants["pooler.weight"] + constants["pooler.bias"])
    return x, pooled


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.vectorize(math.erf, otypes=[np.float64])(x / math.sqrt(2)))
