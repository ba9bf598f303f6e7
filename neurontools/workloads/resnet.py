"""ResNet-50 (v1.5, the torchvision layout: the stride on each bottleneck's 3 x 3) as NeuronCore-v2 programs.

Batch normalization is folded into the convolutions, as inference compilers do: each convolution has
weights [Ci, KH, KW, Co] and a per-channel bias [Co, 1] (float32). Images are channels-first
[B, C, H, W] in HBM. The convolutions are neurontools.kernels.convolution's: every tap is a matmul
reading the padded input through an access pattern (no im2col).

Programs (one copy per core, data-parallel like the encoders):
    stem      x [B, 3, S, S] -> relu(conv 7x7/2) -> max pool 3x3/2                       -> a0
    block i   a{i} -> relu(1x1) -> relu(3x3, stride s) -> 1x1 (+ shortcut: a{i} or a 1x1/s projection),
              relu                                                                        -> a{i+1}
    head      a16 -> global average pool -> fully connected (2048 -> 1000)                -> logits
The weights of a program are its constants (with data in compute mode).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from neurontools._proto import neurond_pb2 as pb
from neurontools.kernels import convolution as conv
from neurontools.kernels import library
from neurontools.workloads.pooled_kernel import PooledKernel
from neurontools.workloads.weights import WeightMaker


@dataclass(frozen=True)
class VisionArchitecture:
    """A ResNet with bottleneck blocks: `blocks` per stage, stage widths 64, 128, 256, 512 (x4 out)."""

    name: str
    blocks: tuple[int, ...] = (3, 4, 6, 3)
    image_size: int = 224
    classes: int = 1000
    stem_width: int = 64
    expansion: int = 4

    def parameters(self) -> int:
        total = 0
        for conv_shape in _all_convs(self):
            ci, kh, kw, co = conv_shape[1]
            total += ci * kh * kw * co + co
        return total + self.final_width * self.classes + self.classes

    @property
    def final_width(self) -> int:
        return self.stem_width * 2 ** (len(self.blocks) - 1) * self.expansion

    def block_plan(self) -> list[tuple[int, int, int]]:
        """(input channels, bottleneck width, stride) of every block, in order."""
        plan, channels = [], self.stem_width
        for stage, count in enumerate(self.blocks):
            width = self.stem_width * 2 ** stage
            for i in range(count):
                plan.append((channels, width, 2 if i == 0 and stage > 0 else 1))
                channels = width * self.expansion
        return plan


VISION: dict[str, VisionArchitecture] = {a.name: a for a in (VisionArchitecture("resnet-50"),)}


@dataclass(frozen=True)
class VisionShape:
    arch: VisionArchitecture
    batch: int
    image_size: int
    dtype: str = "bfloat16"

    def sizes(self) -> list[int]:
        """Spatial size of a0 .. a{n}: after the stem, then after each block."""
        size = conv.output_size(conv.output_size(self.image_size, 7, 2, 3), 3, 2, 1)
        sizes = [size]
        for _, _, stride in self.arch.block_plan():
            size = conv.output_size(size, 3, stride, 1)
            sizes.append(size)
        return sizes

    def program_names(self) -> list[str]:
        return ["stem", *(f"block{i}" for i in range(len(self.arch.block_plan()))), "head"]

    def workspace(self, program: str) -> dict[str, tuple[int, ...]]:
        """A program's HBM parameters: its input, output and intermediates (inputs first)."""
        b, sizes, plan = self.batch, self.sizes(), self.arch.block_plan()
        stem = self.arch.stem_width
        if program == "stem":
            first = conv.output_size(self.image_size, 7, 2, 3)
            return {"image": (b, 3, self.image_size, self.image_size), "stem.conv": (b, stem, first, first),
                    "a0": (b, stem, sizes[0], sizes[0])}
        if program == "head":
            n = len(plan)
            return {f"a{n}": (b, self.arch.final_width, sizes[n], sizes[n]), "pooled": (b, self.arch.final_width),
                    "logits": (b, self.arch.classes)}
        i = int(program.removeprefix("block"))
        ci, width, stride = plan[i]
        out = width * self.arch.expansion
        inner = (b, width, sizes[i], sizes[i])
        space = {f"a{i}": (b, ci, sizes[i], sizes[i]), f"b{i}.1": inner,
                 f"b{i}.2": (b, width, sizes[i + 1], sizes[i + 1])}
        if stride != 1 or ci != out:
            space[f"b{i}.shortcut"] = (b, out, sizes[i + 1], sizes[i + 1])
        space[f"a{i + 1}"] = (b, out, sizes[i + 1], sizes[i + 1])
        return space

    def convs(self, program: str) -> list[tuple[str, tuple[int, int, int, int], int, int]]:
        """(name, weight shape [Ci, KH, KW, Co], stride, padding) of a program's convolutions."""
        prefix = "stem." if program == "stem" else program.replace("block", "b") + "."
        return [c for c in _all_convs(self.arch) if c[0].startswith(prefix)]


def _all_convs(arch: VisionArchitecture) -> list[tuple[str, tuple[int, int, int, int], int, int]]:
    convs = [("stem.conv", (3, 7, 7, arch.stem_width), 2, 3)]
    for i, (ci, width, stride) in enumerate(arch.block_plan()):
        out = width * arch.expansion
        convs += [(f"b{i}.conv1", (ci, 1, 1, width), 1, 0), (f"b{i}.conv2", (width, 3, 3, width), stride, 1),
                  (f"b{i}.conv3", (width, 1, 1, out), 1, 0)]
        if stride != 1 or ci != out:
            convs.append((f"b{i}.projection", (ci, 1, 1, out), stride, 0))
    return convs


