"""The NeuronCore-v2 timing model: every cost constant with its source, the cost of each kind of
instruction, and the scheduler that turns a program into a modeled device time.

"ref §x.y" points into shared/reference/inferentia2.md, which cites the AWS documents behind each figure.
docs/timing-model.md explains the model, its calibration and what it leaves out.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from dataclasses import dataclass
from typing import Sequence

from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.device import topology

KiB = 1 << 10
GiB = 1 << 30
NS_PER_S = 1e9

# -- clocks (ref §2.2 engine table, from the NKI architecture guide) ---------------------------------
TENSOR_CLOCK_HZ = 2.8e9
VECTOR_CLOCK_HZ = 1.12e9
SCALAR_CLOCK_HZ = 1.4e9
GPSIMD_CLOCK_HZ = 1.4e9
# The SBUF/PSUM access interfaces run at 1.4 GHz (ref §2.3 addressing rules).
SRAM_CLOCK_HZ = 1.4e9

# -- Tensor engine (ref §3.5) ----------------------------------------------------------------------
# MultiplyMoving initiation interval: max(N, 64) cycles for bf16/fp16/tf32/fp8, N = moving free size.
MATMUL_MIN_CYCLES = 64
# "FP32 is about 4x that".
MATMUL_FP32_FACTOR = 4
# A matmul touches three tensors: stationary and moving (SBUF) and its PSUM destination.
MATMUL_TENSOR_ACCESSES = 3

# -- SBUF/PSUM access (ref §2.3, §3.5) ---------------------------------------------------------------
# "Each tensor access costs about 60 cycles of fixed overhead".
SRAM_ACCESS_CYCLES = 60

# "Each interface reads or writes 128 elements per cycle ... when the innermost stride is <= 16 B. Above
# 16 B the bandwidth halves" (ref §2.3): charged to the Tensor engine's moving operand (access patterns).
NARROW_STRIDE_BYTES = 16

# -- Vector and Scalar engines (ref §3.5) -----------------------------------------------------------
# "~N cycles for a one-input instruction and 2N for two inputs" (N = elements per partition);
# "add about 100 cycles static overhead when instructions are tiny or back-to-back dependent".
STATIC_OVERHEAD_CYCLES = 100
# Minimum initiation interval of any Vector/Scalar/GpSimd instruction (MIN_II, ref §3.5 reciprocal
# rule; the NKI ISA docs give max(MIN_II, N) for tensor_copy on every engine).
MIN_II_CYCLES = 64
# activation with an add-reduce reads the accumulator registers once more: "ActReadAccumulator ~64
# cycles" (ref §3.5); the NKI docs give max(MIN_II, N) + MIN_II for activation_reduce.
ACT_READ_ACCUMULATOR_CYCLES = 64
# A result handed from one compute engine to another goes through a semaphore: the producer signals when
# its write is done, the consumer's queue sees it and starts (a same-engine dependency needs none: the
# in-order pipeline orders it). The NKI perf guide's 189 ns chain (ref §3.5) is on one engine, so it does
# not include this; no figure is published. CALIBRATED: 28 cycles at 1.4 GHz = 20 ns, fitted on the seed
# table's ELECTRA-large batch 1 seq 256 (attention's block chain hops engines 7-10 times per key block),
# bounded by BERT-large batch 10 seq 128 (docs/timing-model.md "Calibration").
ENGINE_SEMAPHORE_CYCLES = 28
ENGINE_SEMAPHORE_NS = ENGINE_SEMAPHORE_CYCLES / SRAM_CLOCK_HZ * NS_PER_S

# -- GpSimd engine ("no rule of thumb; costs are per instruction", ref §3.5) ------------------------
# Fixed start-up of instructions that generate a pattern or run a program on the 8 processors: the NKI
# ISA docs give "150 + N GpSimd cycles" for iota and affine_select (NC-v2); custom operators pay it too.
GPSIMD_SETUP_CYCLES = 150
# A transcendental costs about 4 cycles per element: "rsqrt on GpSimd is 4x slower than on ScalarE"
# (ref §3.5), which does one per cycle per lane. POWER = exp(b * log(a)) takes two.
GPSIMD_TRANSCENDENTAL_CYCLES = 4

# -- DMA (ref §2.4, §3.5) --------------------------------------------------------------------------
DMA_ENGINES_PER_CORE = 16
# Peak per DMA engine: 27 GiB/s in the NKI architecture guide (the NKI DMA overview says 27.2 GB/s for
# NC-v2); the NKI DMA bandwidth guide measures 17 B/ns on TRN1. We take the architecture guide's peak
# because 32 engines x 27 GiB/s matches the chip's "1 TB/s of DMA bandwidth" (ref §2.1).
DMA_ENGINE_BYTES_PER_S = 27 * GiB
# HBM: 820 GiB/s per chip shared by its 2 cores (ref §2.1, §1.1 summary table).
HBM_BYTES_PER_S_PER_CHIP = 820 * GiB
CORES_PER_CHIP = 2
HBM_BYTES_PER_S_PER_CORE = HBM_BYTES_PER_S_PER_CHIP / CORES_PER_CHIP
# "~1300 ns cross-engine semaphore-to-start latency per DMA" (NKI DMA bandwidth guide, ref §2.4).
DMA_START_LATENCY_NS = 1300.0
# Fixed cost of one DMA descriptor (one contiguous buffer). Not published: calibrated so that the DMA
# guide's thresholds hold -- 256 B per partition is overhead-bound (~37 % of peak), 2 KiB approaches
# peak (~82 %), 4 KiB saturates (~90 %). See docs/timing-model.md.
DMA_DESCRIPTOR_OVERHEAD_NS = 16.0
# Largest contiguous buffer one descriptor carries; longer runs are split so a big contiguous copy can
# spread over several engines. An assumption (the runtime's real chunking is not documented).
DMA_MAX_DESCRIPTOR_BYTES = 64 * KiB

# -- Collectives over NeuronLink (ref §1.2, §4.6; docs/timing-model.md "Collectives") ----------------
# NeuronLink-v2: "96 GiB/sec" per link (inf2-topology.png, the topology catalog's figure). The reference
# cannot confirm whether that is per direction or both together; we read it as per direction.
LINK_BYTES_PER_S = topology.LINK_BYTES_PER_SECOND
# "Per-hop latency ~1-2 us (depends on HBM load)" (intranode collective guide, ref §4.6): the middle. Paid
# once per step of an algorithm per link hop of its longest route (a step within one device pays one).
COLLECTIVE_HOP_LATENCY_NS = 1500.0
# -- Fixed costs of running a model (docs/timing-model.md "Fixed costs") -----------------------------
# Launching one execution of a compiled model on its cores and synchronizing at its end: nccom-test's
# floor of a 2-rank all-reduce, 58 us at 1 KiB (ref §4.6), is one such execution around a collective the
# model times at 2 x 1.5 us. Paid once per model step of a workload (an encoder request, a decoder's
# prefill, each decode step): the stage programs a step is split into here are an artifact of neurond's
# instruction budget, which the real runtime runs as one program.
EXECUTION_LAUNCH_NS = 55_000.0
# Host to device and back: the request's inputs and outputs cross PCIe Gen4 x16 (Inf2's Neuron devices
# are PCIe devices, ref §1.2), 32 GB/s nominal.
HOST_LINK_BYTES_PER_S = 32e9
# Starting a generation, once per decoder request before its prefill: the serving stack's work besides
# the model (the inputs replicated to every rank, the context-encoding program launched on each, the
# first token sampled on the host). Not in the reference: calibrated on the one published time to first
# token (llama-2-7b, inf2.48xlarge, tp=24: 27.6 ms), the least grounded constant here.
GENERATION_START_NS = 16.1e6

# Ranks on the same device exchange through its HBM, each copy read and written by the collective DMA
# rings -- not at the chip's full HBM bandwidth: nccom-test's 2-rank all-reduce (two cores of one device)
# moves 1 GiB in 18.93 ms (ref §4.6). Its two steps each copy S within the device: 4 S / rate + 2 hop
# latencies + one launch = 18.93 ms gives 4 GiB / 18.872 ms = 212 GiB/s (26 % of the chip's 820 GiB/s).
COLLECTIVE_HBM_BYTES_PER_S = 212 * GiB
# Collectives run on dedicated hardware "not shared with computational resources" (ref §4.6): a queue of
# their own per core, in program order, next to the engines. Not a pb.Engine: it has no busy counter.
COLLECTIVE_QUEUE = -2

# -- Fusion (docs/timing-model.md "Fusion") ----------------------------------------------------------
# The Neuron compiler keeps an operation's output in SBUF for the next operation that reads it, instead of
# storing it to HBM and loading it back, where it fits. Programs here are written op by op (store, then
# load); the schedule models what the compiler makes of them: a load from HBM of data that a store just
# wrote from SBUF, still among the last FUSION_SBUF_BYTES stored, reads it where it is -- it waits for the
# data to be in SBUF, not for the store's round trip, and takes no DMA time. The store itself still runs
# (the data may be needed in HBM later). The budget is half of the core's 24 MiB SBUF (ref §2.3): the other
# half holds the operations' working tiles (weight panels, double buffers).
FUSION_SBUF_BYTES = 12 * 1024 * KiB

COMPUTE_ENGINES = (pb.TENSOR, pb.VECTOR, pb.SCALAR, pb.GPSIMD)
# "Vector and GpSimd cannot access SBUF in parallel, Vector and Scalar cannot access PSUM in parallel"
# (ref §2.2): such engines' accesses share a port, held for the instruction's occupancy. (The Tensor
# engine and the DMA queues have paths of their own.) Port -> (the memory, the engines sharing it).
PORTS = {"SBUF, Vector and GpSimd": ("SBUF", (pb.VECTOR, pb.GPSIMD)),
         "PSUM, Vector and Scalar": ("PSUM", (pb.VECTOR, pb.SCALAR))}
ENGINES = (*COMPUTE_ENGINES, pb.DMA)


PEAK_FLOPS_PER_S = 2 * 128 * 128 * TENSOR_CLOCK_HZ  # a 128 x 128 systolic array, one MAC per cycle (bf16)


def time_split(total_ns: float, busy_ns: dict[int, float]) -> dict[str, float]:
    """What a program's time alone is made of: the busiest compute engine's busy time ("compute"), the DMA
    busy time beyond it ("DMA"), and the rest, which no engine fills: dependency waits and latencies
    ("latency"). The largest part is what bounds the program (workloads/estimate.py, neuron-profile)."""
    compute = min(total_ns, max(busy_ns[e] for e in COMPUTE_ENGINES))
    dma = min(total_ns - compute, busy_ns[pb.DMA])
    return {"compute": compute, "DMA": dma, "latency": total_ns - compute - dma}


@dataclass(frozen=True)
class InstructionCost:
    """What one instruction costs on its engine.

    occupancy_ns: how long it holds its engine (its initiation interval); the next instruction on the
    same engine can start after that. latency_ns: how much later its results are visible to dependent
    instructions (pipeline depth, SRAM access and semaphore overheads) -- it does not hold the engine.
    dma_queues: for DMA, how many of the core's 16 DMA engines the transfer is spread over.
    """

    engine: int
    occupancy_ns: float
    latency_ns: float
    dma_queues: int = 0
    moves: str = ""  # DMA between SBUF and HBM: "store" (to HBM) or "load" (from HBM); else ""
    nbytes: int = 0  # DMA: bytes moved


def _ns(cycles: float, clock_hz: float) -> float:
    return cycles / clock_hz * NS_PER_S


def matmul_cost(moving_free: int, fp32: bool, moving_stride_bytes: int = 0) -> InstructionCost:
    """One MultiplyMoving step; LoadStationary is assumed hidden behind the previous matmul. A moving
    operand read with an innermost stride above 16 B streams at half the rate (ref §2.3)."""
    cycles = max(moving_free, MATMUL_MIN_CYCLES) * (MATMUL_FP32_FACTOR if fp32 else 1)
    if moving_stride_bytes > NARROW_STRIDE_BYTES:
        cycles *= 2
    return InstructionCost(pb.TENSOR, _ns(cycles, TENSOR_CLOCK_HZ),
                           _ns(MATMUL_TENSOR_ACCESSES * SRAM_ACCESS_CYCLES, SRAM_CLOCK_HZ))


def _streaming_cost(engine: int, clock_hz: float, stream_cycles: float, tensors: int) -> InstructionCost:
    """An instruction streaming for `stream_cycles` (at least MIN_II) over `tensors` SBUF/PSUM tensors
    (inputs and outputs, each one access of fixed overhead); static overhead on top of its latency."""
    latency = _ns(STATIC_OVERHEAD_CYCLES, clock_hz) + _ns(tensors * SRAM_ACCESS_CYCLES, SRAM_CLOCK_HZ)
    return InstructionCost(engine, _ns(max(MIN_II_CYCLES, stream_cycles), clock_hz), latency)


def vector_cost(stream_cycles: float, tensors: int) -> InstructionCost:
    """A Vector engine instruction: about N cycles per input read, N = elements per partition (ref §3.5)."""
    return _streaming_cost(pb.VECTOR, VECTOR_CLOCK_HZ, stream_cycles, tensors)


def scalar_cost(stream_cycles: float, tensors: int, *, accumulate: bool = False) -> InstructionCost:
    """A Scalar engine instruction: N cycles, one input; scale and bias are free (ref §3.5)."""
    cost = _streaming_cost(pb.SCALAR, SCALAR_CLOCK_HZ, stream_cycles, tensors)
    if accumulate:
        cost = dataclasses.replace(
            cost, occupancy_ns=cost.occupancy_ns + _ns(ACT_READ_ACCUMULATOR_CYCLES, SCALAR_CLOCK_HZ))
    return cost


def gpsimd_cost(stream_cycles: float, tensors: int) -> InstructionCost:
    """A GpSimd engine instruction; `stream_cycles` per instruction kind (docs/timing-model.md)."""
    return _streaming_cost(pb.GPSIMD, GPSIMD_CLOCK_HZ, stream_cycles, tensors)


def dma_cost(nbytes: int, descriptors: int, touches_hbm: bool, moves: str = "") -> InstructionCost:
    """A transfer of `nbytes` made of `descriptors` contiguous buffers.

    Descriptors are dealt out to min(16, descriptors) DMA engines; each engine moves its share one
    descriptor at a time, paying a fixed overhead per descriptor. When HBM is involved, the 16 engines
    together cannot exceed the core's share of HBM bandwidth, so each runs at most at 1/16 of it.
    """
    descriptors = max(descriptors, math.ceil(nbytes / DMA_MAX_DESCRIPTOR_BYTES))
    queues = min(DMA_ENGINES_PER_CORE, descriptors)
    rate = DMA_ENGINE_BYTES_PER_S
    if touches_hbm:
        rate = min(rate, HBM_BYTES_PER_S_PER_CORE / DMA_ENGINES_PER_CORE)
    per_descriptor_ns = DMA_DESCRIPTOR_OVERHEAD_NS + nbytes / descriptors / rate * NS_PER_S
    occupancy = math.ceil(descriptors / queues) * per_descriptor_ns
    return InstructionCost(pb.DMA, occupancy, DMA_START_LATENCY_NS, queues, moves, nbytes)


def collective_step_ns(link_bytes: int, device_copy_bytes: int, hops: int) -> float:
    """One step of a collective algorithm: the busiest link direction carries `link_bytes` and the busiest
    device copies `device_copy_bytes` within its HBM (both concurrently), then the step's longest route
    pays the per-hop latency for each of its `hops` links (at least one)."""
    transfer_s = max(link_bytes / LINK_BYTES_PER_S, 2 * device_copy_bytes / COLLECTIVE_HBM_BYTES_PER_S)
    return transfer_s * NS_PER_S + max(hops, 1) * COLLECTIVE_HOP_LATENCY_NS


# A region of a named tensor or tile: (name, box) where box is (start0, stop0, start1, stop1, ...).
Region = tuple[str, tuple[int, ...]]

# Past this many live regions of one name, the oldest half is merged into one region: their bounding box
# with their latest finish. Conservative (it can only add waits) and tight for the usual sweeps over row
# or column bands; it keeps dependency tracking linear in program length.
MAX_REGIONS_PER_NAME = 64
_MERGED = -1  # engine of a merged region: not an engine, so no same-engine ordering applies


def _overlaps(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    if len(a) == 4:  # tiles and most views are 2-D: the hot case, unrolled (compile speed)
        return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]
    for i in range(0, len(a), 2):
        if a[i] >= b[i + 1] or b[i] >= a[i + 1]:
            return False
    return True


def _contains(outer: tuple[int, ...], inner: tuple[int, ...]) -> bool:
    if len(outer) == 4:
        return outer[0] <= inner[0] and inner[1] <= outer[1] and outer[2] <= inner[2] and inner[3] <= outer[3]
    for i in range(0, len(outer), 2):
        if inner[i] < outer[i] or inner[i + 1] > outer[i + 1]:
            return False
    return True


def _bounding_box(boxes: list[tuple[int, ...]]) -> tuple[int, ...]:
    return tuple(min(b[i] for b in boxes) if i % 2 == 0 else max(b[i] for b in boxes)
                 for i in range(len(boxes[0])))


class _Accesses:
    """The live reads and writes of one name: (box, engine) -> finish time of the latest access."""

    __slots__ = ("writes", "reads")

    def __init__(self) -> None:
        self.writes: dict[tuple[tuple[int, ...], int], float] = {}
        self.reads: dict[tuple[tuple[int, ...], int], float] = {}

    @staticmethod
    def record(table: dict[tuple[tuple[int, ...], int], float], box: tuple[int, ...], engine: int,
               finish: float) -> None:
        key = (box, engine)
        table[key] = max(table.get(key, 0.0), finish)
        if len(table) > MAX_REGIONS_PER_NAME:
            oldest = sorted(table, key=table.__getitem__)[: len(table) // 2]
            latest = max(table.pop(k) for k in oldest)
            _Accesses.record(table, _bounding_box([b for b, _ in oldest]), _MERGED, latest)


# Idle intervals each DMA queue remembers for back-filling; older ones are forgotten (conservative).
MAX_DMA_GAPS = 8


class _DmaQueue:
    """One DMA engine: when it is next free, and the idle gaps before that a ready transfer can fill."""

    __slots__ = ("free", "gaps")

    def __init__(self) -> None:
        self.free = 0.0
        self.gaps: list[tuple[float, float]] = []  # (start, end), in time order

    def earliest(self, ready: float, duration: float) -> float:
        if ready >= self.free:  # every gap ends by `free`: none can start at or after `ready`
            return ready
        for start, end in self.gaps:
            begin = max(start, ready)
            if begin + duration <= end:
                return begin
        return max(self.free, ready)

    def reserve(self, begin: float, duration: float) -> None:
        end = begin + duration
        if begin >= self.free:
            if begin > self.free:
                self.gaps.append((self.free, begin))
                if len(self.gaps) > MAX_DMA_GAPS:  # gap splits may have added several
                    del self.gaps[:-MAX_DMA_GAPS]
            self.free = end
            return
        for i, (start, stop) in enumerate(self.gaps):
            if start <= begin and end <= stop:
                self.gaps[i:i + 1] = [(a, b) for a, b in ((start, begin), (end, stop)) if b > a]
                return


class _Resident:
    """What fusion keeps in SBUF: HBM regions recently stored from SBUF, oldest first, at most
    FUSION_SBUF_BYTES; each with the time its data was in SBUF. Regions of one name never overlap: a newer
    write drops the older entries it overlaps."""

    def __init__(self) -> None:
        self._entries: collections.OrderedDict[int, tuple[Region, float, int]] = collections.OrderedDict()
        self._by_name: dict[str, set[int]] = {}
        self._bytes = 0
        self._next = 0

    def keep(self, region: Region, available: float, nbytes: int) -> None:
        if nbytes > FUSION_SBUF_BYTES:
            return
        key, self._next = self._next, self._next + 1
        self._entries[key] = (region, available, nbytes)
        self._by_name.setdefault(region[0], set()).add(key)
        self._bytes += nbytes
        while self._bytes > FUSION_SBUF_BYTES:
            self._drop(next(iter(self._entries)))

    def forget(self, region: Region) -> None:
        name, box = region
        for key in [k for k in self._by_name.get(name, ()) if _overlaps(self._entries[k][0][1], box)]:
            self._drop(key)

    def available(self, region: Region) -> float | None:
        """When the data of `region` is in SBUF, if stored entries cover all of it; else None."""
        name, box = region
        covered, latest = 0, 0.0
        for key in self._by_name.get(name, ()):
            (_, other), available, _ = self._entries[key]
            if _overlaps(other, box):
                covered += _volume(_intersection(other, box))
                latest = max(latest, available)
        return latest if covered and covered == _volume(box) else None

    def _drop(self, key: int) -> None:
        region, _, nbytes = self._entries.pop(key)
        self._by_name[region[0]].discard(key)
        self._bytes -= nbytes


def _intersection(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(max(a[i], b[i]) if i % 2 == 0 else min(a[i], b[i]) for i in range(len(a)))


def _volume(box: tuple[int, ...]) -> int:
    return math.prod(box[i + 1] - box[i] for i in range(0, len(box), 2))


class Schedule:
    """Issues instructions in program order onto the engines of one NeuronCore-v2.

    The four compute engines each run one in-order stream: an instruction starts at max(its engine's
    free time, the finish of every earlier instruction it depends on). Dependencies are region-level RAW,
    WAR and WAW on the tensors and tiles it touches. WAR and WAW between two instructions of the same
    compute engine need no wait: the in-order pipeline already orders them. RAW always waits for the
    producer's finish (its latency is exposed).

    A DMA transfer is dealt to the `dma_queues` of the 16 DMA engines that can take it earliest; each
    engine moves its share on its own and may fill an idle gap left by an earlier transfer that had to
    wait (the 16 queues per engine keep a blocked transfer from holding up a ready one). The transfer
    finishes when its last engine is done, plus the DMA start latency.

    Collectives take a fifth in-order queue of their own (COLLECTIVE_QUEUE): the ranks of a model agree on
    when each one runs (collectives/planning.py), so the schedule only says when this core is ready for it.
    """

    def __init__(self) -> None:
        self._engine_free = {engine: 0.0 for engine in COMPUTE_ENGINES}
        self._queues = [_DmaQueue() for _ in range(DMA_ENGINES_PER_CORE)]
        self._collectives_free = 0.0
        self._accesses: dict[str, _Accesses] = {}
        self._resident = _Resident()
        self._port_free = dict.fromkeys(PORTS, 0.0)
        self.makespan_ns = 0.0
        self.busy_ns: dict[int, float] = {engine: 0.0 for engine in ENGINES}
        self.instructions: dict[int, int] = {engine: 0 for engine in ENGINES}
        self.recorder = None  # a profile_capture.Recorder while a profile is taken

    def issue(self, cost: InstructionCost, reads: Sequence[Region], writes: Sequence[Region], *,
              psum: bool = False, sbuf: bool = False) -> None:
        """Schedules one instruction after those already issued; `psum`, `sbuf`: it reads or writes them."""
        engine = cost.engine
        if cost.moves == "load" and reads:
            available = self._resident.available(reads[0])
            if available is not None:  # fused: the data is still in SBUF where its producer left it
                finish = max(self._ready(engine, (), writes), available)
                self.instructions[engine] += 1
                if self.recorder is not None:
                    self.recorder.placed(engine, finish, finish, finish, finish, 0.0, nbytes=cost.nbytes,
                                         direction="load", fused=True)
                self._record(engine, finish, reads, writes)
                return
        ready = self._ready(engine, reads, writes)
        if engine != pb.DMA:
            start = max(ready, self._engine_free[engine])
            ports = [port for port, (touches, engines) in PORTS.items() if engine in engines
                     and (psum if touches == "PSUM" else sbuf)]
            for port in ports:  # engines that share a port take turns at it (ref §2.2)
                start = max(start, self._port_free[port])
            for port in ports:
                self._port_free[port] = start + cost.occupancy_ns
            self._engine_free[engine] = start + cost.occupancy_ns
            self.busy_ns[engine] += cost.occupancy_ns
            finish = start + cost.occupancy_ns + cost.latency_ns
            if self.recorder is not None:
                self.recorder.placed(engine, start, start + cost.occupancy_ns, finish, ready, cost.occupancy_ns,
                                     semaphore_ns=ENGINE_SEMAPHORE_NS)
        else:
            duration = cost.occupancy_ns
            queues = self._queues
            offers = [(ready if ready >= queue.free else queue.earliest(ready, duration), i)
                      for i, queue in enumerate(queues)]
            if cost.dma_queues < len(queues):
                offers = sorted(offers)[: cost.dma_queues]
            last = 0.0
            for begin, i in offers:
                queues[i].reserve(begin, duration)
                last = begin if begin > last else last
            finish = last + duration + cost.latency_ns
            # DMA busy time is capacity-weighted: engine-time used divided by the 16 engines.
            share = duration * cost.dma_queues / DMA_ENGINES_PER_CORE
            self.busy_ns[engine] += share
            if self.recorder is not None:
                self.recorder.placed(engine, min(begin for begin, _ in offers), last + duration, finish, ready, share,
                                     nbytes=cost.nbytes, direction=cost.moves or "copy",
                                     queues=[[i, begin, begin + duration] for begin, i in offers])
        self.instructions[engine] += 1
        for region in writes:
            self._resident.forget(region)
        if cost.moves == "store" and writes:
            self._resident.keep(writes[0], ready, cost.nbytes)  # in SBUF since the store could start
        self._record(engine, finish, reads, writes)

    def collective_ready(self, reads: Sequence[Region], writes: Sequence[Region]) -> float:
        """When this core could start a collective reading and writing these regions: its inputs are
        written, and the core's collectives queue is free."""
        return max(self._ready(COLLECTIVE_QUEUE, reads, writes), self._collectives_free)

    def issue_collective(self, finish: float, reads: Sequence[Region], writes: Sequence[Region]) -> None:
        """Places a collective that the ranks run together until `finish` (collectives/planning.py decides when)."""
        self._collectives_free = finish
        for region in writes:
            self._resident.forget(region)
        self._record(COLLECTIVE_QUEUE, finish, reads, writes)

    def _ready(self, engine: int, reads: Sequence[Region], writes: Sequence[Region]) -> float:
        """When an instruction of `engine` touching these regions may start, by its dependencies alone."""
        ordered = engine != pb.DMA  # same-engine WAR/WAW are free only on an in-order queue
        ready = 0.0
        handoff = engine in COMPUTE_ENGINES  # a compute engine waits on another's semaphore
        for name, box in reads:
            acc = self._accesses.get(name)
            if acc is not None:
                for (written, by), finish in acc.writes.items():
                    if handoff and by != engine and by in COMPUTE_ENGINES:
                        finish += ENGINE_SEMAPHORE_NS
                    if finish > ready and _overlaps(written, box):
                        ready = finish
        for name, box in writes:
            acc = self._accesses.get(name)
            if acc is not None:
                for table in (acc.writes, acc.reads):
                    for (other, by), finish in table.items():
                        if finish > ready and not (ordered and by == engine) and _overlaps(other, box):
                            ready = finish
        return ready

    def _record(self, engine: int, finish: float, reads: Sequence[Region], writes: Sequence[Region]) -> None:
        self.makespan_ns = max(self.makespan_ns, finish)
        for name, box in reads:
            acc = self._accesses.setdefault(name, _Accesses())
            acc.record(acc.reads, box, engine, finish)
        for name, box in writes:
            acc = self._accesses.setdefault(name, _Accesses())
            # A write covering older accesses supersedes them: it already waited for them.
            for table in (acc.writes, acc.reads):
                if table:
                    for key in [k for k in table if _contains(box, k[0])]:
                        del table[key]
            acc.record(acc.writes, box, engine, finish)
