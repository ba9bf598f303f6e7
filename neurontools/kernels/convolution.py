"""Convolutions and pooling over channels-first images, written with access patterns (no im2col).

Layouts: images [B, C, H, W] in HBM (channels on the partitions once on chip), weights [Ci, KH, KW, Co]
(each input-channel chunk loads as one contiguous row of KH * KW * Co per partition), bias [Co, 1]
float32 (a folded batch norm's shift: one value per output channel, which the Scalar engine adds per
partition as it evacuates PSUM).

A KH x KW convolution is KH * KW matmuls per input-channel chunk, accumulated in PSUM (KW when the
channels are few: see conv2d's `stacked`): tap (dy, dx) takes
the weights [Ci, Co] of that tap as the stationary operand and, as the moving operand, the padded input
in SBUF read through an access pattern, rows and columns `stride` apart starting at (dy, dx): the
im2col matrix is never built, each tap reads the input where it is. An output row block is as many
output rows as fit the 512 columns of one matmul.
"""

from __future__ import annotations

from neurontools import dtypes
from neurontools.kernels.builder import Kernel, KernelError, Operand, dtype_of
from neurontools.kernels.library import P, _Rotation, _view, chunks

MOVING_MAX = 512                  # columns of one matmul (one PSUM bank of float32)
DOUBLE_BUFFER_BYTES = 64 * 1024   # per partition: padded inputs of two images side by side when they fit


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _padded_inputs(k: Kernel, x, image: int, tiles: list, padding: int, row_taps: int = 1) -> None:
    """Loads image `image` of x [B, C, H, W] into the padded [C chunk, Hp * Wp] tiles (zero border). With
    row_taps > 1 (few channels) the one tile holds row_taps copies of the image on consecutive partition
    blocks, copy dy shifted up by dy rows, so that one matmul contracts over a whole column of kernel taps."""
    _, c, h, w = x.shape
    hp, wp = h + 2 * padding, w + 2 * padding
    for tile, (c0, c1) in zip(tiles, chunks(c, P)):
        cc = c1 - c0
        if padding:
            k.memset(tile[0:cc * row_taps, 0:hp * wp], 0.0)
        for dy in range(row_taps):
            lo, hi = max(0, padding - dy), min(hp - dy, padding + h - dy)  # rows of copy dy holding image rows
            if hi <= lo:
                continue
            interior = tile.pattern(slice(dy * cc, (dy + 1) * cc), slice(lo, hi), slice(padding, padding + w),
                                    free_shape=(hp, wp))
            k.load(interior, x[image, c0:c1, lo + dy - padding:hi + dy - padding])


def _input_sets(k: Kernel, x, padding: int, dtype) -> list[list]:
    """One set of padded input tiles per image in flight: two when they fit DOUBLE_BUFFER_BYTES."""
    _, c, h, w = x.shape
    free = (h + 2 * padding) * (w + 2 * padding)
    per_set = len(chunks(c, P)) * free * dtypes.itemsize(dtype_of(dtype))
    sets = 2 if x.shape[0] > 1 and 2 * per_set <= DOUBLE_BUFFER_BYTES else 1
    return [[k.sbuf((P, free), dtype) for _ in chunks(c, P)] for _ in range(sets)]


