"""The modeled time of a workload's request, computed in-process, and what it is made of.

neuron-workload --estimate loads a workload into neurond and serves one request; this module computes the
same modeled times without a daemon, from the same programs: each stage program is compiled once (the
daemon compiles identical subgraphs once too), a tensor-parallel group's collectives are planned over
the instance's links as the daemon plans them when the model is loaded, and a request is composed as
the replicas compose it (encoder: embedding, stages, pooler; decoder: prefill stages and head, then each
decode step's stages and head), plus the fixed costs of its steps. bench/bench_timing.py prints these
next to the published figures.

Attribution: for each program, its time alone (collectives free) splits into the busiest compute
engine's busy time ("compute"), the DMA busy time beyond that ("DMA"), and the rest, which no engine
fills: waits on dependencies and their latencies ("latency"); its time among its ranks minus its time
alone is "collectives"; the steps' fixed costs are "fixed".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.collectives import planning as collectives
from neurontools.daemon.device import topology as topo
from neurontools.daemon.isa import cost_model
from neurontools.daemon.isa.program import CompiledProgram, compile_program
from neurontools.workloads.decoder import bucket
from neurontools.workloads.decoder_workload import DecoderWorkload
from neurontools.workloads.encoder_workload import EncoderWorkload
from neurontools.workloads.vision_workload import VisionWorkload

PARTS = ("compute", "DMA", "latency", "collectives", "fixed")


@dataclass
class Attribution:
    """Seconds by mechanism (PARTS)."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PARTS, 0.0))

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def add(self, other: "Attribution", times: float = 1.0) -> None:
        for part, value in other.seconds.items():
            self.seconds[part] += value * times

    def shares(self) -> dict[str, float]:
        return {part: value / self.total for part, value in self.seconds.items()}


@dataclass
class Estimate:
    kind: str                 # "encoder", "decoder" or "vision"
    request: Attribution      # an encoder request; a decoder's time to first token
    token: Attribution | None = None  # a decoder's mean time per output token


def _program(program: CompiledProgram, planned_ns: float | None = None) -> Attribution:
    alone = program.estimate
    total = alone.device_time_ns
    ns = {**cost_model.time_split(total, alone.engine_busy_ns),
          "collectives": (planned_ns - total) if planned_ns is not None else 0, "fixed": 0}
    return Attribution({part: value / 1e9 for part, value in ns.items()})


class _Planner:
    """Compiles programs once and times them among the ranks of a group."""

    def __init__(self, instance_type: str) -> None:
        self.machine = topo.lookup(instance_type)
        self._cache: dict[bytes, Attribution] = {}

    def time(self, program: pb.Program, cores: list[int]) -> Attribution:
        key = program.SerializeToString(deterministic=True) + bytes(str(cores), "ascii")
        if key not in self._cache:
            compiled = compile_program(program)
            planned = None
            if compiled.collectives:
                plan = collectives.plan_model(self.machine, [(core, compiled) for core in cores])
                planned = plan.device_time_ns
            self._cache[key] = _program(compiled, planned)
        return self._cache[key]


def _fixed(seconds: float) -> Attribution:
    return Attribution(dict(dict.fromkeys(PARTS, 0.0), fixed=seconds))


def estimate(workload: EncoderWorkload | DecoderWorkload | VisionWorkload, instance_type: str) -> Estimate:
    """The modeled request of one replica of `workload` (timing-only, as built) on `instance_type`."""
    planner = _Planner(instance_type)
    cores = workload.groups[0]
    if isinstance(workload, VisionWorkload):
        request = Attribution()
        for program in workload.programs.values():
            request.add(planner.time(program, cores))
        request.add(_fixed(workload.overhead_seconds()))
        return Estimate("vision", request)
    if isinstance(workload, EncoderWorkload):
        request = Attribution()
        request.add(planner.time(workload.programs["embed"], cores))
        request.add(planner.time(workload.programs["layers"], cores), workload.stages)
        if "pooler" in workload.programs:
            request.add(planner.time(workload.programs["pooler"], cores))
        request.add(_fixed(workload.overhead_seconds()))
        return Estimate("encoder", request)
    head = Attribution()
    for rank, core in enumerate(cores):  # the slowest rank's head (they differ only in padding)
        timed = planner.time(workload.heads[rank], [core])
        if timed.total > head.total:
            head = timed
    first = Attribution()
    first.add(planner.time(workload.prefill, cores), workload.stages)
    first.add(head)
    first.add(_fixed(workload.overhead_seconds(prefill=True)))
    token = Attribution()
    positions = list(workload.decode_positions)
    for position in positions:
        token.add(planner.time(workload.decode[bucket(position + 1)], cores), workload.stages / len(positions))
        token.add(head, 1 / len(positions))
        token.add(_fixed(workload.overhead_seconds(prefill=False)), 1 / len(positions))
    return Estimate("decoder", first, token)
