"""A profile of one execution of a program on a NeuronCore-v2, taken from the cost model's own schedule.

The profile is the model's explanation, not a second model: `Schedule` (cost_model.py) calls a
`Recorder` as it places each instruction, DMA transfer and collective, with the very numbers it
accounts. Its per-engine busy time, summed in the same order with the same arithmetic, therefore equals
the busy counters the daemon reports for an execution of the program, to the nanosecond. Without a
recorder the schedule does no extra work.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from neurontools._proto import neurond_pb2 as pb

FORMAT = "neurontools-profile"
VERSION = 1
ENGINE_NAMES = {pb.TENSOR: "tensor", pb.VECTOR: "vector", pb.SCALAR: "scalar", pb.GPSIMD: "gpsimd",
                pb.DMA: "dma"}
COLLECTIVES = "collectives"


@dataclass
class InstructionRecord:
    index: int                 # position in the program
    opcode: str                # the instruction's field name (matmul, dma_copy, ...)
    engine: str                # tensor, vector, scalar, gpsimd, dma or collectives
    start_ns: float            # when it took its engine (the first of its DMA queues)
    end_ns: float              # when it left its engine (occupancy: the next one may start)
    finish_ns: float           # when its results are visible (end plus latency)
    ready_ns: float            # when its dependencies alone would have let it start
    busy_ns: float             # what it adds to its engine's busy counter
    flops: int
    bytes: int                 # DMA: bytes moved; 0 otherwise
    reads: list[str]
    writes: list[str]
    waits_for: int | None = None    # the instruction whose results it waited for (a dependency)
    after: int | None = None        # the previous instruction on its engine, when that held it up instead
    dma_queues: list[list[float]] = field(default_factory=list)  # DMA: [queue, begin ns, end ns] per engine
    direction: str = ""        # DMA: load (HBM to SBUF), store (SBUF to HBM) or copy
    fused: bool = False        # a load whose data was still in SBUF: no transfer


class Recorder:
    """Collects what a Schedule places; `capture()` returns the profile as plain data."""

    def __init__(self) -> None:
        self.records: list[InstructionRecord] = []
        self.busy_ns: dict[str, float] = {name: 0.0 for name in ENGINE_NAMES.values()}
        self._by_finish: dict[float, int] = {}   # finish time -> the instruction that finishes then
        self._last_on: dict[str, int] = {}       # engine -> its latest instruction
        self._pending: tuple | None = None

    # -- called by program.py around each instruction ------------------------------------------------

    def begin(self, index: int, opcode: str, op) -> None:
        self._pending = (index, opcode, op.flops, [str(v) for v in op.reads], [str(v) for v in op.writes])

    # -- called by Schedule -------------------------------------------------------------------------

    def placed(self, engine: int | str, start: float, end: float, finish: float, ready: float, busy: float, *,
               nbytes: int = 0, queues: list[list[float]] | None = None, direction: str = "",
               fused: bool = False, semaphore_ns: float = 0.0) -> None:
        index, opcode, flops, reads, writes = self._pending
        name = engine if isinstance(engine, str) else ENGINE_NAMES[engine]
        record = InstructionRecord(index, opcode, name, start, end, finish, ready, busy, flops, nbytes, reads,
                                   writes, dma_queues=queues or [], direction=direction, fused=fused)
        producer = self._by_finish.get(ready, self._by_finish.get(ready - semaphore_ns))
        previous = self._last_on.get(name)
        if producer is not None and ready > 0 and start <= ready:
            record.waits_for = producer
        elif previous is not None and start > ready:
            record.after = previous
        if name in self.busy_ns:
            self.busy_ns[name] += busy  # the same additions, in the same order, as Schedule.busy_ns
        self.records.append(record)
        self._by_finish[finish] = index
        self._last_on[name] = index

    # -- the result ---------------------------------------------------------------------------------

    def capture(self, device_time_ns: int, engine_busy_ns: dict[int, int], instructions: dict[int, int]) -> dict:
        return {
            "format": FORMAT, "version": VERSION,
            "device_time_ns": device_time_ns,
            "engine_busy_ns": {ENGINE_NAMES[e]: ns for e, ns in sorted(engine_busy_ns.items())},
            "engine_instructions": {ENGINE_NAMES[e]: n for e, n in sorted(instructions.items())},
            "recorded_busy_ns": {name: round(ns) for name, ns in self.busy_ns.items()},
            "instructions": [asdict(r) for r in self.records],
        }
