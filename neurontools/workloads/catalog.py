"""From a workload spec ("llama-2-13b:tp=8,batch=4") to a Workload placed on free cores.

A spec is a preset name and optional key=value settings that override the command line's defaults:
cores (a count, or a list such as 0-3 or 4,5), tp, batch, seq_len (the prompt length of a decoder),
gen_len, dtype, layers (the preset's architecture with that many layers), layers_per_program, image (a
vision model's image size in pixels), rate, tag.
Cores are taken in order from those the process may use (NEURON_RT_VISIBLE_CORES or
NEURON_RT_NUM_CORES, as for any Neuron process), no session holds
and no earlier workload of the mix took; groups of two or more cores start on a device boundary,
since collectives need whole consecutive devices. A decoder without a tp gets the smallest degree
whose weights, KV cache and workspace fit in the free HBM.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.runtime.core_selection import parse_visible_cores, select_cores
from neurontools.daemon.errors import RequestError
from neurontools.daemon.device.topology import CORES_PER_DEVICE
from neurontools.workloads.architectures import DECODERS, ENCODERS, DecoderArchitecture, EncoderArchitecture
from neurontools.workloads.decoder import DecoderShape
from neurontools.workloads.decoder_workload import DecoderWorkload
from neurontools.workloads.encoder_workload import EncoderWorkload
from neurontools.workloads.resnet import VISION, VisionArchitecture
from neurontools.workloads.vision_workload import VisionWorkload
from neurontools.workloads.workload import Workload

TP_DEGREES = (1, 2, 4, 8, 12, 16, 24, 32)
ENCODER_CORES = 2  # data-parallel over the cores of a chip
RUNTIME_SLACK_PER_CORE = 128 << 20  # session, model code, scratchpads: what the quick fit adds to tensors


class SpecError(ValueError):
    pass


@dataclass
class Settings:
    """What a workload is asked to be; None means "choose"."""

    cores: str | None = None
    tp: int | None = None
    batch: int = 1
    seq_len: int | None = None
    gen_len: int = 32
    dtype: str = "bfloat16"
    layers: int | None = None
    layers_per_program: int | None = None
    image: int | None = None
    rate: float | None = None
    tag: str | None = None
    compute: bool = False


@dataclass
class Spec:
    preset: str
    settings: Settings = field(default_factory=Settings)


_KEYS = {"cores": str, "tp": int, "batch": int, "seq_len": int, "gen_len": int, "dtype": str, "layers": int,
         "layers_per_program": int, "image": int, "rate": float, "tag": str}


def presets() -> list[str]:
    return [*ENCODERS, *DECODERS, *VISION]


def parse_spec(text: str, defaults: Settings) -> Spec:
    name, _, rest = text.partition(":")
    if name not in ENCODERS and name not in DECODERS and name not in VISION:
        raise SpecError(f"unknown workload {name!r}; presets: {', '.join(presets())}")
    values = {}
    for item in filter(None, rest.split(",") if rest else []):
        key, has_value, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if key not in _KEYS or not has_value:
            raise SpecError(f"{text!r}: settings are key=value with keys {', '.join(_KEYS)}")
        try:
            values[key] = _KEYS[key](value)
        except ValueError:
            raise SpecError(f"{text!r}: {key} must be {_KEYS[key].__name__}, not {value!r}") from None
    if "dtype" in values:
        dtypes.from_name(values["dtype"])
    if values.get("layers", 1) < 1:
        raise SpecError(f"{text!r}: layers must be >= 1")
    return Spec(name, replace(defaults, **values))


class Placer:
    """Hands out free cores of a machine, in order."""

    def __init__(self, snapshot: pb.Snapshot, visible: list[int] | None = None, limit: str = "") -> None:
        self.snapshot = snapshot
        self.core_count = len(snapshot.cores)
        self.taken = {c.core_id for c in snapshot.cores if c.owner_session_id}
        self.free_bytes = {d.device_index: sum(s.free_bytes for s in d.stacks) for d in snapshot.devices}
        # Cores this process may not use are never handed out (they count as taken).
        self.visible = set(range(self.core_count)) if visible is None else set(visible)
        self.limit = limit  # what set them, for messages: "NEURON_RT_VISIBLE_CORES=0-3"
        self.taken |= set(range(self.core_count)) - self.visible

    @classmethod
    def for_this_process(cls, snapshot: pb.Snapshot, environ: Mapping[str, str] = os.environ) -> "Placer":
        """A placer limited, as every Neuron process is, by NEURON_RT_VISIBLE_CORES (those cores) or
        NEURON_RT_NUM_CORES (the first free contiguous run of that many), read with the daemon's own
        rules; the process's sessions then share those cores."""
        visible = environ.get("NEURON_RT_VISIBLE_CORES", "").strip()
        count = environ.get("NEURON_RT_NUM_CORES", "").strip()
        if not visible and not count:
            return cls(snapshot)
        owners = {c.core_id: f"session {c.owner_session_id}" for c in snapshot.cores if c.owner_session_id}
        try:
            if visible:  # precedence over a count, as in the runtime
                return cls(snapshot, parse_visible_cores(visible, len(snapshot.cores)),
                           f"NEURON_RT_VISIBLE_CORES={visible}")
            if not count.isdigit() or int(count) == 0:
                raise SpecError(f"NEURON_RT_NUM_CORES={count!r}: give a number of cores, such as 4")
            return cls(snapshot, select_cores("", int(count), len(snapshot.cores), owners),
                       f"NEURON_RT_NUM_CORES={count}")
        except RequestError as exc:  # the daemon's message: malformed list, no free run, ...
            raise SpecError(str(exc)) from None

    def take(self, count: int) -> list[int]:
        step = CORES_PER_DEVICE if count > 1 else 1
        for first in range(0, self.core_count - count + 1, step):
            cores = list(range(first, first + count))
            if not self.taken.intersection(cores):
                self.taken.update(cores)
                return cores
        free = self.core_count - len(self.taken)
        raise SpecError(f"no {count} consecutive free NeuronCores{' on whole devices' if step > 1 else ''} "
                        f"({free} of {self.core_count} free{self._within()})")

    def _within(self) -> str:
        return f" within {self.limit}" if self.limit else ""

    def claim(self, text: str) -> list[int]:
        cores = _core_list(text)
        if max(cores) >= self.core_count:
            raise SpecError(f"cores {text}: this machine has NeuronCores 0-{self.core_count - 1}")
        hidden = set(cores) - self.visible
        if hidden:
            raise SpecError(f"cores {text}: NeuronCore {min(hidden)} is not visible to this process ({self.limit})")
        busy = self.taken.intersection(cores)
        if busy:
            raise SpecError(f"cores {text}: NeuronCore {min(busy)} is already in use")
        self.taken.update(cores)
        return cores

    def fits(self, per_core_bytes: int, tp: int) -> bool:
        """Whether some free run of `tp` cores has devices with room for `per_core_bytes` per core."""
        step = CORES_PER_DEVICE if tp > 1 else 1
        for first in range(0, self.core_count - tp + 1, step):
            cores = range(first, first + tp)
            if self.taken.intersection(cores):
                continue
            per_device = per_core_bytes * min(tp, CORES_PER_DEVICE)
            if all(self.free_bytes.get(c // CORES_PER_DEVICE, 0) >= per_device for c in cores):
                return True
        return False


def _core_list(text: str) -> list[int]:
    cores: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            cores.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise SpecError(f"cores {text!r}: give a count (4) or a list such as 0-3 or 4,5") from None
    if not cores or len(set(cores)) != len(cores):
        raise SpecError(f"cores {text!r}: an empty or repeated list")
    return cores


def _cores(settings: Settings, placer: Placer, default: int) -> list[int]:
    text = settings.cores
    if text is None:
        return placer.take(default)
    if text.isdigit():
        return placer.take(int(text))
    return placer.claim(text)


def quick_bytes_per_core(shape: DecoderShape) -> int:
    """Weights, KV cache and workspaces of one core, the bulk of what a decoder holds."""
    size = dtypes.itemsize(dtypes.from_name(shape.dtype))
    per_layer = sum(r * c for r, c in {**shape.layer_weights(1), **shape.kv_cache(1)}.values())
    workspace = sum(r * c for tokens in (shape.batch * shape.prompt_len, shape.batch)
                    for r, c in shape.workspace(tokens).values())
    head = sum(r * c for r, c in shape.head_constants().values())
    return (shape.arch.layers * per_layer + workspace + head) * size + RUNTIME_SLACK_PER_CORE


def architecture(spec: Spec) -> EncoderArchitecture | DecoderArchitecture | VisionArchitecture:
    """The preset's architecture, with the layer count the spec overrides."""
    if spec.preset in VISION:
        if spec.settings.layers:
            raise SpecError(f"{spec.preset}: layers applies to transformer presets; a ResNet's depth is its "
                            "architecture (resnet-50)")
        return VISION[spec.preset]
    arch = ENCODERS.get(spec.preset) or DECODERS[spec.preset]
    return replace(arch, layers=spec.settings.layers) if spec.settings.layers else arch


def build(spec: Spec, placer: Placer) -> Workload:
    s = spec.settings
    arch = architecture(spec)
    if isinstance(arch, VisionArchitecture):
        return VisionWorkload(arch, _cores(s, placer, ENCODER_CORES), batch=s.batch, image_size=s.image,
                              dtype=s.dtype, compute=s.compute)
    if isinstance(arch, EncoderArchitecture):
        cores = _cores(s, placer, ENCODER_CORES)
        return EncoderWorkload(arch, cores, batch=s.batch, seq_len=s.seq_len or 128,
                               dtype=s.dtype, compute=s.compute, layers_per_program=s.layers_per_program)
    prompt = s.seq_len or 128
    tp = s.tp or choose_tp(arch, s, prompt, placer)
    cores = _cores(s, placer, tp)
    return DecoderWorkload(arch, cores, tp=tp, batch=s.batch, prompt_len=prompt, gen_len=s.gen_len,
                           dtype=s.dtype, compute=s.compute, layers_per_program=s.layers_per_program)


def choose_tp(arch: DecoderArchitecture, settings: Settings, prompt: int, placer: Placer) -> int:
    """The smallest tensor-parallel degree that fits; the largest the machine has if none does (its
    load then fails with the shortfall)."""
    usable = [tp for tp in TP_DEGREES if tp <= placer.core_count - len(placer.taken)]
    if not usable:
        raise SpecError(f"{arch.name}: no free NeuronCores")
    for tp in usable:
        shape = DecoderShape(arch, tp, settings.batch, prompt, settings.gen_len, settings.dtype)
        try:
            shape.check()
        except ValueError:
            continue
        if placer.fits(quick_bytes_per_core(shape), tp):
            return tp
    return usable[-1]
