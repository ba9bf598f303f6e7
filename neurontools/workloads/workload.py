"""What every workload is: a deployment of one model on groups of cores, serving requests.

A workload is split into replicas, one per group of cores (a core for a data-parallel encoder, the
tensor-parallel group for a decoder). Each replica loads its own models and serves its own requests,
so the runner can give it a thread and a request loop. Before anything is loaded, `memory_plan()`
says what the whole workload will hold in HBM, so a model that does not fit fails with the shortfall.
"""

from __future__ import annotations

import abc
import concurrent.futures
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from neurontools.client import ExecutionResult, Model, RequestStep, Session, Tensor
from neurontools.daemon.isa import cost_model
from neurontools.workloads.memory_plan import MemoryPlan

# Executions of one request kept in flight in timing-only mode. The core runs them in order; without
# a window each layer would wait for a client round trip the real runtime does not have.
PIPELINE_WINDOW = 4

# Instructions per program, summed over its subgraphs, a stage may grow to: the daemon compiles
# every subgraph when a model is loaded (about 30 us per instruction), and fewer, larger programs
# mean fewer executions per request.
INSTRUCTION_BUDGET = 24_000
MAX_INSTRUCTIONS_PER_PROGRAM = 8_000


@dataclass
class RequestRecord:
    """One request as the client saw it: wall time, modeled device time, and what it produced."""

    started: float          # time.monotonic() at submission
    wall_seconds: float     # until the last result arrived
    device_seconds: float   # modeled time: its executions (per core, summed) and the fixed costs of its steps
    items: int              # inferences (encoder) or generated tokens (decoder)
    executions: int
    first_item_seconds: float | None = None        # decoder: time to first token (the prefill), wall
    first_item_device_seconds: float | None = None  # ... and modeled
    item_seconds: list[float] = field(default_factory=list)         # decoder: each decode step, wall
    item_device_seconds: list[float] = field(default_factory=list)  # ... and modeled


class Replica(abc.ABC):
    """One copy of the model on a group of cores."""

    def __init__(self, cores: Sequence[int]) -> None:
        self.cores = list(cores)

    @abc.abstractmethod
    def load(self, session: Session) -> None:
        """Load the models and allocate the tensors (weights, workspace) in `session`."""

    @abc.abstractmethod
    def request(self) -> RequestRecord:
        """Serve one request."""

    @abc.abstractmethod
    def request_steps(self) -> list[RequestStep]:
        """One request as the daemon runs it in a request load (timing-only): its executions in order,
        each step's fixed costs as host time before its first execution."""

    @property
    @abc.abstractmethod
    def items_per_request(self) -> int:
        """Inferences or tokens one request produces."""

    @abc.abstractmethod
    def verify(self, seed: int = 1) -> tuple[float, float]:
        """Compute mode: one request on known inputs against numpy; (max |error|, max |expected|)."""

    def close(self) -> None:
        """Release client-side resources (the session owns the daemon-side ones)."""


class DataParallelReplica(Replica):
    """A replica that serves a request by running its programs in order on each of its cores (encoders,
    vision models). Subclasses set `workload`, `runner`, `workspace`, `input_name` and give `_calls`
    and `_random_input`."""

    input_name = ""  # the workspace tensor a compute-mode request writes its random input to

    @abc.abstractmethod
    def _calls(self) -> list:
        """The request's executions: (model, bindings by core) in order."""

    @abc.abstractmethod
    def _random_input(self, rng: np.random.Generator) -> np.ndarray:
        """One core's input for one request."""

    @property
    def items_per_request(self) -> int:
        return self.workload.shape.batch * len(self.cores)

    def request_steps(self) -> list[RequestStep]:
        overhead = self.workload.overhead_seconds()
        return [RequestStep(model, bindings, host_seconds=overhead if index == 0 else 0.0)
                for index, (model, bindings) in enumerate(self._calls())]

    def request(self) -> RequestRecord:
        assert self.runner is not None, "load() first"
        if self.workload.compute:
            rng = np.random.default_rng()
            for core in self.cores:
                self.workspace[core][self.input_name].write(self._random_input(rng))
        started = time.monotonic()
        overhead = spend_overhead(self.workload.overhead_seconds())
        results = self.runner.run(self._calls())
        return RequestRecord(started=started, wall_seconds=time.monotonic() - started,
                             device_seconds=sum(r.device_latency for r in results) + overhead,
                             items=self.items_per_request, executions=len(results))


