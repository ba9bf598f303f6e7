"""Transformer pieces the kernel library does not have, written with the kernel builder as a user
would: bias and residual adds, RMSNorm, SwiGLU, the KV-cache writes and decode attention.

Like the library's operations, each function appends instructions to a Kernel, reads and writes HBM
tensors (or views), and takes its tiles from the kernel's SBUF/PSUM budget. Rows (tokens) go on the
partitions, 128 at a time; two tiles alternate so a load can overlap the previous block's work.
"""

from __future__ import annotations

import math

from neurontools import dtypes
from neurontools.kernels.builder import Kernel, KernelError, Operand, Tensor, View
from neurontools.kernels.library import chunks

P = 128
N_MAX = 512        # matmul moving free size (one PSUM bank of float32)
COLUMNS = 2048     # columns of an elementwise pass per tile


def _view(operand: Operand) -> View:
    return operand.whole if isinstance(operand, Tensor) else operand


def _buffers(k: Kernel, rows: int, shape: tuple[int, int], dtype: str | int) -> list[Tensor]:
    """Two tiles to alternate between row blocks, or one when there is a single block (decode)."""
    return [k.sbuf(shape, dtype) for _ in range(min(2, -(-rows // P)))]


class _Broadcaster:
    """Puts a row vector (in HBM) on every partition of a tile of its dtype: ones[1, 128].T @ row[1, n]
    on the Tensor engine, the hardware's partition broadcast (exact: each PSUM sum has one term).
    Its tiles are allocated once, for rows of up to `width` elements."""

    def __init__(self, k: Kernel, width: int, dtype: int) -> None:
        self._k = k
        self.row, self.ones = k.sbuf((1, width), dtype), k.sbuf((1, P), dtype)
        self.wide = k.sbuf((P, width), dtype)
        self._acc = k.psum((P, min(width, N_MAX)))
        k.memset(self.ones, 1.0)

    def __call__(self, vector: View, width: int) -> View:
        k = self._k
        k.load(self.row[:, 0:width], vector)
        for c0, c1 in chunks(width, N_MAX):
            k.matmul(self._acc[:, 0:c1 - c0], self.ones, self.row[:, c0:c1])
            k.tensor_copy(self.wide[:, c0:c1], self._acc[:, 0:c1 - c0])
        return self.wide[:, 0:width]


def broadcast_row(k: Kernel, vector: View, width: int) -> View:
    """A [128, width] tile of the vector's dtype holding `vector` (width elements) on every partition."""
    return _Broadcaster(k, width, vector.dtype)(vector, width)


def bias_add(k: Kernel, out: Operand, x: Operand, *, bias: Operand | None = None,
             residual: Operand | None = None, function: str = "copy") -> None:
    """out[R, N] = function(x + bias) + residual, bias ([1, N] or [N]) broadcast over the rows; each
    term optional. One pass over the rows, in column chunks of up to COLUMNS; the engines compute in
    float32 and the tiles keep x's dtype (so they can reuse the tiles of the matmuls around)."""
    out, x = _view(out), _view(x)
    rows, width = x.shape
    n_max = min(width, COLUMNS)
    broadcast = _Broadcaster(k, n_max, _view(bias).dtype) if bias is not None else None
    data = _buffers(k, rows, (P, n_max), x.dtype)
    extra = _buffers(k, rows, (P, n_max), x.dtype) if residual is not None else None
    turn = 0
    for c0, c1 in chunks(width, COLUMNS):
        n = c1 - c0
        wide = broadcast(_columns(_view(bias), c0, c1), n) if broadcast is not None else None
        for r0, r1 in chunks(rows, P):
            w, turn = r1 - r0, turn + 1
            t = data[turn % len(data)][0:w, 0:n]
            k.load(t, x[r0:r1, c0:c1])
            if wide is not None:
                k.tensor_tensor(t, t, wide[0:w], "add")
            if function != "copy":
                k.activation(t, t, function)
            if extra is not None:
                r = extra[turn % len(extra)][0:w, 0:n]
                k.load(r, _view(residual)[r0:r1, c0:c1])
                k.tensor_tensor(t, t, r, "add")
            k.store(out[r0:r1, c0:c1], t)


def _columns(vector: View, c0: int, c1: int) -> View:
    """Elements c0..c1 of a bias held as [N] or [1, N]."""
    return vector[c0:c1] if len(vector.shape) == 1 else vector[:, c0:c1]


def rms_norm(k: Kernel, out: Operand, x: Operand, weight: Operand, *, eps: float = 1e-6) -> None:
    """out = x / sqrt(mean(x^2) + eps) * weight over the last axis of [R, D], weight [1, D], with the
    daemon's registered `rmsnorm` operator (GpSimd). Tiles keep the HBM dtypes (the operator computes
    in float32), so a row of 8192 fits three times over."""
    out, x, weight = _view(out), _view(x), _view(weight)
    rows, d = x.shape
    w_sb = k.sbuf((1, d), weight.dtype)
    k.load(w_sb, weight)
    data = _buffers(k, rows, (P, d), x.dtype)
    results = _buffers(k, rows, (P, d), out.dtype)
    for i, (r0, r1) in enumerate(chunks(rows, P)):
        w = r1 - r0
        t, y = data[i % len(data)][0:w], results[i % len(results)][0:w]
        k.load(t, x[r0:r1])
        k.custom("rmsnorm", [y], [t, w_sb], eps=eps)
        k.store(out[r0:r1], y)


def layer_norm(k: Kernel, out: Operand, x: Operand, gamma: Operand, beta: Operand, *, eps: float = 1e-5) -> None:
    """out = (x - mean) / sqrt(var + eps) * gamma + beta over the last axis of [R, D] (gamma and beta
    [1, D]). As library.layernorm (bn_stats over 512-element slices, one bn_aggr, rsqrt on the Scalar
    engine, gamma and beta broadcast once by a matmul), with the rows single-buffered and gamma and
    beta kept in their HBM dtype, so hidden sizes up to 12288 (OPT-175B) fit in SBUF."""
    out, x, gamma, beta = _view(out), _view(x), _view(gamma), _view(beta)
    rows, d = x.shape
    gamma_b, beta_b = (broadcast_row(k, v, d) for v in (gamma, beta))
    slices = chunks(d, 512)
    t, y = k.sbuf((P, d), x.dtype), k.sbuf((P, d), out.dtype)
    stats = k.sbuf((P, 6 * len(slices)), "float32")
    moments, rstd, eps_tile = k.sbuf((P, 2), "float32"), k.sbuf((P, 1), "float32"), k.sbuf((P, 1), "float32")
    k.memset(eps_tile, eps)
    for r0, r1 in chunks(rows, P):
        w = r1 - r0
        k.load(t[0:w], x[r0:r1])
        for i, (c0, c1) in enumerate(slices):
            k.bn_stats(stats[0:w, 6 * i:6 * i + 6], t[0:w, c0:c1])
        k.bn_aggr(moments[0:w], stats[0:w])
        k.activation(rstd[0:w], moments[0:w, 1:2], "rsqrt", bias=eps_tile[0:w])
        k.tensor_scalar(y[0:w], t[0:w], "subtract", moments[0:w, 0:1], "multiply", rstd[0:w])
        k.tensor_tensor(y[0:w], y[0:w], gamma_b[0:w], "multiply")
        k.tensor_tensor(y[0:w], y[0:w], beta_b[0:w], "add")
        k.store(out[r0:r1], y[0:w])


def swiglu(k: Kernel, out: Operand, gate_up: Operand) -> None:
    """out[R, F] = silu(gate) * up, with gate_up = [gate | up] ([R, 2F], one matmul's output); tiles of
    gate_up's dtype."""
    out, gate_up = _view(out), _view(gate_up)
    rows, f = out.shape
    if gate_up.shape != (rows, 2 * f):
        raise KernelError(f"swiglu shapes: out {list(out.shape)}, gate_up {list(gate_up.shape)}; "
                          f"gate_up must be [{rows}, {2 * f}]")
    n_max = min(f, COLUMNS)
    gates, ups = _buffers(k, rows, (P, n_max), gate_up.dtype), _buffers(k, rows, (P, n_max), gate_up.dtype)
    turn = 0
    for c0, c1 in chunks(f, COLUMNS):
        for r0, r1 in chunks(rows, P):
            w, turn = r1 - r0, turn + 1
            g, u = gates[turn % len(gates)][0:w, 0:c1 - c0], ups[turn % len(ups)][0:w, 0:c1 - c0]
            k.load(g, gate_up[r0:r1, c0:c1])
            k.load(u, gate_up[r0:r1, f + c0:f + c1])
            k.activation(g, g, "silu")
            k.tensor_tensor(g, g, u, "multiply")
            k.store(out[r0:r1, c0:c1], g)


WEIGHT_COLUMNS = 2048  # columns of a streamed weight tile: 4 KiB per partition in bfloat16, near DMA peak
RESIDENT_ROWS_BYTES = 32 * 1024  # per partition, for the transposed rows weight_streaming_matmul keeps


def streams_weights(rows: int, kk: int, dtype: int) -> bool:
    """Whether weight_streaming_matmul suits a product of `rows` rows with K = kk: the rows fit on the
    partitions and their transpose fits its share of SBUF."""
    return rows <= P and -(-kk // P) * rows * dtypes.itemsize(dtype) <= RESIDENT_ROWS_BYTES


def weight_streaming_matmul(k: Kernel, out: Operand, a: Operand, w: Operand) -> None:
    """out[M, N] = a[M, K] @ w[K, N] for M <= 128 rows (the tokens of a decode step).

    a.T stays in SBUF (K/128 transposes, once) and the weights stream past it once, 128 rows by 2048
    columns per DMA, into up to four PSUM accumulators of 512 columns. library.matmul keeps whole-K
    weight panels resident, which does not fit SBUF for K in the thousands; it then reloads and
    re-transposes the small operand for every block of the weights."""
    out, a, w = _view(out), _view(a), _view(w)
    m, kk = a.shape
    n = w.shape[1]
    if m > P or w.shape[0] != kk or out.shape != (m, n):
        raise KernelError(f"weight_streaming_matmul shapes: a {list(a.shape)} (at most {P} rows), "
                          f"w {list(w.shape)}, out {list(out.shape)}")
    k_chunks = chunks(kk, P)
    width = min(n, WEIGHT_COLUMNS)
    rows = k.sbuf((m, min(kk, WEIGHT_COLUMNS)), a.dtype)
    a_t = k.sbuf((P, len(k_chunks) * m), w.dtype)
    staging = k.psum((P, m))
    for c0, c1 in chunks(kk, WEIGHT_COLUMNS):
        k.load(rows[:, 0:c1 - c0], a[:, c0:c1])
        for k0, k1 in chunks(c1 - c0, P):
            i = (c0 + k0) // P
            k.transpose(staging[0:k1 - k0], rows[:, k0:k1])
            k.tensor_copy(a_t[0:k1 - k0, i * m:(i + 1) * m], staging[0:k1 - k0])
    panels = [k.sbuf((P, width), w.dtype) for _ in range(3)]
    accs = [k.psum((m, min(width, N_MAX))) for _ in range(-(-width // N_MAX))]
    results = [k.sbuf((m, width), out.dtype) for _ in range(2)]
    turn = 0
    for g, (n0, n1) in enumerate(chunks(n, WEIGHT_COLUMNS)):
        pieces = chunks(n1 - n0, N_MAX)
        for i, (k0, k1) in enumerate(k_chunks):
            panel = panels[turn % len(panels)][0:k1 - k0, 0:n1 - n0]
            turn += 1
            k.load(panel, w[k0:k1, n0:n1])
            for j, (s0, s1) in enumerate(pieces):
                k.matmul(accs[j][:, 0:s1 - s0], a_t[0:k1 - k0, i * m:(i + 1) * m], panel[:, s0:s1], accumulate=i > 0)
        result = results[g % 2][:, 0:n1 - n0]
        for j, (s0, s1) in enumerate(pieces):  # evacuate on the Scalar and Vector engines in turn
            if j % 2:
                k.tensor_copy(result[:, s0:s1], accs[j][:, 0:s1 - s0])
            else:
                k.activation(result[:, s0:s1], accs[j][:, 0:s1 - s0], "copy")
        k.store(out[:, n0:n1], result)


# -- the KV cache ------------------------------------------------------------------------------------
#
# Per layer and core: keys stored transposed, kT [B * kv_heads * head_dim, C], so a (batch, kv head)
# block is the [head_dim, positions] moving operand of q @ k.T as stored; values [B * C, kv_heads *
# head_dim], one row per position, so appending a token is one contiguous row. C is the capacity.


def write_prompt_kv(k: Kernel, kt_cache: Operand, v_cache: Operand, keys: Operand, values: Operand, *,
                    batch: int, kv_heads: int, head_dim: int) -> None:
    """Positions 0..S-1 of every sequence: keys and values are [B * S, kv_heads * head_dim] (rows of
    the QKV projection). Keys are transposed on the Tensor engine, 128 positions at a time."""
    kt_cache, v_cache, keys, values = (_view(t) for t in (kt_cache, v_cache, keys, values))
    seq = keys.shape[0] // batch
    capacity = kt_cache.shape[1]
    rows = [k.sbuf((P, head_dim), keys.dtype) for _ in range(2)]
    transposed = [k.sbuf((P, P), kt_cache.dtype) for _ in range(2)]
    staging = [k.psum((P, P)) for _ in range(2)]
    turn = 0
    for b in range(batch):
        k.dma_copy(v_cache[b * capacity:b * capacity + seq], values[b * seq:(b + 1) * seq])
        for g in range(kv_heads):
            for s0, s1 in chunks(seq, P):
                w, turn = s1 - s0, turn + 1
                r, t, s = rows[turn % 2][0:w], transposed[turn % 2][0:head_dim, 0:w], staging[turn % 2][0:head_dim, 0:w]
                k.load(r, keys[b * seq + s0:b * seq + s1, g * head_dim:(g + 1) * head_dim])
                k.transpose(s, r)
                k.tensor_copy(t, s)
                base = (b * kv_heads + g) * head_dim
                k.store(kt_cache[base:base + head_dim, s0:s1], t)


def append_kv(k: Kernel, kt_cache: Operand, v_cache: Operand, keys: Operand, values: Operand, *,
              position: int) -> None:
    """One new position per sequence: keys and values are [B, kv_heads * head_dim]. A key row becomes
    a column of kT by a reshaping DMA through SBUF ([1, n] -> [n, 1])."""
    kt_cache, v_cache, keys, values = (_view(t) for t in (kt_cache, v_cache, keys, values))
    batch, width = keys.shape
    capacity = kt_cache.shape[1]
    row = k.sbuf((batch, width), keys.dtype)
    k.load(row, keys)
    for b in range(batch):
        k.store(kt_cache[b * width:(b + 1) * width, position:position + 1], row[b:b + 1])
        k.dma_copy(v_cache[b * capacity + position:b * capacity + position + 1], values[b:b + 1])


def decode_attention(k: Kernel, out: Operand, queries: Operand, kt_cache: Operand, v_cache: Operand, *,
                     kv_heads: int, head_dim: int, context: int) -> None:
    """Attention of one new token per sequence over positions 0..context-1 of the cache.

    queries and out are [B, heads * head_dim]; the heads sharing a KV head (grouped-query attention)
    are processed together: their query rows become a [group, head_dim] tile by a reshaping DMA, so
    scores for the group are one matmul against the cached kT block."""
    out, queries, kt_cache, v_cache = (_view(t) for t in (out, queries, kt_cache, v_cache))
    batch, width = queries.shape
    heads = width // head_dim
    group = heads // kv_heads
    capacity = kt_cache.shape[1]
    dtype = queries.dtype
    scale = 1 / math.sqrt(head_dim)
    spans = chunks(context, P)
    q_rows, q_t = k.sbuf((group, head_dim), dtype), k.sbuf((head_dim, group), dtype)
    keys_t = k.sbuf((head_dim, context), dtype)
    values_sb = k.sbuf((P, len(spans) * head_dim), dtype)
    scores = k.sbuf((group, context), "float32")
    probs = k.sbuf((group, context), dtype)
    probs_t = k.sbuf((P, len(spans) * group), dtype)
    neg_max, total = k.sbuf((group, 1), "float32"), k.sbuf((group, 1), "float32")
    result = k.sbuf((group, head_dim), out.dtype)
    staging = [k.psum((P, P)) for _ in range(2)]
    acc = k.psum((group, min(context, N_MAX)))
    acc_out = k.psum((group, head_dim))
    turn = 0
    for b in range(batch):
        for g in range(kv_heads):
            columns = slice(g * group * head_dim, (g + 1) * group * head_dim)
            base = (b * kv_heads + g) * head_dim
            k.load(q_rows, queries[b:b + 1, columns])
            k.load(keys_t, kt_cache[base:base + head_dim, 0:context])
            for i, (j0, j1) in enumerate(spans):
                row0 = b * capacity + j0
                k.load(values_sb[0:j1 - j0, i * head_dim:(i + 1) * head_dim],
                       v_cache[row0:row0 + j1 - j0, g * head_dim:(g + 1) * head_dim])
            s = staging[turn % 2][0:head_dim, 0:group]
            turn += 1
            k.transpose(s, q_rows)
            k.tensor_copy(q_t, s)
            for n0, n1 in chunks(context, N_MAX):
                k.matmul(acc[:, 0:n1 - n0], q_t, keys_t[:, n0:n1])
                k.activation(scores[:, n0:n1], acc[:, 0:n1 - n0], "copy", scale=scale)
            k.tensor_reduce(neg_max, scores, "maximum", negate=True)
            k.activation(probs, scores, "exp", bias=neg_max, reduce=total)
            k.activation(total, total, "reciprocal")
            for i, (j0, j1) in enumerate(spans):
                s = staging[turn % 2][0:j1 - j0, 0:group]
                turn += 1
                k.transpose(s, probs[:, j0:j1])
                k.tensor_copy(probs_t[0:j1 - j0, i * group:(i + 1) * group], s)
            for i, (j0, j1) in enumerate(spans):
                k.matmul(acc_out, probs_t[0:j1 - j0, i * group:(i + 1) * group],
                         values_sb[0:j1 - j0, i * head_dim:(i + 1) * head_dim], accumulate=i > 0)
            k.tensor_scalar(result, acc_out, "multiply", total)
            k.store(out[b:b + 1, columns], result)