def conv2d(k: Kernel, out: Operand, x: Operand, w: Operand, bias: Operand, *, stride: int = 1,
           padding: int = 0, function: str = "copy", residual: Operand | None = None) -> None:
    """out[B, Co, OH, OW] = function(conv(x, w) + bias (+ residual)), x [B, Ci, H, W], w [Ci, KH, KW, Co],
    bias [Co, 1] float32, residual like out (added before the function: a ResNet block's shortcut)."""
    out, x, w, bias = _view(out), _view(x), _view(w), _view(bias)
    batch, ci, h, wd = x.shape
    wci, kh, kw, co = w.shape
    oh, ow = output_size(h, kh, stride, padding), output_size(wd, kw, stride, padding)
    if wci != ci or out.shape != (batch, co, oh, ow) or bias.shape != (co, 1) or min(oh, ow) < 1:
        raise KernelError(f"conv2d shapes: x {list(x.shape)}, w {list(w.shape)}, bias {list(bias.shape)}, out "
                          f"{list(out.shape)}; with stride {stride} and padding {padding} out must be "
                          f"{[batch, co, oh, ow]}")
    if residual is not None and _view(residual).shape != out.shape:
        raise KernelError(f"conv2d residual {list(_view(residual).shape)} must be out's shape {list(out.shape)}")
    hp, wp = h + 2 * padding, wd + 2 * padding
    compute = x.dtype
    in_chunks, out_blocks = chunks(ci, P), chunks(co, P)
    # Few input channels (ResNet's stem: 3) would use a sliver of the 128-row contraction: the kernel's
    # rows then join the channels on the partitions (partition dy * Ci + c), one matmul per kernel column.
    stacked = kh > 1 and ci * kh <= P
    row_taps = 1 if stacked else kh     # kernel rows left as separate matmuls
    depth = kh if stacked else 1        # kernel rows folded into the contraction
    weights = []
    for c0, c1 in in_chunks:
        tile = k.sbuf((P, row_taps * kw * co), compute)
        if stacked:
            for dy in range(kh):
                k.load(tile[dy * ci:(dy + 1) * ci], w[:, dy])
        else:
            k.load(tile[0:c1 - c0], w[c0:c1])
        weights.append(tile)
    biases = []
    for o0, o1 in out_blocks:
        tile = k.sbuf((P, 1), "float32")
        k.load(tile[0:o1 - o0], bias[o0:o1])
        biases.append(tile)
    inputs = _input_sets(k, x, padding, compute)
    rows = max(1, min(oh, MOVING_MAX // ow))
    accs = _Rotation([k.psum((P, rows * ow)) for _ in range(2)])
    outs = _Rotation([k.sbuf((P, rows * ow), out.dtype) for _ in range(2)])
    sums = _Rotation([k.sbuf((P, rows * ow), "float32") for _ in range(2)]) if residual is not None else None
    shortcuts = _Rotation([k.sbuf((P, rows * ow), out.dtype) for _ in range(2)]) if residual is not None else None
    for image in range(batch):
        padded = inputs[image % len(inputs)]
        _padded_inputs(k, x, image, padded, padding, depth)
        for (o0, o1), bias_tile in zip(out_blocks, biases):
            m = o1 - o0
            for r0, r1 in chunks(oh, rows):
                n = (r1 - r0) * ow
                acc = accs.take()[0:m, 0:n]
                steps = [(c, t) for c in range(len(in_chunks)) for t in range(row_taps * kw)]
                for i, (c, t) in enumerate(steps):
                    dy, dx = divmod(t, kw)
                    rows_k = (in_chunks[c][1] - in_chunks[c][0]) * depth  # contraction rows
                    first_row = r0 * stride + dy
                    moving = padded[c].pattern(
                        slice(0, rows_k), slice(first_row, first_row + (r1 - r0 - 1) * stride + 1, stride),
                        slice(dx, dx + (ow - 1) * stride + 1, stride), free_shape=(hp, wp))
                    k.matmul(acc, weights[c][0:rows_k, t * co + o0:t * co + o1], moving, accumulate=i > 0)
                result = outs.take()[0:m, 0:n]
                if residual is None:
                    k.activation(result, acc, function, bias=bias_tile[0:m])
                else:
                    shortcut, total = shortcuts.take()[0:m, 0:n], sums.take()[0:m, 0:n]
                    k.load(shortcut, _view(residual)[image, o0:o1, r0:r1])
                    k.tensor_tensor(total, acc, shortcut, "add")
                    k.activation(result, total, function, bias=bias_tile[0:m])
                k.store(out[image, o0:o1, r0:r1], result)


def max_pool2d(k: Kernel, out: Operand, x: Operand, *, size: int = 3, stride: int = 2, padding: int = 1) -> None:
    """out[B, C, OH, OW] = the maximum over each size x size window of x [B, C, H, W], `stride` apart.
    The border is padded with zeros, so x must be non-negative (it follows a ReLU in ResNet): the window
    maxima are then the same as with -inf padding. Each window position is an access pattern over the
    padded input; the Vector engine folds them with tensor_tensor maximum."""
    out, x = _view(out), _view(x)
    batch, c, h, wd = x.shape
    oh, ow = output_size(h, size, stride, padding), output_size(wd, size, stride, padding)
    if out.shape != (batch, c, oh, ow):
        raise KernelError(f"max_pool2d: out {list(out.shape)} must be {[batch, c, oh, ow]}")
    hp, wp = h + 2 * padding, wd + 2 * padding
    inputs = _input_sets(k, x, padding, x.dtype)
    # Output rows per pass: the Vector engine takes up to 16 K elements per partition comfortably.
    rows = max(1, min(oh, 4096 // ow))
    results = _Rotation([k.sbuf((P, rows * ow), out.dtype) for _ in range(2)])
    for image in range(batch):
        padded = inputs[image % len(inputs)]
        _padded_inputs(k, x, image, padded, padding)
        for tile, (c0, c1) in zip(padded, chunks(c, P)):
            for r0, r1 in chunks(oh, rows):
                result = results.take()[0:c1 - c0, 0:(r1 - r0) * ow]
                windows = [tile.pattern(slice(0, c1 - c0),
                                        slice(r0 * stride + dy, r0 * stride + dy + (r1 - r0 - 1) * stride + 1, stride),
                                        slice(dx, dx + (ow - 1) * stride + 1, stride), free_shape=(hp, wp))
                           for dy in range(size) for dx in range(size)]
                k.tensor_tensor(result, windows[0], windows[1], "maximum")
                for window in windows[2:]:
                    k.tensor_tensor(result, result, window, "maximum")
                k.store(out[image, c0:c1, r0:r1], result)


def global_average_pool(k: Kernel, out: Operand, x: Operand) -> None:
    """out[B, C] = the mean of x [B, C, H, W] over H and W: an add-reduce per channel chunk, scaled."""
    out, x = _view(out), _view(x)
    batch, c, h, wd = x.shape
    if out.shape != (batch, c):
        raise KernelError(f"global_average_pool: out {list(out.shape)} must be {[batch, c]}")
    data = _Rotation([k.sbuf((P, h * wd), x.dtype) for _ in range(2)])
    sums = _Rotation([k.sbuf((P, 1), "float32") for _ in range(2)])
    means = _Rotation([k.sbuf((P, 1), out.dtype) for _ in range(2)])
    for image in range(batch):
        for c0, c1 in chunks(c, P):
            tile, total, mean = data.take()[0:c1 - c0], sums.take()[0:c1 - c0], means.take()[0:c1 - c0]
            k.load(tile, x[image, c0:c1])
            k.tensor_reduce(total, tile, "add")
            k.activation(mean, total, "copy", scale=1.0 / (h * wd))
            k.store(out[image:image + 1, c0:c1], mean)