def random_weights(shape: VisionShape, seed: int = 0) -> dict[str, np.ndarray]:
    """Folded weights and biases of every convolution and of the classifier, rounded to the dtype."""
    make = WeightMaker(shape.dtype, seed)
    weights = {}
    for name, (ci, kh, kw, co), _, _ in _all_convs(shape.arch):
        weights[f"{name}.weight"] = make.matrix(ci * kh * kw, co).reshape(ci, kh, kw, co)
        weights[f"{name}.bias"] = make.offsets(co, 1)
    weights["fc.weight"] = make.matrix(shape.arch.final_width, shape.arch.classes)
    weights["fc.bias"] = make.offsets(1, shape.arch.classes)
    return weights


def build_program(shape: VisionShape, program: str, weights: Mapping[str, np.ndarray] | None = None) -> pb.Program:
    k = PooledKernel()
    space = shape.workspace(program)
    first = next(iter(space))
    io = {name: (k.input if name == first else k.output)(name, dims, shape.dtype) for name, dims in space.items()}

    def constant(name: str, dims: tuple[int, ...], dtype: str):
        if weights is not None:
            return k.constant(name, weights[name], dtype=dtype)
        return k.constant(name, shape=dims, dtype=dtype)

    params = {}
    for name, dims, _, _ in shape.convs(program):
        params[name] = (constant(f"{name}.weight", dims, shape.dtype), constant(f"{name}.bias", (dims[3], 1), "float32"))

    def op(operation, *args, **kwargs) -> None:
        with k.operation():
            operation(k, *args, **kwargs)

    if program == "stem":
        op(conv.conv2d, io["stem.conv"], io["image"], *params["stem.conv"], stride=2, padding=3, function="relu")
        op(conv.max_pool2d, io["a0"], io["stem.conv"])
    elif program == "head":
        fc_w = constant("fc.weight", (shape.arch.final_width, shape.arch.classes), shape.dtype)
        fc_b = constant("fc.bias", (1, shape.arch.classes), shape.dtype)
        op(conv.global_average_pool, io["pooled"], io[first])
        op(library.matmul, io["logits"], io["pooled"], fc_w, bias=fc_b)
    else:
        i = int(program.removeprefix("block"))
        stride = shape.arch.block_plan()[i][2]
        x, out = io[f"a{i}"], io[f"a{i + 1}"]
        op(conv.conv2d, io[f"b{i}.1"], x, *params[f"b{i}.conv1"], function="relu")
        op(conv.conv2d, io[f"b{i}.2"], io[f"b{i}.1"], *params[f"b{i}.conv2"], stride=stride, padding=1,
           function="relu")
        shortcut = x
        if f"b{i}.projection" in params:
            shortcut = io[f"b{i}.shortcut"]
            op(conv.conv2d, shortcut, x, *params[f"b{i}.projection"], stride=stride)
        op(conv.conv2d, out, io[f"b{i}.2"], *params[f"b{i}.conv3"], function="relu", residual=shortcut)
    return k.program()


def programs(shape: VisionShape, weights: Mapping[str, np.ndarray] | None = None) -> dict[str, pb.Program]:
    return {name: build_program(shape, name, weights) for name in shape.program_names()}


# -- numpy reference (compute mode) -------------------------------------------------------------------

def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, padding: int) -> np.ndarray:
    _, _, h, wd = x.shape
    _, kh, kw, _ = w.shape
    oh, ow = conv.output_size(h, kh, stride, padding), conv.output_size(wd, kw, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = np.broadcast_to(b[:, 0][None, :, None, None], (x.shape[0], w.shape[3], oh, ow)).astype(np.float64)
    for dy in range(kh):
        for dx in range(kw):
            window = xp[:, :, dy:dy + stride * (oh - 1) + 1:stride, dx:dx + stride * (ow - 1) + 1:stride]
            out = out + np.einsum("bchw,co->bohw", window, w[:, dy, dx, :], optimize=True)
    return out


def reference(shape: VisionShape, weights: Mapping[str, np.ndarray], images: np.ndarray) -> np.ndarray:
    """Logits [B, classes] in float64 from the same (rounded) weights; no intermediate rounding."""
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    w = {name: value.astype(np.float64) for name, value in weights.items()}
    x = relu(_conv(images.astype(np.float64), w["stem.conv.weight"], w["stem.conv.bias"], 2, 3))
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    size = conv.output_size(x.shape[2], 3, 2, 1)
    x = np.max([padded[:, :, dy:dy + 2 * (size - 1) + 1:2, dx:dx + 2 * (size - 1) + 1:2]
                for dy in range(3) for dx in range(3)], axis=0)
    for i, (ci, width, stride) in enumerate(shape.arch.block_plan()):
        p = f"b{i}"
        y = relu(_conv(x, w[f"{p}.conv1.weight"], w[f"{p}.conv1.bias"], 1, 0))
        y = relu(_conv(y, w[f"{p}.conv2.weight"], w[f"{p}.conv2.bias"], stride, 1))
        shortcut = (_conv(x, w[f"{p}.projection.weight"], w[f"{p}.projection.bias"], stride, 0)
                    if f"{p}.projection.weight" in w else x)
        x = relu(_conv(y, w[f"{p}.conv3.weight"], w[f"{p}.conv3.bias"], 1, 0) + shortcut)
    pooled = x.mean(axis=(2, 3))
    return pooled @ w["fc.weight"] + w["fc.bias"]
