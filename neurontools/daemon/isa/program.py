"""Programs for one NeuronCore-v2: validation at load time, the compiled form, and execution.

compile_program() checks a pb.Program against the hardware and format rules (names, shapes, on-chip
capacity, what each engine may touch, instruction limits) and raises ProgramError naming the rule, the
instruction, the operand and its shape. The result runs on numpy engines (FP32 math, dtype-faithful
storage via ml_dtypes) and carries the cost model's estimate, computed once: timing depends only on
shapes. Each instruction kind is one Opcode of its family's module (validate, execute and cost side by side).
The instruction set follows the NKI ISA of NeuronCore-v2 (ref §3.4); docs/timing-model.md lists each
instruction's rules, numerics and cost.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Generator, Protocol

import numpy as np

from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.isa import activation, affine, custom, dma, elementwise, matmul, reduction
from neurontools.daemon.isa import collective as collectives
from neurontools.daemon.isa import cost_model
from neurontools.daemon.isa.operands import Context, Declarations, ParameterSpec, ProgramError
from neurontools.daemon.isa.instruction import Env, Instruction, Opcode
from neurontools.daemon.isa.limits import PSUM, SBUF
from neurontools.daemon.isa.matmul_fusion import executable
from neurontools.daemon.isa.profile_capture import COLLECTIVES, Recorder
from neurontools.daemon.isa.collective import CollectiveOp


@dataclass
class RunResult:
    device_time_ns: int                 # modeled makespan of the program on one NeuronCore-v2
    engine_busy_ns: dict[int, int]      # pb.Engine -> modeled busy ns (TENSOR, VECTOR, SCALAR, GPSIMD, DMA)
    engine_instructions: dict[int, int]  # pb.Engine -> instruction count
    flops: int                          # arithmetic done, per instruction kind (docs/timing-model.md)
    nonfinite_outputs: list[str]        # OUTPUT parameters containing NaN/Inf after the run


# Keyed by the field name of the Instruction oneof; the order is the one error messages list.
_OPCODES: dict[str, Opcode] = {
    op.label: op for family in (dma, matmul, activation, reduction, elementwise, affine, custom, collectives)
    for op in family.OPCODES
}


def _code_bytes(program: pb.Program) -> int:
    """Encoded size of the program without constant data: weights are accounted as constants, not code."""
    def varint_len(value: int) -> int:
        return max(1, (value.bit_length() + 6) // 7)

    total = program.ByteSize()
    for const in program.constants:
        if const.data:
            full = const.ByteSize()
            stripped = full - 1 - varint_len(len(const.data)) - len(const.data)
            total -= varint_len(full) + full - varint_len(stripped) - stripped
    return total


class Rendezvous(Protocol):
    """Where a rank's collectives meet the other ranks of its execution (collectives/rendezvous.py)."""

    def meet(self, op: CollectiveOp, env: Env | None) -> None:
        """Returns once the collective is done on this rank (dst written unless env is None: timing only)."""


# What a run executes: stretches of steps, each followed by the collective that ends it (None at the end).
_Segment = tuple[list[tuple[Callable[[Any, Env], None], Any]], CollectiveOp | None]

# A program's schedule, replayed: yields (collective, when this core is ready for it) and is sent
# (start, finish) for it; returns the estimate.
Timeline = Generator[tuple[CollectiveOp, float], tuple[float, float], RunResult]


