"""A vision model (ResNet-50) deployed data-parallel: a copy on every core, all cores serving a request.

As for the encoders, a request's batch of images runs on every core, one execution per program (stem,
the 16 bottleneck blocks, head) driving all the cores. The weights are each program's constants (random
and checked against numpy in compute mode, declared without data in timing-only mode).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neurontools import dtypes
from neurontools.client import Model, Session, Tensor
from neurontools.workloads.memory_plan import MemoryPlan
from neurontools.workloads.resnet import VisionArchitecture, VisionShape, programs, random_weights, reference
from neurontools.workloads.workload import DataParallelReplica, StageRunner, Workload, step_overhead_seconds


class VisionWorkload(Workload):
    kind = "vision"
    unit = "inferences"

    def __init__(self, arch: VisionArchitecture, cores: Sequence[int], *, batch: int = 1,
                 image_size: int | None = None, dtype: str = "bfloat16", compute: bool = False, seed: int = 0) -> None:
        super().__init__(arch.name, [list(cores)], compute=compute)
        size = image_size or arch.image_size
        if batch < 1:
            raise ValueError(f"batch must be >= 1, not {batch}")
        if size < 32:
            raise ValueError(f"{arch.name} takes images of at least 32 x 32 pixels (five halvings), not {size}")
        self.shape = VisionShape(arch, batch, size, dtype)
        self.weights = random_weights(self.shape, seed) if compute else None
        self.programs = programs(self.shape, self.weights)
        self.stages = len(self.programs)

    def overhead_seconds(self) -> float:
        """One launch per request, the images in and the logits out over the host link."""
        s = self.shape
        size = dtypes.itemsize(dtypes.from_name(s.dtype))
        return step_overhead_seconds(s.batch * (3 * s.image_size ** 2 + s.arch.classes) * size)

    def workspace_shapes(self) -> dict[str, tuple[int, ...]]:
        space: dict[str, tuple[int, ...]] = {}
        for name in self.programs:
            space |= self.shape.workspace(name)
        return space

    def memory_plan(self) -> MemoryPlan:
        plan = MemoryPlan()
        plan.add_session(self.cores)
        code = dtypes.from_name(self.shape.dtype)
        for program in self.programs.values():
            plan.add_model({core: program for core in self.cores})
        for core in self.cores:
            plan.add_scratchpad([core])
            for dims in self.workspace_shapes().values():
                plan.add_tensor(core, dims, code)
        return plan

    def replica(self, cores: Sequence[int]) -> "VisionReplica":
        return VisionReplica(self, cores)

    def describe(self) -> dict:
        s = self.shape
        return {"model": s.arch.name, "parameters": s.arch.parameters(), "batch": s.batch,
                "image_size": s.image_size, "dtype": s.dtype, "data_parallel_cores": len(self.cores),
                "images_per_request": s.batch * len(self.cores), "executions_per_request": len(self.programs),
                "instructions_per_program": {name: len(p.instructions) for name, p in self.programs.items()}}


class VisionReplica(DataParallelReplica):
    input_name = "image"

    def __init__(self, workload: VisionWorkload, cores: Sequence[int]) -> None:
        super().__init__(cores)
        self.workload = workload
        self.models: dict[str, Model] = {}
        self.workspace: dict[int, dict[str, Tensor]] = {}
        self.runner: StageRunner | None = None

    def load(self, session: Session) -> None:
        w = self.workload
        for name, program in w.programs.items():
            self.models[name] = session.load_model(f"{w.name}-{name}", {c: program for c in self.cores})
        self.workspace = {core: {name: session.allocate(dims, w.shape.dtype, core_id=core, name=f"{w.name}.{name}")
                                 for name, dims in w.workspace_shapes().items()} for core in self.cores}
        self.runner = StageRunner(session, timing_only=not w.compute)

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()

    def _calls(self) -> list[tuple[Model, dict[int, dict[str, Tensor]]]]:
        w = self.workload
        return [(self.models[name], {core: {t: self.workspace[core][t] for t in w.shape.workspace(name)}
                                     for core in self.cores}) for name in w.programs]

    def verify(self, seed: int = 1) -> tuple[float, float]:
        """One request on known images (different on each core); (max |device - numpy|, max |numpy|) over
        every core's logits."""
        w = self.workload
        if w.weights is None or self.runner is None:
            raise RuntimeError("verify() needs a compute-mode workload that is loaded")
        rng = np.random.default_rng(seed)
        inputs = {core: self._random_input(rng) for core in self.cores}
        for core, images in inputs.items():
            self.workspace[core]["image"].write(images)
        self.runner.run(self._calls())
        error = scale = 0.0
        for core, images in inputs.items():
            rounded = dtypes.cast_to(images, dtypes.from_name(w.shape.dtype)).astype(np.float32)
            expected = reference(w.shape, w.weights, rounded)
            got = self.workspace[core]["logits"].read().astype(np.float32)
            error = max(error, float(np.max(np.abs(got - expected))))
            scale = max(scale, float(np.max(np.abs(expected))))
        return error, scale

    def _random_input(self, rng: np.random.Generator) -> np.ndarray:
        s = self.workload.shape
        return rng.standard_normal((s.batch, 3, s.image_size, s.image_size)).astype(np.float32)
