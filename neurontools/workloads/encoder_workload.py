"""The encoder deployed data-parallel: one copy of the model per core, each serving its own requests.

A request is one batch of sequences through the stages (embedding LayerNorm + layers + pooler).
In compute mode the weights are random numbers written to HBM and `verify()` compares a request's
hidden states and pooled outputs with the numpy reference.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from neurontools import dtypes
from neurontools.client import Model, Session, Tensor
from neurontools.workloads.architectures import EncoderArchitecture
from neurontools.workloads.encoder import EncoderShape, build_stage, random_weights, reference
from neurontools.workloads.memory_plan import MemoryPlan
from neurontools.workloads.workload import Replica, RequestRecord, StageRunner, Workload, stage_count


class EncoderWorkload(Workload):
    kind = "encoder"
    unit = "inferences"

    def __init__(self, arch: EncoderArchitecture, cores: Sequence[int], *, batch: int = 1, seq_len: int = 128,
                 dtype: str = "bfloat16", compute: bool = False, layers_per_program: int | None = None,
                 seed: int = 0) -> None:
        super().__init__(arch.name, [[core] for core in cores], compute=compute)
        if not 1 <= seq_len <= arch.max_positions:
            raise ValueError(f"{arch.name} takes sequences of 1 to {arch.max_positions} tokens, not {seq_len}")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, not {batch}")
        self.shape = EncoderShape(arch, batch, seq_len, dtype)
        self.layer_data, self.constant_data = random_weights(self.shape, seed) if compute else (None, None)
        one_layer = build_stage(self.shape, 1, first=False, last=False)
        self.layers_per_program = stage_count(arch.layers, len(one_layer.instructions), 1, layers_per_program)
        self.stages = arch.layers // self.layers_per_program
        self.programs = {role: build_stage(self.shape, self.layers_per_program, first=role[0], last=role[1],
                                           constants=self.constant_data)
                         for role in dict.fromkeys(self.roles)}

    @property
    def roles(self) -> list[tuple[bool, bool]]:
        """(first, last) of each stage, in order."""
        return [(s == 0, s == self.stages - 1) for s in range(self.stages)]

    def memory_plan(self) -> MemoryPlan:
        plan = MemoryPlan()
        plan.add_session(self.cores)
        code = dtypes.from_name(self.shape.dtype)
        for core in self.cores:
            for program in self.programs.values():
                plan.add_model({core: program})
            plan.add_scratchpad([core])
            for _ in range(self.stages):
                for dims in self.shape.layer_weights(self.layers_per_program).values():
                    plan.add_tensor(core, dims, code)
            for dims in self.workspace_shapes().values():
                plan.add_tensor(core, dims, code)
        return plan

    def workspace_shapes(self) -> dict[str, tuple[int, int]]:
        """Every stage program's workspace parameters: one set of tensors serves them all."""
        space: dict[str, tuple[int, int]] = {}
        for first, last in self.programs:
            space |= self.shape.workspace(first, last)
        return space

    def replica(self, cores: Sequence[int]) -> "EncoderReplica":
        return EncoderReplica(self, cores[0])

    def describe(self) -> dict:
        s = self.shape
        return {"model": s.arch.name, "parameters": s.arch.parameters(), "batch": s.batch, "seq_len": s.seq_len,
                "dtype": s.dtype, "data_parallel_cores": len(self.cores),
                "layers_per_program": self.layers_per_program, "executions_per_request": self.stages,
                "instructions_per_program": {_role_name(r): len(p.instructions) for r, p in self.programs.items()}}


def _role_name(role: tuple[bool, bool]) -> str:
    return {(True, True): "model", (True, False): "first", (False, True): "last"}.get(role, "layers")


class EncoderReplica(Replica):
    def __init__(self, workload: EncoderWorkload, core: int) -> None:
        super().__init__([core])
        self.workload = workload
        self.core = core
        self.models: dict[tuple[bool, bool], Model] = {}
        self.weights: list[dict[str, Tensor]] = []
        self.workspace: dict[str, Tensor] = {}
        self.runner: StageRunner | None = None

    def load(self, session: Session) -> None:
        w = self.workload
        for role, program in w.programs.items():
            self.models[role] = session.load_model(f"{w.name}-{_role_name(role)}", {self.core: program})
        dtype = w.shape.dtype
        for stage in range(w.stages):
            tensors = {name: session.allocate(dims, dtype, core_id=self.core, name=f"{w.name}.stage{stage}.{name}")
                       for name, dims in w.shape.layer_weights(w.layers_per_program).items()}
            if w.layer_data is not None:
                layers = w.layer_data[stage * w.layers_per_program:(stage + 1) * w.layers_per_program]
                for name, tensor in tensors.items():
                    tensor.write(np.concatenate([layer[name] for layer in layers]))
            self.weights.append(tensors)
        self.workspace = {name: session.allocate(dims, dtype, core_id=self.core, name=f"{w.name}.{name}")
                          for name, dims in w.workspace_shapes().items()}
        self.runner = StageRunner(session, timing_only=not w.compute)

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()

    def _calls(self) -> list[tuple[Model, dict[int, dict[str, Tensor]]]]:
        w = self.workload
        calls = []
        for stage, role in enumerate(w.roles):
            names = w.shape.workspace(*role)
            bindings = {name: self.workspace[name] for name in names} | self.weights[stage]
            calls.append((self.models[role], {self.core: bindings}))
        return calls

    def request(self) -> RequestRecord:
        assert self.runner is not None, "load() first"
        if self.workload.compute:
            self.workspace["embeddings"].write(self._random_embeddings(np.random.default_rng()))
        started = time.monotonic()
        results = self.runner.run(self._calls())
        return RequestRecord(started=started, wall_seconds=time.monotonic() - started,
                             device_seconds=sum(r.device_latency for r in results),
                             items=self.workload.shape.batch, executions=len(results))

    def verify(self, seed: int = 1) -> tuple[float, float]:
        """Run one request on known embeddings; returns (max |device - numpy|, max |numpy|) over the
        hidden states and pooled outputs (compute mode)."""
        w = self.workload
        if w.layer_data is None or self.runner is None:
            raise RuntimeError("verify() needs a compute-mode workload that is loaded")
        embeddings = self._random_embeddings(np.random.default_rng(seed))
        self.workspace["embeddings"].write(embeddings)
        self.runner.run(self._calls())
        hidden, pooled = reference(w.shape, w.layer_data, w.constant_data, embeddings)
        got = [self.workspace["hidden"].read().astype(np.float32), self.workspace["pooled"].read().astype(np.float32)]
        error = max(float(np.max(np.abs(g - e))) for g, e in zip(got, (hidden, pooled)))
        return error, max(float(np.max(np.abs(hidden))), float(np.max(np.abs(pooled))))

    def _random_embeddings(self, rng: np.random.Generator) -> np.ndarray:
        s = self.workload.shape
        return rng.standard_normal((s.tokens, s.arch.hidden)).astype(np.float32)

