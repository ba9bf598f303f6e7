"""The encoder deployed data-parallel: a copy of the model on every core, all cores serving a request.

As torch-neuronx's DataParallel does, a request's batch is split over the cores: the model is loaded
with one subgraph per core (each with its own weights), and a request runs `batch` sequences on every
core through the stages (embedding LayerNorm + layers + pooler). One execution drives all the cores,
so the daemon's per-request overhead is paid once per program run, not once per core. A request is
the embedding program, the layer program once per stage of `layers_per_program` layers, and the
pooler. In compute mode the
weights are random numbers written to HBM and `verify()` compares every core's hidden states and
pooled outputs with the numpy reference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neurontools import dtypes
from neurontools.client import Model, Session, Tensor
from neurontools.workloads.architectures import EncoderArchitecture
from neurontools.workloads.encoder import (EncoderShape, build_embed, build_layers, build_pooler,
                                           programs, random_weights, reference)
from neurontools.workloads.memory_plan import MemoryPlan
from neurontools.workloads.workload import (DataParallelReplica, StageRunner, Workload, stage_count,
                                            step_overhead_seconds)


class EncoderWorkload(Workload):
    kind = "encoder"
    unit = "inferences"

    def __init__(self, arch: EncoderArchitecture, cores: Sequence[int], *, batch: int = 1, seq_len: int = 128,
                 dtype: str = "bfloat16", compute: bool = False, layers_per_program: int | None = None,
                 seed: int = 0) -> None:
        super().__init__(arch.name, [list(cores)], compute=compute)
        if not 1 <= seq_len <= arch.max_positions:
            raise ValueError(f"{arch.name} takes sequences of 1 to {arch.max_positions} tokens, not {seq_len}")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, not {batch}")
        self.shape = EncoderShape(arch, batch, seq_len, dtype)
        self.layer_data, self.constant_data = random_weights(self.shape, seed) if compute else (None, None)
        one_layer = build_layers(self.shape, 1)
        self.layers_per_program = stage_count(arch.layers, len(one_layer.instructions), len(self.cores),
                                              layers_per_program)
        self.stages = arch.layers // self.layers_per_program
        self.programs = {"embed": build_embed(self.shape, self.constant_data),
                         "layers": build_layers(self.shape, self.layers_per_program)}
        if arch.pooler:
            self.programs["pooler"] = build_pooler(self.shape, self.constant_data)

    def overhead_seconds(self) -> float:
        """The fixed cost of a request: launch, and each core's embeddings in and pooled outputs out (the
        cores' transfers run side by side)."""
        s = self.shape
        return step_overhead_seconds((s.tokens + s.batch) * s.arch.hidden * dtypes.itemsize(dtypes.from_name(s.dtype)))

    def memory_plan(self) -> MemoryPlan:
        plan = MemoryPlan()
        plan.add_session(self.cores)
        code = dtypes.from_name(self.shape.dtype)
        for program in self.programs.values():
            plan.add_model({core: program for core in self.cores})
        for core in self.cores:
            plan.add_scratchpad([core])
            for _ in range(self.stages):
                for dims in self.shape.layer_weights(self.layers_per_program).values():
                    plan.add_tensor(core, dims, code)
            for dims in self.workspace_shapes().values():
                plan.add_tensor(core, dims, code)
        return plan

    def workspace_shapes(self) -> dict[str, tuple[int, int]]:
        """Every program's workspace parameters: one set of tensors serves them all."""
        space: dict[str, tuple[int, int]] = {}
        for program in programs(self.shape.arch):
            space |= self.shape.workspace(program)
        return space

    def replica(self, cores: Sequence[int]) -> "EncoderReplica":
        return EncoderReplica(self, cores)

    def describe(self) -> dict:
        s = self.shape
        return {"model": s.arch.name, "parameters": s.arch.parameters(), "batch": s.batch, "seq_len": s.seq_len,
                "dtype": s.dtype, "data_parallel_cores": len(self.cores), "sequences_per_request": s.batch * len(self.cores),
                "layers_per_program": self.layers_per_program, "executions_per_request": self.stages + len(self.programs) - 1,
                "instructions_per_program": {name: len(p.instructions) for name, p in self.programs.items()}}


