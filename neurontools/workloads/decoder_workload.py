"""The decoder deployed tensor-parallel: each replica is a group of `tp` cores holding one sharded copy.

A request is one generation: the prefill of `batch` prompts (its wall time is the time to first
token), then `gen_len - 1` decode steps, each through the stages and the head. In timing-only mode
the decode programs of every context-length bucket the generation crosses are loaded up front; in
compute mode each step loads the program of its exact context length, the host picks the next token
(greedy) from the logits shards, and `verify()` compares every step's logits with numpy.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools.client import Model, RequestStep, Session, Tensor
from neurontools.workloads.architectures import DecoderArchitecture
from neurontools.workloads.decoder import (DecoderShape, bucket, build_head, build_stage, embed, random_weights,
                                           reference_logits, shard)
from neurontools.workloads.memory_plan import MemoryPlan
from neurontools.workloads.workload import (Replica, RequestRecord, StageRunner, Workload, stage_count,
                                            spend_overhead, step_overhead_seconds)

Bindings = dict[int, dict[str, Tensor]]


class DecoderWorkload(Workload):
    kind = "decoder"
    unit = "tokens"

    def __init__(self, arch: DecoderArchitecture, cores: Sequence[int], *, tp: int, batch: int = 1,
                 prompt_len: int = 128, gen_len: int = 32, dtype: str = "bfloat16", compute: bool = False,
                 layers_per_program: int | None = None, seed: int = 0) -> None:
        cores = list(cores)
        if not cores or len(cores) % tp:
            raise ValueError(f"{arch.name} at tp={tp} needs a multiple of {tp} cores, not {len(cores)}")
        super().__init__(arch.name, [cores[i:i + tp] for i in range(0, len(cores), tp)], compute=compute)
        self.shape = DecoderShape(arch, tp, batch, prompt_len, gen_len, dtype)
        self.shape.check()
        self.full = random_weights(arch, dtype, seed) if compute else None
        self.shards = [shard(self.shape, self.full, rank) for rank in range(tp)] if self.full else None
        one_layer = max(len(build_stage(self.shape, 1).instructions),
                        len(build_stage(self.shape, 1, context=self.shape.capacity).instructions))
        self.layers_per_program = stage_count(arch.layers, one_layer, tp, layers_per_program)
        self.stages = arch.layers // self.layers_per_program
        self.prefill = build_stage(self.shape, self.layers_per_program)
        # Timing-only: one decode program per bucket the generation crosses. Compute mode builds
        # exact-length programs step by step (decode_program()).
        self.buckets = sorted({bucket(p + 1) for p in self.decode_positions}) if not compute else []
        self.decode = {c: build_stage(self.shape, self.layers_per_program, context=c) for c in self.buckets}
        self.heads = [build_head(self.shape, self.shards[rank][1] if self.shards else None) for rank in range(tp)]

    @property
    def decode_positions(self) -> range:
        """Positions written by the decode steps (the prefill's logits give the first token)."""
        s = self.shape
        return range(s.prompt_len, s.prompt_len + s.gen_len - 1)

    def decode_program(self, position: int) -> pb.Program:
        if self.compute:
            return build_stage(self.shape, self.layers_per_program, context=position + 1)
        return self.decode[bucket(position + 1)]

    def overhead_seconds(self, *, prefill: bool) -> float:
        """The fixed cost of a prefill (which starts the generation) or of a decode step: token ids in
        (int32), each sequence's logits out (float32)."""
        s = self.shape
        tokens = s.batch * (s.prompt_len if prefill else 1)
        return step_overhead_seconds(4 * tokens + 4 * s.batch * s.arch.vocab, starts_generation=prefill)

    def memory_plan(self) -> MemoryPlan:
        s = self.shape
        plan = MemoryPlan()
        plan.add_session(self.cores)
        code = dtypes.from_name(s.dtype)
        # Compute mode holds one decode program at a time; the last step's is the largest.
        decode = list(self.decode.values()) or ([self.decode_program(self.decode_positions[-1])]
                                                if self.decode_positions else [])
        for group in self.groups:
            for rank, core in enumerate(group):
                for program in [self.prefill, *decode, self.heads[rank]]:
                    plan.add_model({core: program})
                plan.add_scratchpad([core])
                per_stage = {**s.layer_weights(self.layers_per_program), **s.kv_cache(self.layers_per_program)}
                for _ in range(self.stages):
                    for dims in per_stage.values():
                        plan.add_tensor(core, dims, code)
                for dims in self.workspace_shapes().values():
                    plan.add_tensor(core, dims, code)
        return plan

    def workspace_shapes(self) -> dict[str, tuple[int, int]]:
        """Prefill and decode workspaces, named "prefill.*" and "decode.*"; "last" is shared, being
        the head's input."""
        s = self.shape
        space: dict[str, tuple[int, int]] = {}
        for phase, tokens in (("prefill", s.batch * s.prompt_len), ("decode", s.batch)):
            for name, dims in s.workspace(tokens).items():
                space[name if name == "last" else f"{phase}.{name}"] = dims
        return space | {"final": (s.batch, s.arch.hidden), "logits": (s.batch, s.vocab)}

    def replica(self, cores: Sequence[int]) -> "DecoderReplica":
        return DecoderReplica(self, cores)

    def describe(self) -> dict:
        s = self.shape
        return {"model": s.arch.name, "parameters": s.arch.parameters(), "tp": s.tp, "batch": s.batch,
                "prompt_len": s.prompt_len, "gen_len": s.gen_len, "dtype": s.dtype,
                "tensor_parallel_groups": len(self.groups), "heads_padded": s.padded(),
                "layers_per_program": self.layers_per_program, "stages": self.stages,
                "decode_buckets": self.buckets, "kv_cache_positions": s.capacity,
                "instructions_per_program": {"prefill": len(self.prefill.instructions),
                                             **{f"decode@{c}": len(p.instructions) for c, p in self.decode.items()},
                                             "head": len(self.heads[0].instructions)}}


class DecoderReplica(Replica):
    def __init__(self, workload: DecoderWorkload, cores: Sequence[int]) -> None:
        super().__init__(cores)
        self.workload = workload
        self.session: Session | None = None
        self.prefill: Model | None = None
        self.decode: dict[int, Model] = {}
        self.head: Model | None = None
        self.stage_tensors: list[Bindings] = []   # per stage: weights and KV cache of each core
        self.workspace: Bindings = {}
        self.runner: StageRunner | None = None

    def load(self, session: Session) -> None:
        w = self.workload
        self.session = session
        self.prefill = session.load_model(f"{w.name}-prefill", {core: w.prefill for core in self.cores})
        self.decode = {c: session.load_model(f"{w.name}-decode{c}", {core: p for core in self.cores})
                       for c, p in w.decode.items()}
        self.head = session.load_model(f"{w.name}-head", dict(zip(self.cores, w.heads)))
        self.allocate(session)
        self.runner = StageRunner(session, timing_only=not w.compute)

    def allocate(self, session: Session) -> None:
        """The tensors: each stage's weights (written in compute mode) and KV cache, the workspaces."""
        w, s = self.workload, self.workload.shape
        per_stage = {**s.layer_weights(w.layers_per_program), **s.kv_cache(w.layers_per_program)}
        for stage in range(w.stages):
            tensors: Bindings = {}
            for rank, core in enumerate(self.cores):
                tensors[core] = {name: session.allocate(dims, s.dtype, core_id=core, name=f"{w.name}.stage{stage}.{name}")
                                 for name, dims in per_stage.items()}
                if w.shards is not None:
                    layers = w.shards[rank][0][stage * w.layers_per_program:(stage + 1) * w.layers_per_program]
                    for name in s.layer_weights(1):
                        tensors[core][name].write(np.concatenate([layer[name] for layer in layers]))
            self.stage_tensors.append(tensors)
        self.workspace = {core: {name: session.allocate(dims, s.dtype, core_id=core, name=f"{w.name}.{name}")
                                 for name, dims in w.workspace_shapes().items()} for core in self.cores}

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()

    def _step_calls(self, model: Model, phase: str) -> list[tuple[Model, Bindings]]:
        calls = []
        for stage in range(self.workload.stages):
            bindings = {}
            for core in self.cores:
                space = self.workspace[core]
                io = {name.split(".", 1)[1]: t for name, t in space.items() if name.startswith(phase + ".")}
                bindings[core] = io | {"last": space["last"]} | self.stage_tensors[stage][core]
            calls.append((model, bindings))
        head = {core: {name: self.workspace[core][name] for name in ("last", "final", "logits")} for core in self.cores}
        return calls + [(self.head, head)]

    def _run(self, calls) -> float:
        assert self.runner is not None, "load() first"
        return sum(r.device_latency for r in self.runner.run(calls))

    def _decode_model(self, position: int) -> tuple[Model, bool]:
        """The model of a decode step and whether it was loaded for this step alone (compute mode)."""
        w = self.workload
        if not w.compute:
            return self.decode[bucket(position + 1)], False
        assert self.session is not None
        program = w.decode_program(position)
        return self.session.load_model(f"{w.name}-decode{position + 1}", {c: program for c in self.cores}), True

    def generate(self, tokens: np.ndarray | None = None) -> tuple[RequestRecord, list[np.ndarray], np.ndarray | None]:
        """One generation. In compute mode, from prompt `tokens` [B, S] (random when None), returning
        the logits of every step [B, V] and all tokens [B, S + gen_len]."""
        w, s = self.workload, self.workload.shape
        started = time.monotonic()
        if w.compute:
            tokens = np.random.default_rng().integers(0, s.arch.vocab, (s.batch, s.prompt_len)) if tokens is None else tokens
            positions = np.arange(s.prompt_len)[None].repeat(s.batch, 0)
            self._write_hidden("prefill", embed(s.arch, w.full, tokens, positions).reshape(-1, s.arch.hidden))
        first_device = spend_overhead(w.overhead_seconds(prefill=True)) + self._run(self._step_calls(self.prefill, "prefill"))
        first = time.monotonic() - started
        logits = [self._logits()] if w.compute else []
        steps, step_devices = [], []
        for position in w.decode_positions:
            step_started = time.monotonic()
            if w.compute:
                tokens = np.concatenate([tokens, logits[-1].argmax(axis=1)[:, None]], axis=1)
                self._write_hidden("decode", embed(s.arch, w.full, tokens[:, -1], np.full(s.batch, position)))
            model, temporary = self._decode_model(position)
            try:
                step_devices.append(spend_overhead(w.overhead_seconds(prefill=False))
                                    + self._run(self._step_calls(model, "decode")))
            finally:
                if temporary:
                    model.unload()
            if w.compute:
                logits.append(self._logits())
            steps.append(time.monotonic() - step_started)
        if w.compute:
            tokens = np.concatenate([tokens, logits[-1].argmax(axis=1)[:, None]], axis=1)
        record = RequestRecord(started=started, wall_seconds=time.monotonic() - started,
                               device_seconds=first_device + sum(step_devices), items=s.batch * s.gen_len,
                               executions=(1 + len(steps)) * (w.stages + 1), first_item_seconds=first,
                               first_item_device_seconds=first_device, item_seconds=steps,
                               item_device_seconds=step_devices)
        return record, logits, tokens

    def request(self) -> RequestRecord:
        return self.generate()[0]

    @property
    def items_per_request(self) -> int:
        return self.workload.shape.batch * self.workload.shape.gen_len

    def request_steps(self) -> list[RequestStep]:
        """The prefill, then each decode step: its fixed costs, the stages, and the head (a token)."""
        w = self.workload
        phases = [(self.prefill, "prefill", True)] + [(self.decode[bucket(p + 1)], "decode", False)
                                                      for p in w.decode_positions]
        steps = []
        for model, phase, prefill in phases:
            calls = self._step_calls(model, phase)
            overhead = w.overhead_seconds(prefill=prefill)
            steps += [RequestStep(m, bindings, host_seconds=overhead if i == 0 else 0.0, ends_item=i == len(calls) - 1)
                      for i, (m, bindings) in enumerate(calls)]
        return steps

    def verify(self, seed: int = 1) -> tuple[float, float]:
        """One generation from a random prompt; returns (max |device - numpy| over every step's logits,
        max |numpy logits|)."""
        w, s = self.workload, self.workload.shape
        if w.full is None:
            raise RuntimeError("verify() needs a compute-mode workload that is loaded")
        prompt = np.random.default_rng(seed).integers(0, s.arch.vocab, (s.batch, s.prompt_len))
        _, logits, tokens = self.generate(prompt)
        expected = reference_logits(s.arch, w.full, tokens[:, :-1])[:, s.prompt_len - 1:]
        got = np.stack(logits, axis=1)
        return float(np.max(np.abs(got - expected))), float(np.max(np.abs(expected)))

    def _write_hidden(self, phase: str, values: np.ndarray) -> None:
        for core in self.cores:  # every rank computes with the full hidden state
            self.workspace[core][f"{phase}.hidden"].write(values)

    def _logits(self) -> np.ndarray:
        vocab = self.workload.shape.arch.vocab
        shards = [self.workspace[core]["logits"].read().astype(np.float32) for core in self.cores]
        return np.concatenate(shards, axis=1)[:, :vocab]
