"""Tiled operations written with the kernel builder: matmul of any shape, softmax, layernorm, a GELU
MLP and single-head attention; collectives between the cores of a model and tensor-parallel matmuls and
MLPs built on them.

Each function appends the instructions of one operation to a Kernel, reading and writing HBM tensors
(or views of them), and allocates the tiles it needs from the kernel's SBUF and PSUM budget. The
tiling follows the NeuronCore-v2 rules (ref §3.2): the contraction dimension on the partitions in
chunks of 128, matmul outputs of at most 128 x 512 in one PSUM bank, accumulation groups over K.
matmul_program() wraps a matmul in a whole kernel with its inputs and output.
"""

from __future__ import annotations

import functools
import math

from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools.kernels.builder import DTypeLike, Kernel, KernelError, Operand, Tensor, View, dtype_of

P = 128           # partitions; K and M chunk of a matmul
N_MAX = 512       # moving free size of a matmul: one PSUM bank of float32
BN_CHUNK = 512    # bn_stats_fmax
ROW_PIECE = 1024  # columns of A loaded at once for on-chip transposes
PANEL_ROW_BYTES = 4096  # a weight panel's DMA per partition row: "4 KiB saturates" (ref §2.4)


def chunks(total: int, size: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of at most `size` covering [0, total)."""
    return [(start, min(start + size, total)) for start in range(0, total, size)]


def _view(operand: Operand) -> View:
    return operand.whole if isinstance(operand, Tensor) else operand


class _Rotation:
    """A few tiles used in turn (double buffering): writing the next one need not wait for readers
    of the previous one."""

    def __init__(self, tiles: list[Tensor]) -> None:
        self._tiles = tiles
        self._next = 0

    def take(self) -> Tensor:
        tile = self._tiles[self._next % len(self._tiles)]
        self._next += 1
        return tile


class _Evacuator:
    """Copies PSUM results to SBUF, alternating the Scalar and Vector engines so neither limits."""

    def __init__(self, k: Kernel) -> None:
        self._k = k
        self._turn = 0

    def copy(self, dst: Operand, src: Operand) -> None:
        self._turn += 1
        if self._turn % 2:
            self._k.activation(dst, src, "copy")
        else:
            self._k.tensor_copy(dst, src)


class _Transposer:
    """[rows, cols] SBUF blocks (each <= 128 x 128) to [cols, rows] SBUF blocks through the Tensor engine:
    the NeuronCore-v2 way to put a row-major input's contraction axis on the partitions."""

    def __init__(self, k: Kernel, evacuator: _Evacuator) -> None:
        self._k = k
        # Eight fill two PSUM banks: fewer leave the Tensor engine waiting for evacuations, each of which
        # reaches the next engine through a semaphore (cost_model.ENGINE_SEMAPHORE_CYCLES).
        self._psum = _Rotation([k.psum((P, P)) for _ in range(8)])
        self._evacuator = evacuator

    def __call__(self, dst: View, src: View) -> None:
        rows, cols = src.shape
        staging = self._psum.take()[0:cols, 0:rows]
        self._k.transpose(staging, src)
        self._evacuator.copy(dst, staging)


# -- matmul ------------------------------------------------------------------------------------------

def matmul(k: Kernel, out: Operand, a: Operand, b: Operand, *, a_transposed: bool = False,
           dtype: DTypeLike | None = None, bias: Operand | None = None, function: str = "copy",
           residual: Operand | None = None) -> None:
    """out[M, N] = function(a[M, K] @ b[K, N] + bias) + residual (with a_transposed, a is given as A.T
    [K, M], the layout the Tensor engine wants, and no on-chip transposes are needed). Operands are
    multiplied as `dtype` (default: a's dtype; loads cast), accumulated in FP32 in PSUM and stored as
    out's dtype. bias ([1, N] or [N], broadcast over the rows), the Scalar-engine `function` and
    residual ([M, N]) are optional and applied to each result tile on its way out of PSUM (_Epilogue).

    A.T for as many 128-column blocks of M as SBUF holds (a "superblock") stays resident while panels
    of B [K, 512] stream past it, double-buffered; each 128 x 512 output is one accumulation group over
    K. With two superblock buffers, the next superblock is loaded while the current one computes.
    When K is too large for that, every group streams its own K chunks instead.
    """
    out, a, b = _view(out), _view(a), _view(b)
    m, n = out.shape
    kk = b.shape[0]
    expected = (kk, m) if a_transposed else (m, kk)
    if a.shape != expected or b.shape != (kk, n):
        raise KernelError(f"matmul shapes: out {list(out.shape)}, a {list(a.shape)}, b {list(b.shape)}; need "
                          f"a {list(expected)} and b [{kk}, {n}]")
    compute = dtype_of(dtype) if dtype is not None else a.dtype
    epilogue = _Epilogue(k, out, bias, function, residual)
    plan = _ResidentPlan.fit(k, m, n, kk, compute, out.dtype, a_transposed, epilogue)
    if plan is None:
        _streaming_matmul(k, out, a, b, compute, a_transposed, epilogue)
    else:
        plan.emit(out, a, b)


class _Epilogue:
    """What happens to each result tile of a matmul: function(acc + bias) + residual, each term optional,
    on the tile's way from PSUM to HBM -- fused as the Neuron compiler fuses a bias, an activation and a
    residual add into the matmul instead of running separate passes over the whole tensor through HBM.
    The bias joins the PSUM accumulation group as one more matmul step, ones[1, M].T @ bias[1, N] (the
    Tensor engine adds the row to every output row, exactly); the function is applied by the Scalar
    engine as it evacuates PSUM (without one, evacuation alternates the Scalar and Vector engines); the
    residual is added by the Vector engine before the store."""

    def __init__(self, k: Kernel, out: View, bias: Operand | None, function: str, residual: Operand | None) -> None:
        self.k, self.out = k, out
        self.function = function
        self.residual = _view(residual) if residual is not None else None
        self.evacuate = _Evacuator(k)
        m, n = out.shape
        self.bias: Tensor | None = None
        if bias is not None:
            bias = _view(bias)
            if bias.shape not in ((n,), (1, n)):
                raise KernelError(f"matmul bias {list(bias.shape)}: need [{n}] or [1, {n}] for out {list(out.shape)}")
            self.bias, self.ones = k.sbuf((1, n), bias.dtype), k.sbuf((1, P), bias.dtype)
            k.memset(self.ones, 1.0)
            k.load(self.bias, bias)
        if self.residual is not None:
            if self.residual.shape != out.shape:
                raise KernelError(f"matmul residual {list(self.residual.shape)}: need out's {list(out.shape)}")
            self.residuals = _Rotation([k.sbuf((P, min(n, N_MAX)), self.residual.dtype) for _ in range(2)])

    def add_bias(self, acc: View, m0: int, m1: int, n0: int, n1: int) -> None:
        """The last step of the accumulation group into `acc` (rows m0:m1, columns n0:n1 of out)."""
        if self.bias is not None:
            self.k.matmul(acc, self.ones[:, 0:m1 - m0], self.bias[:, n0:n1], accumulate=True)

    def finish(self, staged: View, acc: View, m0: int, m1: int, n0: int, n1: int) -> None:
        """Evacuates `acc` into `staged` through the function, adds the residual, stores."""
        k = self.k
        if self.function != "copy":
            k.activation(staged, acc, self.function)
        else:
            self.evacuate.copy(staged, acc)
        if self.residual is not None:
            r = self.residuals.take()[0:m1 - m0, 0:n1 - n0]
            k.load(r, self.residual[m0:m1, n0:n1])
            k.tensor_tensor(staged, staged, r, "add")
        k.store(self.out[m0:m1, n0:n1], staged)


class _ResidentPlan:
    """The resident-A.T tiling; fit() sizes it to the SBUF left, or returns None.

    A superblock buffer is one tile [128, KT * W] (W = 128 * blocks): K chunk i of block j sits at
    columns i * W + j * 128, so one DMA loads chunk i of every block, and the blocks' stationary
    operands lie side by side (the executor multiplies them in one product)."""

    def __init__(self, k: Kernel, m: int, n: int, kk: int, compute: int, out_dtype: int, a_transposed: bool,
                 blocks: int, buffers: int, epilogue: _Epilogue, nb: int, pw: int) -> None:
        self.k, self.m, self.n, self.kk = k, m, n, kk
        self.a_transposed = a_transposed
        self.k_chunks = chunks(kk, P)
        self.nb = nb
        self.pw = pw  # panel width: columns of B per DMA row, a multiple of nb
        self.width = blocks * P
        self.epilogue = epilogue
        self.evacuate = epilogue.evacuate
        self.buffers = [k.sbuf((P, len(self.k_chunks) * self.width), compute) for _ in range(buffers)]
        self.panels = _Rotation([k.sbuf((P, len(self.k_chunks) * self.pw), compute) for _ in range(2)])
        self.outs = _Rotation([k.sbuf((P, self.nb), out_dtype) for _ in range(2)])
        self.accs = _Rotation([k.psum((P, self.nb)) for _ in range(2)])
        if not a_transposed:
            self.rows = _Rotation([k.sbuf((P, min(kk, ROW_PIECE)), compute) for _ in range(2)])
            self.transpose = _Transposer(k, self.evacuate)

    @classmethod
    def fit(cls, k: Kernel, m: int, n: int, kk: int, compute: int, out_dtype: int,
            a_transposed: bool, epilogue: _Epilogue) -> "_ResidentPlan | None":
        width = math.ceil(kk / P)
        total = math.ceil(m / P)

        def fits(nb: int, pw: int, buffers: int, blocks: int) -> bool:
            requests = [(P, width * blocks * P, compute)] * buffers + [(P, width * pw, compute)] * 2
            requests += [(P, nb, out_dtype)] * 2 + ([] if a_transposed else [(P, min(kk, ROW_PIECE), compute)] * 2)
            return k.sbuf_fits(requests)

        # As many blocks of A.T resident as fit (all of them in one buffer, else two buffers so the next
        # superblock loads during this one): B is read once per superblock. Next to them, panels of B: for a
        # single block of A (a few tokens: the weights dominate), PANEL_ROW_BYTES per partition row per DMA,
        # the size that saturates the DMA engines, if they fit; else as wide as a PSUM bank (512 columns), or
        # narrower ones (more, smaller DMAs) when that fits more blocks.
        shapes = [(1, total)] + [(2, blocks) for blocks in range(total // 2, 0, -1)] + [(1, 1)]
        bank = min(n, N_MAX)
        wide = max(bank, min(-(-n // N_MAX) * N_MAX, PANEL_ROW_BYTES // dtypes.itemsize(compute) // N_MAX * N_MAX))
        widths = [(bank, bank), (min(n, N_MAX // 2),) * 2, (min(n, N_MAX // 4),) * 2]
        chosen = next(((buffers, blocks, nb, pw) for buffers, blocks in shapes
                       for nb, pw in ([(bank, wide)] if total == 1 else []) + widths
                       if fits(nb, pw, buffers, blocks)), None)
        if chosen is None:
            return None
        buffers, blocks, nb, pw = chosen
        blocks = math.ceil(total / math.ceil(total / blocks))  # balance the superblocks
        return cls(k, m, n, kk, compute, out_dtype, a_transposed, blocks, buffers, epilogue, nb, pw)

    def emit(self, out: View, a: View, b: View) -> None:
        k = self.k
        m_blocks = chunks(self.m, P)
        blocks = self.width // P
        supers = [m_blocks[i:i + blocks] for i in range(0, len(m_blocks), blocks)]
        panels = chunks(self.n, self.pw)
        for action in self._a_loads(self.buffers[0], supers[0], a):
            action()
        for s, blocks_here in enumerate(supers):
            buffer = self.buffers[s % len(self.buffers)]
            following = supers[s + 1] if s + 1 < len(supers) else None
            # Two buffers: the next superblock's loads are spread over this one's panels.
            prefetch = self._a_loads(self.buffers[(s + 1) % 2], following, a) if following and len(self.buffers) == 2 else []
            for p, (p0, p1) in enumerate(panels):
                panel = self.panels.take()
                for i, (k0, k1) in enumerate(self.k_chunks):
                    k.load(panel[0:k1 - k0, i * self.pw:i * self.pw + p1 - p0], b[k0:k1, p0:p1])
                for n0, n1 in ((p0 + c0, p0 + c1) for c0, c1 in chunks(p1 - p0, self.nb)):
                    for j, (m0, m1) in enumerate(blocks_here):
                        acc = self.accs.take()[0:m1 - m0, 0:n1 - n0]
                        for i, (k0, k1) in enumerate(self.k_chunks):
                            column, c0 = i * self.width + j * P, i * self.pw + n0 - p0
                            k.matmul(acc, buffer[0:k1 - k0, column:column + m1 - m0], panel[0:k1 - k0, c0:c0 + n1 - n0],
                                     accumulate=i > 0)
                        self.epilogue.add_bias(acc, m0, m1, n0, n1)
                        self.epilogue.finish(self.outs.take()[0:m1 - m0, 0:n1 - n0], acc, m0, m1, n0, n1)
                share = prefetch[len(prefetch) * p // len(panels):len(prefetch) * (p + 1) // len(panels)]
                for action in share:
                    action()
            if following and len(self.buffers) == 1:
                for action in self._a_loads(buffer, following, a):
                    action()

    def _a_loads(self, buffer: Tensor, blocks: list[tuple[int, int]], a: View) -> list:
        """The instructions that put A.T for `blocks` into `buffer`, as separately emitted actions. On-chip
        transposes load each row piece one action ahead of transposing it, so the data is there in time."""
        k = self.k
        first, last = blocks[0][0], blocks[-1][1]
        if self.a_transposed:
            return [functools.partial(k.load, buffer[0:k1 - k0, i * self.width:i * self.width + last - first],
                                      a[k0:k1, first:last])
                    for i, (k0, k1) in enumerate(self.k_chunks)]
        pieces = [(j, m0, m1, c0, c1) for j, (m0, m1) in enumerate(blocks) for c0, c1 in chunks(self.kk, ROW_PIECE)]
        rows = [self.rows.take() for _ in pieces]
        loads = [functools.partial(k.load, r[0:m1 - m0, 0:c1 - c0], a[m0:m1, c0:c1])
                 for r, (_, m0, m1, c0, c1) in zip(rows, pieces)]
        transposes = [functools.partial(self._transpose_piece, buffer, r, *piece) for r, piece in zip(rows, pieces)]
        return loads[:1] + [action for pair in zip(transposes, loads[1:] + [None]) for action in pair if action]

    def _transpose_piece(self, buffer: Tensor, rows: Tensor, j: int, m0: int, m1: int, c0: int, c1: int) -> None:
        for k0, k1 in chunks(c1 - c0, P):
            column = (c0 + k0) // P * self.width + j * P
            self.transpose(buffer[0:k1 - k0, column:column + m1 - m0], rows[0:m1 - m0, k0:k1])


def _streaming_matmul(k: Kernel, out: View, a: View, b: View, compute: int, a_transposed: bool,
                      epilogue: _Epilogue) -> None:
    """Every 128 x 512 output streams its own K chunks through small rotating tiles: any K fits."""
    m, n = out.shape
    nb = min(n, N_MAX)
    evacuate = epilogue.evacuate
    stationary = _Rotation([k.sbuf((P, P), compute) for _ in range(2)])
    moving = _Rotation([k.sbuf((P, nb), compute) for _ in range(2)])
    outs = _Rotation([k.sbuf((P, nb), out.dtype) for _ in range(2)])
    accs = _Rotation([k.psum((P, nb)) for _ in range(2)])
    if not a_transposed:
        rows = _Rotation([k.sbuf((P, P), compute) for _ in range(2)])
        transpose = _Transposer(k, evacuate)
    for n0, n1 in chunks(n, nb):
        for m0, m1 in chunks(m, P):
            acc = accs.take()[0:m1 - m0, 0:n1 - n0]
            for i, (k0, k1) in enumerate(chunks(b.shape[0], P)):
                s = stationary.take()[0:k1 - k0, 0:m1 - m0]
                if a_transposed:
                    k.load(s, a[k0:k1, m0:m1])
                else:
                    r = rows.take()[0:m1 - m0, 0:k1 - k0]
                    k.load(r, a[m0:m1, k0:k1])
                    transpose(s, r)
                mv = moving.take()[0:k1 - k0, 0:n1 - n0]
                k.load(mv, b[k0:k1, n0:n1])
                k.matmul(acc, s, mv, accumulate=i > 0)
            epilogue.add_bias(acc, m0, m1, n0, n1)
            epilogue.finish(outs.take()[0:m1 - m0, 0:n1 - n0], acc, m0, m1, n0, n1)


def matmul_program(m: int, kk: int, n: int, dtype: DTypeLike = "bfloat16", *, out_dtype: DTypeLike | None = None,
                   a_transposed: bool = False) -> pb.Program:
    """A kernel computing out = a @ b from HBM inputs "a" ([m, kk], or [kk, m] with a_transposed) and "b"."""
    k = Kernel()
    a = k.input("a", (kk, m) if a_transposed else (m, kk), dtype)
    b = k.input("b", (kk, n), dtype)
    out = k.output("out", (m, n), dtype if out_dtype is None else out_dtype)
    matmul(k, out, a, b, a_transposed=a_transposed)
    return k.program()


# -- softmax -----------------------------------------------------------------------------------------

def softmax(k: Kernel, out: Operand, x: Operand) -> None:
    """out = softmax(x) along the last axis of a [R, C] tensor, 128 rows at a time in FP32:
    max-reduce (negated), exp with that bias summing into a [P, 1] accumulator, reciprocal, multiply."""
    out, x = _view(out), _view(x)
    rows, cols = x.shape
    data = _Rotation([k.sbuf((P, cols), "float32") for _ in range(2)])
    results = _Rotation([k.sbuf((P, cols), out.dtype) for _ in range(2)])
    neg_max, total = k.sbuf((P, 1), "float32"), k.sbuf((P, 1), "float32")
    for r0, r1 in chunks(rows, P):
        w = r1 - r0
        t, o = data.take()[0:w], results.take()[0:w]
        k.load(t, x[r0:r1])
        k.tensor_reduce(neg_max[0:w], t, "maximum", negate=True)
        k.activation(t, t, "exp", bias=neg_max[0:w], reduce=total[0:w])
        k.activation(total[0:w], total[0:w], "reciprocal")
        k.tensor_scalar(o, t, "multiply", total[0:w])
        k.store(out[r0:r1], o)


# -- layernorm ---------------------------------------------------------------------------------------

def layernorm(k: Kernel, out: Operand, x: Operand, gamma: Operand, beta: Operand, *, eps: float = 1e-5) -> None:
    """out = (x - mean) / sqrt(var + eps) * gamma + beta over the last axis of a [R, D] tensor; gamma and
    beta have D elements. Mean and variance come from bn_stats over 512-element slices and one bn_aggr;
    gamma and beta are broadcast to all partitions once, by a matmul with a row of ones."""
    out, x = _view(out), _view(x)
    rows, d = x.shape
    gamma_b, beta_b = (_broadcast_rows(k, _view(v), d) for v in (gamma, beta))
    data = _Rotation([k.sbuf((P, d), "float32") for _ in range(2)])
    results = _Rotation([k.sbuf((P, d), out.dtype) for _ in range(2)])
    slices = chunks(d, BN_CHUNK)
    stats = k.sbuf((P, 6 * len(slices)), "float32")
    moments, rstd, eps_tile = k.sbuf((P, 2), "float32"), k.sbuf((P, 1), "float32"), k.sbuf((P, 1), "float32")
    k.memset(eps_tile, eps)
    for r0, r1 in chunks(rows, P):
        w = r1 - r0
        t, o = data.take()[0:w], results.take()[0:w]
        k.load(t, x[r0:r1])
        for i, (c0, c1) in enumerate(slices):
            k.bn_stats(stats[0:w, 6 * i:6 * i + 6], t[:, c0:c1])
        k.bn_aggr(moments[0:w], stats[0:w])
        k.activation(rstd[0:w], moments[0:w, 1:2], "rsqrt", bias=eps_tile[0:w])
        k.tensor_scalar(t, t, "subtract", moments[0:w, 0:1], "multiply", rstd[0:w])
        k.tensor_tensor(t, t, gamma_b[0:w], "multiply")
        k.tensor_tensor(o, t, beta_b[0:w], "add")
        k.store(out[r0:r1], o)


def _broadcast_rows(k: Kernel, vector: View, d: int) -> Tensor:
    """A [128, d] float32 tile whose every partition holds `vector` (d elements in HBM): ones[1, 128].T @
    row[1, d] on the Tensor engine, the hardware's partition broadcast (ref §2.2)."""
    if math.prod(vector.shape) != d:
        raise KernelError(f"{vector.tensor.name}: {list(vector.shape)} must hold {d} elements")
    row, ones = k.sbuf((1, d), "float32"), k.sbuf((1, P), "float32")
    wide = k.sbuf((P, d), "float32")
    acc = k.psum((P, min(d, N_MAX)))
    k.load(row, vector)
    k.memset(ones, 1.0)
    for c0, c1 in chunks(d, N_MAX):
        k.matmul(acc[:, 0:c1 - c0], ones, row[:, c0:c1])
        k.tensor_copy(wide[:, c0:c1], acc[:, 0:c1 - c0])
    return wide


# -- GELU MLP ----------------------------------------------------------------------------------------

def gelu_mlp(k: Kernel, out: Operand, x: Operand, w1: Operand, w2: Operand, *,
             dtype: DTypeLike | None = None) -> None:
    """out[T, D2] = gelu(x[T, D] @ w1[D, H]) @ w2[H, D2], the weights resident in SBUF, tokens in blocks
    of 512. The hidden activations are computed transposed (h.T = w1.T @ x.T, H on the partitions), so
    they feed the second matmul as its stationary operand without another transpose."""
    out, x, w1, w2 = _view(out), _view(x), _view(w1), _view(w2)
    tokens, d = x.shape
    hidden, d2 = w2.shape
    if w1.shape != (d, hidden) or out.shape != (tokens, d2):
        raise KernelError(f"gelu_mlp shapes: x {list(x.shape)}, w1 {list(w1.shape)}, w2 {list(w2.shape)}, "
                          f"out {list(out.shape)}")
    compute = dtype_of(dtype) if dtype is not None else x.dtype
    d_chunks, h_chunks = chunks(d, P), chunks(hidden, P)
    tb = min(tokens, N_MAX)
    w1_sb = k.sbuf((P, len(d_chunks) * hidden), compute)
    w2_sb = k.sbuf((P, len(h_chunks) * d2), compute)
    for i, (k0, k1) in enumerate(d_chunks):
        k.load(w1_sb[0:k1 - k0, i * hidden:(i + 1) * hidden], w1[k0:k1])
    for i, (k0, k1) in enumerate(h_chunks):
        k.load(w2_sb[0:k1 - k0, i * d2:(i + 1) * d2], w2[k0:k1])
    evacuate = _Evacuator(k)
    transpose = _Transposer(k, evacuate)
    x_t = k.sbuf((P, len(d_chunks) * tb), compute)
    h_t = k.sbuf((P, len(h_chunks) * tb), compute)
    rows = _Rotation([k.sbuf((P, d), compute) for _ in range(2)])
    accs = _Rotation([k.psum((P, N_MAX)) for _ in range(2)])
    outs = _Rotation([k.sbuf((P, min(d2, N_MAX)), out.dtype) for _ in range(2)])
    for t0, t1 in chunks(tokens, tb):
        width = t1 - t0
        for s0, s1 in chunks(width, P):  # x.T for this block of tokens
            r = rows.take()[0:s1 - s0]
            k.load(r, x[t0 + s0:t0 + s1])
            for i, (k0, k1) in enumerate(d_chunks):
                transpose(x_t[0:k1 - k0, i * tb + s0:i * tb + s1], r[:, k0:k1])
        for j, (h0, h1) in enumerate(h_chunks):  # h.T = gelu(w1.T @ x.T)
            acc = accs.take()[0:h1 - h0, 0:width]
            for i, (k0, k1) in enumerate(d_chunks):
                k.matmul(acc, w1_sb[0:k1 - k0, i * hidden + h0:i * hidden + h1], x_t[0:k1 - k0, i * tb:i * tb + width],
                         accumulate=i > 0)
            k.activation(h_t[0:h1 - h0, j * tb:j * tb + width], acc, "gelu")
        for s0, s1 in chunks(width, P):  # out = h @ w2
            for n0, n1 in chunks(d2, N_MAX):
                acc = accs.take()[0:s1 - s0, 0:n1 - n0]
                for j, (h0, h1) in enumerate(h_chunks):
                    k.matmul(acc, h_t[0:h1 - h0, j * tb + s0:j * tb + s1], w2_sb[0:h1 - h0, j * d2 + n0:j * d2 + n1],
                             accumulate=j > 0)
                staged = outs.take()[0:s1 - s0, 0:n1 - n0]
                evacuate.copy(staged, acc)
                k.store(out[t0 + s0:t0 + s1, n0:n1], staged)


# -- attention ---------------------------------------------------------------------------------------

def attention(k: Kernel, out: Operand, q: Operand, keys: Operand, values: Operand, *,
              scale: float | None = None, causal: bool = False) -> None:
    """Single-head attention: out[S, d] = softmax(q @ keys.T * scale) @ values, d <= 128, scale
    defaulting to 1/sqrt(d); causal masks key j > query i with affine_select (and skips key blocks past
    the diagonal). 128 queries at a time against blocks of 128 keys with an online softmax, as NKI's
    flash attention does: per block, scores in FP32, the running row maximum, the probabilities (exp with
    the maximum as bias, summed on the way), the running sum and output rescaled by exp(old - new
    maximum), the probabilities transposed on the Tensor engine for P @ V. Each block's steps depend on the
    previous block's, so the work grows with the square of the sequence in blocks."""
    out, q, keys, values = _view(out), _view(q), _view(keys), _view(values)
    s_q, d = q.shape
    s_kv = keys.shape[0]
    if d > P or keys.shape != (s_kv, d) or values.shape != (s_kv, d) or out.shape != (s_q, d):
        raise KernelError(f"attention shapes: q {list(q.shape)}, keys {list(keys.shape)}, values "
                          f"{list(values.shape)}, out {list(out.shape)}; head size d <= {P}")
    scale = 1 / math.sqrt(d) if scale is None else scale
    compute = q.dtype
    kv_blocks = chunks(s_kv, P)
    evacuate = _Evacuator(k)
    transpose = _Transposer(k, evacuate)
    rows = _Rotation([k.sbuf((P, d), compute) for _ in range(2)])
    keys_t = k.sbuf((P, s_kv), compute)             # keys.T: d on the partitions
    values_sb = k.sbuf((P, len(kv_blocks) * d), compute)
    for i, (j0, j1) in enumerate(kv_blocks):
        r = rows.take()[0:j1 - j0]
        k.load(r, keys[j0:j1])
        transpose(keys_t[0:d, j0:j1], r)
        k.load(values_sb[0:j1 - j0, i * d:(i + 1) * d], values[j0:j1])
    q_t = k.sbuf((P, P), compute)
    scores = _Rotation([k.sbuf((P, P), "float32") for _ in range(2)])
    probs = _Rotation([k.sbuf((P, P), compute) for _ in range(2)])
    probs_t = _Rotation([k.sbuf((P, P), compute) for _ in range(2)])
    # Per query block: the running -max (negated, as tensor_reduce gives it), sum and output; per key
    # block: its -max, the new -max, the correction factor and the block's row sums.
    neg_max, block_max, new_max = (k.sbuf((P, 1), "float32") for _ in range(3))
    correction, total, block_sum = (k.sbuf((P, 1), "float32") for _ in range(3))
    acc_out = k.sbuf((P, d), "float32")
    accs = _Rotation([k.psum((P, P)) for _ in range(2)])
    outs = _Rotation([k.sbuf((P, d), out.dtype) for _ in range(2)])
    for q0, q1 in chunks(s_q, P):
        w = q1 - q0
        r = rows.take()[0:w]
        k.load(r, q[q0:q1])
        transpose(q_t[0:d, 0:w], r)
        blocks = [(i, j0, j1) for i, (j0, j1) in enumerate(kv_blocks) if not causal or j0 <= q1 - 1]
        for n, (i, j0, j1) in enumerate(blocks):
            bj = j1 - j0
            acc = accs.take()[0:w, 0:bj]
            k.matmul(acc, q_t[0:d, 0:w], keys_t[0:d, j0:j1])
            block = scores.take()[0:w, 0:bj]
            k.activation(block, acc, "copy", scale=scale)
            if causal and j1 - 1 > q0:  # keep key j <= query i: (q0 + p) - (j0 + c) >= 0
                k.affine_select(block, block, -1e30, pattern=[(-1, bj)], offset=q0 - j0, channel_multiplier=1,
                                cmp="is_ge")
            first = n == 0
            k.tensor_reduce(neg_max[0:w] if first else block_max[0:w], block, "maximum", negate=True)
            if not first:  # -max_new = min(-max_old, -block max); correction = exp(max_old - max_new)
                k.tensor_tensor(new_max[0:w], neg_max[0:w], block_max[0:w], "minimum")
                k.activation(correction[0:w], neg_max[0:w], "exp", scale=-1.0, bias=new_max[0:w])
                k.tensor_copy(neg_max[0:w], new_max[0:w])
            p = probs.take()[0:w, 0:bj]
            k.activation(p, block, "exp", bias=neg_max[0:w], reduce=total[0:w] if first else block_sum[0:w])
            if not first:
                k.tensor_scalar(total[0:w], total[0:w], "multiply", correction[0:w], "add", block_sum[0:w])
            p_t = probs_t.take()[0:bj, 0:w]
            transpose(p_t, p)
            pv = accs.take()[0:w, 0:d]
            k.matmul(pv, p_t, values_sb[0:bj, i * d:(i + 1) * d])
            if first:
                k.tensor_copy(acc_out[0:w], pv)
            else:  # out = out * correction + P @ V
                k.tensor_scalar(acc_out[0:w], acc_out[0:w], "multiply", correction[0:w])
                k.tensor_tensor(acc_out[0:w], acc_out[0:w], pv, "add")
        k.activation(total[0:w], total[0:w], "reciprocal")
        o = outs.take()[0:w]
        k.tensor_scalar(o, acc_out[0:w], "multiply", total[0:w])
        k.store(out[q0:q1], o)


# -- collectives and tensor parallelism ----------------------------------------------------------------
# A model whose subgraphs run on several cores (session.load_model(name, {core: program, ...})) can move
# HBM tensors between them: every rank's kernel issues the same collectives in the same order. `group`
# lists the ranks' NeuronCores in rank order; None means every subgraph of the model. The daemon checks
# the Neuron runtime's group rules when the model is loaded (docs/timing-model.md "Collectives").

_REDUCTIONS = {"add": pb.ADD, "maximum": pb.MAXIMUM, "minimum": pb.MINIMUM}


def _reduction(op: str) -> int:
    if op not in _REDUCTIONS:
        raise KernelError(f"reduction {op!r}: use one of {', '.join(_REDUCTIONS)}")
    return _REDUCTIONS[op]


def _group(cores) -> pb.ReplicaGroup:
    return pb.ReplicaGroup(core_ids=list(cores or ()))


def all_reduce(k: Kernel, dst: Operand, src: Operand, op: str = "add", *, group=None) -> None:
    """dst = op over the ranks of src (FP32 accumulation, rounded to the dtype); dst may be src."""
    k._emit(all_reduce=pb.AllReduce(dst=dst.ref(), src=src.ref(), op=_reduction(op), group=_group(group)))


def all_gather(k: Kernel, dst: Operand, src: Operand, *, axis: int = 0, group=None) -> None:
    """dst = the ranks' src concatenated along `axis`, in rank order."""
    k._emit(all_gather=pb.AllGather(dst=dst.ref(), src=src.ref(), axis=axis, group=_group(group)))


def reduce_scatter(k: Kernel, dst: Operand, src: Operand, op: str = "add", *, axis: int = 0, group=None) -> None:
    """dst = this rank's block along `axis` of op over the ranks of src."""
    k._emit(reduce_scatter=pb.ReduceScatter(dst=dst.ref(), src=src.ref(), op=_reduction(op), axis=axis,
                                            group=_group(group)))


def send_recv(k: Kernel, *, src: Operand | None = None, send_to: int | None = None, dst: Operand | None = None,
              recv_from: int | None = None) -> None:
    """Send src to NeuronCore send_to and/or receive into dst from NeuronCore recv_from (both: an exchange)."""
    msg = pb.SendRecv()
    if src is not None:
        msg.src.CopyFrom(src.ref())
    if send_to is not None:
        msg.send_to = send_to
    if dst is not None:
        msg.dst.CopyFrom(dst.ref())
    if recv_from is not None:
        msg.recv_from = recv_from
    k._emit(send_recv=msg)


def permute(k: Kernel, dst: Operand, src: Operand, *, shift: int = 1, group=None) -> None:
    """Rank r's src goes to rank (r + shift) mod R's dst (shift 1: along the ring)."""
    k._emit(permute=pb.Permute(dst=dst.ref(), src=src.ref(), shift=shift, group=_group(group)))


def row_parallel_matmul(k: Kernel, out: Operand, a: Operand, w: Operand, *, group=None,
                        dtype: DTypeLike | None = None) -> None:
    """One rank of out = A @ W with the contraction dimension split over the ranks: a = A[:, K_r] and
    w = W[K_r, :]. The rank's partial product goes to `out` (an OUTPUT parameter; float32 keeps the
    partial sums exact), which an all-reduce then sums in place: every rank ends with A @ W."""
    matmul(k, out, a, w, dtype=dtype)
    all_reduce(k, out, out, group=group)


def column_parallel_matmul(k: Kernel, out: Operand, part: Operand, a: Operand, w: Operand, *, group=None,
                           dtype: DTypeLike | None = None) -> None:
    """One rank of out = A @ W with W's columns split over the ranks: w = W[:, N_r]. The rank computes
    part = a @ w (an OUTPUT parameter [M, N / R]); an all-gather along the columns assembles out."""
    matmul(k, part, a, w, dtype=dtype)
    all_gather(k, out, part, axis=1, group=group)


def _shard(total: int, ranks: int, what: str) -> int:
    if total % ranks:
        raise KernelError(f"{what} {total} does not split evenly over {ranks} ranks")
    return total // ranks


def tensor_parallel_matmul_programs(m: int, kk: int, n: int, cores, *, weights=None, dtype: DTypeLike = "float32",
                                    parallel: str = "row") -> dict[int, pb.Program]:
    """{core: program} computing out[m, n] = a[m, kk] @ W[kk, n] on every core, W sharded over the cores
    as constants (from `weights`, or zeros of its shape for timing-only models).

    parallel="row": rank r holds W[K_r, :] and takes input "a" = A[:, K_r] ([m, kk / R]); all-reduce.
    parallel="column": rank r holds W[:, N_r] and takes the whole "a"; its block goes to output "part"
    ([m, n / R]) and an all-gather assembles "out"."""
    cores = list(cores)
    ranks = len(cores)
    programs = {}
    for rank, core in enumerate(cores):
        k = Kernel()
        if parallel == "row":
            rows = _shard(kk, ranks, "K")
            window = (slice(rank * rows, (rank + 1) * rows), slice(None))
            a = k.input("a", (m, rows), dtype)
        elif parallel == "column":
            cols = _shard(n, ranks, "N")
            window = (slice(None), slice(rank * cols, (rank + 1) * cols))
            a = k.input("a", (m, kk), dtype)
        else:
            raise KernelError(f"parallel {parallel!r}: use 'row' or 'column'")
        shape = (rows, n) if parallel == "row" else (kk, cols)
        w = (k.constant("w", weights[window], dtype=dtype) if weights is not None
             else k.constant("w", shape=shape, dtype=dtype))
        out = k.output("out", (m, n), "float32")
        if parallel == "row":
            row_parallel_matmul(k, out, a, w)
        else:
            column_parallel_matmul(k, out, k.output("part", (m, cols), "float32"), a, w)
        programs[core] = k.program()
    return programs


def tensor_parallel_mlp_programs(tokens: int, d: int, hidden: int, cores, w1, w2,
                                 dtype: DTypeLike = "float32") -> dict[int, pb.Program]:
    """{core: program} computing out = gelu(x @ w1) @ w2 on every core, Megatron style: rank r holds the
    columns H_r of w1 and the rows H_r of w2 (constants), so its GELU needs no communication; one
    all-reduce sums the ranks' partial outputs. Input "x" [tokens, d]; output "out" [tokens, d2]."""
    cores = list(cores)
    share = _shard(hidden, len(cores), "hidden size")
    programs = {}
    for rank, core in enumerate(cores):
        k = Kernel()
        x = k.input("x", (tokens, d), dtype)
        h = slice(rank * share, (rank + 1) * share)
        out = k.output("out", (tokens, w2.shape[1]), "float32")
        gelu_mlp(k, out, x, k.constant("w1", w1[:, h], dtype=dtype), k.constant("w2", w2[h], dtype=dtype))
        all_reduce(k, out, out)
        programs[core] = k.program()
    return programs
