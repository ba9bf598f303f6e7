"""A profile of one execution of a program on a NeuronCore-v2, taken from the cost model's own schedule.

The profile is the model's explanation, not a second model: `Schedule` (cost_model.py) calls a
`Recorder` as it places each instruction, DMA transfer and collective, with the very numbers it
accounts. Its per-engine busy time, summed in the same order with the same arithmetic, therefore equals
the busy counters the daemon reports for an execution of the program, to the nanosecond. Without a
recorder the schedule does no extra work.
"""

from __future__ import annotations

from neurontools._proto import neurond_pb2 as pb

FORMAT = "neurontools-profile"
VERSION = 1
ENGINE_NAMES = {pb.TENSOR: "tensor", pb.VECTOR: "vector", pb.SCALAR: "scalar", pb.GPSIMD: "gpsimd",
                pb.DMA: "dma"}
COLLECTIVES = "collectives"


# One record per instruction, a plain dict (the capture is data; dataclasses.asdict would double its cost):
#   index       position in the program             opcode     the instruction's field name (matmul, ...)
#   engine      tensor, vector, scalar, gpsimd, dma or collectives
#   start_ns    when it took its engine (the first of its DMA queues)
#   end_ns      when it left its engine (occupancy: the next one may start)
#   finish_ns   when its results are visible (end plus latency)
#   ready_ns    when its dependencies alone would have let it start
#   busy_ns     what it adds to its engine's busy counter
#   flops, bytes (DMA: bytes moved), reads, writes (operands as text)
#   waits_for   the instruction whose results it waited for (a dependency), or None
#   after       the previous instruction on its engine, when that held it up instead, or None
#   dma_queues  DMA: [queue, begin ns, end ns] per DMA engine it used
#   direction   DMA: load (HBM to SBUF), store (SBUF to HBM) or copy;  fused: a load whose data was still in SBUF


class Recorder:
    """Collects what a Schedule places; `capture()` returns the profile as plain data."""

    def __init__(self) -> None:
        self.records: list[dict] = []
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
        producer = self._by_finish.get(ready, self._by_finish.get(ready - semaphore_ns))
        previous = self._last_on.get(name)
        depends = producer is not None and ready > 0 and start <= ready
        record = {"index": index, "opcode": opcode, "engine": name, "start_ns": start, "end_ns": end,
                  "finish_ns": finish, "ready_ns": ready, "busy_ns": busy, "flops": flops, "bytes": nbytes,
                  "reads": reads, "writes": writes, "waits_for": producer if depends else None,
                  "after": previous if not depends and previous is not None and start > ready else None,
                  "dma_queues": queues or [], "direction": direction, "fused": fused}
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
            "instructions": self.records,
        }