class CompiledProgram:
    """A validated program: its HBM interface, executable steps and modeled timing.

    A program with collectives is one rank of a model: its `estimate` counts them as free until the model's
    collectives are planned (collectives/planning.py), which gives it the estimate of a rank among its peers."""

    def __init__(self, decls: Declarations, steps: list[tuple[Opcode, Instruction]], code_bytes: int) -> None:
        self.parameters: dict[str, ParameterSpec] = decls.parameters
        self.constants: list[ParameterSpec] = decls.constants
        self.constant_data: dict[str, bytes] = decls.constant_data
        self.instruction_count = len(steps)
        self.code_bytes = code_bytes
        self.collectives: tuple[CollectiveOp, ...] = tuple(op for opcode, op in steps if opcode.execute is None)
        self._steps = steps  # to replay the schedule: with the collectives' times, or for a profile
        self.collective_times: list[tuple[float, float]] | None = None  # as a rank among its peers
        self.estimate = _alone(_timeline(steps))
        self._tiles = [(tile.name, tile.shape, tile.run_dtype) for tile in decls.tiles.values()]
        self._segments = _segments(steps)
        self._float_outputs = [spec.name for spec in self.parameters.values()
                               if spec.kind == pb.OUTPUT and dtypes.is_float(spec.dtype)]

    def __repr__(self) -> str:
        return (f"<CompiledProgram {len(self.parameters)} parameters, {len(self.constants)} constants, "
                f"{self.instruction_count} instructions, {self.estimate.device_time_ns} ns>")

    def timeline(self) -> Timeline:
        """The schedule replayed, pausing at each collective for the time the ranks agree on."""
        return _timeline(self._steps)

    def with_estimate(self, estimate: RunResult, collective_times: list[tuple[float, float]]) -> "CompiledProgram":
        """The same program timed as a rank among its peers, its collectives at these (start, finish)
        (collectives/planning.py)."""
        timed = copy.copy(self)
        timed.estimate = estimate
        timed.collective_times = collective_times
        return timed

    def replay(self, recorder: Recorder | None = None) -> RunResult:
        """One execution's schedule computed again, its collectives at the times the ranks agreed on
        (what `estimate` holds); a recorder sees every placement (profile_capture.py)."""
        return _replay(_timeline(self._steps, recorder), self.collective_times)

    def profile(self) -> dict:
        """The profile of one execution: the schedule replayed with a recorder."""
        recorder = Recorder()
        result = self.replay(recorder)
        return recorder.capture(result.device_time_ns, result.engine_busy_ns, result.engine_instructions)

    def run(self, hbm: dict[str, np.ndarray | None], *, timing_only: bool,
            rendezvous: Rendezvous | None = None) -> RunResult:
        """Executes the program on `hbm` (every parameter and constant by name; None reads as zeros),
        writing OUTPUT arrays in place. With timing_only, nothing is computed or written. A program with
        collectives meets the other ranks of its execution through `rendezvous`, in both modes."""
        if self.collectives and rendezvous is None:
            raise ValueError("a program with collectives runs as a rank of a model's execution")
        nonfinite: list[str] = []
        if not timing_only:
            env = self._bind(hbm)
            with np.errstate(all="ignore"):  # NaN/Inf are data here, reported via nonfinite_outputs
                for steps, collective in self._segments:
                    for execute, op in steps:
                        execute(op, env)
                    if collective is not None:
                        rendezvous.meet(collective, env)
                nonfinite = [name for name in self._float_outputs if not np.isfinite(env[name]).all()]
        else:
            for collective in self.collectives:
                rendezvous.meet(collective, None)
        return dataclasses.replace(self.estimate, engine_busy_ns=dict(self.estimate.engine_busy_ns),
                                   engine_instructions=dict(self.estimate.engine_instructions),
                                   nonfinite_outputs=nonfinite)

    def _bind(self, hbm: dict[str, np.ndarray | None]) -> Env:
        env: Env = {}
        for spec in (*self.parameters.values(), *self.constants):
            if spec.name not in hbm:
                raise ValueError(f"no array bound for {spec.name!r}")
            array = hbm[spec.name]
            if array is None:
                if spec.kind == pb.OUTPUT:
                    raise ValueError(f"output {spec.name!r} needs a writable array")
                array = np.broadcast_to(np.zeros((), spec.np_dtype), spec.shape)  # zeros, no memory
            elif array.shape != spec.shape or array.dtype != spec.np_dtype:
                raise ValueError(f"{spec.name!r} is bound to {array.dtype}{list(array.shape)}; the program "
                                 f"declares {spec.np_dtype}{list(spec.shape)}")
            env[spec.name] = array
        # On-chip memory is private to the run; it starts zeroed (hardware would hold stale data).
        for name, shape, run_dtype in self._tiles:
            env[name] = np.zeros(shape, run_dtype)
        return env


def _segments(steps: list[tuple[Opcode, Instruction]]) -> list[_Segment]:
    """The steps between collectives, each stretch made executable on its own."""
    segments: list[_Segment] = []
    stretch: list[tuple[Opcode, Instruction]] = []
    for opcode, op in steps:
        if opcode.execute is None:
            segments.append((executable(stretch), op))
            stretch = []
        else:
            stretch.append((opcode, op))
    segments.append((executable(stretch), None))
    return segments


def _timeline(steps: list[tuple[Opcode, Instruction]], recorder: Recorder | None = None) -> Timeline:
    schedule = cost_model.Schedule()
    schedule.recorder = recorder
    flops = 0
    for index, (opcode, op) in enumerate(steps):
        reads = [v.region for v in op.reads if not v.read_only]
        writes = [v.region for v in op.writes]
        if recorder is not None:
            recorder.begin(index, opcode.label, op)
        if opcode.cost is None:
            ready = schedule.collective_ready(reads, writes)
            start, finish = yield op, ready
            schedule.issue_collective(finish, reads, writes)
            if recorder is not None:
                recorder.placed(COLLECTIVES, start, finish, finish, ready, 0.0)
        else:
            spaces = {v.space for v in (*op.reads, *op.writes)}
            schedule.issue(opcode.cost(op), reads, writes, psum=PSUM in spaces, sbuf=SBUF in spaces)
        flops += op.flops
    return RunResult(
        device_time_ns=round(schedule.makespan_ns),
        engine_busy_ns={engine: round(ns) for engine, ns in schedule.busy_ns.items()},
        engine_instructions=dict(schedule.instructions),
        flops=flops,
        nonfinite_outputs=[],
    )


def _alone(timeline: Timeline) -> RunResult:
    """A timeline run with every collective finishing as soon as this core is ready for it."""
    return _replay(timeline, None)


def _replay(timeline: Timeline, collective_times: list[tuple[float, float]] | None) -> RunResult:
    """A timeline run with its collectives at the (start, finish) the ranks agreed on, in order
    (None: each finishes as soon as this core is ready for it)."""
    answers = iter(collective_times or ())
    try:
        _, ready = next(timeline)
        while True:
            _, ready = timeline.send(next(answers) if collective_times is not None else (ready, ready))
    except StopIteration as done:
        return done.value


def compile_program(program: pb.Program) -> CompiledProgram:
    """Validates `program` for one NeuronCore-v2 and models its timing; raises ProgramError."""
    decls = Declarations(program)
    steps: list[tuple[Opcode, Instruction]] = []
    for index, instruction in enumerate(program.instructions):
        field = instruction.WhichOneof("op")
        opcode = _OPCODES.get(field or "")
        if opcode is None:
            raise ProgramError(f"instruction {index}: no operation set; use one of: {', '.join(_OPCODES)}")
        steps.append((opcode, opcode.validate(Context(decls, index, opcode.label), getattr(instruction, field))))
    return CompiledProgram(decls, steps, _code_bytes(program))