class EncoderReplica(DataParallelReplica):
    input_name = "embeddings"

    def __init__(self, workload: EncoderWorkload, cores: Sequence[int]) -> None:
        super().__init__(cores)
        self.workload = workload
        self.models: dict[str, Model] = {}
        self.weights: list[dict[int, dict[str, Tensor]]] = []   # per stage, per core
        self.workspace: dict[int, dict[str, Tensor]] = {}       # per core
        self.runner: StageRunner | None = None

    def load(self, session: Session) -> None:
        w = self.workload
        for name, program in w.programs.items():
            self.models[name] = session.load_model(f"{w.name}-{name}", {c: program for c in self.cores})
        dtype = w.shape.dtype
        for stage in range(w.stages):
            per_core = {}
            for core in self.cores:
                tensors = {name: session.allocate(dims, dtype, core_id=core, name=f"{w.name}.stage{stage}.{name}")
                           for name, dims in w.shape.layer_weights(w.layers_per_program).items()}
                if w.layer_data is not None:
                    layers = w.layer_data[stage * w.layers_per_program:(stage + 1) * w.layers_per_program]
                    for name, tensor in tensors.items():
                        tensor.write(np.concatenate([layer[name] for layer in layers]))
                per_core[core] = tensors
            self.weights.append(per_core)
        self.workspace = {core: {name: session.allocate(dims, dtype, core_id=core, name=f"{w.name}.{name}")
                                 for name, dims in w.workspace_shapes().items()} for core in self.cores}
        self.runner = StageRunner(session, timing_only=not w.compute)

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()

    def _calls(self) -> list[tuple[Model, dict[int, dict[str, Tensor]]]]:
        w = self.workload

        def bindings(program: str, stage: int | None = None) -> dict[int, dict[str, Tensor]]:
            return {core: {name: self.workspace[core][name] for name in w.shape.workspace(program)}
                    | (self.weights[stage][core] if stage is not None else {}) for core in self.cores}

        layers = [(self.models["layers"], bindings("layers", stage)) for stage in range(w.stages)]
        pooler = [(self.models["pooler"], bindings("pooler"))] if "pooler" in self.models else []
        return [(self.models["embed"], bindings("embed")), *layers, *pooler]

    def verify(self, seed: int = 1) -> tuple[float, float]:
        """Run one request on known embeddings (different on each core); returns (max |device - numpy|,
        max |numpy|) over every core's hidden states and pooled outputs (compute mode)."""
        w = self.workload
        if w.layer_data is None or self.runner is None:
            raise RuntimeError("verify() needs a compute-mode workload that is loaded")
        rng = np.random.default_rng(seed)
        inputs = {core: self._random_input(rng) for core in self.cores}
        for core, embeddings in inputs.items():
            self.workspace[core]["embeddings"].write(embeddings)
        self.runner.run(self._calls())
        error = scale = 0.0
        for core, embeddings in inputs.items():
            expected = reference(w.shape, w.layer_data, w.constant_data, embeddings)
            pairs = [(self.workspace[core]["hidden"].read(), expected[0])]
            if expected[1] is not None:
                pairs.append((self.workspace[core]["pooled"].read(), expected[1]))
            error = max(error, *(float(np.max(np.abs(g.astype(np.float32) - e))) for g, e in pairs))
            scale = max(scale, *(float(np.max(np.abs(e))) for _, e in pairs))
        return error, scale

    def _random_input(self, rng: np.random.Generator) -> np.ndarray:
        s = self.workload.shape
        return rng.standard_normal((s.tokens, s.arch.hidden)).astype(np.float32)