class Workload(abc.ABC):
    kind: str = ""   # "encoder", "decoder"
    unit: str = ""   # what a request produces: "inferences", "tokens"

    def __init__(self, name: str, groups: Sequence[Sequence[int]], *, compute: bool) -> None:
        self.name = name
        self.groups = [list(g) for g in groups]
        self.compute = compute

    @property
    def cores(self) -> list[int]:
        return [core for group in self.groups for core in group]

    @abc.abstractmethod
    def memory_plan(self) -> MemoryPlan:
        """Everything the workload will hold in HBM, session reservations included."""

    @abc.abstractmethod
    def replica(self, cores: Sequence[int]) -> Replica: ...

    @abc.abstractmethod
    def describe(self) -> dict:
        """The configuration, for the summary."""


def step_overhead_seconds(host_bytes: int, *, starts_generation: bool = False) -> float:
    """The fixed cost of one model step besides its programs' device time (docs/timing-model.md "Fixed
    costs"): one launch and synchronization of the model, its inputs and outputs over the host link, and
    for a decoder's prefill the start of a generation. A step is an encoder request, a prefill or a decode
    step: the real runtime runs it as one program, however many stage programs neurond splits it into."""
    ns = cost_model.EXECUTION_LAUNCH_NS + host_bytes / cost_model.HOST_LINK_BYTES_PER_S * 1e9
    if starts_generation:
        ns += cost_model.GENERATION_START_NS
    return ns / 1e9


def spend_overhead(seconds: float) -> float:
    """Spends a step's fixed costs in wall time, as the host would (the daemon models the programs' device
    time, not these), so a request's modeled time stays part of its wall time; returns `seconds`."""
    time.sleep(seconds)
    return seconds


def stage_count(layers: int, layer_instructions: int, subgraphs: int, requested: int | None = None) -> int:
    """Layers per stage program: the largest divisor of `layers` within the instruction budgets (at
    least 1), or `requested` when it divides the layers."""
    if requested is not None:
        if requested < 1 or layers % requested:
            raise ValueError(f"--layers-per-program {requested} must divide the model's {layers} layers")
        return requested
    limit = min(MAX_INSTRUCTIONS_PER_PROGRAM, INSTRUCTION_BUDGET // max(1, subgraphs))
    return max(g for g in range(1, layers + 1) if layers % g == 0 and (g == 1 or g * layer_instructions <= limit))


class StageRunner:
    """Runs the executions of one request in order: one at a time when each needs the previous one's
    data (compute mode), else a few in flight."""

    def __init__(self, session: Session, timing_only: bool) -> None:
        self.session = session
        self.timing_only = timing_only
        self._pool = (concurrent.futures.ThreadPoolExecutor(PIPELINE_WINDOW, thread_name_prefix="stage")
                      if timing_only else None)

    def run(self, calls: Sequence[tuple[Model, Mapping[int, Mapping[str, Tensor]]]]) -> list[ExecutionResult]:
        if self._pool is None:
            return [self._execute(call) for call in calls]
        return list(self._pool.map(self._execute, calls))

    def _execute(self, call: tuple[Model, Mapping[int, Mapping[str, Tensor]]]) -> ExecutionResult:
        model, bindings = call
        return self.session.execute(model, {}, core_bindings=bindings, timing_only=self.timing_only)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
