"""Profiles of a workload preset's stage programs, without a client session.

The programs are the ones `neuron-workload` loads for the spec (workloads/catalog.py builds them for a
machine of the instance type, as placed on a fresh daemon), compiled and, for a tensor-parallel group,
planned among their ranks exactly as neurond does when it loads them; each is then profiled as the
daemon profiles a model's first execution (rank 0 of a group). `times` says how often a request runs
each one, so the stages can be weighed against each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from neurontools._proto import neurond_pb2 as pb
from neurontools.client import Device
from neurontools.daemon.collectives.planning import plan_model
from neurontools.daemon.device import topology as topo
from neurontools.daemon.isa.program import compile_program
from neurontools.daemon.server.embedded import running_daemon
from neurontools.workloads import catalog
from neurontools.workloads.decoder import bucket
from neurontools.workloads.decoder_workload import DecoderWorkload
from neurontools.workloads.encoder_workload import EncoderWorkload


@dataclass
class StageProfile:
    name: str        # embed, layers, pooler, prefill, decode<context>, head, or a vision program's name
    times: float     # executions of it per request (per output token for decode and head)
    profile: dict


def stage_programs(workload) -> list[tuple[str, pb.Program, float]]:
    if isinstance(workload, EncoderWorkload):
        return [(name, program, workload.stages if name == "layers" else 1)
                for name, program in workload.programs.items()]
    if isinstance(workload, DecoderWorkload):
        positions = list(workload.decode_positions)
        decode = [(f"decode{context}", program,
                   workload.stages * sum(1 for p in positions if bucket(p + 1) == context) / max(1, len(positions)))
                  for context, program in workload.decode.items()]
        return [("prefill", workload.prefill, workload.stages), *decode, ("head", workload.heads[0], 1)]
    return [(name, program, 1) for name, program in workload.programs.items()]


def preset_profiles(spec_text: str, instance_type: str) -> list[StageProfile]:
    """Raises catalog.SpecError for a spec that does not build on this instance type."""
    spec = catalog.parse_spec(spec_text, catalog.Settings())
    with running_daemon(instance_type) as daemon, Device(daemon.address) as device:
        workload = catalog.build(spec, catalog.Placer(device.snapshot()))
    machine = topo.lookup(instance_type)
    cores = workload.groups[0]
    out = []
    for name, program, times in stage_programs(workload):
        compiled = compile_program(program)
        if compiled.collectives:
            compiled = plan_model(machine, [(core, compiled) for core in cores]).programs[cores[0]]
        profile = compiled.profile()
        profile["source"] = {"preset": spec_text, "stage": name, "instance_type": instance_type,
                             "core_id": cores[0], "times_per_request": times}
        out.append(StageProfile(name, times, profile))
    return out
