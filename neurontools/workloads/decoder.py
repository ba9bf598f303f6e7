"""A decoder-only LLM, tensor-parallel over N cores, as NeuronCore-v2 programs (Megatron-style shards).

Every core holds a shard of each layer: the query heads (padded up to a multiple of N, as the Neuron
SDK pads them), its KV heads (replicated when there are fewer KV heads than cores), 1/N of the MLP,
and computes with the full hidden state. The two row-parallel products (attention output, MLP down)
give partial sums that an all-reduce over the group adds up.

A stage program runs `layers` consecutive layers for one phase: the prefill of a prompt, or a decode
step at one context length. Its weights are INPUT parameters, so one program serves every layer;
weights packed per layer as

    w_in    [D, (hq + 2 kv) dh + mlp_in]   [Wq | Wk | Wv | W_gate | W_up] (Llama) or [... | W_fc1] (OPT)
    w_out   [hq dh + F/N, D]               [Wo ; W_down]
    vectors [2 or 6, D]                    norm weights (OPT: ln1 gamma, beta, ln2 gamma, beta, bo, b_fc2)
    b_in    [1, (hq + 2 kv) dh + F/N]      OPT's column-parallel biases

Per layer, with T tokens (B x prompt for the prefill, B for a decode step):

    normed  = norm1(hidden)                          rms_norm (GpSimd operator) | layer_norm
    qkv     = normed @ w_in[:, qkv] (+ b)            weight_streaming_matmul (<= 128 tokens) | library.matmul
    KV cache <- k, v                                 write_prompt_kv | append_kv
    attn    = attention of q over the cache          library.attention (causal) | decode_attention
    partial = attn @ Wo;  all-reduce(partial)
    hidden += partial (+ bo)
    normed  = norm2(hidden);  mlp = swiglu(normed @ [W_gate | W_up]) | relu(normed @ W_fc1 + b)
    partial = mlp @ W_down;  all-reduce(partial);  hidden += partial (+ b_fc2)

and each stage ends by copying the last token of each sequence into `last`. The head program (final
norm and the core's vocabulary shard of the LM head) turns `last` into logits. Decode programs are
built per context-length bucket (powers of two from 128, as the Neuron SDK's n_positions buckets):
attention covers the whole bucket and the new token's keys and values go to its last position.
Compute mode uses exact lengths instead, so numbers can be checked step by step. Token embeddings
are gathered on the host (the tables are in HBM, as constants of the head model).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from neurontools._proto import neurond_pb2 as pb
from neurontools.kernels import library
from neurontools.workloads.architectures import DecoderArchitecture
from neurontools.workloads.pooled_kernel import PooledKernel
from neurontools.workloads.transformer_ops import (append_kv, bias_add, decode_attention, layer_norm, rms_norm,
                                                    streams_weights, swiglu, weight_streaming_matmul,
                                                    write_prompt_kv)
from neurontools.workloads.weights import WeightMaker

RMS_EPS = 1e-5        # Llama-2's
LAYER_NORM_EPS = 1e-5  # OPT's
SMALLEST_BUCKET = 128


def bucket(context: int) -> int:
    """The context-length bucket a decode step at `context` positions runs in."""
    return max(SMALLEST_BUCKET, 1 << (context - 1).bit_length())


@dataclass(frozen=True)
class DecoderShape:
    arch: DecoderArchitecture
    tp: int
    batch: int
    prompt_len: int
    gen_len: int
    dtype: str = "bfloat16"

    # -- per-core shard sizes ---------------------------------------------------------------------
    @property
    def q_heads(self) -> int:
        return -(-self.arch.heads // self.tp)

    @property
    def kv_heads(self) -> int:
        return max(1, -(-self.arch.kv_heads // self.tp))

    @property
    def ffn(self) -> int:
        return -(-self.arch.intermediate // self.tp)

    @property
    def vocab(self) -> int:
        return -(-self.arch.vocab // self.tp)

    @property
    def qkv_width(self) -> int:
        return (self.q_heads + 2 * self.kv_heads) * self.arch.head_dim

    @property
    def mlp_in_width(self) -> int:
        return (2 if self.arch.gated_mlp else 1) * self.ffn

    @property
    def capacity(self) -> int:
        """KV-cache positions per sequence: room for the prompt and every generated token's bucket."""
        return bucket(self.prompt_len + self.gen_len)

    @property
    def vector_rows(self) -> int:
        return 6 if self.arch.biases else 2

    def check(self) -> None:
        a = self.arch
        if self.tp < 1 or self.batch < 1 or self.prompt_len < 1 or self.gen_len < 1:
            raise ValueError("tp, batch, prompt and generation lengths must be >= 1")
        if self.q_heads % self.kv_heads:
            raise ValueError(f"{a.name} at tp={self.tp}: {self.q_heads} query heads per core do not share "
                             f"{self.kv_heads} KV heads evenly")
        if self.prompt_len + self.gen_len > a.max_positions:
            raise ValueError(f"{a.name} takes {a.max_positions} positions; prompt {self.prompt_len} + "
                             f"generation {self.gen_len} is more")
        if self.batch > 128:
            raise ValueError("batch must be <= 128 (a decode step keeps one token per sequence on a partition)")

    def padded(self) -> bool:
        a = self.arch
        return bool(a.heads % self.tp or a.intermediate % self.tp or a.vocab % self.tp
                    or (a.kv_heads % self.tp and self.tp % a.kv_heads))

    # -- parameters of the programs -----------------------------------------------------------------
    def layer_weights(self, layers: int) -> dict[str, tuple[int, int]]:
        d = self.arch.hidden
        shapes = {"w_in": (layers * d, self.qkv_width + self.mlp_in_width),
                  "w_out": (layers * (self.q_heads * self.arch.head_dim + self.ffn), d),
                  "vectors": (layers * self.vector_rows, d)}
        if self.arch.biases:
            shapes["b_in"] = (layers, self.qkv_width + self.ffn)
        return shapes

    def kv_cache(self, layers: int) -> dict[str, tuple[int, int]]:
        width = self.kv_heads * self.arch.head_dim
        return {"k_cache": (layers * self.batch * width, self.capacity),
                "v_cache": (layers * self.batch * self.capacity, width)}

    def workspace(self, tokens: int) -> dict[str, tuple[int, int]]:
        d = self.arch.hidden
        return {"hidden": (tokens, d), "normed": (tokens, d), "qkv": (tokens, self.qkv_width),
                "attn": (tokens, self.q_heads * self.arch.head_dim), "partial": (tokens, d),
                "mlp_in": (tokens, self.mlp_in_width), "mlp": (tokens, self.ffn), "last": (self.batch, d)}

    def head_constants(self) -> dict[str, tuple[int, int]]:
        """The head model's constants: final norm, LM head shard, embedding table shards."""
        a, d = self.arch, self.arch.hidden
        shapes = {"final_norm": (2 if a.biases else 1, d), "lm_head": (d, self.vocab)}
        if a.family == "llama":
            shapes["embed"] = (self.vocab, d)      # untied: the input table is separate
        if a.learned_positions:
            shapes["positions"] = (-(-a.learned_positions // self.tp), d)
        return shapes


def build_stage(shape: DecoderShape, layers: int, *, context: int | None = None) -> pb.Program:
    """`layers` layers of the prefill (context None) or of a decode step attending over `context`
    positions (the new token written at position context - 1)."""
    arch, dtype, dh = shape.arch, shape.dtype, shape.arch.head_dim
    d, hq, kv = arch.hidden, shape.q_heads, shape.kv_heads
    tokens = shape.batch * (shape.prompt_len if context is None else 1)
    k = PooledKernel()
    w = {name: k.input(name, dims, dtype) for name, dims in shape.layer_weights(layers).items()}
    cache = {name: k.output(name, dims, dtype) for name, dims in shape.kv_cache(layers).items()}
    io = {name: k.output(name, dims, dtype) for name, dims in shape.workspace(tokens).items()}
    hidden, normed, qkv, attn, partial = (io[n] for n in ("hidden", "normed", "qkv", "attn", "partial"))
    q_cols, k_cols, v_cols = (slice(0, hq * dh), slice(hq * dh, (hq + kv) * dh),
                              slice((hq + kv) * dh, (hq + 2 * kv) * dh))
    rows_kt, rows_v = shape.batch * kv * dh, shape.batch * shape.capacity

    def op(operation, *args, **kwargs) -> None:
        with k.operation():
            operation(k, *args, **kwargs)

    def norm(out, x, vectors, index: int) -> None:
        if arch.biases:
            op(layer_norm, out, x, vectors[2 * index:2 * index + 1], vectors[2 * index + 1:2 * index + 2],
               eps=LAYER_NORM_EPS)
        else:
            op(rms_norm, out, x, vectors[index:index + 1], eps=RMS_EPS)

    def project(out, x, weights) -> None:
        """out = x @ weights; when the tokens fit on the partitions, the weights stream past them once."""
        streamed = streams_weights(tokens, weights.shape[0], weights.dtype)
        op(weight_streaming_matmul if streamed else library.matmul, out, x, weights)

    def reduce_into_hidden(bias) -> None:
        if shape.tp > 1:
            library.all_reduce(k, partial, partial)
        op(bias_add, hidden, partial, bias=bias, residual=hidden)

    for j in range(layers):
        w_in, w_out = w["w_in"][j * d:(j + 1) * d], w["w_out"][j * (hq * dh + shape.ffn):(j + 1) * (hq * dh + shape.ffn)]
        vectors = w["vectors"][j * shape.vector_rows:(j + 1) * shape.vector_rows]
        b_in = w["b_in"][j:j + 1] if arch.biases else None
        k_cache, v_cache = cache["k_cache"][j * rows_kt:(j + 1) * rows_kt], cache["v_cache"][j * rows_v:(j + 1) * rows_v]

        norm(normed, hidden, vectors, 0)
        project(qkv, normed, w_in[:, 0:shape.qkv_width])
        if b_in is not None:
            op(bias_add, qkv, qkv, bias=b_in[:, 0:shape.qkv_width])
        if context is None:
            op(write_prompt_kv, k_cache, v_cache, qkv[:, k_cols], qkv[:, v_cols], batch=shape.batch,
               kv_heads=kv, head_dim=dh)
            s, group = shape.prompt_len, hq // kv
            for b in range(shape.batch):
                rows = slice(b * s, (b + 1) * s)
                for h in range(hq):
                    g = h // group
                    op(library.attention, attn[rows, h * dh:(h + 1) * dh], qkv[rows, h * dh:(h + 1) * dh],
                       qkv[rows, k_cols][:, g * dh:(g + 1) * dh], qkv[rows, v_cols][:, g * dh:(g + 1) * dh],
                       causal=True)
        else:
            op(append_kv, k_cache, v_cache, qkv[:, k_cols], qkv[:, v_cols], position=context - 1)
            op(decode_attention, attn, qkv[:, q_cols], k_cache, v_cache, kv_heads=kv, head_dim=dh, context=context)
        project(partial, attn, w_out[0:hq * dh])
        reduce_into_hidden(vectors[4:5] if arch.biases else None)

        norm(normed, hidden, vectors, 1)
        project(io["mlp_in"], normed, w_in[:, shape.qkv_width:])
        if arch.gated_mlp:
            op(swiglu, io["mlp"], io["mlp_in"])
        else:
            op(bias_add, io["mlp"], io["mlp_in"], bias=b_in[:, shape.qkv_width:], function="relu")
        project(partial, io["mlp"], w_out[hq * dh:])
        reduce_into_hidden(vectors[5:6] if arch.biases else None)
    step = shape.prompt_len if context is None else 1
    for b in range(shape.batch):
        k.dma_copy(io["last"][b:b + 1], hidden[(b + 1) * step - 1:(b + 1) * step])
    return k.program()


def build_head(shape: DecoderShape, constants: Mapping[str, np.ndarray] | None = None) -> pb.Program:
    """logits [B, V/N] = final_norm(last) @ lm_head shard. The embedding tables ride along as constants."""
    arch, dtype = shape.arch, shape.dtype
    k = PooledKernel()
    const = {name: (k.constant(name, constants[name], dtype=dtype) if constants is not None
                    else k.constant(name, shape=dims, dtype=dtype))
             for name, dims in shape.head_constants().items()}
    last = k.input("last", (shape.batch, arch.hidden), dtype)
    normed = k.output("final", (shape.batch, arch.hidden), dtype)
    logits = k.output("logits", (shape.batch, shape.vocab), dtype)
    norm = const["final_norm"]
    with k.operation():
        if arch.biases:
            layer_norm(k, normed, last, norm[0:1], norm[1:2], eps=LAYER_NORM_EPS)
        else:
            rms_norm(k, normed, last, norm, eps=RMS_EPS)
    with k.operation():
        streamed = streams_weights(shape.batch, arch.hidden, normed.dtype)
        (weight_streaming_matmul if streamed else library.matmul)(k, logits, normed, const["lm_head"])
    return k.program()


# -- compute mode: weights, shards, reference -------------------------------------------------------

def random_weights(arch: DecoderArchitecture, dtype: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Full (unsharded) weights: per layer i "i.wq", "i.wk", ..., and the tables."""
    make = WeightMaker(dtype, seed)
    d, f, dh = arch.hidden, arch.intermediate, arch.head_dim
    out: dict[str, np.ndarray] = {}
    for i in range(arch.layers):
        p = f"{i}."
        out |= {p + "wq": make.matrix(d, arch.heads * dh), p + "wk": make.matrix(d, arch.kv_heads * dh),
                p + "wv": make.matrix(d, arch.kv_heads * dh), p + "wo": make.matrix(arch.heads * dh, d),
                p + "w_up": make.matrix(d, f), p + "w_down": make.matrix(f, d),
                p + "norm1": make.gains(d), p + "norm2": make.gains(d)}
        if arch.gated_mlp:
            out[p + "w_gate"] = make.matrix(d, f)
        if arch.biases:
            out |= {p + "bq": make.offsets(arch.heads * dh), p + "bk": make.offsets(arch.kv_heads * dh),
                    p + "bv": make.offsets(arch.kv_heads * dh), p + "bo": make.offsets(d),
                    p + "b_up": make.offsets(f), p + "b_down": make.offsets(d),
                    p + "norm1.beta": make.offsets(d), p + "norm2.beta": make.offsets(d)}
    out |= {"embed": make.offsets(arch.vocab, d), "lm_head": make.matrix(d, arch.vocab), "final_norm": make.gains(d)}
    if arch.biases:
        out |= {"final_norm.beta": make.offsets(d), "positions": make.offsets(arch.learned_positions, d)}
        out["lm_head"] = np.ascontiguousarray(out["embed"].T)  # OPT ties the LM head to the embeddings
    return out


def shard(shape: DecoderShape, full: Mapping[str, np.ndarray], rank: int) -> tuple[list[dict[str, np.ndarray]],
                                                                                  dict[str, np.ndarray]]:
    """Rank `rank`'s packed per-layer weights (as layer_weights(1) names them) and head constants.
    Compute mode needs exact shards (no padding)."""
    arch = shape.arch
    if shape.padded():
        raise ValueError(f"compute mode needs tp={shape.tp} to divide {arch.name}'s heads, KV heads (or be "
                         "a multiple of them), intermediate size and vocabulary")
    dh, hq, kv, f = arch.head_dim, shape.q_heads, shape.kv_heads, shape.ffn
    q_cols = slice(rank * hq * dh, (rank + 1) * hq * dh)
    first_kv = rank * kv if arch.kv_heads >= shape.tp else rank * hq // (arch.heads // arch.kv_heads)
    kv_cols = slice(first_kv * dh, (first_kv + kv) * dh)
    f_cols = slice(rank * f, (rank + 1) * f)
    layers = []
    for i in range(arch.layers):
        p = f"{i}."
        mlp_in = [full[p + "w_gate"][:, f_cols]] if arch.gated_mlp else []
        w_in = np.concatenate([full[p + "wq"][:, q_cols], full[p + "wk"][:, kv_cols], full[p + "wv"][:, kv_cols],
                               *mlp_in, full[p + "w_up"][:, f_cols]], axis=1)
        w_out = np.concatenate([full[p + "wo"][q_cols], full[p + "w_down"][f_cols]])
        if arch.biases:
            vectors = np.stack([full[p + "norm1"], full[p + "norm1.beta"], full[p + "norm2"], full[p + "norm2.beta"],
                                full[p + "bo"], full[p + "b_down"]])
            b_in = np.concatenate([full[p + "bq"][q_cols], full[p + "bk"][kv_cols], full[p + "bv"][kv_cols],
                                   full[p + "b_up"][f_cols]])[None]
            layers.append({"w_in": w_in, "w_out": w_out, "vectors": vectors, "b_in": b_in})
        else:
            layers.append({"w_in": w_in, "w_out": w_out, "vectors": np.stack([full[p + "norm1"], full[p + "norm2"]])})
    v_rows = slice(rank * shape.vocab, (rank + 1) * shape.vocab)
    head = {"lm_head": full["lm_head"][:, v_rows]}
    if arch.biases:
        head["final_norm"] = np.stack([full["final_norm"], full["final_norm.beta"]])
        rows = -(-arch.learned_positions // shape.tp)
        table = np.zeros((rows * shape.tp, arch.hidden), np.float32)
        table[:arch.learned_positions] = full["positions"]
        head["positions"] = table[rank * rows:(rank + 1) * rows]
    else:
        head["final_norm"] = full["final_norm"][None]
        head["embed"] = full["embed"][v_rows]
    return layers, head


def embed(arch: DecoderArchitecture, full: Mapping[str, np.ndarray], tokens: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The host-side gather: token rows (plus OPT's learned positions, offset by 2 as OPT does)."""
    x = full["embed"][tokens]
    if arch.learned_positions:
        x = x + full["positions"][positions + 2]
    return x.astype(np.float32)


def reference_logits(arch: DecoderArchitecture, full: Mapping[str, np.ndarray], tokens: np.ndarray) -> np.ndarray:
    """Logits [B, S, V] of every position of token sequences [B, S], in float32 numpy."""
    batch, seq = tokens.shape
    dh, group = arch.head_dim, arch.heads // arch.kv_heads
    x = embed(arch, full, tokens, np.arange(seq)[None].repeat(batch, 0))
    mask = np.triu(np.full((seq, seq), -np.inf, np.float32), 1)

    def norm(v: np.ndarray, name: str) -> np.ndarray:
        if arch.biases:
            mean, var = v.mean(-1, keepdims=True), v.var(-1, keepdims=True)
            return (v - mean) / np.sqrt(var + LAYER_NORM_EPS) * full[name] + full[name + ".beta"]
        return v / np.sqrt((v * v).mean(-1, keepdims=True) + RMS_EPS) * full[name]

    def bias(name: str) -> np.ndarray | float:
        return full[name] if arch.biases else 0.0

    for i in range(arch.layers):
        p = f"{i}."
        h = norm(x, p + "norm1")
        q = (h @ full[p + "wq"] + bias(p + "bq")).reshape(batch, seq, arch.heads, dh)
        kk = (h @ full[p + "wk"] + bias(p + "bk")).reshape(batch, seq, arch.kv_heads, dh)
        v = (h @ full[p + "wv"] + bias(p + "bv")).reshape(batch, seq, arch.kv_heads, dh)
        kk, v = np.repeat(kk, group, axis=2), np.repeat(v, group, axis=2)
        scores = np.einsum("bqhd,bkhd->bhqk", q, kk) / math.sqrt(dh) + mask
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        attn = np.einsum("bhqk,bkhd->bqhd", probs, v).reshape(batch, seq, arch.heads * dh)
        x = x + attn @ full[p + "wo"] + bias(p + "bo")
        h = norm(x, p + "norm2")
        if arch.gated_mlp:
            gate = h @ full[p + "w_gate"]
            mlp = gate / (1 + np.exp(-gate)) * (h @ full[p + "w_up"])
        else:
            mlp = np.maximum(h @ full[p + "w_up"] + bias(p + "b_up"), 0)
        x = x + mlp @ full[p + "w_down"] + bias(p + "b_down")
    return norm(x, "final_norm") @ full["lm_head"]
